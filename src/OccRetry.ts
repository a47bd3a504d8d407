/**
 * Retrying whole transactions on DSQL's optimistic concurrency conflicts (SQLSTATE 40001, `OC000` for data and
 * `OC001` for schema conflicts) and on its transient errors before COMMIT (`XX000` server unavailable, which
 * automated recovery can surface), with exponential back-off and jitter. A COMMIT that fails otherwise than by a
 * conflict leaves the outcome unknown: `CommitOutcomeUnknown`, never retried.
 *
 * A retried program runs again from its start: it must be safe to re-run, with no side effects outside the
 * database (no HTTP calls, no messages sent, no counters bumped in memory) before the transaction commits.
 *
 * @since 0.1.0
 */
import type { SqlState } from "@effect-dsql/core"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import type * as Option from "effect/Option"
import type * as Schedule from "effect/Schedule"
import * as Internal from "./internal/occ.js"

/**
 * The code of a conflict: `OC000` (data), `OC001` (schema), or `40001` when the server gave no marker.
 *
 * @since 0.1.0
 * @category models
 */
export type OccCode = SqlState.ConflictCode

/**
 * A transaction lost an optimistic concurrency conflict. `attempts` counts the attempts made, this one included;
 * `cause` is the `SqlError` carrying the server's error.
 *
 * @since 0.1.0
 * @category errors
 */
export const OccConflict: typeof Internal.OccConflict = Internal.OccConflict

/**
 * @since 0.1.0
 * @category errors
 */
export type OccConflict = Internal.OccConflict

/**
 * True for an `OccConflict`.
 *
 * @since 0.1.0
 * @category guards
 */
export const isOccConflict: (u: unknown) => u is OccConflict = Internal.isOccConflict

/**
 * A statement of the transaction, before its COMMIT, failed for a transient reason (`code`: the SQLSTATE, `XX000`
 * "server unavailable" while DSQL's automated recovery moves the cluster's work). Nothing of the transaction was
 * committed; `withOccRetry` runs it again like after a conflict. `attempts` counts the attempts made, this one
 * included; `cause` is the `SqlError` carrying the server's error.
 *
 * @since 0.1.0
 * @category errors
 */
export const TransientError: typeof Internal.TransientError = Internal.TransientError

/**
 * @since 0.1.0
 * @category errors
 */
export type TransientError = Internal.TransientError

/**
 * The COMMIT failed otherwise than by an OCC conflict (the connection was lost during it, or the server answered
 * `XX000` to it): the transaction may or may not have committed. It is never retried automatically, since running it
 * again could apply it twice. What to do: read back what the transaction wrote (a key it inserted, or an idempotency
 * key it recorded) and run it again only if it is not there; or make the transaction idempotent and retry it.
 * `cause` is the COMMIT's `SqlError`. Under `withOccRetry` the failure is this error; a bare `sql.withTransaction`
 * fails with a `SqlError` whose `cause` is this error.
 *
 * @since 0.1.0
 * @category errors
 */
export const CommitOutcomeUnknown: typeof Internal.CommitOutcomeUnknown = Internal.CommitOutcomeUnknown

/**
 * @since 0.1.0
 * @category errors
 */
export type CommitOutcomeUnknown = Internal.CommitOutcomeUnknown

/**
 * True for a `TransientError`.
 *
 * @since 0.1.0
 * @category guards
 */
export const isTransientError: (u: unknown) => u is TransientError = Internal.isTransientError

/**
 * True for a `CommitOutcomeUnknown`.
 *
 * @since 0.1.0
 * @category guards
 */
export const isCommitOutcomeUnknown: (u: unknown) => u is CommitOutcomeUnknown = Internal.isCommitOutcomeUnknown

/**
 * True for what the policy retries: an `OccConflict` or a `TransientError`.
 *
 * @since 0.1.0
 * @category guards
 */
export const isRetryable: (u: unknown) => u is OccConflict | TransientError = Internal.isRetryable

/**
 * Classifies a `SqlError` (walking its cause chain to pg's `DatabaseError`) as an `OccConflict`: SQLSTATE 40001,
 * with the `(OC000)` / `(OC001)` marker read from the message, or a literal `OC000` / `OC001` code.
 *
 * @since 0.1.0
 * @category constructors
 */
export const classify: (error: SqlError, attempts?: number) => Option.Option<OccConflict> = Internal.classify

/**
 * Options of the retry policy. Delays grow as `baseDelay * factor^n`, each capped at `maxDelay`, then randomised
 * down by up to `jitter` (1 = full jitter: uniform between 0 and the delay; 0 = none).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly maxRetries?: number | undefined
  readonly baseDelay?: Duration.DurationInput | undefined
  readonly maxDelay?: Duration.DurationInput | undefined
  readonly factor?: number | undefined
  readonly jitter?: number | undefined
  readonly maxElapsed?: Duration.DurationInput | undefined
}

/**
 * The default policy: up to 20 retries, 40 ms doubling to at most 1 s, half jitter, 30 s in all (`Backoff.occRetry`
 * of `@effect-dsql/core`, shared with the Effect 4 line, where the sweep that chose them is told).
 *
 * @since 0.1.0
 * @category schedules
 */
export const defaults: typeof Internal.defaults = Internal.defaults

/**
 * The retry policy as a `Schedule`: continues only while its input is an `OccConflict` or a `TransientError`, and outputs the delay
 * before the next attempt.
 *
 * @since 0.1.0
 * @category schedules
 */
export const policy: (options?: Options) => Schedule.Schedule<Duration.Duration, unknown> = Internal.policy

/**
 * What `withOccRetry` and `execWithRetry` add to a program's failures.
 *
 * @since 0.1.0
 * @category models
 */
export type Failure = OccConflict | TransientError | CommitOutcomeUnknown | SqlError

/**
 * Runs `program` in one transaction on the `SqlClient` in context and, when it loses an OCC conflict or a
 * statement meets a transient error (`TransientError`: nothing was committed), rolls back and runs it again per the
 * policy. Other errors and defects pass through unretried; when the retries run out it fails with the last
 * `OccConflict` or `TransientError`. A COMMIT that fails otherwise than by a conflict fails with
 * `CommitOutcomeUnknown`, never retried (see there what to do). Opening the transaction (acquiring a connection,
 * BEGIN) and a COMMIT the server answers with `ROLLBACK` (nothing committed) fail with `SqlError`. Inside a
 * transaction of the same client it opens nothing and retries nothing: the conflict or transient error reaches the
 * outermost `withOccRetry`. Inside another client's transaction it opens its own transaction on its client.
 *
 * In a pipe, call it: `program.pipe(withOccRetry())`; the bare `program.pipe(withOccRetry)` does not compile.
 *
 * @example
 * ```ts
 * import { withOccRetry } from "effect-dsql"
 * import { SqlClient } from "@effect/sql"
 * import { Effect } from "effect"
 *
 * const transfer = (from: number, to: number, amount: number) =>
 *   Effect.gen(function*() {
 *     const sql = yield* SqlClient.SqlClient
 *     yield* sql`UPDATE accounts SET balance = balance - ${amount} WHERE id = ${from}`
 *     yield* sql`UPDATE accounts SET balance = balance + ${amount} WHERE id = ${to}`
 *   }).pipe(withOccRetry({ maxRetries: 5 }))
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const withOccRetry: {
  // The data-first signature comes first: TypeScript infers a function passed bare (`pipe(withOccRetry)`) from the
  // last signature, which then takes an Effect for `options` and fails to compile instead of losing the types.
  <A, E, R>(
    program: Effect.Effect<A, E, R>,
    options?: Options
  ): Effect.Effect<A, E | Failure, R | SqlClient.SqlClient>
  (
    options?: Options
  ): <A, E, R>(program: Effect.Effect<A, E, R>) => Effect.Effect<A, E | Failure, R | SqlClient.SqlClient>
} = dual((args) => Effect.isEffect(args[0]), Internal.withOccRetry)

/**
 * Runs one statement outside an explicit transaction — DDL such as `CREATE INDEX ASYNC`, or a single DML — and
 * retries it on OCC conflicts like `withOccRetry`. A transient error is not retried here: in autocommit the
 * statement is its own COMMIT, so the server may have applied it. Inside a transaction it retries nothing (the
 * transaction is aborted by then): the conflict or transient error, tagged, reaches the outermost `withOccRetry`,
 * which runs the whole transaction again. In a pipe, call it: `statement.pipe(OccRetry.execWithRetry())`.
 *
 * @example
 * ```ts
 * import { OccRetry } from "effect-dsql"
 * import { SqlClient } from "@effect/sql"
 * import { Effect } from "effect"
 *
 * const createTable = Effect.flatMap(SqlClient.SqlClient, (sql) =>
 *   OccRetry.execWithRetry(sql`CREATE TABLE IF NOT EXISTS owners (id uuid PRIMARY KEY, name text)`))
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const execWithRetry: {
  <A, E, R>(statement: Effect.Effect<A, E, R>, options?: Options): Effect.Effect<A, E | Failure, R>
  (options?: Options): <A, E, R>(statement: Effect.Effect<A, E, R>) => Effect.Effect<A, E | Failure, R>
} = dual((args) => Effect.isEffect(args[0]), Internal.execWithRetry)
