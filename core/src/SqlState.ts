/**
 * What DSQL's SQLSTATEs mean to a client: which failures are optimistic concurrency conflicts, which are transient
 * (nothing was committed, run the transaction again), which refuse a new connection for the cluster's limits.
 *
 * Sources: AWS's Aurora DSQL user guide (2026), "Concurrency control" (40001 with `OC000` / `OC001`),
 * "Troubleshooting" and "Considerations" (automated recovery may surface transient concurrency-control or
 * connection errors: retry the transaction or reconnect; `XX000` server unavailable before COMMIT means retry the
 * whole transaction; a failure during COMMIT other than a conflict leaves the outcome unknown), "Quotas" (53300 /
 * 53400).
 *
 * @since 0.1.0
 */
import { causeChain } from "./Causes.js"

/**
 * A SQLSTATE: five digits or uppercase letters.
 *
 * @since 0.1.0
 */
export const sqlStatePattern: RegExp = /^[0-9A-Z]{5}$/

/**
 * Whether `code` is shaped like a SQLSTATE (Node's socket codes such as `ECONNRESET` are not).
 *
 * @since 0.1.0
 */
export const isSqlState = (code: unknown): code is string => typeof code === "string" && sqlStatePattern.test(code)

/**
 * A server error: its SQLSTATE and its message.
 *
 * @since 0.1.0
 */
export interface ServerError {
  readonly code: string
  readonly message: string
}

/**
 * The first error along `error`'s `cause` chain (`error` included) that carries a SQLSTATE `code` and a `message`:
 * node-postgres keeps its `DatabaseError` as the cause of @effect/sql's `SqlError`; @effect/sql-pg 4 keeps the
 * server's fields one level deeper (`SqlError.reason.cause`). Walks through `Causes.causeChain`, which is bounded.
 *
 * @since 0.1.0
 */
export const serverError = (error: unknown): ServerError | undefined => {
  for (const link of causeChain(error)) {
    if (typeof link !== "object" || link === null) return undefined
    const { code, message } = link as { readonly code?: unknown; readonly message?: unknown }
    if (isSqlState(code) && typeof message === "string") return { code, message }
  }
  return undefined
}

/**
 * PostgreSQL's `serialization_failure`: DSQL answers it, with `(OC000)` or `(OC001)` in the message, to the loser of
 * an optimistic concurrency conflict. The transaction was rolled back.
 *
 * @since 0.1.0
 */
export const serializationFailure = "40001"

/**
 * DSQL's conflict markers: `OC000` a data conflict (a row written by a transaction that committed first), `OC001` a
 * schema conflict (the catalog changed since the transaction began).
 *
 * @since 0.1.0
 */
export type OccCode = "OC000" | "OC001"

/**
 * The code of a conflict: its marker, or `40001` when the server gave none.
 *
 * @since 0.1.0
 */
export type ConflictCode = OccCode | "40001"

const occMarker = /\b(OC00[01])\b/

const isOccCode = (code: unknown): code is OccCode => code === "OC000" || code === "OC001"

/**
 * The conflict a server error reports, `undefined` when it is no conflict. The code field takes precedence over the
 * message: a literal `OC000` / `OC001` code is the conflict whatever the message names; for `40001` the marker is
 * read from the message, and `40001` stands when there is none.
 *
 * @example
 * ```ts
 * import { SqlState } from "@effect-dsql/core"
 * SqlState.occConflict("40001", "schema has been updated by another transaction, please retry: (OC001)") // "OC001"
 * SqlState.occConflict("OC001", "change conflicts with another transaction (OC000)") // "OC001"
 * ```
 * @since 0.1.0
 */
export const occConflict = (code: unknown, message: unknown): ConflictCode | undefined => {
  if (isOccCode(code)) return code
  if (code !== serializationFailure) return undefined
  const marker = typeof message === "string" ? occMarker.exec(message)?.[1] : undefined
  return isOccCode(marker) ? marker : serializationFailure
}

/**
 * `XX000`, which DSQL answers as "server unavailable" while automated recovery moves a cluster's work. Before COMMIT
 * nothing of the transaction was committed: run it again. At COMMIT the outcome is unknown.
 *
 * @since 0.1.0
 */
export const serverUnavailable = "XX000"

/**
 * SQLSTATEs that mean "this transaction failed for a transient reason and nothing of it was committed" when a
 * statement before COMMIT receives them.
 *
 * @since 0.1.0
 */
export const transientCodes: ReadonlyArray<string> = [serverUnavailable]

/**
 * Whether `code` is transient (see `transientCodes`). Only a statement before COMMIT makes it safe to retry: at
 * COMMIT the same answer leaves the outcome unknown.
 *
 * @since 0.1.0
 */
export const isTransient = (code: unknown): boolean => typeof code === "string" && transientCodes.includes(code)

/**
 * `53300` "too many open connections" (the cluster's connection cap) and `53400` "rate exceeded" (its new-connection
 * rate): a new connection was refused and may be tried again after a back-off.
 *
 * @since 0.1.0
 */
export const connectionLimitCodes: ReadonlyArray<string> = ["53300", "53400"]

/**
 * Whether `code` refuses a new connection for the cluster's connection cap or rate.
 *
 * @since 0.1.0
 */
export const isConnectionLimit = (code: unknown): boolean =>
  typeof code === "string" && connectionLimitCodes.includes(code)

/**
 * `57P01` (administrator command: a failover, or the one-hour age limit), `57P02` (crash), `57P03` (cannot connect
 * now): the server ended the session.
 *
 * @since 0.1.0
 */
export const sessionEndedCodes: ReadonlyArray<string> = ["57P01", "57P02", "57P03"]

/**
 * Whether `code` says the server ended the session.
 *
 * @since 0.1.0
 */
export const isSessionEnded = (code: unknown): boolean => typeof code === "string" && sessionEndedCodes.includes(code)
