/**
 * The per-session policy between a DSQL client and the PostgreSQL backend: every message after startup passes through
 * it, both ways. It refuses what DSQL refuses, enforces DSQL's transaction rules and limits, decides write conflicts
 * at COMMIT (first committer wins), detects schema conflicts (OC001), injects commit and job faults and
 * answers `CREATE INDEX ASYNC`.
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
 * Optimistic concurrency over a locking backend: every explicit transaction opens a savepoint right after its snapshot
 * and keeps its writes (and locking reads) as SQL, extended-protocol parameters inlined as text. DSQL counts the rows
 * a `FOR UPDATE` locks as written, so they are written (to themselves) right after it. While some
 * session's block could give its locks up, a backend that owes answers and sends nothing for 2 ms is taken to wait for
 * a lock: an idle session asks its own backend which backends block the waiting one (`pg_blocking_pids`), and those
 * sessions that sit between statements in an open transaction give their locks up (`ROLLBACK TO SAVEPOINT`, snapshot
 * kept), holding their client's messages meanwhile; the waiting statement then runs on its own snapshot and succeeds.
 * A transaction that gave its locks up runs its writes again before its next statement (a session busy with a
 * statement or a COMMIT never gives its locks up); when that replay fails (another transaction committed a write to
 * one of its rows or keys first), its writes are undone and its COMMIT fails with OC000: the first committer wins.
 * PostgreSQL's deadlock detection (20 ms) settles two busy sessions waiting for each other.
 *
 * Differences from DSQL, by design of a PostgreSQL backend:
 * - A write to a row that another transaction changed and committed after this one's BEGIN fails at the statement
 *   (PostgreSQL refuses to run it), not at COMMIT. So does one of two statements that wait for each other while both
 *   run (a deadlock), and a wait that outlasts `lock_timeout` (1 s: a block that ran DDL keeps its locks). Under
 *   heavy contention (32 writers on 4 rows) most conflicts still surface at the statement this way.
 * - A replay runs the statements again: defaults such as `gen_random_uuid()` or sequence values are drawn again, so
 *   rows a transaction wrote after giving its locks up can differ from what its client saw (`RETURNING`). A write
 *   bound with binary parameters or a `COPY FROM STDIN` cannot be run again: such a transaction loses at COMMIT once
 *   it gave its locks up. After a failed replay the transaction no longer reads its own earlier writes.
 * - The transaction rules see top-level statements only: rows written inside functions are counted, but the row
 *   limit is checked after top-level DML statements.
 * - Rows only locked `FOR KEY SHARE` by a transaction that commits first do not fail a concurrent transaction's later
 *   delete of them (PostgreSQL keeps a committed lock apart from the row's versions). A `FOR UPDATE` whose rows
 *   cannot be written to themselves (through a view or a subquery, bound with binary parameters) behaves the same.
 *
 * @internal
 */
import * as Catalog from "./catalog.js"
import type { Refusal } from "./rules.js"
import * as Rules from "./rules.js"
import type { ClusterState, LockHolder, OccCode } from "./state.js"
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
  /**
   * Called once the relay runs: `act` runs actions outside any client or backend message; `backendPid` is the
   * backend's process id (BackendKeyData).
   */
  readonly attach: (act: (actions: ReadonlyArray<Action>) => void, backendPid: number | undefined) => void
  /** Called when the session ends. */
  readonly detach: () => void
}

/** DSQL's session defaults, which the client's own startup options may change. */
const sessionDefaults = "-c TimeZone=UTC"

/**
 * What DsqlLocal's model needs of every backend session, placed after the client's options so that they cannot undo
 * it: DSQL's isolation, and a lock timeout that ends the waits giving locks up cannot resolve (DSQL never waits).
 * (The short deadlock timeout the model also wants is a superuser setting: the embedded server starts with it.)
 */
const sessionRequirements = "-c default_transaction_isolation=repeatable\\ read -c lock_timeout=1s"

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
    fromBackend: (frame) => session.fromBackend(frame),
    attach: (act, backendPid) => session.attach(act, backendPid),
    detach: () => session.detach()
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

/** The backends that hold a lock backend `pid` waits for, as an array literal (`{101,102}`). */
const blockersSql = (pid: number): string => `SELECT pg_catalog.pg_blocking_pids(${pid})::text`

/** Gives the transaction's row locks up, keeping its snapshot. */
const yieldSql = `ROLLBACK TO SAVEPOINT ${Catalog.writesSavepoint}`

/** How long a statement may be unanswered before the sessions holding locks are asked to give them up. */
const waitCheckMillis = 2

/** PostgreSQL's answer inside a failed block, restored after such a block gave its locks up. */
const abortedRefusal: Refusal = {
  code: "25P02",
  message: "current transaction is aborted, commands ignored until end of transaction block"
}

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
  /** The block opened the writes savepoint: it can give its locks up. */
  savepoint: boolean
  /** Its writes and row locks, as SQL to run again (`undefined`: one that cannot be, such as a binary Bind). */
  readonly writes: Array<string | undefined>
  /** It gave its locks up: its writes run again before its next statement. */
  yielded: boolean
  /** Running its writes again failed: another transaction committed first, its COMMIT fails with OC000. */
  doomed: boolean
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
  | {
    readonly _tag: "Query"
    readonly sent: Array<Sent>
    index: number
    readonly unit?: Txn
    /** The policy's own query, sent outside any client message: nothing of its answer reaches the client. */
    readonly own?: OwnQuery
  }
  | { readonly _tag: "Parse" | "Bind" | "Describe" | "Close"; readonly hidden: boolean }
  | { readonly _tag: "Execute"; readonly sent: Sent }
  | { readonly _tag: "Sync"; readonly unit?: Txn }

/**
 * The policy's own queries: whether the session blocks another one, giving its locks up, running its writes again,
 * undoing a replay that failed.
 */
type OwnQuery = "blockers" | "yield" | "replay" | "undo"

/** A prepared statement of the extended protocol; `refused` ones were replaced by a raise at Parse. */
interface Prepared {
  readonly statement: Statement | undefined
  readonly refused: boolean
  /** A portal's parameters as text (`undefined` when one is binary). */
  readonly parameters?: ReadonlyArray<string | null> | undefined
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

/** The process ids in the answer to `blockersSql` (one text column). */
const blockerPids = (row: Frame): ReadonlySet<number> => {
  const length = row.body.readInt32BE(2)
  return new Set(length <= 2 ? [] : row.body.toString("latin1", 7, 6 + length - 1).split(",").map(Number))
}

/** Has the sessions whose backends are in `pids` give their locks up. */
const yieldBlockers = (state: ClusterState, pids: ReadonlySet<number>): void => {
  for (const holder of state.sessions) {
    const pid = holder.backendPid()
    if (pid !== undefined && pids.has(pid)) holder.yieldIfIdle()
  }
}

/** Whether some session sits between statements in an open transaction whose locks it could give up. */
const someCanYield = (state: ClusterState): boolean => {
  for (const holder of state.sessions) if (holder.canYield()) return true
  return false
}

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
  /** Runs actions outside any client or backend message (giving locks up, resuming held messages). */
  private act: ((actions: ReadonlyArray<Action>) => void) | undefined
  /** Client messages held back while the policy's own query runs. */
  private held: Array<Frame> | undefined
  /** One of the policy's own queries is in flight. */
  private ownRunning = false
  /** The last client message ended a unit (Query or Sync): the backend is between statements once it answers. */
  private atBoundary = true
  private waitTimer: ReturnType<typeof setTimeout> | undefined
  /** Counts the backend's messages, to tell a backend that waits from one that answers. */
  private backendFrames = 0
  /** The answer to a `blockersSql` query in flight. */
  private blockers: ReadonlySet<number> | undefined
  /** The backend's process id, from its greeting. */
  private backendPid: number | undefined
  private readonly holder: LockHolder = {
    backendPid: () => this.backendPid,
    canYield: () => this.canYield(),
    yieldIfIdle: () => this.yieldIfIdle(),
    findBlockers: (pid) => this.findBlockers(pid),
    watchForWaits: () => this.watchForWaits()
  }
  /** This session counts in `state.openBlocks`. */
  private holdsBlock = false

  constructor(private readonly state: ClusterState) {}

  attach(act: (actions: ReadonlyArray<Action>) => void, backendPid: number | undefined): void {
    this.act = act
    this.backendPid = backendPid
    this.state.sessions.add(this.holder)
  }

  detach(): void {
    this.act = undefined
    clearTimeout(this.waitTimer)
    this.state.sessions.delete(this.holder)
    this.countBlock()
  }

  fromClient(frame: Frame): ReadonlyArray<Action> {
    const actions = this.onClient(frame)
    this.countBlock()
    return actions
  }

  fromBackend(frame: Frame): ReadonlyArray<Action> {
    this.backendFrames++
    const actions = this.answer(frame)
    this.countBlock()
    return actions
  }

  /**
   * Keeps `state.openBlocks` in step with this session (a block opened by BEGIN holds the writes savepoint until it
   * ends); when the first block opens, the statements already in flight start being watched for waits.
   */
  private countBlock(): void {
    const holds = this.act !== undefined && this.txn?.savepoint === true && this.block !== "idle"
    if (holds === this.holdsBlock) return
    this.holdsBlock = holds
    this.state.openBlocks += holds ? 1 : -1
    if (holds && this.state.openBlocks === 1) { for (const holder of this.state.sessions) holder.watchForWaits() }
  }

  private onClient(frame: Frame): ReadonlyArray<Action> {
    if (this.held !== undefined) {
      this.held.push(frame)
      return []
    }
    const txn = this.txn
    if (txn?.yielded === true && this.block === "open") {
      txn.yielded = false
      if (txn.writes.includes(undefined)) txn.doomed = true
      else if (!txn.doomed && txn.writes.length > 0) {
        this.held = [frame]
        // A newline before each separator: a statement may end in a `--` comment.
        return [this.ownAction("replay", (txn.writes as Array<string>).join("\n;\n"))]
      }
    }
    this.atBoundary = frame.type === "Q" || frame.type === "S"
    return this.route(frame)
  }

  /** A statement is in flight while some session could give its locks up. */
  private waitsMatter(): boolean {
    return this.pending.length > 0 && this.state.openBlocks > 0
  }

  /** Between statements, the session is free to run the policy's own queries. */
  private isIdle(): boolean {
    return this.act !== undefined && this.pending.length === 0 && !this.ownRunning && this.atBoundary
  }

  /**
   * DSQL never makes a statement wait for another transaction: a session between statements in an open transaction
   * that blocks a waiting one gives its row locks up (the waiting statement then runs on its own snapshot) and runs
   * its writes again before its next statement; a write that another transaction committed meanwhile makes that
   * replay fail, and the transaction's COMMIT then fails with OC000: the first committer wins. A block that ran DDL
   * keeps its locks: its DDL cannot be run again.
   */
  private yieldIfIdle(): void {
    const txn = this.txn
    if (!this.canYield() || txn === undefined) return
    txn.yielded = true
    // The client's messages wait until the locks are given up. An aborted block stays failed.
    this.held ??= []
    this.act!([
      this.ownAction("yield", this.block === "failed" ? `${yieldSql};\n${Catalog.raiseSql(abortedRefusal)}` : yieldSql)
    ])
  }

  /** Between statements in an open transaction whose locks can be given up. */
  private canYield(): boolean {
    const txn = this.txn
    return this.isIdle() && txn !== undefined && txn.savepoint && !txn.yielded && txn.ddl === 0 && this.block !== "idle"
  }

  /** When idle, asks the backend which sessions block backend `pid`, and has them give their locks up. */
  private findBlockers(pid: number): boolean {
    if (!this.isIdle() || this.block === "failed") return false
    this.held ??= []
    this.act!([this.ownAction("blockers", blockersSql(pid))])
    return true
  }

  /**
   * While the backend owes answers, checks every few milliseconds whether it is waiting: a backend that owes answers
   * and sent nothing for that long is taken to wait for a lock.
   */
  private watchForWaits(): void {
    if (this.waitTimer !== undefined || this.act === undefined || !this.waitsMatter()) return
    const framesBefore = this.backendFrames
    this.waitTimer = setTimeout(() => {
      this.waitTimer = undefined
      if (this.act === undefined || !this.waitsMatter()) return
      const pid = this.backendPid
      // Looking up blockers only helps when some session can give its locks up.
      if (this.backendFrames === framesBefore && pid !== undefined && someCanYield(this.state)) {
        for (const holder of this.state.sessions) if (holder !== this.holder && holder.findBlockers(pid)) break
      }
      this.watchForWaits()
    }, waitCheckMillis)
  }

  private route(frame: Frame): ReadonlyArray<Action> {
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

  private answer(frame: Frame): ReadonlyArray<Action> {
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
    this.portals.set(portal, {
      ...(prepared ?? { statement: undefined, refused: false }),
      parameters: prepared?.refused === true ? [] : Wire.bindTextParameters(frame.body, afterName)
    })
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
    const sql = prepared?.parameters === undefined
      ? undefined
      : Statements.inlineParameters(statement.sql, prepared.parameters)
    return this.plan(statement, { extended: true, sql }).steps.flatMap((step) => {
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
    this.watchForWaits()
  }

  private currentTxn(): Txn {
    this.txn ??= {
      explicit: this.block !== "idle",
      startedAt: this.state.now(),
      schemaVersion: this.state.schemaVersion,
      ddl: 0,
      dml: false,
      savepoint: false,
      writes: [],
      yielded: false,
      doomed: false
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
  private plan(
    statement: Statement,
    protocol: { readonly extended: boolean; readonly sql: string | undefined } = {
      extended: false,
      sql: statement.sql
    }
  ): Plan {
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
    // DSQL counts the rows a FOR UPDATE locks in a transaction as written: they are written to themselves.
    const touch = inBlock && protocol.sql !== undefined
      ? Statements.touchLockedSql(protocol.sql, statement.lockedForUpdate)
      : undefined
    if (inBlock && (statement.kind === "dml" || statement.locksRows)) {
      // Rows a COPY reads from the client cannot be sent again.
      const write = statement.copiesFromClient ? undefined : protocol.sql
      txn.writes.push(write === undefined || touch === undefined ? write : `${write}\n;\n${touch}`)
    }
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
        return this.runChecked(statement, protocol.extended, touch)
    }
  }

  /**
   * The statement between the backend checks it needs: before dropping columns, that none is in the primary key;
   * before dropping roles, that no IAM principal is mapped to them;
   * after DML, the transaction's row count (the triggers of `catalog.ts` count the rows), in the same transaction so
   * that a statement crossing the limit is undone with it, in autocommit too; after a `SELECT … FOR UPDATE` in a
   * block, `touch`, which writes the rows it locked. An asynchronous job takes the next injected job failure, if any.
   */
  private runChecked(statement: Statement, extended: boolean, touch: string | undefined): Plan {
    const checks = [
      ...(statement.droppedColumns === undefined ? [] : [Catalog.checkDropColumnsSql(statement.droppedColumns)]),
      ...(statement.droppedRoles === undefined ? [] : [Catalog.checkDropRolesSql(statement.droppedRoles)])
    ]
    const before = checks.map((sql) => ({ sql, sent: this.sent(undefined, { hidden: true }) }))
    // In the extended protocol a COPY's rows arrive after its Execute, where a check would cut the copy short: its
    // rows count at the next DML statement's check instead.
    const checksRows = statement.kind === "dml" && !(extended && statement.copiesFromClient)
    const afterSql = checksRows ? Catalog.checkRowsSql(this.state.limits.maxRowsPerTransaction) : touch
    const after = afterSql === undefined
      ? []
      : [{ sql: afterSql, sent: this.sent(undefined, { hidden: true, releasesTag: true }) }]
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
    txn.savepoint = true
    this.block = "open"
    return {
      steps: [
        { sql: undefined, sent: this.sent(statement) },
        { sql: Catalog.takeSnapshotSql, sent: this.sent(undefined, { hidden: true }) },
        { sql: `SAVEPOINT ${Catalog.writesSavepoint}`, sent: this.sent(undefined, { hidden: true }) }
      ],
      stops: false
    }
  }

  private commit(statement: Statement): Plan {
    if (this.txn?.doomed === true) {
      this.state.stats.occErrors.OC000++
      return this.abandon(occRefusal("OC000"))
    }
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
    if (head.own !== undefined) return this.ownAnswer(head, frame)
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

  /**
   * The answer to the policy's own query (giving locks up, or running writes again): none of it is the client's. A
   * replay that fails is undone, and the transaction goes on without its writes, to fail at COMMIT; then the client's
   * held messages go on.
   */
  private ownAnswer(head: Extract<Pending, { _tag: "Query" }>, frame: Frame): ReadonlyArray<Action> {
    const txn = this.txn
    if (frame.type === "E" && head.own === "replay" && txn !== undefined) {
      txn.doomed = true
    }
    if (frame.type === "D" && head.own === "blockers") this.blockers = blockerPids(frame)
    if (frame.type !== "Z") return []
    this.pending.shift()
    const status = frame.body.toString("latin1", 0, 1) as TransactionStatus
    if (head.own === "replay" && status === "E") return [this.ownAction("undo", yieldSql)]
    this.ownRunning = false
    if (this.pending.length === 0) this.resync(status)
    const blockers = this.blockers
    this.blockers = undefined
    // This session may be one of them: it is idle again.
    if (blockers !== undefined) yieldBlockers(this.state, blockers)
    // Messages stay held while the session gives its locks up.
    if (this.ownRunning) return []
    const held = this.held ?? []
    this.held = undefined
    return held.flatMap((client) => this.fromClient(client))
  }

  private ownAction(own: OwnQuery, sql: string): Action {
    this.ownRunning = true
    this.expect({ _tag: "Query", sent: [this.sent(undefined, { hidden: true })], index: 0, own })
    return toBackend(Wire.query(sql))
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
