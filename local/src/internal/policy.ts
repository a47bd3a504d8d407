/**
 * The per-session policy between a DSQL client and the PostgreSQL backend: every message after startup passes through
 * it, both ways. It refuses what DSQL refuses, enforces DSQL's transaction rules and limits, turns PostgreSQL's lock
 * waits and serialization failures into DSQL's OCC errors, detects schema conflicts (OC001), injects commit and job
 * faults and answers `CREATE INDEX ASYNC`.
 *
 * How it works: the policy predicts the backend's transaction state as it forwards client messages (so pipelined
 * messages are judged in order), and corrects the prediction from each ReadyForQuery. Anything DSQL refuses is
 * replaced by a statement that raises DSQL's error on the backend (`dsql_local.raise`), so a refusal inside a
 * transaction block aborts the backend transaction exactly as DSQL does. Every message sent to the backend leaves an
 * entry in a queue describing the answers it will produce, which is how answers to the policy's own helper
 * statements are hidden and answers to rewritten statements are mapped back.
 *
 * The rules themselves are data in `rules.ts`; those that need the catalog or the written values run on the backend
 * (`catalog.ts`): an event trigger after DDL, statement triggers that measure and count written rows, and a row check
 * the policy runs right after each DML statement in the same transaction, so that in autocommit too the statement
 * crossing the limit is undone.
 *
 * Differences from DSQL, by design of a PostgreSQL backend:
 * - Write conflicts surface at the conflicting statement (a lock wait past `lock_timeout`, or PostgreSQL's
 *   "could not serialize access"), not at COMMIT; the transaction is then aborted and its COMMIT answers `ROLLBACK`.
 *   DDL waits for the locks of open transactions on its table and fails with OC001 after `lock_timeout`, where DSQL
 *   would let the DDL through and fails the other transaction instead.
 * - The transaction rules see top-level statements only: rows written inside functions are counted, but the row
 *   limit is checked after top-level DML statements.
 *
 * @internal
 */
import * as Catalog from "./catalog.js"
import type { Refusal } from "./rules.js"
import * as Rules from "./rules.js"
import type { ClusterState, OccCode } from "./state.js"
import { takeCommitFault } from "./state.js"
import type { Statement } from "./statements.js"
import * as Statements from "./statements.js"
import type { Frame, TransactionStatus } from "./wire.js"
import * as Wire from "./wire.js"

/**
 * What the relay does with one message: send it to the backend, send it to the client, or drop the connection.
 *
 * @since 0.1.0
 * @category models
 */
export type Action =
  | { readonly _tag: "ToBackend"; readonly frame: Frame }
  | { readonly _tag: "ToClient"; readonly frame: Frame }
  | { readonly _tag: "Close" }

/**
 * One session's policy: `fromClient` sees every client message after startup, `fromBackend` every backend message
 * after the backend's first ReadyForQuery.
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionPolicy {
  readonly fromClient: (frame: Frame) => ReadonlyArray<Action>
  readonly fromBackend: (frame: Frame) => ReadonlyArray<Action>
}

/** DSQL's session defaults, which the client's own startup options may change. */
const sessionDefaults = "-c TimeZone=UTC"

/**
 * What DsqlLocal's model needs of every backend session, placed after the client's options so that they cannot undo
 * it: DSQL's isolation, and a short lock timeout so that a statement never waits long on another transaction's row
 * lock (DSQL never waits).
 */
const sessionRequirements = "-c default_transaction_isolation=repeatable\\ read -c lock_timeout=10ms"

/** DSQL's PrivateLink routing option (`-c amzn-cluster-id=…`): it names the cluster, it is no setting. */
const routingOptions = new Set(["amzn_cluster_id"])

/** Splits an `options` startup parameter into arguments as PostgreSQL does: whitespace separates, `\` escapes. */
const splitOptions = (options: string): Array<string> => {
  const args: Array<string> = []
  let current: string | undefined
  for (let index = 0; index < options.length; index++) {
    const char = options[index]!
    if (/\s/.test(char)) {
      if (current !== undefined) args.push(current)
      current = undefined
      continue
    }
    current = (current ?? "") + (char === "\\" && index + 1 < options.length ? options[++index]! : char)
  }
  if (current !== undefined) args.push(current)
  return args
}

const escapeOption = (arg: string): string => arg.replace(/[\s\\]/g, (char) => `\\${char}`)

/** The setting an assignment `name=value` names, with `-` read as `_` like PostgreSQL does. */
const settingName = (assignment: string): string => assignment.split("=", 1)[0]!.toLowerCase().replaceAll("-", "_")

/** The client's `options` without DSQL's routing options, which PostgreSQL would refuse as unknown settings. */
const clientOptions = (options: string): Array<string> => {
  const args = splitOptions(options)
  const kept: Array<string> = []
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!
    const pair = arg === "-c" && index + 1 < args.length ? [arg, args[++index]!] : [arg]
    const assignment = pair.length === 2 ? pair[1]! : arg.replace(/^(-c|--)/, "")
    if (!routingOptions.has(settingName(assignment))) kept.push(...pair)
  }
  return kept
}

/**
 * The `options` startup parameter for a backend session: DSQL's defaults, then the client's own `options` (as DSQL
 * takes them, e.g. `-c search_path=myschema`), then what DsqlLocal's model requires.
 *
 * @since 0.1.0
 * @category constructors
 */
export const backendSessionOptions = (client: string | undefined): string =>
  [sessionDefaults, ...clientOptions(client ?? "").map(escapeOption), sessionRequirements].join(" ")

/**
 * Loads the libpg-query WASM parser once; must complete before the first session starts.
 *
 * @since 0.1.0
 * @category constructors
 */
export const loadParser: () => Promise<void> = Statements.loadParser

/**
 * A fresh policy for one client session of the cluster whose shared state is `state`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeSessionPolicy = (state: ClusterState): SessionPolicy => {
  const session = new Session(state)
  return {
    fromClient: (frame) => session.fromClient(frame),
    fromBackend: (frame) => session.fromBackend(frame)
  }
}

const OCC_MESSAGES: Readonly<Record<OccCode, string>> = {
  OC000: "change conflicts with another transaction (OC000)",
  OC001: "schema has been updated by another transaction (OC001)"
}

const occRefusal = (code: OccCode): Refusal => ({ code: "40001", message: OCC_MESSAGES[code] })

/** DSQL's answer while automated recovery moves the cluster's work. */
const unavailable: Refusal = { code: "XX000", message: "server unavailable" }

/** The extended-protocol message each answer completes. */
const COMPLETES: Readonly<Record<string, Pending["_tag"]>> = {
  "1": "Parse",
  "2": "Bind",
  "3": "Close",
  "T": "Describe",
  "n": "Describe",
  "C": "Execute",
  "I": "Execute",
  "s": "Execute",
  "Z": "Sync"
}

/** Backend errors that mean "another transaction got there first". */
const CONFLICT_CODES = new Set(["40001", "40P01", "55P03"])

/**
 * PostgreSQL's context line for a statement waiting on another transaction's row ("while updating tuple (0,95) in
 * relation …", "while locking tuple …", "while inserting index tuple …").
 */
const ROW_LOCK_WAIT = /^while (updating|deleting|locking|inserting index|checking uniqueness of) tuple/m

/**
 * A conflict: one of `CONFLICT_CODES`, or a query cancel met while waiting on another transaction's row, reported as
 * `57014` "canceling statement due to user request": seen under load with 32 writers on 4 rows, where the 10 ms lock
 * timeout races the lock being granted (DsqlLocal refuses the protocol's cancel requests). DSQL never makes a writer
 * wait, so a writer stopped while waiting is one that lost a conflict.
 */
export const isConflict = (fields: Readonly<Record<string, string>>): boolean =>
  (fields.C !== undefined && CONFLICT_CODES.has(fields.C)) ||
  (fields.C === "57014" && fields.W !== undefined && ROW_LOCK_WAIT.test(fields.W))

/** Fields PL/pgSQL adds to errors raised by the policy's helpers (context, source file, line, routine). */
const HELPER_NOISE = new Set(["W", "F", "L", "R", "P", "p", "q"])

/** Statement and portal name of the policy's own extended-protocol messages. */
const PRIVATE_NAME = "dsql_local"

const toBackend = (frame: Frame): Action => ({ _tag: "ToBackend", frame })
const toClient = (frame: Frame): Action => ({ _tag: "ToClient", frame })

/** A transaction as the policy sees it: an explicit block, or the implicit one of a simple query or extended batch. */
interface Txn {
  explicit: boolean
  readonly startedAt: number
  readonly schemaVersion: number
  ddl: number
  dml: boolean
}

/** One statement sent to the backend, kept to read the backend's answer to it. */
interface Sent {
  readonly statement: Statement | undefined
  readonly txn: Txn | undefined
  /** Ran inside an explicit transaction block. */
  readonly inBlock: boolean
  /** The policy's own `dsql_local.raise`: the error is DSQL's, only PL/pgSQL's fields are removed. */
  readonly raises: boolean
  /** The policy's own helper statement: only its error reaches the client. */
  readonly hidden: boolean
  /** A DML statement: its CommandComplete waits for the row check that follows it. */
  readonly holdsTag: boolean
  /** The row check after a DML statement: when it passes, the held CommandComplete goes to the client. */
  readonly releasesTag: boolean
}

/** What the backend still owes for a message it was sent. */
type Pending =
  | { readonly _tag: "Query"; readonly sent: Array<Sent>; index: number; readonly unit?: Txn }
  | { readonly _tag: "Parse" | "Bind" | "Describe" | "Close"; readonly hidden: boolean }
  | { readonly _tag: "Execute"; readonly sent: Sent }
  | { readonly _tag: "Sync"; readonly unit?: Txn }

/** A prepared statement of the extended protocol; `refused` ones were replaced by a raise at Parse. */
interface Prepared {
  readonly statement: Statement | undefined
  readonly refused: boolean
}

/** One step of running a statement: the statement itself (`sql` undefined) or a helper statement. */
interface Step {
  readonly sql: string | undefined
  readonly sent: Sent
}

interface Plan {
  readonly steps: ReadonlyArray<Step>
  /** The statement failed: in a simple query, later statements are not sent. */
  readonly stops: boolean
}

type Block = "idle" | "open" | "failed"

class Session {
  /** The backend's transaction block state once every forwarded message has run (a prediction). */
  private block: Block = "idle"
  /** The explicit transaction, or the implicit one being built from the current simple query / extended batch. */
  private txn: Txn | undefined
  private readonly pending: Array<Pending> = []
  private readonly prepared = new Map<string, Prepared>()
  private readonly portals = new Map<string, Prepared>()
  private errorSinceReady = false
  /** After an extended-protocol error the backend ignores messages until Sync: they owe no answers. */
  private backendSkipping = false
  /** The CommandComplete of a DML statement, until the row check after it passes. */
  private heldTag: Frame | undefined

  constructor(private readonly state: ClusterState) {}

  fromClient(frame: Frame): ReadonlyArray<Action> {
    switch (frame.type) {
      case "Q":
        return this.onQuery(frame)
      case "P":
        return this.onParse(frame)
      case "B":
        return this.onBind(frame)
      case "E":
        return this.onExecute(frame)
      case "D":
        this.expect({ _tag: "Describe", hidden: false })
        return [toBackend(frame)]
      case "C":
        this.onClose(frame)
        return [toBackend(frame)]
      case "S":
        return this.onSync(frame)
      case "F":
        this.expect({ _tag: "Query", sent: [], index: 0 })
        return [toBackend(frame)]
      default:
        return [toBackend(frame)]
    }
  }

  fromBackend(frame: Frame): ReadonlyArray<Action> {
    const head = this.pending[0]
    if (head === undefined) return [toClient(frame)]
    if (frame.type === "N" || frame.type === "A" || frame.type === "S") return [toClient(frame)]
    return head._tag === "Query" ? this.queryAnswer(head, frame) : this.extendedAnswer(head, frame)
  }

  // ---- client side -------------------------------------------------------------------------------------------

  private onQuery(frame: Frame): ReadonlyArray<Action> {
    if (this.dropsQuery()) return [{ _tag: "Close" }]
    const sql = Wire.readCString(frame.body, 0)[0]
    const classification = Statements.classify(sql)
    if (classification._tag === "Unparseable" || classification.statements.length === 0) {
      this.expect({ _tag: "Query", sent: [], index: 0 })
      const unchanged = classification._tag === "Parsed" || classification.sql === sql
      return [toBackend(unchanged ? frame : Wire.query(classification.sql))]
    }
    const sent: Array<Sent> = []
    const pieces: Array<string> = []
    let rewritten = false
    for (const statement of classification.statements) {
      const plan = this.plan(statement)
      for (const step of plan.steps) {
        const rewrite = step.sql ?? Catalog.backendStatement(statement)?.sql
        rewritten ||= rewrite !== undefined
        pieces.push(rewrite ?? statement.sql)
        sent.push(step.sent)
      }
      if (plan.stops) break
    }
    this.expect({ _tag: "Query", sent, index: 0, ...this.endUnit() })
    // A newline before each separator: a statement may end in a `--` comment.
    return [toBackend(rewritten ? Wire.query(pieces.join("\n;\n")) : frame)]
  }

  private onParse(frame: Frame): ReadonlyArray<Action> {
    const [name, afterName] = Wire.readCString(frame.body, 0)
    const [sql, afterSql] = Wire.readCString(frame.body, afterName)
    const classification = Statements.classify(sql)
    this.expect({ _tag: "Parse", hidden: false })
    if (classification._tag === "Unparseable" && classification.sql !== sql) {
      this.prepared.set(name, { statement: undefined, refused: false })
      return [
        toBackend({
          type: "P",
          body: Buffer.concat([
            frame.body.subarray(0, afterName),
            Wire.cstring(classification.sql),
            frame.body.subarray(afterSql)
          ])
        })
      ]
    }
    const statement = classification._tag === "Parsed" && classification.statements.length === 1
      ? classification.statements[0]!
      : undefined
    if (statement?.refusal !== undefined) {
      this.state.stats.statementsRefused++
      this.prepared.set(name, { statement, refused: true })
      return [toBackend(Wire.parseMessage(name, Catalog.raiseSql(statement.refusal)))]
    }
    this.prepared.set(name, { statement, refused: false })
    const replaced = statement === undefined ? undefined : Catalog.backendStatement(statement)
    return [toBackend(replaced === undefined ? frame : Wire.parseMessage(name, replaced.sql))]
  }

  private onBind(frame: Frame): ReadonlyArray<Action> {
    const [portal, afterPortal] = Wire.readCString(frame.body, 0)
    const [name, afterName] = Wire.readCString(frame.body, afterPortal)
    const prepared = this.prepared.get(name)
    this.portals.set(portal, prepared ?? { statement: undefined, refused: false })
    this.expect({ _tag: "Bind", hidden: false })
    // A refused statement became a raise without parameters: the client's parameters must go.
    return [toBackend(prepared?.refused === true ? Wire.bindWithoutParameters(frame.body, afterName) : frame)]
  }

  private onExecute(frame: Frame): ReadonlyArray<Action> {
    if (this.dropsQuery()) return [{ _tag: "Close" }]
    const prepared = this.portals.get(Wire.readCString(frame.body, 0)[0])
    const statement = prepared?.statement
    if (statement === undefined || prepared?.refused === true) {
      const refused = prepared?.refused === true
      if (refused && this.block === "open") this.block = "failed"
      this.expect({ _tag: "Execute", sent: this.sent(statement, { raises: refused }) })
      return [toBackend(frame)]
    }
    return this.plan(statement, { extended: true }).steps.flatMap((step) => {
      if (step.sql !== undefined) return this.injectExtended(step)
      this.expect({ _tag: "Execute", sent: step.sent })
      return [toBackend(frame)]
    })
  }

  private onClose(frame: Frame): void {
    const [name] = Wire.readCString(frame.body, 1)
    if (frame.body[0] === 0x53) this.prepared.delete(name)
    else this.portals.delete(name)
    this.expect({ _tag: "Close", hidden: false })
  }

  private onSync(frame: Frame): ReadonlyArray<Action> {
    this.backendSkipping = false
    this.expect({ _tag: "Sync", ...this.endUnit() })
    return [toBackend(frame)]
  }

  /**
   * Runs a helper statement through the private statement and portal (both closed first: a named portal outlives its
   * statement); only its Execute's answer is the client's.
   */
  private injectExtended(step: Step): ReadonlyArray<Action> {
    this.expect({ _tag: "Close", hidden: true })
    this.expect({ _tag: "Close", hidden: true })
    this.expect({ _tag: "Parse", hidden: true })
    this.expect({ _tag: "Bind", hidden: true })
    this.expect({ _tag: "Execute", sent: step.sent })
    return [
      Wire.closeMessage("P", PRIVATE_NAME),
      Wire.closeMessage("S", PRIVATE_NAME),
      Wire.parseMessage(PRIVATE_NAME, step.sql!),
      Wire.bindMessage(PRIVATE_NAME, PRIVATE_NAME),
      Wire.executeMessage(PRIVATE_NAME)
    ].map(toBackend)
  }

  /** Counts a client query; true when the drop fault takes it. */
  private dropsQuery(): boolean {
    this.state.stats.queries++
    if (this.state.faults.dropQueries <= 0) return false
    this.state.faults.dropQueries--
    return true
  }

  /** Ends the implicit transaction of a simple query or extended batch: it commits at the coming ReadyForQuery. */
  private endUnit(): { readonly unit?: Txn } {
    if (this.block !== "idle" || this.txn === undefined) return {}
    const unit = this.txn
    this.txn = undefined
    return { unit }
  }

  private expect(pending: Pending): void {
    if (this.backendSkipping && pending._tag !== "Sync") return
    this.pending.push(pending)
  }

  private currentTxn(): Txn {
    this.txn ??= {
      explicit: this.block !== "idle",
      startedAt: this.state.now(),
      schemaVersion: this.state.schemaVersion,
      ddl: 0,
      dml: false
    }
    return this.txn
  }

  private sent(
    statement: Statement | undefined,
    flags: Partial<Pick<Sent, "raises" | "hidden" | "holdsTag" | "releasesTag">> = {}
  ): Sent {
    return {
      statement,
      txn: this.txn,
      inBlock: this.block === "open",
      raises: flags.raises ?? false,
      hidden: flags.hidden ?? false,
      holdsTag: flags.holdsTag ?? false,
      releasesTag: flags.releasesTag ?? false
    }
  }

  // ---- DSQL's rules ------------------------------------------------------------------------------------------

  /** Decides how `statement` runs, applying DSQL's refusals and transaction rules, and moves the predicted state. */
  private plan(statement: Statement, protocol: { readonly extended: boolean } = { extended: false }): Plan {
    const txn = this.currentTxn()
    if (this.block === "failed") {
      // The backend answers 25P02 to everything but the end of the block; a refused statement still never runs.
      if (statement.control === "commit" || statement.control === "rollback") this.endBlock()
      if (statement.refusal === undefined) return this.run(statement)
      this.state.stats.statementsRefused++
      return this.refuse(statement.refusal)
    }
    const inBlock = this.block === "open"
    if (inBlock && statement.control !== "rollback") {
      const limits = this.state.limits
      const age = this.state.now() - txn.startedAt
      if (age > limits.maxTransactionAgeMillis) {
        this.state.stats.statementsRefused++
        const seconds = Math.round(limits.maxTransactionAgeMillis / 1000)
        return this.refuse({
          code: "54000",
          message: `transaction age limit of ${seconds}s exceeded`,
          detail: `Current transaction age ${Math.round(age / 1000)}s exceeds ${seconds}s`
        }, statement)
      }
      if (txn.schemaVersion !== this.state.schemaVersion) {
        this.state.stats.occErrors.OC001++
        return this.refuse(occRefusal("OC001"), statement)
      }
      if (statement.control !== "commit" && this.state.faults.unavailableStatements > 0) {
        this.state.faults.unavailableStatements--
        return this.refuse(unavailable, statement)
      }
    }
    const refusal = statement.refusal ?? Rules.transactionRefusal(statement, { inBlock, ddl: txn.ddl, dml: txn.dml })
    if (refusal !== undefined) {
      this.state.stats.statementsRefused++
      return this.refuse(refusal, statement)
    }
    if (statement.kind === "ddl") txn.ddl++
    if (statement.kind === "dml") txn.dml = true
    switch (statement.control) {
      case "begin":
        return inBlock ? this.run(statement) : this.begin(statement, txn)
      case "commit":
        return inBlock ? this.commit(statement) : this.run(statement)
      case "rollback": {
        const plan = this.run(statement)
        this.endBlock()
        return plan
      }
      default:
        return this.runChecked(statement, protocol.extended)
    }
  }

  /**
   * The statement between the backend checks it needs: before dropping columns, that none is in the primary key;
   * before dropping roles, that no IAM principal is mapped to them;
   * after DML, the transaction's row count (the triggers of `catalog.ts` count the rows), in the same transaction so
   * that a statement crossing the limit is undone with it, in autocommit too. An asynchronous job takes the next
   * injected job failure, if any.
   */
  private runChecked(statement: Statement, extended: boolean): Plan {
    const checks = [
      ...(statement.droppedColumns === undefined ? [] : [Catalog.checkDropColumnsSql(statement.droppedColumns)]),
      ...(statement.droppedRoles === undefined ? [] : [Catalog.checkDropRolesSql(statement.droppedRoles)])
    ]
    const before = checks.map((sql) => ({ sql, sent: this.sent(undefined, { hidden: true }) }))
    // In the extended protocol a COPY's rows arrive after its Execute, where a check would cut the copy short: its
    // rows count at the next DML statement's check instead.
    const checksRows = statement.kind === "dml" && !(extended && statement.copiesFromClient)
    const after = checksRows
      ? [{
        sql: Catalog.checkRowsSql(this.state.limits.maxRowsPerTransaction),
        sent: this.sent(undefined, { hidden: true, releasesTag: true })
      }]
      : []
    const jobFailure = statement.asyncIndex !== undefined || statement.asyncValidation !== undefined
      ? this.state.faults.asyncJobFailures.shift()
      : undefined
    const step = {
      sql: jobFailure === undefined ? undefined : Catalog.backendStatement(statement, jobFailure)?.sql,
      sent: this.sent(statement, { holdsTag: after.length > 0 })
    }
    return { steps: [...before, step, ...after], stops: false }
  }

  private run(statement: Statement): Plan {
    return { steps: [{ sql: undefined, sent: this.sent(statement) }], stops: false }
  }

  /**
   * The statement is replaced by a raise; inside a block that aborts the transaction, as in DSQL. A refused COMMIT
   * rolls the transaction back instead.
   */
  private refuse(refusal: Refusal, statement?: Statement): Plan {
    if (statement?.control === "commit" && this.block === "open") return this.abandon(refusal)
    const step = { sql: Catalog.raiseSql(refusal), sent: this.sent(statement, { raises: true }) }
    if (this.block === "open") this.block = "failed"
    return { steps: [step], stops: true }
  }

  /** BEGIN, then a helper that takes the snapshot now: DSQL's snapshot is taken at BEGIN, PostgreSQL's later. */
  private begin(statement: Statement, txn: Txn): Plan {
    txn.explicit = true
    this.block = "open"
    return {
      steps: [
        { sql: undefined, sent: this.sent(statement) },
        { sql: Catalog.takeSnapshotSql, sent: this.sent(undefined, { hidden: true }) }
      ],
      stops: false
    }
  }

  private commit(statement: Statement): Plan {
    const fault = takeCommitFault(this.state)
    if (fault === undefined) {
      const plan = this.run(statement)
      this.endBlock()
      return plan
    }
    this.state.stats.commitsFailedByFault++
    if (fault === "XX000") return this.abandon(unavailable)
    this.state.stats.occErrors[fault]++
    return this.abandon(occRefusal(fault))
  }

  /** A COMMIT that fails: the transaction is rolled back (answer hidden), then DSQL's error is raised outside it. */
  private abandon(refusal: Refusal): Plan {
    const steps = [
      { sql: "ROLLBACK", sent: this.sent(undefined, { hidden: true }) },
      { sql: Catalog.raiseSql(refusal), sent: { ...this.sent(undefined, { raises: true }), inBlock: false } }
    ]
    this.endBlock()
    return { steps, stops: true }
  }

  private endBlock(): void {
    this.block = "idle"
    this.txn = undefined
  }

  // ---- backend side ------------------------------------------------------------------------------------------

  private queryAnswer(head: Extract<Pending, { _tag: "Query" }>, frame: Frame): ReadonlyArray<Action> {
    switch (frame.type) {
      case "C":
        return this.commandComplete(frame, head.sent[head.index++])
      case "I":
        head.index++
        return [toClient(frame)]
      case "E":
        return [toClient(this.mapError(frame, head.sent[head.index]))]
      case "Z":
        this.pending.shift()
        return this.ready(frame, head.unit)
      default:
        return head.sent[head.index]?.hidden === true ? [] : [toClient(frame)]
    }
  }

  private extendedAnswer(head: Exclude<Pending, { _tag: "Query" }>, frame: Frame): ReadonlyArray<Action> {
    if (COMPLETES[frame.type] === head._tag) this.pending.shift()
    switch (frame.type) {
      case "C":
        return head._tag === "Execute" ? this.commandComplete(frame, head.sent) : [toClient(frame)]
      case "E": {
        // An error of a hidden step is the client's: its Execute will not run.
        const error = this.mapError(frame, head._tag === "Execute" ? head.sent : undefined)
        this.skipUntilSync()
        return [toClient(error)]
      }
      case "Z":
        return this.ready(frame, head._tag === "Sync" ? head.unit : undefined)
      default: {
        const hidden = head._tag === "Execute" ? head.sent.hidden : "hidden" in head && head.hidden
        return hidden ? [] : [toClient(frame)]
      }
    }
  }

  /** After an extended-protocol error the backend skips every message up to the next Sync. */
  private skipUntilSync(): void {
    while (this.pending.length > 0 && this.pending[0]!._tag !== "Sync") this.pending.shift()
    if (this.pending.length === 0) this.backendSkipping = true
  }

  private commandComplete(frame: Frame, sent: Sent | undefined): ReadonlyArray<Action> {
    if (sent === undefined) return [toClient(frame)]
    if (sent.hidden) {
      const held = sent.releasesTag ? this.heldTag : undefined
      this.heldTag = undefined
      return held === undefined ? [] : [toClient(held)]
    }
    const tag = Wire.readCString(frame.body, 0)[0]
    const statement = sent.statement
    // A block's DDL counts when its COMMIT succeeds (an implicit transaction's counts at ReadyForQuery).
    if (sent.inBlock && statement?.control === "commit" && tag === "COMMIT" && (sent.txn?.ddl ?? 0) > 0) {
      this.state.schemaVersion++
    }
    const replaced = statement === undefined ? undefined : Catalog.backendStatement(statement)
    const answer = replaced === undefined ? frame : Wire.commandComplete(replaced.tag)
    if (!sent.holdsTag) return [toClient(answer)]
    this.heldTag = answer
    return []
  }

  private mapError(frame: Frame, sent: Sent | undefined): Frame {
    this.errorSinceReady = true
    // The statement the held CommandComplete belongs to failed with its row check.
    this.heldTag = undefined
    const fields = Wire.parseErrorFields(frame.body)
    const statement = sent?.statement
    const conflict = isConflict(fields)
    if (conflict && sent?.raises !== true) {
      const code: OccCode = statement?.kind === "ddl" ? "OC001" : "OC000"
      this.state.stats.occErrors[code]++
      return Wire.dsqlError(occRefusal(code))
    }
    // A backend rule (see catalog.ts) refused the statement.
    const backendRule = fields.W?.includes("dsql_local.refuse") === true
    if (backendRule) this.state.stats.statementsRefused++
    if (
      sent?.raises === true || backendRule || statement?.asyncIndex !== undefined ||
      statement?.asyncValidation !== undefined ||
      statement?.iamMapping !== undefined || statement?.waitForJob === true
    ) {
      return Wire.errorResponse(Object.fromEntries(Object.entries(fields).filter(([code]) => !HELPER_NOISE.has(code))))
    }
    return frame
  }

  private ready(frame: Frame, unit: Txn | undefined): ReadonlyArray<Action> {
    const status = frame.body.toString("latin1", 0, 1) as TransactionStatus
    if (unit !== undefined && !unit.explicit && unit.ddl > 0 && status === "I" && !this.errorSinceReady) {
      this.state.schemaVersion++
    }
    this.errorSinceReady = false
    this.heldTag = undefined
    if (this.pending.length === 0) this.resync(status)
    return [toClient(frame)]
  }

  /** Nothing is in flight: the backend's own word on the transaction block replaces the prediction. */
  private resync(status: TransactionStatus): void {
    if (status === "I") {
      this.endBlock()
      return
    }
    this.block = status === "T" ? "open" : "failed"
    if (this.txn?.explicit !== true) {
      this.txn = undefined
      this.currentTxn()
    }
  }
}
