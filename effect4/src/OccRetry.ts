/**
 * Retrying whole transactions on DSQL's optimistic concurrency conflicts (SQLSTATE 40001, `OC000` for data and
 * `OC001` for schema conflicts) and on its transient errors before COMMIT (`XX000` server unavailable, which
 * automated recovery can surface), with exponential back-off and jitter. A COMMIT that fails otherwise than by a
 * conflict leaves the outcome unknown: `CommitOutcomeUnknown`, never retried. Classification and defaults come from
 * `@effect-dsql/core`, shared with the Effect 3 line.
 *
 * A retried program runs again from its start: it must be safe to re-run, with no side effects outside the
 * database (no HTTP calls, no messages sent, no counters bumped in memory) before the transaction commits.
 *
 * @since 2.0.0
 */
import type { SqlState } from "@effect-dsql/core"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import type * as Option from "effect/Option"
import type * as Schedule from "effect/Schedule"
import type * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import * as Internal from "./internal/occ.js"

/**
 * The code of a conflict: `OC000` (data), `OC001` (schema), or `40001` when the server gave no marker.
 *
 * @stability stable
 * @since 2.0.0
 * @category models
 */
export type OccCode = SqlState.ConflictCode

/**
 * A transaction lost an optimistic concurrency conflict. `attempts` counts the attempts made, this one included;
 * `cause` is the `SqlError` carrying the server's error (`reason.cause`).
 *
 * @stability stable
 * @since 2.0.0
 * @category errors
 */
export const OccConflict: typeof Internal.OccConflict = Internal.OccConflict

/**
 * @since 2.0.0
 * @category errors
 */
export type OccConflict = Internal.OccConflict

/**
 * A statement of the transaction, before its COMMIT, failed for a transient reason (`code`: the SQLSTATE, `XX000`
 * "server unavailable"). Nothing of the transaction was committed; `withOccRetry` runs it again like after a
 * conflict.
 *
 * @stability stable
 * @since 2.0.0
 * @category errors
 */
export const TransientError: typeof Internal.TransientError = Internal.TransientError

/**
 * @since 2.0.0
 * @category errors
 */
export type TransientError = Internal.TransientError

/**
 * The COMMIT failed otherwise than by an OCC conflict (the connection was lost during it, or the server answered an
 * error such as `XX000`): the transaction may or may not have committed. Never retried automatically, since running
 * it again could apply it twice: read back what it wrote (a key it inserted, or an idempotency key it recorded) and
 * run it again only if that is missing, or make it idempotent and retry it yourself.
 *
 * @stability stable
 * @since 2.0.0
 * @category errors
 */
export const CommitOutcomeUnknown: typeof Internal.CommitOutcomeUnknown = Internal.CommitOutcomeUnknown

/**
 * @since 2.0.0
 * @category errors
 */
export type CommitOutcomeUnknown = Internal.CommitOutcomeUnknown

/**
 * What `withOccRetry` and `execWithRetry` add to a program's failures.
 *
 * @since 2.0.0
 * @category models
 */
export type Failure = OccConflict | TransientError | CommitOutcomeUnknown | SqlError

/**
 * True for an `OccConflict`.
 *
 * @since 2.0.0
 * @category guards
 */
export const isOccConflict: (u: unknown) => u is OccConflict = Internal.isOccConflict

/**
 * True for a `TransientError`.
 *
 * @since 2.0.0
 * @category guards
 */
export const isTransientError: (u: unknown) => u is TransientError = Internal.isTransientError

/**
 * True for a `CommitOutcomeUnknown`.
 *
 * @since 2.0.0
 * @category guards
 */
export const isCommitOutcomeUnknown: (u: unknown) => u is CommitOutcomeUnknown = Internal.isCommitOutcomeUnknown

/**
 * True for what the policy retries: an `OccConflict` or a `TransientError`.
 *
 * @since 2.0.0
 * @category guards
 */
export const isRetryable: (u: unknown) => u is OccConflict | TransientError = Internal.isRetryable

/**
 * Classifies a `SqlError` of `@effect/sql-pg` 4 (the server's SQLSTATE and text are in `reason.cause`) as an
 * `OccConflict`: SQLSTATE 40001 with the `(OC000)` / `(OC001)` marker read from the message, or a literal code.
 *
 * @since 2.0.0
 * @category constructors
 */
export const classify: (error: SqlError, attempts?: number) => Option.Option<OccConflict> = Internal.classify

/**
 * Options of the retry policy. Delays grow as `baseDelay * factor^n`, each capped at `maxDelay`, then randomised
 * down by up to `jitter` (1 = full jitter: uniform between 0 and the delay; 0 = none).
 *
 * @since 2.0.0
 * @category models
 */
export interface Options {
  readonly maxRetries?: number | undefined
  readonly baseDelay?: Duration.Input | undefined
  readonly maxDelay?: Duration.Input | undefined
  readonly factor?: number | undefined
  readonly jitter?: number | undefined
  readonly maxElapsed?: Duration.Input | undefined
}

/**
 * The default policy, the Effect 3 line's: up to 20 retries, 40 ms doubling to at most 1 s, half jitter, 30 s in
 * all (`Backoff.occRetry` of `@effect-dsql/core`, which tells the sweep that chose them).
 *
 * @since 2.0.0
 * @category schedules
 */
export const defaults: typeof Internal.defaults = Internal.defaults

/**
 * The retry policy as a `Schedule`: `Schedule.exponential` with jitter, continuing only while its input is an
 * `OccConflict` or a `TransientError`; it outputs the delay before the next attempt.
 *
 * @since 2.0.0
 * @category schedules
 */
export const policy: (options?: Options) => Schedule.Schedule<Duration.Duration, unknown> = Internal.policy

/**
 * Runs `program` in one transaction on the `SqlClient` in context and, when it loses an OCC conflict or a
 * statement meets a transient error, rolls back and runs it again per the policy. Other errors and defects pass
 * through unretried; when the retries run out it fails with the last `OccConflict` or `TransientError`. A COMMIT that
 * fails otherwise than by a conflict fails with `CommitOutcomeUnknown`, never retried. Inside a transaction of the
 * same client it opens nothing and retries nothing: the tagged failure reaches the outermost `withOccRetry`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SqlClient } from "effect/sql"
 * import { withOccRetry } from "effect-dsql"
 *
 * const transfer = (from: number, to: number, amount: number) =>
 *   Effect.gen(function*() {
 *     const sql = yield* SqlClient.SqlClient
 *     yield* sql`UPDATE accounts SET balance = balance - ${amount} WHERE id = ${from}`
 *     yield* sql`UPDATE accounts SET balance = balance + ${amount} WHERE id = ${to}`
 *   }).pipe(withOccRetry({ maxRetries: 5 }))
 * ```
 *
 * @since 2.0.0
 * @category combinators
 */
export const withOccRetry: {
  <A, E, R>(
    program: Effect.Effect<A, E, R>,
    options?: Options
  ): Effect.Effect<A, E | Failure, R | SqlClient.SqlClient>
  (
    options?: Options
  ): <A, E, R>(program: Effect.Effect<A, E, R>) => Effect.Effect<A, E | Failure, R | SqlClient.SqlClient>
} = dual((args) => Effect.isEffect(args[0]), Internal.withOccRetry)

/**
 * Runs one statement outside an explicit transaction (DDL, or a single DML) and retries it on OCC conflicts. A
 * transient error is not retried here: in autocommit the statement is its own COMMIT, so the server may have applied
 * it. Inside a transaction it retries nothing: the tagged failure reaches the outermost `withOccRetry`.
 *
 * @since 2.0.0
 * @category combinators
 */
export const execWithRetry: {
  <A, E, R>(
    statement: Effect.Effect<A, E, R>,
    options?: Options
  ): Effect.Effect<A, E | Failure, R | SqlClient.SqlClient>
  (
    options?: Options
  ): <A, E, R>(statement: Effect.Effect<A, E, R>) => Effect.Effect<A, E | Failure, R | SqlClient.SqlClient>
} = dual((args) => Effect.isEffect(args[0]), Internal.execWithRetry)
