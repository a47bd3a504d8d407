/**
 * OccRetry's machinery: classification of a failure over `@effect/sql-pg` 4's `SqlError` (the server's SQLSTATE is
 * `reason.cause.code`) with `@effect-dsql/core`'s rules, the policy, and the attempts loop.
 *
 * @internal
 */
import { Backoff, Causes, SqlState } from "@effect-dsql/core"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import type { Options } from "../OccRetry.js"
import * as Metrics from "./metrics.js"

/** See `OccRetry.OccConflict`. */
export class OccConflict extends Data.TaggedError("OccConflict")<{
  readonly code: SqlState.ConflictCode
  readonly message: string
  readonly attempts: number
  readonly cause: SqlError
}> {}

/** See `OccRetry.TransientError`. */
export class TransientError extends Data.TaggedError("TransientError")<{
  readonly code: string
  readonly message: string
  readonly attempts: number
  readonly cause: SqlError
}> {}

/** See `OccRetry.CommitOutcomeUnknown`. */
export class CommitOutcomeUnknown extends Data.TaggedError("CommitOutcomeUnknown")<{
  readonly message: string
  readonly cause: SqlError
}> {}

export const isOccConflict = (u: unknown): u is OccConflict => Predicate.isTagged(u, "OccConflict")
export const isTransientError = (u: unknown): u is TransientError => Predicate.isTagged(u, "TransientError")
export const isCommitOutcomeUnknown = (u: unknown): u is CommitOutcomeUnknown =>
  Predicate.isTagged(u, "CommitOutcomeUnknown")
export const isRetryable = (u: unknown): u is OccConflict | TransientError => isOccConflict(u) || isTransientError(u)

const isSqlError = (u: unknown): u is SqlError => Predicate.isTagged(u, "SqlError")

/**
 * The statement's `SqlError`: the failure itself, or one a library on the client keeps along its cause chain (Drizzle's
 * `EffectDrizzleQueryError` holds the query's Effect `Cause`).
 */
const sqlErrorIn = (error: unknown): SqlError | undefined => {
  for (const link of Causes.causeChain(error)) {
    if (isSqlError(link)) return link
    if (Cause.isCause(link)) {
      const failure = Cause.findErrorOption(link)
      if (Option.isSome(failure) && isSqlError(failure.value)) return failure.value
    }
  }
  return undefined
}

/** See `OccRetry.classify`. */
export const classify = (error: SqlError, attempts = 1): Option.Option<OccConflict> => {
  const server = SqlState.serverError(error)
  const code = server === undefined ? undefined : SqlState.occConflict(server.code, server.message)
  return code === undefined
    ? Option.none()
    : Option.some(new OccConflict({ code, message: server!.message, attempts, cause: error }))
}

/** See `OccRetry.defaults`. */
export const defaults = {
  maxRetries: Backoff.occRetry.maxRetries,
  baseDelay: Duration.millis(Backoff.occRetry.baseDelayMillis),
  maxDelay: Duration.millis(Backoff.occRetry.maxDelayMillis),
  factor: Backoff.occRetry.factor,
  jitter: Backoff.occRetry.jitter,
  maxElapsed: Duration.millis(Backoff.occRetry.maxElapsedMillis)
} as const

/**
 * See `OccRetry.policy`. `Schedule.exponential`, each delay capped and jittered down with core's arithmetic (Effect
 * 4's `Schedule.jittered` is a fixed 0.8–1.2 band), continuing while the input is retryable, at most `maxRetries`
 * times, and never past `maxElapsed` after the first failure, the coming delay included.
 */
export const policy = (options: Options = {}): Schedule.Schedule<Duration.Duration, unknown> => {
  const maxDelayMillis = Duration.toMillis(options.maxDelay ?? defaults.maxDelay)
  const jitter = options.jitter ?? defaults.jitter
  const maxRetries = options.maxRetries ?? defaults.maxRetries
  const maxElapsedMillis = Duration.toMillis(options.maxElapsed ?? defaults.maxElapsed)
  return Schedule.exponential(options.baseDelay ?? defaults.baseDelay, options.factor ?? defaults.factor).pipe(
    Schedule.modifyDelay(({ duration }) =>
      Effect.map(Random.next, (random) =>
        Duration.millis(
          Backoff.jitteredMillis(Math.min(Duration.toMillis(duration), maxDelayMillis), jitter, random)
        ))
    ),
    Schedule.setInputType<unknown>(),
    Schedule.while(({ attempt, duration, elapsed, input }) =>
      isRetryable(input) && attempt <= maxRetries &&
      Backoff.withinBudget(elapsed, Duration.toMillis(duration), maxElapsedMillis)
    )
  )
}

/**
 * A failure of attempt `attempt` tagged: a conflict, or when `transient` (a statement of a transaction, before its
 * COMMIT) a transient error; unchanged otherwise.
 */
const tagged = (attempt: number, transient: boolean) => <E>(error: E): E | OccConflict | TransientError => {
  if (isOccConflict(error)) return new OccConflict({ ...error, attempts: attempt })
  if (isTransientError(error)) return new TransientError({ ...error, attempts: attempt })
  const sqlError = sqlErrorIn(error)
  if (sqlError === undefined) return error
  const conflict = classify(sqlError, attempt)
  if (Option.isSome(conflict)) return conflict.value
  const server = transient ? SqlState.serverError(sqlError) : undefined
  return server !== undefined && SqlState.isTransient(server.code)
    ? new TransientError({ ...server, attempts: attempt, cause: sqlError })
    : error
}

/**
 * A failure of the COMMIT (the program had succeeded): a conflict is a conflict (rolled back); a lost connection or
 * any other server error leaves the outcome unknown. A COMMIT answered `ROLLBACK` (no server error, no lost
 * connection: a caught statement error had aborted the transaction) stays the `SqlError` it is.
 */
const atCommit = (attempt: number) => <E>(error: E): E | OccConflict | CommitOutcomeUnknown => {
  if (!isSqlError(error)) return error
  const conflict = classify(error, attempt)
  if (Option.isSome(conflict)) return conflict.value
  const server = SqlState.serverError(error)
  if (server === undefined && error.reason._tag !== "ConnectionError") return error
  return new CommitOutcomeUnknown({
    message: `COMMIT outcome unknown (${server?.message ?? error.reason.message ?? error.reason._tag}): the ` +
      "transaction may or may not have committed, and it was not retried. Check whether its writes are there (read " +
      "back a key it wrote, or an idempotency key it recorded) before running it again.",
    cause: error
  })
}

/** A retryable failure named on its attempt's span and counted under its code. */
const noted = (attribute: string, metric: Metric.Counter<number>, code: string) =>
  Effect.andThen(Effect.annotateCurrentSpan(attribute, code), Metrics.countCode(metric, code))

/**
 * Runs `attempt` (numbered from 1) under the policy, each attempt in its own span. Each conflict and transient error
 * is counted; once it ends (not interrupted), the attempts made, and a retryable failure left means the policy ran out.
 */
const retrying = <A, E, R>(attempt: (n: number) => Effect.Effect<A, E, R>, options: Options | undefined) =>
  Effect.suspend(() => {
    let n = 0
    return Effect.suspend(() => {
      n += 1
      return attempt(n).pipe(
        Effect.tapError((error) =>
          isOccConflict(error)
            ? noted("dsql.occ.code", Metrics.occConflicts, error.code)
            : isTransientError(error)
            ? noted("dsql.transient.code", Metrics.transientErrors, error.code)
            : Effect.void
        ),
        Effect.withSpan("OccRetry.attempt", { attributes: { "dsql.occ.attempt": n } })
      )
    }).pipe(
      Effect.retry(policy(options)),
      Effect.tapError((error) => isRetryable(error) ? Metric.update(Metrics.occRetriesExhausted, 1) : Effect.void),
      Effect.onExit((exit) => Exit.hasInterrupts(exit) ? Effect.void : Metric.update(Metrics.occAttempts, n))
    )
  })

/** See `OccRetry.withOccRetry`. */
export const withOccRetry = <A, E, R>(program: Effect.Effect<A, E, R>, options?: Options) =>
  Effect.flatMap(
    Effect.service(SqlClient.SqlClient),
    (sql) =>
      Effect.flatMap(Effect.serviceOption(sql.transactionService), (open) =>
        Option.isSome(open)
          ? Effect.mapError(program, tagged(1, true))
          : retrying((n) =>
            Effect.suspend(() => {
              let ran = false
              const marked = Effect.tap(program, () =>
                Effect.sync(() => {
                  ran = true
                }))
              return sql.withTransaction(marked).pipe(
                Effect.mapError((error) => ran ? atCommit(n)(error) : tagged(n, true)(error)),
                Effect.tapError((error) =>
                  isCommitOutcomeUnknown(error) ? Metric.update(Metrics.commitOutcomesUnknown, 1) : Effect.void
                )
              )
            }), options))
  )

/** See `OccRetry.execWithRetry`. */
export const execWithRetry = <A, E, R>(statement: Effect.Effect<A, E, R>, options?: Options) =>
  Effect.flatMap(
    Effect.service(SqlClient.SqlClient),
    (sql) =>
      Effect.flatMap(Effect.serviceOption(sql.transactionService), (open) =>
        // Alone, a statement that met a transient error may have been applied (in autocommit it is its own COMMIT).
        Option.isSome(open)
          ? Effect.mapError(statement, tagged(1, true))
          : retrying((n) => Effect.mapError(statement, tagged(n, false)), options))
  )

/**
 * For the migrator: `effect` (one statement outside a transaction, or a whole transaction) retried on conflicts like
 * `execWithRetry`, its failures left as they are: a conflict that outlasts the policy fails with its `SqlError`.
 * Inside a transaction of `sql` it retries nothing (the outermost attempt does).
 */
export const retryConflicts = <A, E, R>(
  sql: SqlClient.SqlClient,
  effect: Effect.Effect<A, E, R>,
  options: Options | undefined
): Effect.Effect<A, E, R> =>
  Effect.flatMap(
    Effect.serviceOption(sql.transactionService),
    (open) =>
      Option.isSome(open) ? effect : retrying((n) => Effect.mapError(effect, tagged(n, false)), options).pipe(
        Effect.mapError((error) => (isOccConflict(error) ? error.cause : error) as E)
      )
  )
