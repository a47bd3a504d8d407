/**
 * The one OCC retry core behind `OccRetry` (`withOccRetry`, `execWithRetry`) and the migrator: classification of a
 * failure, the policy, and the loop that runs attempts, counts them in `DsqlMetrics` and spans, and backs off.
 *
 * @internal
 */
import { Backoff, SqlState } from "@effect-dsql/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schedule from "effect/Schedule"
import * as DsqlMetrics from "../DsqlMetrics.js"
import type { Options } from "../OccRetry.js"
import { backoff } from "./backoff.js"
import { findCause } from "./causes.js"
import { inTransactionOf } from "./transaction.js"

/** See `OccRetry.OccConflict`. */
export class OccConflict extends Data.TaggedError("OccConflict")<{
  readonly code: SqlState.ConflictCode
  readonly message: string
  readonly attempts: number
  readonly cause: SqlError
}> {}

/** See `OccRetry.isOccConflict`. */
export const isOccConflict = (u: unknown): u is OccConflict => Predicate.isTagged(u, "OccConflict")

/** The conflict DSQL reports somewhere along `error`'s cause chain. */
const conflictOf = (error: unknown): { readonly code: SqlState.ConflictCode; readonly message: string } | undefined =>
  findCause(error, ({ code, message }) => {
    const conflict = typeof message === "string" ? SqlState.occConflict(code, message) : undefined
    return conflict === undefined ? undefined : { code: conflict, message: message as string }
  })

/** True when DSQL reported a conflict somewhere along `error`'s cause chain. */
export const isConflict = (error: unknown): boolean => conflictOf(error) !== undefined

/** See `OccRetry.classify`. */
export const classify = (error: SqlError, attempts = 1): Option.Option<OccConflict> =>
  Option.map(
    Option.fromNullable(conflictOf(error)),
    ({ code, message }) => new OccConflict({ code, message, attempts, cause: error })
  )

/** See `OccRetry.defaults`. */
export const defaults = {
  maxRetries: Backoff.occRetry.maxRetries,
  baseDelay: Duration.millis(Backoff.occRetry.baseDelayMillis),
  maxDelay: Duration.millis(Backoff.occRetry.maxDelayMillis),
  factor: Backoff.occRetry.factor,
  jitter: Backoff.occRetry.jitter,
  maxElapsed: Duration.millis(Backoff.occRetry.maxElapsedMillis)
} as const

/** The policy's delays, whatever the input: the loop decides what is retried. */
const schedule = (options: Options = {}): Schedule.Schedule<Duration.Duration, unknown> =>
  backoff({
    base: options.baseDelay ?? defaults.baseDelay,
    factor: options.factor ?? defaults.factor,
    maxDelay: options.maxDelay ?? defaults.maxDelay,
    jitter: options.jitter ?? defaults.jitter,
    maxRetries: options.maxRetries ?? defaults.maxRetries,
    maxElapsed: options.maxElapsed ?? defaults.maxElapsed
  })

/** See `OccRetry.policy`. */
export const policy = (options?: Options): Schedule.Schedule<Duration.Duration, unknown> =>
  schedule(options).pipe(Schedule.whileInput(isOccConflict))

/** `error` as an `OccConflict` of attempt `attempt` when it is one, unchanged otherwise. */
const tagged = (attempt: number) => <E>(error: E): E | OccConflict => {
  if (isOccConflict(error)) return new OccConflict({ ...error, attempts: attempt })
  if (Predicate.isTagged(error, "SqlError")) {
    return Option.getOrElse(classify(error as unknown as SqlError, attempt), () => error)
  }
  return error
}

/**
 * Runs `attempt` until it succeeds, fails with something `codeOf` does not call a conflict, or the policy gives up
 * (then it fails with the last failure). Every conflict is counted and named on its attempt's span.
 */
const retrying = <A, E, R>(
  attempt: (n: number) => Effect.Effect<A, E, R>,
  options: Options | undefined,
  codeOf: (error: E) => SqlState.ConflictCode | undefined
): Effect.Effect<A, E, R> =>
  Effect.gen(function*() {
    const driver = yield* Schedule.driver(schedule(options))
    for (let n = 1;; n++) {
      const exit = yield* attempt(n).pipe(
        Effect.tapError((error) => {
          const code = codeOf(error)
          return code === undefined ? Effect.void : Effect.zipRight(
            Effect.annotateCurrentSpan("dsql.occ.code", code),
            Metric.increment(Metric.tagged(DsqlMetrics.occConflicts, "code", code))
          )
        }),
        Effect.withSpan("OccRetry.attempt", { attributes: { "dsql.occ.attempt": n } }),
        Effect.exit
      )
      const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
      const code = Option.flatMap(failure, (error) => Option.fromNullable(codeOf(error)))
      if (Option.isNone(code)) {
        yield* Metric.update(DsqlMetrics.occAttempts, n)
        return yield* exit
      }
      const delay = yield* Effect.option(driver.next(Option.getOrUndefined(failure)))
      if (Option.isNone(delay)) {
        yield* Metric.increment(DsqlMetrics.occRetriesExhausted)
        yield* Metric.update(DsqlMetrics.occAttempts, n)
        return yield* exit
      }
      yield* Effect.logDebug("OCC conflict, retrying").pipe(
        Effect.annotateLogs({ code: code.value, attempt: n, delay: Duration.format(delay.value) })
      )
    }
  })

const conflictCode = (error: unknown): SqlState.ConflictCode | undefined =>
  isOccConflict(error) ? error.code : undefined

/** See `OccRetry.withOccRetry`. */
export const withOccRetry = <A, E, R>(
  program: Effect.Effect<A, E, R>,
  options?: Options
): Effect.Effect<A, E | OccConflict | SqlError, R | SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.flatMap(
      inTransactionOf(sql),
      (joined) =>
        joined
          ? Effect.mapError(program, tagged(1))
          : retrying((n) => Effect.mapError(sql.withTransaction(program), tagged(n)), options, conflictCode)
    ))

/** See `OccRetry.execWithRetry`. */
export const execWithRetry = <A, E, R>(
  statement: Effect.Effect<A, E, R>,
  options?: Options
): Effect.Effect<A, E | OccConflict, R> =>
  Effect.flatMap(
    Effect.serviceOption(SqlClient.TransactionConnection),
    (open) =>
      Option.isSome(open)
        ? Effect.mapError(statement, tagged(1))
        : retrying((n) => Effect.mapError(statement, tagged(n)), options, conflictCode)
  )

/**
 * For the migrator: `effect` (one statement outside a transaction, or a whole transaction) retried on conflicts like
 * `execWithRetry`, its failures left as they are: a conflict that outlasts the policy fails with its `SqlError`.
 */
export const retryConflicts = <A, E, R>(effect: Effect.Effect<A, E, R>, options: Options | undefined) =>
  Effect.flatMap(
    Effect.serviceOption(SqlClient.TransactionConnection),
    (open) => Option.isSome(open) ? effect : retrying(() => effect, options, (error) => conflictOf(error)?.code)
  )
