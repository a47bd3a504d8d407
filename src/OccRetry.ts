/**
 * Retrying whole transactions on DSQL's optimistic concurrency conflicts (SQLSTATE 40001, `OC000` for data and
 * `OC001` for schema conflicts) with exponential back-off and jitter.
 *
 * A retried program runs again from its start: it must be safe to re-run, with no side effects outside the
 * database (no HTTP calls, no messages sent, no counters bumped in memory) before the transaction commits.
 *
 * @since 0.1.0
 */
import { Backoff, SqlState } from "@effect-dsql/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { dual } from "effect/Function"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schedule from "effect/Schedule"
import * as DsqlMetrics from "./DsqlMetrics.js"
import { backoff } from "./internal/backoff.js"
import { findCause } from "./internal/causes.js"
import { inTransactionOf } from "./internal/transaction.js"

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
export class OccConflict extends Data.TaggedError("OccConflict")<{
  readonly code: OccCode
  readonly message: string
  readonly attempts: number
  readonly cause: SqlError
}> {}

/**
 * True for an `OccConflict`.
 *
 * @since 0.1.0
 * @category guards
 */
export const isOccConflict = (u: unknown): u is OccConflict => Predicate.isTagged(u, "OccConflict")

const findOcc = (error: unknown): Option.Option<{ code: OccCode; message: string }> =>
  Option.fromNullable(findCause(error, ({ code, message }) => {
    const conflict = typeof message === "string" ? SqlState.occConflict(code, message) : undefined
    return conflict === undefined ? undefined : { code: conflict, message: message as string }
  }))

/**
 * Classifies a `SqlError` (walking its cause chain to pg's `DatabaseError`) as an `OccConflict`: SQLSTATE 40001,
 * with the `(OC000)` / `(OC001)` marker read from the message, or a literal `OC000` / `OC001` code.
 *
 * @since 0.1.0
 * @category constructors
 */
export const classify = (error: SqlError, attempts = 1): Option.Option<OccConflict> =>
  Option.map(findOcc(error), ({ code, message }) => new OccConflict({ code, message, attempts, cause: error }))

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
export const defaults = {
  maxRetries: Backoff.occRetry.maxRetries,
  baseDelay: Duration.millis(Backoff.occRetry.baseDelayMillis),
  maxDelay: Duration.millis(Backoff.occRetry.maxDelayMillis),
  factor: Backoff.occRetry.factor,
  jitter: Backoff.occRetry.jitter,
  maxElapsed: Duration.millis(Backoff.occRetry.maxElapsedMillis)
} as const

/**
 * The retry policy as a `Schedule`: continues only while its input is an `OccConflict`, and outputs the delay
 * before the next attempt.
 *
 * @since 0.1.0
 * @category schedules
 */
export const policy = (options: Options = {}): Schedule.Schedule<Duration.Duration, unknown> =>
  backoff({
    base: options.baseDelay ?? defaults.baseDelay,
    factor: options.factor ?? defaults.factor,
    maxDelay: options.maxDelay ?? defaults.maxDelay,
    jitter: options.jitter ?? defaults.jitter,
    maxRetries: options.maxRetries ?? defaults.maxRetries,
    maxElapsed: options.maxElapsed ?? defaults.maxElapsed
  }).pipe(Schedule.whileInput(isOccConflict))

const toOccConflict = (attempt: number) => <E>(error: E): E | OccConflict => {
  if (isOccConflict(error)) return new OccConflict({ ...error, attempts: attempt })
  if (Predicate.isTagged(error, "SqlError")) {
    return Option.getOrElse(classify(error as unknown as SqlError, attempt), () => error)
  }
  return error
}

/** Runs `attempt` until it succeeds, fails with something other than an `OccConflict`, or the policy gives up. */
const retryOcc = <A, E, R>(attempt: Effect.Effect<A, E, R>, options?: Options): Effect.Effect<A, E | OccConflict, R> =>
  Effect.gen(function*() {
    const driver = yield* Schedule.driver(policy(options))
    for (let n = 1;; n++) {
      const exit = yield* attempt.pipe(
        Effect.mapError(toOccConflict(n)),
        Effect.tapError((error) =>
          isOccConflict(error)
            ? Effect.zipRight(
              Effect.annotateCurrentSpan("dsql.occ.code", error.code),
              Metric.increment(Metric.tagged(DsqlMetrics.occConflicts, "code", error.code))
            )
            : Effect.void
        ),
        Effect.withSpan("OccRetry.attempt", { attributes: { "dsql.occ.attempt": n } }),
        Effect.exit
      )
      const conflict = Exit.isFailure(exit) ?
        Option.filter(
          Exit.causeOption(exit).pipe(
            Option.flatMap(Cause.failureOption)
          ),
          isOccConflict
        ) :
        Option.none()
      if (Option.isNone(conflict)) {
        yield* Metric.update(DsqlMetrics.occAttempts, n)
        return yield* exit
      }
      const delay = yield* Effect.option(driver.next(conflict.value))
      if (Option.isNone(delay)) {
        yield* Metric.increment(DsqlMetrics.occRetriesExhausted)
        yield* Metric.update(DsqlMetrics.occAttempts, n)
        return yield* exit
      }
      yield* Effect.logDebug("OCC conflict, retrying").pipe(
        Effect.annotateLogs({ code: conflict.value.code, attempt: n, delay: Duration.format(delay.value) })
      )
    }
  })

/**
 * Runs `program` in one transaction on the `SqlClient` in context and, when it loses an OCC conflict, rolls back
 * and runs it again per the policy. Other errors and defects pass through unretried; when the retries run out it
 * fails with the last `OccConflict`. Opening the transaction (acquiring a connection, BEGIN) and a COMMIT that fails
 * otherwise than by a conflict, or that the server answers with `ROLLBACK`, fail with `SqlError`. Inside a
 * transaction of the same client it opens nothing and retries nothing: the conflict reaches the outermost
 * `withOccRetry`. Inside another client's transaction it opens its own transaction on its client.
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
  ): Effect.Effect<A, E | OccConflict | SqlError, R | SqlClient.SqlClient>
  (
    options?: Options
  ): <A, E, R>(
    program: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | OccConflict | SqlError, R | SqlClient.SqlClient>
} = dual(
  (args) => Effect.isEffect(args[0]),
  <A, E, R>(program: Effect.Effect<A, E, R>, options?: Options) =>
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.flatMap(
        inTransactionOf(sql),
        (joined) =>
          joined ? Effect.mapError(program, toOccConflict(1)) : retryOcc(sql.withTransaction(program), options)
      ))
)

/**
 * Runs one statement outside an explicit transaction — DDL such as `CREATE INDEX ASYNC`, or a single DML — and
 * retries it on OCC conflicts like `withOccRetry`. Inside a transaction it retries nothing (the transaction is
 * aborted by then): the conflict, as an `OccConflict`, reaches the outermost `withOccRetry`, which runs the whole
 * transaction again. In a pipe, call it: `statement.pipe(OccRetry.execWithRetry())`.
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
  <A, E, R>(statement: Effect.Effect<A, E, R>, options?: Options): Effect.Effect<A, E | OccConflict | SqlError, R>
  (options?: Options): <A, E, R>(statement: Effect.Effect<A, E, R>) => Effect.Effect<A, E | OccConflict | SqlError, R>
} = dual(
  (args) => Effect.isEffect(args[0]),
  <A, E, R>(statement: Effect.Effect<A, E, R>, options?: Options) =>
    Effect.flatMap(
      Effect.serviceOption(SqlClient.TransactionConnection),
      (open) => Option.isSome(open) ? Effect.mapError(statement, toOccConflict(1)) : retryOcc(statement, options)
    )
)
