/**
 * Classifies SQL the way Aurora DSQL sees it, with PostgreSQL's own parser (libpg-query, WASM): what each statement
 * is for DSQL's transaction rules, and DSQL's answer when it refuses the statement.
 *
 * @internal
 */
import type { Node, RawStmt } from "libpg-query"
import type * as LibPgQuery from "libpg-query"
import { literal } from "./catalog.js"
import type { Refusal } from "./rules.js"
import * as Rules from "./rules.js"

/**
 * What a statement is for DSQL's transaction rules (one DDL per transaction, no DDL with DML).
 *
 * @since 0.1.0
 * @category models
 */
export type StatementKind = "ddl" | "dml" | "read" | "transaction" | "other"

/**
 * How a transaction-control statement moves the transaction block.
 *
 * @since 0.1.0
 * @category models
 */
export type TransactionControl = "begin" | "commit" | "rollback"

/**
 * The table an asynchronous job (`CREATE INDEX ASYNC`, `ALTER TABLE ASYNC … VALIDATE CONSTRAINT`) works on.
 *
 * @since 0.1.0
 * @category models
 */
export interface AsyncTarget {
  readonly schema: string | undefined
  readonly table: string
}

/**
 * One classified statement.
 *
 * @since 0.1.0
 * @category models
 */
export interface Statement {
  readonly kind: StatementKind
  /** This statement's SQL; DSQL's ASYNC keyword is already removed. */
  readonly sql: string
  readonly control: TransactionControl | undefined
  readonly refusal: Refusal | undefined
  /** Set for `CREATE [UNIQUE] INDEX ASYNC`. */
  readonly asyncIndex: AsyncTarget | undefined
  /** Set for `ALTER TABLE ASYNC … VALIDATE CONSTRAINT`. */
  readonly asyncValidation: AsyncTarget | undefined
  /** `CALL sys.wait_for_job(…)`, which DSQL refuses inside a transaction block. */
  readonly waitForJob: boolean
  /** Set for `ALTER TABLE … DROP COLUMN`: DSQL refuses dropping a primary-key column. */
  readonly droppedColumns: DroppedColumns | undefined
  /** Set for `DROP ROLE`: DSQL refuses dropping a role an IAM principal is still mapped to. */
  readonly droppedRoles: ReadonlyArray<string> | undefined
  /** Set for DSQL's `AWS IAM GRANT` / `AWS IAM REVOKE` (not PostgreSQL syntax). */
  readonly iamMapping: IamMapping | undefined
  /** `COPY … FROM STDIN`: the client's rows follow the statement. */
  readonly copiesFromClient: boolean
  /** `SELECT … FOR UPDATE` / `FOR KEY SHARE`: takes row locks like a write. */
  readonly locksRows: boolean
  /** `SELECT … FOR UPDATE`: the tables in its FROM whose rows it locks, which DSQL counts as written. */
  readonly lockedForUpdate: ReadonlyArray<LockTarget>
}

/**
 * A table whose rows a `SELECT … FOR UPDATE` locks, and the name the statement refers to it by (its alias or name).
 *
 * @since 0.3.0
 * @category models
 */
export interface LockTarget {
  readonly schema: string | undefined
  readonly table: string
  readonly ref: string
}

/**
 * `AWS IAM GRANT role TO 'arn'` or `AWS IAM REVOKE role FROM 'arn'`.
 *
 * @since 0.1.0
 * @category models
 */
export interface IamMapping {
  readonly action: "GRANT" | "REVOKE"
  readonly role: string
  readonly arn: string
}

/**
 * The columns an `ALTER TABLE` drops.
 *
 * @since 0.1.0
 * @category models
 */
export interface DroppedColumns {
  readonly schema: string | undefined
  readonly table: string
  readonly columns: ReadonlyArray<string>
}

/**
 * The statements of one SQL string. A parse that failed is left to the backend, which reports the syntax error
 * itself: `sql` is the text to send it, with DSQL's ASYNC keyword removed so that the error is the one DSQL gives
 * (`CREATE INDEX ASYNC s.i …` fails at the `.`).
 *
 * @since 0.1.0
 * @category models
 */
export type Classification =
  | { readonly _tag: "Parsed"; readonly statements: ReadonlyArray<Statement> }
  | { readonly _tag: "Unparseable"; readonly sql: string }

let loading: Promise<void> | undefined
let parser: typeof LibPgQuery | undefined

/**
 * Loads libpg-query and its WASM parser once; later calls share the first load. The package is optional for users of
 * `effect-dsql`, so it is imported here and never when this module loads.
 *
 * @since 0.1.0
 * @category constructors
 */
export const loadParser = (): Promise<void> => {
  loading ??= import("libpg-query").then(async (module) => {
    await module.loadModule()
    parser = module
  })
  return loading
}

const loadedParser = (): typeof LibPgQuery => {
  if (parser === undefined) throw new Error("libpg-query is not loaded: await loadParser() first")
  return parser
}

const TRANSACTION_CONTROL: Readonly<Record<string, TransactionControl>> = {
  TRANS_STMT_BEGIN: "begin",
  TRANS_STMT_START: "begin",
  TRANS_STMT_COMMIT: "commit",
  TRANS_STMT_ROLLBACK: "rollback"
}

const DDL_NODES = new Set([
  "IndexStmt",
  "ViewStmt",
  "DefineStmt",
  "CompositeTypeStmt",
  "RenameStmt",
  "CommentStmt",
  "GrantStmt",
  "GrantRoleStmt",
  "ReassignOwnedStmt",
  "RuleStmt",
  "SecLabelStmt"
])

const DML_NODES = new Set(["InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt", "TruncateStmt"])

const isDdlNode = (name: string): boolean =>
  DDL_NODES.has(name) || name.startsWith("Create") || name.startsWith("Alter") || name.startsWith("Drop")

/**
 * Parses `sql` into classified statements; never throws for bad SQL (only when the parser is not loaded yet).
 *
 * @since 0.1.0
 * @category combinators
 */
export const classify = (sql: string): Classification => {
  const { parseSync } = loadedParser()
  const iamMapping = parseIamMapping(sql)
  if (iamMapping !== undefined) return { _tag: "Parsed", statements: [statement(sql.trim(), "ddl", { iamMapping })] }
  const source = Buffer.from(sql, "utf8")
  const asyncPositions = removeAsyncKeywords(sql, source)
  const text = source.toString("utf8")
  let stmts: Array<RawStmt>
  try {
    stmts = parseSync(text).stmts ?? []
  } catch {
    return { _tag: "Unparseable", sql: asyncPositions.length > 0 ? text : sql }
  }
  return {
    _tag: "Parsed",
    statements: stmts.flatMap((raw) => {
      if (raw.stmt === undefined) return []
      const start = raw.stmt_location ?? 0
      const end = raw.stmt_len === undefined || raw.stmt_len === 0 ? source.length : start + raw.stmt_len
      const isAsync = asyncPositions.some((position) => position >= start && position < end)
      return [classifyNode(raw.stmt, source.toString("utf8", start, end).trim(), isAsync)]
    })
  }
}

/**
 * `sql` with its parameters (`$1`, …) replaced by literals of their text values (`null` for SQL NULL), for running a
 * bound statement again as plain SQL; `undefined` when `sql` cannot be scanned.
 *
 * @since 0.1.0
 * @category combinators
 */
export const inlineParameters = (sql: string, values: ReadonlyArray<string | null>): string | undefined => {
  let tokens: ReturnType<typeof LibPgQuery.scanSync>["tokens"]
  try {
    tokens = loadedParser().scanSync(sql).tokens
  } catch {
    return undefined
  }
  const source = Buffer.from(sql, "utf8")
  const pieces: Array<string> = []
  let offset = 0
  for (const token of tokens) {
    if (token.tokenName !== "PARAM") continue
    const value = values[Number(token.text.slice(1)) - 1]
    if (value === undefined) return undefined
    pieces.push(source.toString("utf8", offset, token.start), value === null ? "NULL" : literal(value))
    offset = token.end
  }
  pieces.push(source.toString("utf8", offset))
  return pieces.join("")
}

const quoteIdentifier = (name: string): string => `"${name.replaceAll("\"", "\"\"")}"`

/**
 * What makes the rows a `SELECT … FOR UPDATE` (its SQL, parameters inlined) locked count as written, as DSQL counts
 * them: for each table it locks, `dsql_local.touch_locked` updates the rows that the same query, selecting their
 * `ctid`s, finds locked. `undefined` when the statement's top-level SELECT and FROM cannot be found.
 *
 * @since 0.3.0
 * @category constructors
 */
export const touchLockedSql = (sql: string, targets: ReadonlyArray<LockTarget>): string | undefined => {
  if (targets.length === 0) return undefined
  let tokens: ReturnType<typeof LibPgQuery.scanSync>["tokens"]
  try {
    tokens = loadedParser().scanSync(sql).tokens
  } catch {
    return undefined
  }
  let depth = 0
  let select: (typeof tokens)[number] | undefined
  let from: (typeof tokens)[number] | undefined
  let end = 0
  for (const token of tokens) {
    if (token.text === "(") depth++
    else if (token.text === ")") depth--
    else if (depth === 0 && select === undefined && token.text.toLowerCase() === "select") select = token
    else if (depth === 0 && select !== undefined && from === undefined && token.text.toLowerCase() === "from") {
      from = token
    }
    if (token.text !== ";" && !token.tokenName.endsWith("COMMENT")) end = token.end
  }
  if (select === undefined || from === undefined) return undefined
  const source = Buffer.from(sql, "utf8")
  const head = source.toString("utf8", 0, select.end)
  const rest = source.toString("utf8", from.start, end)
  const touches = targets.map(({ ref, schema, table }) =>
    `dsql_local.touch_locked(${schema === undefined ? "NULL" : literal(schema)}, ${literal(table)}, ${
      literal(`${head} ${quoteIdentifier(ref)}.ctid ${rest}`)
    })`
  )
  return `SELECT ${touches.join(", ")}`
}

/** An unquoted identifier is folded to lower case, a quoted one is taken as written. */
const IAM_STATEMENT =
  /^\s*AWS\s+IAM\s+(?:(GRANT)\s+("(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)\s+TO|(REVOKE)\s+("(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)\s+FROM)\s+'((?:[^']|'')*)'\s*;?\s*$/i

/** DSQL's IAM role mapping statements, recognised before parsing: PostgreSQL's parser does not know them. */
const parseIamMapping = (sql: string): IamMapping | undefined => {
  const match = IAM_STATEMENT.exec(sql)
  if (match === null) return undefined
  const role = match[2] ?? match[4]!
  return {
    action: match[1] === undefined ? "REVOKE" : "GRANT",
    role: role.startsWith("\"") ? role.slice(1, -1).replaceAll("\"\"", "\"") : role.toLowerCase(),
    arn: match[5]!.replaceAll("''", "'")
  }
}

/**
 * Blanks DSQL's `ASYNC` in `CREATE [UNIQUE] INDEX ASYNC` and `ALTER TABLE ASYNC` (not PostgreSQL syntax) in `source`,
 * keeping byte offsets,
 * and returns where each one was. The scanner tells an unquoted identifier from a quoted one or a string.
 */
const removeAsyncKeywords = (sql: string, source: Buffer): Array<number> => {
  let tokens: ReturnType<typeof LibPgQuery.scanSync>["tokens"]
  try {
    tokens = loadedParser().scanSync(sql).tokens
  } catch {
    return []
  }
  const positions: Array<number> = []
  tokens.forEach((token, index) => {
    if (token.tokenName !== "IDENT" || token.text.toLowerCase() !== "async") return
    const previous = tokens[index - 1]?.text.toLowerCase()
    const beforeThat = tokens[index - 2]?.text.toLowerCase()
    const third = tokens[index - 3]?.text.toLowerCase()
    const createIndex = previous === "index" &&
      (beforeThat === "create" || (beforeThat === "unique" && third === "create"))
    const alterTable = previous === "table" && beforeThat === "alter"
    if (!createIndex && !alterTable) return
    source.fill(0x20, token.start, token.end)
    positions.push(token.start)
  })
  return positions
}

const nodeName = (node: Node): string => Object.keys(node)[0] ?? ""

const nodeBody = (node: Node): Record<string, unknown> => Object.values(node)[0] as Record<string, unknown>

const statement = (
  sql: string,
  kind: StatementKind,
  extra: Partial<Omit<Statement, "sql" | "kind">> = {}
): Statement => ({
  kind,
  sql,
  control: extra.control,
  refusal: extra.refusal,
  asyncIndex: extra.asyncIndex,
  asyncValidation: extra.asyncValidation,
  waitForJob: extra.waitForJob ?? false,
  droppedColumns: extra.droppedColumns,
  droppedRoles: extra.droppedRoles,
  iamMapping: extra.iamMapping,
  copiesFromClient: extra.copiesFromClient ?? false,
  locksRows: extra.locksRows ?? false,
  lockedForUpdate: extra.lockedForUpdate ?? []
})

const classifyNode = (node: Node, sql: string, isAsync: boolean): Statement => {
  const kind = kindOf(node)
  if ("TransactionStmt" in node) return classifyTransaction(node.TransactionStmt, sql)
  if ("VariableSetStmt" in node) {
    const setting = node.VariableSetStmt.name ?? ""
    const resets = node.VariableSetStmt.kind === "VAR_RESET" || node.VariableSetStmt.kind === "VAR_RESET_ALL"
    if (!resets && Rules.refusedSettings.has(setting.toLowerCase())) {
      return statement(sql, setting === "TRANSACTION" ? "transaction" : "other", {
        refusal: Rules.settingRefusal(setting)
      })
    }
  }
  if ("IndexStmt" in node) {
    const relation = node.IndexStmt.relation
    return isAsync && relation?.relname !== undefined
      ? statement(sql, "ddl", {
        asyncIndex: { schema: relation.schemaname, table: relation.relname },
        refusal: statementRefusal(node) ?? refusalInTree(node)
      })
      : statement(sql, "ddl", { refusal: statementRefusal(node) ?? Rules.indexModeRefusal })
  }
  if ("AlterTableStmt" in node && isAsync) {
    const { cmds = [], relation } = node.AlterTableStmt
    const validates = cmds.length === 1 && "AlterTableCmd" in cmds[0]! &&
      cmds[0].AlterTableCmd.subtype === "AT_ValidateConstraint"
    // DSQL takes ASYNC only before VALIDATE CONSTRAINT; its answer to other forms is unconfirmed.
    return validates && relation?.relname !== undefined
      ? statement(sql, "ddl", { asyncValidation: { schema: relation.schemaname, table: relation.relname } })
      : statement(sql, "ddl", { refusal: { code: "42601", message: "syntax error at or near \"ASYNC\"" } })
  }
  if ("CallStmt" in node) {
    const names = Rules.nameParts(node.CallStmt.funccall?.funcname)
    const waitForJob = names.at(-1) === "wait_for_job" && (names.length === 1 || names[0] === "sys")
    return statement(sql, kind, { refusal: refusalInTree(node), waitForJob })
  }
  return statement(sql, kind, {
    refusal: statementRefusal(node) ?? refusalInTree(node),
    droppedColumns: "AlterTableStmt" in node ? droppedColumns(node.AlterTableStmt) : undefined,
    droppedRoles: "DropRoleStmt" in node ? droppedRoles(node.DropRoleStmt) : undefined,
    copiesFromClient: "CopyStmt" in node && node.CopyStmt.is_from === true && node.CopyStmt.filename === undefined,
    locksRows: "SelectStmt" in node && (node.SelectStmt.lockingClause?.length ?? 0) > 0,
    lockedForUpdate: "SelectStmt" in node ? lockedForUpdate(node.SelectStmt) : []
  })
}

/** The tables of a FROM item: a table, or each table of a join (subqueries and functions lock nothing here). */
const fromTables = (node: Node): ReadonlyArray<LockTarget> => {
  if ("RangeVar" in node) {
    const { alias, relname, schemaname } = node.RangeVar
    return relname === undefined ? [] : [{ schema: schemaname, table: relname, ref: alias?.aliasname ?? relname }]
  }
  if ("JoinExpr" in node) {
    const { larg, rarg } = node.JoinExpr
    return [...(larg === undefined ? [] : fromTables(larg)), ...(rarg === undefined ? [] : fromTables(rarg))]
  }
  return []
}

/** The tables a `FOR UPDATE` clause locks: those it names (`FOR UPDATE OF a`), else every table of the FROM. */
const lockedForUpdate = (
  select: Extract<Node, { SelectStmt: unknown }>["SelectStmt"]
): ReadonlyArray<LockTarget> => {
  const clauses = (select.lockingClause ?? []).flatMap((clause) =>
    "LockingClause" in clause && clause.LockingClause.strength === "LCS_FORUPDATE" ? [clause.LockingClause] : []
  )
  if (clauses.length === 0) return []
  const tables = (select.fromClause ?? []).flatMap(fromTables)
  if (clauses.some((clause) => (clause.lockedRels ?? []).length === 0)) return tables
  const named = new Set(
    clauses.flatMap((clause) =>
      (clause.lockedRels ?? []).flatMap((rel) =>
        "RangeVar" in rel && rel.RangeVar.relname ? [rel.RangeVar.relname] : []
      )
    )
  )
  return tables.filter((table) => named.has(table.ref))
}

const droppedColumns = (stmt: Extract<Node, { AlterTableStmt: unknown }>["AlterTableStmt"]) => {
  const table = stmt.relation?.relname
  const columns = (stmt.cmds ?? []).flatMap((command) =>
    "AlterTableCmd" in command && command.AlterTableCmd.subtype === "AT_DropColumn" &&
      command.AlterTableCmd.name !== undefined
      ? [command.AlterTableCmd.name]
      : []
  )
  return table === undefined || columns.length === 0
    ? undefined
    : { schema: stmt.relation?.schemaname, table, columns }
}

const droppedRoles = (stmt: Extract<Node, { DropRoleStmt: unknown }>["DropRoleStmt"]) =>
  (stmt.roles ?? []).flatMap((role) =>
    "RoleSpec" in role && role.RoleSpec.rolename !== undefined ? [role.RoleSpec.rolename] : []
  )

/** The refusal of the statement's own kind, from the rules table. */
const statementRefusal = (node: Node): Refusal | undefined => {
  const name = nodeName(node) as keyof typeof Rules.statementRules
  const rule = Rules.statementRules[name] as Refusal | ((body: unknown) => Refusal | undefined) | undefined
  return typeof rule === "function" ? rule(nodeBody(node)) : rule
}

const classifyTransaction = (
  stmt: Extract<Node, { TransactionStmt: unknown }>["TransactionStmt"],
  sql: string
): Statement => {
  const kind = stmt.kind ?? ""
  const refused = Rules.transactionStatementRefusals[kind]
  if (refused !== undefined) return statement(sql, "transaction", { refusal: refused })
  const control = TRANSACTION_CONTROL[kind]
  const isolation = control === "begin" ? isolationLevel(stmt.options) : undefined
  return isolation !== undefined && isolation !== "repeatable read"
    ? statement(sql, "transaction", { refusal: Rules.isolationRefusal(isolation.toUpperCase()) })
    : statement(sql, "transaction", { control })
}

const isolationLevel = (options: ReadonlyArray<Node> | undefined): string | undefined => {
  for (const option of options ?? []) {
    if (!("DefElem" in option) || option.DefElem.defname !== "transaction_isolation") continue
    const arg = option.DefElem.arg
    if (arg !== undefined && "A_Const" in arg) return arg.A_Const.sval?.sval
  }
  return undefined
}

const kindOf = (node: Node): StatementKind => {
  const name = nodeName(node)
  if (DML_NODES.has(name)) return "dml"
  if ("CopyStmt" in node) return node.CopyStmt.is_from === true ? "dml" : "read"
  if ("SelectStmt" in node) return modifiesData(node) ? "dml" : "read"
  if ("ExplainStmt" in node) {
    const analyze = (node.ExplainStmt.options ?? []).some((option) =>
      "DefElem" in option && option.DefElem.defname === "analyze"
    )
    const inner = node.ExplainStmt.query
    return analyze && inner !== undefined ? kindOf(inner) : "read"
  }
  if (name === "DeclareCursorStmt" || name === "FetchStmt") return "read"
  return isDdlNode(name) ? "ddl" : "other"
}

/** A SELECT whose WITH clause holds INSERT/UPDATE/DELETE/MERGE writes rows. */
const modifiesData = (node: Node): boolean => {
  let found = false
  walk(nodeBody(node), (key, value) => {
    if (key !== "ctequery" || typeof value !== "object" || value === null) return
    found ||= DML_NODES.has(Object.keys(value)[0] ?? "")
  })
  return found
}

/** The first refusal of the tree rules anywhere in the statement. */
const refusalInTree = (node: Node): Refusal | undefined => {
  let refusal: Refusal | undefined
  walk(nodeBody(node), (key, value) => {
    if (refusal !== undefined || typeof value !== "object" || value === null) return
    const rule = Rules.treeRules[key as keyof typeof Rules.treeRules] as
      | ((body: unknown) => Refusal | undefined)
      | undefined
    refusal = rule?.(value)
  })
  return refusal
}

/** Visits every keyed value of a JSON parse tree. */
const walk = (value: unknown, visit: (key: string, value: unknown) => void): void => {
  if (Array.isArray(value)) {
    for (const item of value) walk(item, visit)
    return
  }
  if (typeof value !== "object" || value === null) return
  for (const [key, child] of Object.entries(value)) {
    visit(key, child)
    walk(child, visit)
  }
}
