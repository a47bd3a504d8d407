/**
 * DSQL's statement rules as data, in the order a reader meets them in `../shared/DSQL.md`:
 *
 * - `statementRules`: refusals keyed by the statement's kind (its libpg-query node type), each a fixed refusal or a
 *   check of that statement's parse tree;
 * - `transactionStatementRefusals` and `refusedSettings`: the transaction statements and settings DSQL refuses;
 * - `treeRules`: refusals that can hide anywhere in a statement (a function call, a column definition);
 * - `transactionRules`: refusals that depend on the transaction the statement runs in.
 *
 * The session policy consults them; a refused statement never reaches the backend as written. `local/DSQL-COVERAGE.md`
 * maps them to AWS's user guide and marks the refusal texts DSQL has not been seen to give.
 *
 * @internal
 */
import type { Node } from "libpg-query"
import type { Statement } from "./statements.js"

/**
 * DSQL's error for a statement it does not run.
 *
 * @since 0.1.0
 * @category models
 */
export interface Refusal {
  readonly code: string
  readonly message: string
  readonly detail?: string
}

/** The name of a parse-tree node, e.g. `CreateStmt`. */
type NodeName = Node extends infer N ? N extends unknown ? keyof N : never : never

/** The body of the parse-tree node called `K`. */
type NodeBody<K extends NodeName> = Extract<Node, Record<K, unknown>>[K]

/** A rule for one kind of statement: DSQL always refuses it, or refuses it when its parse tree says so. */
type StatementRule<K extends NodeName> = Refusal | ((body: NodeBody<K>) => Refusal | undefined)

/**
 * DSQL's usual `feature not supported` error.
 *
 * @since 0.1.0
 * @category constructors
 */
export const unsupported = (message: string): Refusal => ({ code: "0A000", message })

/** DSQL keeps no temporary objects; its text for views and sequences is unconfirmed, modelled on tables'. */
const temporaryRefusal = (object: string, statement: string): Refusal =>
  unsupported(`TEMPORARY or TEMP ${object} not supported for ${statement}`)

const persistenceRefusal = (persistence: string | undefined): Refusal | undefined => {
  if (persistence === "t") return unsupported("TEMPORARY or TEMP table not supported for CREATE TABLE")
  if (persistence === "u") return unsupported("UNLOGGED table not supported for CREATE TABLE")
  return undefined
}

/**
 * Refusals keyed by statement kind. `CREATE INDEX` without ASYNC is refused in `statements.ts`, where the removed
 * ASYNC keyword is known.
 *
 * @since 0.1.0
 * @category models
 */
export const statementRules: { readonly [K in NodeName]?: StatementRule<K> } = {
  ListenStmt: unsupported("unsupported statement: Listen"),
  NotifyStmt: unsupported("unsupported statement: Notify"),
  UnlistenStmt: unsupported("unsupported statement: Unlisten"),
  TruncateStmt: unsupported("unsupported statement: Truncate"),
  LockStmt: unsupported("unsupported statement: Lock"),
  PrepareStmt: unsupported("unsupported statement: Prepare"),
  ExecuteStmt: unsupported("unsupported statement: Execute"),
  DiscardStmt: unsupported("unsupported statement: Discard"),
  DeclareCursorStmt: unsupported("unsupported statement: DeclareCursor"),
  CreatedbStmt: unsupported("unsupported statement: Createdb"),
  CreateExtensionStmt: unsupported("unsupported statement: CreateExtension"),
  CreateTableSpaceStmt: unsupported("unsupported statement: CreateTableSpace"),
  CreateForeignTableStmt: unsupported("unsupported statement: CreateForeignTable"),
  AlterSystemStmt: unsupported("unsupported statement: AlterSystem"),
  // An anonymous code block runs PL/pgSQL, which DSQL does not have; its text for DO is unconfirmed.
  DoStmt: unsupported("unsupported statement: Do"),
  CreateTrigStmt: unsupported("CREATE TRIGGER not supported"),
  CreateEnumStmt: unsupported("CREATE TYPE not supported"),
  CompositeTypeStmt: unsupported("unsupported statement: CompositeType"),
  CreateRangeStmt: unsupported("unsupported statement: CreateRange"),
  DefineStmt: (body) => body.kind === "OBJECT_TYPE" ? unsupported("CREATE TYPE not supported") : undefined,
  CreateFunctionStmt: (body) => {
    if (body.is_procedure === true) return unsupported("PROCEDURE is not supported")
    // Without LANGUAGE the body is SQL-standard (`BEGIN ATOMIC` or `RETURN`): language sql.
    const language =
      (body.options ?? []).flatMap((option) =>
        "DefElem" in option && option.DefElem.defname === "language" && option.DefElem.arg !== undefined &&
          "String" in option.DefElem.arg
          ? [option.DefElem.arg.String.sval ?? ""]
          : []
      )[0]?.toLowerCase() ?? "sql"
    return language === "sql" ? undefined : unsupported(`CREATE FUNCTION with language ${language} not supported`)
  },
  CreateSeqStmt: (body) => {
    if (!hasDsqlCache(body.options)) return unsupported(`CREATE SEQUENCE ${CACHE_REQUIRED}`)
    if (body.sequence?.relpersistence === "t") return temporaryRefusal("sequence", "CREATE SEQUENCE")
    const type = sequenceType(body.options)
    return type === undefined || type === "bigint"
      ? undefined
      : unsupported(`datatype ${type} not supported, sequence type must be bigint`)
  },
  AlterSeqStmt: (body) => cacheChangeRefusal("ALTER SEQUENCE", body.options),
  ViewStmt: (body) => body.view?.relpersistence === "t" ? temporaryRefusal("view", "CREATE VIEW") : undefined,
  VacuumStmt: (body) => body.is_vacuumcmd === true ? unsupported("unsupported VACUUM statement") : undefined,
  CreateStmt: (body) => {
    const persistence = persistenceRefusal(body.relation?.relpersistence)
    if (persistence !== undefined) return persistence
    // A partition (`PARTITION OF`) also lists its parent in inhRelations.
    if (body.partspec !== undefined || body.partbound !== undefined) {
      return unsupported("PARTITION BY not supported for CREATE TABLE")
    }
    return (body.inhRelations ?? []).length > 0 ? unsupported("INHERITS not supported for CREATE TABLE") : undefined
  },
  CreateTableAsStmt: (body) =>
    (body.objtype === "OBJECT_TABLE" ? persistenceRefusal(body.into?.rel?.relpersistence) : undefined) ??
      createTableAs,
  SelectStmt: (body) => body.intoClause === undefined ? undefined : createTableAs,
  IndexStmt: (body) => {
    if (body.concurrent === true) return unsupported("CONCURRENTLY not supported for CREATE INDEX")
    // DSQL's CREATE INDEX syntax has no USING clause: B-tree only (the parser fills in btree when none is given).
    const method = body.accessMethod ?? "btree"
    return method === "btree" ? undefined : unsupported(`access method "${method}" not supported for CREATE INDEX`)
  },
  AlterTableStmt: (body) => {
    for (const command of body.cmds ?? []) {
      const refusal = "AlterTableCmd" in command ? alterTableRefusal(command.AlterTableCmd) : undefined
      if (refusal !== undefined) return refusal
    }
    return undefined
  },
  GrantStmt: (body) =>
    body.objtype === "OBJECT_SCHEMA" &&
      (body.objects ?? []).some((object) => "String" in object && object.String.sval === "public")
      ? unsupported("feature not supported on system entity")
      : undefined
}

const createTableAs = unsupported("unsupported statement: CreateTableAs")

const alterTableRefusal = (command: NodeBody<"AlterTableCmd">): Refusal | undefined => {
  switch (command.subtype) {
    case "AT_AddColumn": {
      const definition = command.def !== undefined && "ColumnDef" in command.def ? command.def.ColumnDef : undefined
      return (definition?.constraints ?? []).length > 0
        ? unsupported("ALTER TABLE ADD COLUMN with constraint not supported")
        : undefined
    }
    case "AT_SetIdentity":
      return cacheChangeRefusal(
        "ALTER TABLE ALTER COLUMN ... SET CACHE",
        command.def !== undefined && "List" in command.def ? command.def.List.items : undefined
      )
    case "AT_AlterColumnType":
      return unsupported("unsupported ALTER TABLE ALTER COLUMN ... SET DATA TYPE statement")
    case "AT_AddConstraint": {
      const constraint = command.def !== undefined && "Constraint" in command.def ? command.def.Constraint : undefined
      const notValid = (constraint?.contype === "CONSTR_FOREIGN" || constraint?.contype === "CONSTR_CHECK") &&
        constraint.skip_validation === true
      return notValid ? undefined : unsupported("unsupported ALTER TABLE ADD CONSTRAINT statement")
    }
    default:
      return undefined
  }
}

/**
 * Refused transaction statements, keyed by libpg-query's `TransactionStmt` kind.
 *
 * @since 0.1.0
 * @category models
 */
export const transactionStatementRefusals: Readonly<Record<string, Refusal>> = {
  TRANS_STMT_SAVEPOINT: unsupported("unsupported transaction statement: SAVEPOINT"),
  TRANS_STMT_RELEASE: unsupported("unsupported transaction statement: RELEASE"),
  TRANS_STMT_ROLLBACK_TO: unsupported("unsupported transaction statement: ROLLBACK TO"),
  TRANS_STMT_PREPARE: unsupported("unsupported transaction statement: PREPARE TRANSACTION"),
  TRANS_STMT_COMMIT_PREPARED: unsupported("unsupported transaction statement: COMMIT PREPARED"),
  TRANS_STMT_ROLLBACK_PREPARED: unsupported("unsupported transaction statement: ROLLBACK PREPARED")
}

/**
 * Session settings DSQL refuses to change (lower case; `TRANSACTION` is `SET TRANSACTION …`). Resetting them is fine.
 *
 * @since 0.1.0
 * @category models
 */
export const refusedSettings: ReadonlySet<string> = new Set([
  "transaction",
  "role",
  "default_transaction_isolation",
  "transaction_isolation",
  "session characteristics"
])

/**
 * DSQL's answer to a refused setting, naming it as written.
 *
 * @since 0.1.0
 * @category constructors
 */
export const settingRefusal = (setting: string): Refusal =>
  unsupported(`setting configuration parameter "${setting}" not supported`)

/**
 * DSQL's answer to `BEGIN ISOLATION LEVEL …` other than repeatable read.
 *
 * @since 0.1.0
 * @category constructors
 */
export const isolationRefusal = (level: string): Refusal => unsupported(`Unsupported isolation level: ${level}`)

/**
 * DSQL's answer to a plain `CREATE INDEX`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const indexModeRefusal: Refusal = unsupported("unsupported mode. please use CREATE INDEX ASYNC.")

const SERIAL_TYPES = new Set(["serial", "serial4", "bigserial", "serial8", "smallserial", "serial2"])

/**
 * The parts of a qualified name in a parse tree (`sys.wait_for_job` → `["sys", "wait_for_job"]`).
 *
 * @since 0.1.0
 * @category combinators
 */
export const nameParts = (names: ReadonlyArray<Node> | undefined): Array<string> =>
  (names ?? []).flatMap((part) => "String" in part && part.String.sval !== undefined ? [part.String.sval] : [])

/**
 * Refusals that can hide anywhere in a statement, keyed by the node they look at.
 *
 * @since 0.1.0
 * @category models
 */
export const treeRules: { readonly [K in NodeName]?: (body: NodeBody<K>) => Refusal | undefined } = {
  FuncCall: (body) => {
    const names = nameParts(body.funcname)
    const name = names.at(-1) ?? ""
    if (name === "wait_for_job" && (names.length === 1 || names[0] === "sys")) {
      return { code: "42809", message: "sys.wait_for_job(text) is a procedure" }
    }
    return name.startsWith("pg_advisory") || name.startsWith("pg_try_advisory")
      ? unsupported(`unsupported function: ${name}`)
      : undefined
  },
  ColumnDef: (body) => {
    const names = nameParts(body.typeName?.names)
    const type = names.length === 1 ? names[0]! : ""
    if (SERIAL_TYPES.has(type)) return { code: "42704", message: `type "${type}" does not exist` }
    return body.collClause === undefined ? undefined : unsupported("COLLATE not supported")
  },
  Constraint: (body) =>
    body.contype === "CONSTR_IDENTITY" && !hasDsqlCache(body.options)
      ? unsupported(`identity column ${CACHE_REQUIRED}`)
      : body.contype === "CONSTR_EXCLUSION"
      ? unsupported("EXCLUDE constraints not supported")
      : undefined,
  LockingClause: (body) =>
    body.strength === "LCS_FORUPDATE" || body.strength === "LCS_FORKEYSHARE"
      ? undefined
      : unsupported("locking clauses other than FOR UPDATE/FOR KEY SHARE are not supported"),
  IndexElem: (body) => {
    if ((body.opclass ?? []).length > 0) return unsupported("opclass not supported for index keys")
    // ASC and DESC are refused; NULLS FIRST / NULLS LAST are part of DSQL's CREATE INDEX syntax.
    return body.ordering !== undefined && body.ordering !== "SORTBY_DEFAULT"
      ? unsupported("specifying sort order not supported for index keys")
      : undefined
  }
}

const CACHE_ADVICE = "please define CACHE greater than or equal to 65536 or equal to 1"

const CACHE_REQUIRED = `is not supported without an explicit cache size. ${CACHE_ADVICE}`

/** The `CACHE` values of a sequence's options, `undefined` for one that is not a number. */
const cacheValues = (options: ReadonlyArray<Node> | undefined): Array<number | undefined> =>
  (options ?? []).flatMap((option) => {
    if (!("DefElem" in option) || option.DefElem.defname !== "cache") return []
    const arg = option.DefElem.arg
    // libpg-query leaves out a zero `ival`; a cache beyond 32 bits arrives as a Float.
    return [
      arg === undefined ? undefined : "Integer" in arg
        ? arg.Integer.ival ?? 0
        : "Float" in arg
        ? Number(arg.Float.fval)
        : undefined
    ]
  })

const isDsqlCache = (cache: number | undefined): boolean => cache === 1 || (cache !== undefined && cache >= 65536)

/** DSQL wants sequences to say `CACHE 1` or `CACHE` of at least 65536. */
const hasDsqlCache = (options: ReadonlyArray<Node> | undefined): boolean => cacheValues(options).some(isDsqlCache)

/** Changing a sequence's CACHE keeps DSQL's rule (1 or at least 65536); DSQL's text for it is unconfirmed. */
const cacheChangeRefusal = (statement: string, options: ReadonlyArray<Node> | undefined): Refusal | undefined =>
  cacheValues(options).every(isDsqlCache)
    ? undefined
    : unsupported(`${statement} with this cache size not supported. ${CACHE_ADVICE}`)

/** A sequence's `AS` type in DSQL's words (`integer`, not `int4`). */
const sequenceType = (options: ReadonlyArray<Node> | undefined): string | undefined => {
  for (const option of options ?? []) {
    if (!("DefElem" in option) || option.DefElem.defname !== "as") continue
    const arg = option.DefElem.arg
    const name = arg !== undefined && "TypeName" in arg ? nameParts(arg.TypeName.names).at(-1) : undefined
    return name === undefined ? undefined : SQL_TYPE_NAMES[name] ?? name
  }
  return undefined
}

const SQL_TYPE_NAMES: Readonly<Record<string, string>> = { int2: "smallint", int4: "integer", int8: "bigint" }

/**
 * What the transaction rules need to know about the transaction a statement runs in.
 *
 * @since 0.1.0
 * @category models
 */
export interface TransactionSoFar {
  /** Inside an explicit transaction block. */
  readonly inBlock: boolean
  /** DDL statements run so far. */
  readonly ddl: number
  /** A DML statement ran. */
  readonly dml: boolean
}

/**
 * Refusals that depend on the transaction: one DDL per transaction, DDL and DML never together, no
 * `sys.wait_for_job` inside a block. The first that applies wins.
 *
 * @since 0.1.0
 * @category models
 */
export const transactionRules: ReadonlyArray<{
  readonly applies: (statement: Statement, txn: TransactionSoFar) => boolean
  readonly refusal: Refusal
}> = [
  {
    applies: (statement, txn) => statement.waitForJob && txn.inBlock,
    refusal: unsupported("CALL sys.wait_for_job cannot run inside a transaction block")
  },
  {
    applies: (statement, txn) => statement.kind === "ddl" && txn.ddl > 0,
    refusal: unsupported("multiple ddl statements not supported in a transaction")
  },
  {
    applies: (statement, txn) => (statement.kind === "ddl" && txn.dml) || (statement.kind === "dml" && txn.ddl > 0),
    refusal: unsupported("ddl and dml are not supported in the same transaction")
  }
]

/**
 * The first transaction rule that refuses `statement` in `txn`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const transactionRefusal = (statement: Statement, txn: TransactionSoFar): Refusal | undefined =>
  transactionRules.find((rule) => rule.applies(statement, txn))?.refusal

/**
 * Rules the backend checks, because they need the catalog (column types, key declarations, object counts) or the
 * written values (sizes, rows): DsqlLocal's event trigger and table triggers (see `catalog.ts`) raise these, by
 * name. `limit` is DSQL's; a message with `%s` names the offending type or column.
 *
 * @since 0.1.0
 * @category models
 */
export const backendRules: Readonly<
  Record<string, { readonly code: string; readonly message: string; readonly limit?: number }>
> = {
  column_type: { code: "0A000", message: "datatype %s not supported" },
  identity_type: { code: "0A000", message: "datatype %s not supported, identity column type must be bigint" },
  key_type: { code: "0A000", message: "datatype %s is not supported in a key" },
  drop_key_column: { code: "0A000", message: "cannot drop primary key column %s" },
  drop_mapped_role: { code: "2BP01", message: "role \"%s\" cannot be dropped because some objects depend on it" },
  columns_per_table: { code: "54011", message: "tables can have at most 255 columns", limit: 255 },
  key_columns: { code: "54011", message: "more than 8 column keys in an index are not supported", limit: 8 },
  declared_key_bytes: { code: "54000", message: "key size greater than 2000 bytes not supported", limit: 2000 },
  indexes_per_table: { code: "54000", message: "more than 24 indexes per table are not allowed", limit: 24 },
  schemas: { code: "54000", message: "more than 10 schemas not allowed", limit: 10 },
  tables: { code: "54000", message: "creating more than 1000 tables not allowed", limit: 1000 },
  views: { code: "54000", message: "creating more than 5000 views not allowed", limit: 5000 },
  sequences: { code: "54000", message: "creating more than 5000 sequences is not allowed", limit: 5000 },
  key_bytes: { code: "54000", message: "key size too large", limit: 1024 },
  column_bytes: { code: "54000", message: "maximum column size exceeded", limit: 1024 * 1024 },
  row_bytes: { code: "54000", message: "maximum row size exceeded", limit: 2 * 1024 * 1024 },
  transaction_bytes: { code: "54000", message: "transaction size limit 10mb exceeded", limit: 10 * 1024 * 1024 },
  transaction_rows: { code: "54000", message: "transaction row limit exceeded" }
}
