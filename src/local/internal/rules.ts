/**
 * DSQL's statement rules as data, in the order a reader meets them in `../shared/DSQL.md`:
 *
 * - `statementRules`: refusals keyed by the statement's kind (its libpg-query node type), each a fixed refusal or a
 *   check of that statement's parse tree;
 * - `transactionStatementRefusals` and `refusedSettings`: the transaction statements and settings DSQL refuses;
 * - `treeRules`: refusals that can hide anywhere in a statement (a function call, a column definition);
 * - `transactionRules`: refusals that depend on the transaction the statement runs in.
 *
 * The session policy consults them; a refused statement never reaches the backend as written.
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

const persistenceRefusal = (persistence: string | undefined): Refusal | undefined => {
  if (persistence === "t") return unsupported("TEMPORARY or TEMP table not supported for CREATE TABLE")
  if (persistence === "u") return unsupported("UNLOGGED table not supported for CREATE TABLE")
  return undefined
}

/**
 * Refusals keyed by statement kind. `CREATE INDEX` without ASYNC is judged in `statements.ts`, where the removed
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
  CreatedbStmt: unsupported("unsupported statement: Createdb"),
  CreateExtensionStmt: unsupported("unsupported statement: CreateExtension"),
  CreateTrigStmt: unsupported("CREATE TRIGGER not supported"),
  CreateStmt: (body) => persistenceRefusal(body.relation?.relpersistence),
  CreateTableAsStmt: (body) =>
    body.objtype === "OBJECT_TABLE" ? persistenceRefusal(body.into?.rel?.relpersistence) : undefined
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

const lastName = (names: ReadonlyArray<Node> | undefined): string | undefined => {
  const last = names?.at(-1)
  return last !== undefined && "String" in last ? last.String.sval : undefined
}

/**
 * Refusals that can hide anywhere in a statement, keyed by the node they look at.
 *
 * @since 0.1.0
 * @category models
 */
export const treeRules: { readonly [K in NodeName]?: (body: NodeBody<K>) => Refusal | undefined } = {
  FuncCall: (body) => {
    const name = lastName(body.funcname) ?? ""
    return name.startsWith("pg_advisory") || name.startsWith("pg_try_advisory")
      ? unsupported(`unsupported function: ${name}`)
      : undefined
  },
  ColumnDef: (body) => {
    const names = body.typeName?.names
    const type = names?.length === 1 ? lastName(names) ?? "" : ""
    return SERIAL_TYPES.has(type) ? { code: "42704", message: `type "${type}" does not exist` } : undefined
  }
}

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
