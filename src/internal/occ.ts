/**
 * The one OCC retry core behind `OccRetry` (`withOccRetry`, `execWithRetry`) and the migrator: classification of a
 * failure (OCC conflict, transient error before COMMIT, COMMIT outcome unknown), the policy, and the loop that runs
 * attempts, counts them in `DsqlMetrics` and spans, and backs off.
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
import type { Options } from "../OccRetry.js"
import { backoff } from "./backoff.js"
import { conflictOf, findCause } from "./causes.js"
import * as DsqlMetrics from "./metrics.js"
import { CommitOutcomeUnknown, inTransactionOf } from "./transaction.js"

/** See `OccRetry.OccConflict`. */
export class OccConflict extends Data.TaggedError("OccConflict")<{
  readonly code: SqlState.ConflictCode
  readonly message: string
  readonly attempts: number
  readonly cause: SqlError
}> {}

/** See `OccRetry.isOccConflict`. */
export const isOccConflict = (u: unknown): u is OccConflict => Predicate.isTagged(u, "OccConflict")

export { CommitOutcomeUnknown }

/** True when DSQL reported a conflict somewhere along `error`'s cause chain. */
export const isConflict = (error: unknown): boolean => conflictOf(error) !== undefined

/** See `OccRetry.classify`. */
export const classify = (error: SqlError, attempts = 1): Option.Option<OccConflict> =>
  Option.map(
    Option.fromNullable(conflictOf(error)),
    ({ code, message }) => new OccConflict({ code, message, attempts, cause: error })
  )

/** See `OccRetry.TransientError`. */
export class TransientError extends Data.TaggedError("TransientError")<{
  readonly code: string
  readonly message: string
  readonly attempts: number
  readonly cause: SqlError
}> {}

/** See `OccRetry.isTransientError`. */
export const isTransientError = (u: unknown): u is TransientError => Predicate.isTagged(u, "TransientError")

/** See `OccRetry.isCommitOutcomeUnknown`. */
export const isCommitOutcomeUnknown = (u: unknown): u is CommitOutcomeUnknown =>
  Predicate.isTagged(u, "CommitOutcomeUnknown")

/** See `OccRetry.isRetryable`. */
export const isRetryable = (u: unknown): u is OccConflict | TransientError => isOccConflict(u) || isTransientError(u)

/** The transient SQLSTATE and its message somewhere along `error`'s cause chain. */
const transientOf = (error: unknown): { readonly code: string; readonly message: string } | undefined =>
  findCause(
    error,
    ({ code, message }) => SqlState.isTransient(code) ? { code: code as string, message: String(message) } : undefined
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
  schedule(options).pipe(Schedule.whileInput(isRetryable))

/** What a failure of a transaction's attempt is, for the loop. */
type Tagged<E> = E | OccConflict | TransientError | CommitOutcomeUnknown

/**
 * `error` of attempt `attempt` tagged: a COMMIT whose outcome is unknown, a conflict, or, when `transient` (a whole
 * transaction, whose statements ran before its COMMIT), a transient error; unchanged otherwise.
 */
const tagged = (attempt: number, transient: boolean) => <E>(error: E): Tagged<E> => {
  if (isOccConflict(error)) return new OccConflict({ ...error, attempts: attempt })
  if (isTransientError(error)) return new TransientError({ ...error, attempts: attempt })
  if (!Predicate.isTagged(error, "SqlError")) return error
  const sqlError = error as unknown as SqlError
  const unknown = findCause(error, (candidate) => isCommitOutcomeUnknown(candidate) ? candidate : undefined)
  if (unknown !== undefined) return unknown
  const conflict = classify(sqlError, attempt)
  if (Option.isSome(conflict)) return conflict.value
  const found = transient ? transientOf(error) : undefined
  return found === undefined ? error : new TransientError({ ...found, attempts: attempt, cause: sqlError })
}

/** What the loop retries: a conflict or a transient error, with the code to count it under. */
interface Retryable {
  readonly metric: typeof DsqlMetrics.occConflicts
  readonly attribute: string
  readonly code: string
}

/** A conflict along a raw failure's cause chain, for the migrator, which keeps its `SqlError`s. */
const conflictFound = (error: unknown): Retryable | undefined => {
  const conflict = conflictOf(error)
  return conflict && { metric: DsqlMetrics.occConflicts, attribute: "dsql.occ.code", code: conflict.code }
}

const retryableOf = (error: unknown): Retryable | undefined =>
  isOccConflict(error)
    ? { metric: DsqlMetrics.occConflicts, attribute: "dsql.occ.code", code: error.code }
    : isTransientError(error)
    ? { metric: DsqlMetrics.transientErrors, attribute: "dsql.transient.code", code: error.code }
    : undefined

/**
 * Runs `attempt` until it succeeds, fails with something `retryable` does not retry, or the policy gives up (then it
 * fails with the last failure). Every retryable failure is counted and named on its attempt's span.
 */
const retrying = <A, E, R>(
  attempt: (n: number) => Effect.Effect<A, E, R>,
  options: Options | undefined,
  retryable: (error: E) => Retryable | undefined
): Effect.Effect<A, E, R> =>
  Effect.gen(function*() {
    const driver = yield* Schedule.driver(schedule(options))
    for (let n = 1;; n++) {
      const exit = yield* attempt(n).pipe(
        Effect.tapError((error) => {
          const found = retryable(error)
          return found === undefined ? Effect.void : Effect.zipRight(
            Effect.annotateCurrentSpan(found.attribute, found.code),
            Metric.increment(Metric.tagged(found.metric, "code", found.code))
          )
        }),
        Effect.withSpan("OccRetry.attempt", { attributes: { "dsql.occ.attempt": n } }),
        Effect.exit
      )
      const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
      const found = Option.flatMap(failure, (error) => Option.fromNullable(retryable(error)))
      if (Option.isNone(found)) {
        yield* Metric.update(DsqlMetrics.occAttempts, n)
        return yield* exit
      }
      const delay = yield* Effect.option(driver.next(Option.getOrUndefined(failure)))
      if (Option.isNone(delay)) {
        yield* Metric.increment(DsqlMetrics.occRetriesExhausted)
        yield* Metric.update(DsqlMetrics.occAttempts, n)
        return yield* exit
      }
      yield* Effect.logDebug("OCC conflict or transient error, retrying").pipe(
        Effect.annotateLogs({ code: found.value.code, attempt: n, delay: Duration.format(delay.value) })
      )
    }
  })

/** See `OccRetry.withOccRetry`. */
export const withOccRetry = <A, E, R>(
  program: Effect.Effect<A, E, R>,
  options?: Options
): Effect.Effect<A, Tagged<E | SqlError>, R | SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.flatMap(
      inTransactionOf(sql),
      (joined) =>
        joined
          ? Effect.mapError(program, tagged(1, true))
          : retrying((n) => Effect.mapError(sql.withTransaction(program), tagged(n, true)), options, retryableOf)
    ))

/** See `OccRetry.execWithRetry`. */
export const execWithRetry = <A, E, R>(
  statement: Effect.Effect<A, E, R>,
  options?: Options
): Effect.Effect<A, Tagged<E>, R> =>
  Effect.flatMap(
    Effect.serviceOption(SqlClient.TransactionConnection),
    (open) =>
      // Inside a transaction a transient error is tagged for the outermost `withOccRetry`; alone, a statement that
      // met one may have been applied by the server (in autocommit its COMMIT is its own): only conflicts retry.
      Option.isSome(open)
        ? Effect.mapError(statement, tagged(1, true))
        : retrying((n) => Effect.mapError(statement, tagged(n, false)), options, retryableOf)
  )

/**
 * For the migrator: `effect` (one statement outside a transaction, or a whole transaction) retried on conflicts like
 * `execWithRetry`, its failures left as they are: a conflict that outlasts the policy fails with its `SqlError`.
 */
export const retryConflicts = <A, E, R>(effect: Effect.Effect<A, E, R>, options: Options | undefined) =>
  Effect.flatMap(
    Effect.serviceOption(SqlClient.TransactionConnection),
    (open) => Option.isSome(open) ? effect : retrying(() => effect, options, conflictFound)
  )
