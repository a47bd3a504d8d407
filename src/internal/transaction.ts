/**
 * `withTransaction` as DSQL needs it. @effect/sql 0.52 turns a failed COMMIT into a defect and opens a SAVEPOINT for
 * a nested transaction; on DSQL the COMMIT is where optimistic concurrency conflicts surface, and SAVEPOINT is
 * refused. Here a failed COMMIT, or one the server answered with `ROLLBACK`, is a typed `SqlError` failure, and a
 * nested call joins the outer transaction when that transaction is its own client's.
 *
 * @internal
 */
import { SqlState, Transaction } from "@effect-dsql/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlConnection from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import { conflictOf, findCause } from "./causes.js"
import * as DsqlMetrics from "./metrics.js"

type WithTransaction = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError, R>

/** The `withTransaction` that opened each connection's current transaction. */
const owners = new WeakMap<SqlConnection.Connection, WithTransaction>()

/**
 * True when the fiber runs inside a transaction that `sql` opened: statements of `sql` join it. A transaction of
 * another client (another cluster) is not `sql`'s.
 */
export const inTransactionOf = (sql: SqlClient.SqlClient): Effect.Effect<boolean> =>
  Effect.map(
    Effect.serviceOption(SqlClient.TransactionConnection),
    Option.exists(([conn]) => owners.get(conn) === sql.withTransaction)
  )

/** See core's `Transaction.rollbackTimeoutMillis`. */
const rollbackTimeout = Duration.millis(Transaction.rollbackTimeoutMillis)

/** The pg client under a connection reserved from @effect/sql-pg. */
const pgClientOf = (conn: SqlConnection.Connection): { readonly end: () => Promise<void> } | undefined =>
  (conn as { readonly pg?: { readonly end: () => Promise<void> } }).pg

/**
 * Closes the session under `conn`, so that pg-pool drops the connection when it is released instead of handing a
 * session that may still be inside a transaction (or still busy) to the next caller.
 */
const discard = (conn: SqlConnection.Connection) =>
  Effect.sync(() => {
    pgClientOf(conn)?.end().catch(() => undefined)
  })

/** Node's codes for a socket reset or closed under a session (the server's own are `SqlState.sessionEndedCodes`). */
const socketEndedCodes: ReadonlySet<string> = new Set(["ECONNRESET", "EPIPE"])
/** pg's words for a socket closed under a session, and for a client that already saw it (not a connect timeout). */
const sessionEndedMessage = /Connection terminated unexpectedly|not queryable/

/**
 * True when `error` says the session was gone before it could run anything: ended by the server (57P01 after an
 * administrator's `pg_terminate_backend`, a failover or the age limit), or its socket reset or closed.
 */
const isSessionEnded = (error: unknown): boolean =>
  findCause(
    error,
    ({ code, message }) =>
      SqlState.isSessionEnded(code) || (typeof code === "string" && socketEndedCodes.has(code)) ||
        (typeof message === "string" && sessionEndedMessage.test(message))
        ? true
        : undefined
  ) === true

const rolledBack = () =>
  new SqlError({
    message: "The transaction was rolled back, nothing of it was committed: COMMIT was answered with ROLLBACK " +
      "because a statement of the transaction failed and its error was caught, which aborts the transaction. Let " +
      "that error fail the transaction, or run the work that recovers from it in a transaction of its own."
  })

/**
 * Builds `withTransaction` over `acquire`, which reserves one pooled connection for the life of a scope, from a pool
 * of at most `maxConnections`.
 */
export const makeWithTransaction = (
  acquire: Effect.Effect<SqlConnection.Connection, SqlError, Scope.Scope>,
  spanAttributes: ReadonlyArray<readonly [string, unknown]>,
  maxConnections: number
): WithTransaction => {
  const withTransaction: WithTransaction = (effect) =>
    Effect.flatMap(
      Effect.serviceOption(SqlClient.TransactionConnection),
      (open) =>
        // DSQL has no savepoints: an inner transaction is part of its client's outer one and commits or fails with
        // it. Another client's transaction runs on another connection, maybe another cluster: never join it.
        Option.isSome(open) && owners.get(open.value[0]) === withTransaction
          ? effect
          : runTransaction(acquire, spanAttributes, maxConnections, withTransaction, effect)
    )
  return withTransaction
}

/** Reserves a connection in a scope of its own and sends BEGIN; a connection whose BEGIN failed is discarded. */
const beginOnce = (
  acquire: Effect.Effect<SqlConnection.Connection, SqlError, Scope.Scope>
): Effect.Effect<readonly [SqlConnection.Connection, Scope.CloseableScope], SqlError> =>
  Effect.flatMap(Scope.make(), (scope) =>
    Scope.extend(acquire, scope).pipe(
      Effect.tap((conn) => Effect.tapError(conn.executeUnprepared("BEGIN", [], undefined), () => discard(conn))),
      Effect.map((conn) => [conn, scope] as const),
      Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))
    ))

/**
 * `beginOnce`, tried again on another connection while the session turns out ended at acquire or at BEGIN: nothing of
 * the program ran yet. A failover or a frozen container ends every pooled session at once, and each dead one is
 * discarded as it is met, so `retries` (the pool's size) bounds what the pool can still hold of them.
 */
const begin = (
  acquire: Effect.Effect<SqlConnection.Connection, SqlError, Scope.Scope>,
  retries: number
): Effect.Effect<readonly [SqlConnection.Connection, Scope.CloseableScope], SqlError> =>
  Effect.catchIf(
    beginOnce(acquire),
    (error) => retries > 0 && isSessionEnded(error),
    (error) =>
      Effect.logDebug("DsqlClient: session ended before the transaction began, opening it on another connection").pipe(
        Effect.annotateLogs("error", error.cause instanceof Error ? error.cause.message : error.message),
        Effect.zipRight(begin(acquire, retries - 1))
      )
  )

/** See `OccRetry.CommitOutcomeUnknown`. */
export class CommitOutcomeUnknown extends Data.TaggedError("CommitOutcomeUnknown")<{
  readonly message: string
  readonly cause: SqlError
}> {}

/**
 * A COMMIT that failed otherwise than by a conflict (a conflict means rolled back): the server may have committed
 * before the answer was lost. A `SqlError`, as `withTransaction`'s type says, carrying the typed error as its cause.
 */
const outcomeUnknown = (error: SqlError) => {
  const server = error.cause instanceof Error ? error.cause.message : error.message
  const unknown = new CommitOutcomeUnknown({
    message: `COMMIT outcome unknown (${server}): the transaction may or may not have committed, and it was not ` +
      "retried. Check whether its writes are there (read back a key it wrote, or an idempotency key it recorded) " +
      "before running it again.",
    cause: error
  })
  return Effect.zipRight(
    Metric.increment(DsqlMetrics.commitOutcomesUnknown),
    Effect.fail(new SqlError({ message: unknown.message, cause: unknown }))
  )
}

/**
 * COMMIT, failing when the server answers `ROLLBACK` (the transaction had been aborted). A failed COMMIT stays the
 * `SqlError` it was when it is an OCC conflict, and says the outcome is unknown otherwise.
 */
const commit = (conn: SqlConnection.Connection) =>
  conn.executeRaw("COMMIT", []).pipe(
    Effect.catchAll((error) => conflictOf(error) === undefined ? outcomeUnknown(error) : Effect.fail(error)),
    Effect.flatMap((result) =>
      (result as { readonly command?: unknown }).command === "ROLLBACK" ? Effect.fail(rolledBack()) : Effect.void
    )
  )

/**
 * ROLLBACK, bounded by `rollbackTimeout`. When it fails or gets no answer in time the session is discarded; the
 * statement itself is never interrupted (@effect/sql-pg would then send a cancel request through the same pool).
 */
const rollback = (conn: SqlConnection.Connection) =>
  Effect.gen(function*() {
    const giveUp = yield* Effect.fork(Effect.interruptible(Effect.delay(discard(conn), rollbackTimeout)))
    const exit = yield* Effect.exit(conn.executeUnprepared("ROLLBACK", [], undefined))
    yield* Fiber.interrupt(giveUp)
    if (Exit.isFailure(exit)) yield* discard(conn)
  })

const runTransaction = <A, E, R>(
  acquire: Effect.Effect<SqlConnection.Connection, SqlError, Scope.Scope>,
  spanAttributes: ReadonlyArray<readonly [string, unknown]>,
  maxConnections: number,
  owner: WithTransaction,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | SqlError, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.useSpan("sql.transaction", { kind: "client", captureStackTrace: false }, (span) => {
      for (const [key, value] of spanAttributes) span.attribute(key, value)
      const event = (name: string) =>
        Effect.flatMap(Clock.currentTimeNanos, (now) => Effect.sync(() => span.event(name, now)))
      return Effect.flatMap(begin(acquire, maxConnections), ([conn, scope]) => {
        owners.set(conn, owner)
        const body = restore(effect).pipe(
          Effect.provideService(SqlClient.TransactionConnection, [conn, 0] as const),
          Effect.withParentSpan(span),
          Effect.exit,
          Effect.flatMap((exit): Effect.Effect<A, E | SqlError> =>
            Exit.isSuccess(exit)
              ? event("db.transaction.commit").pipe(Effect.zipRight(commit(conn)), Effect.as(exit.value))
              : event("db.transaction.rollback").pipe(
                // The program's failure is what the caller gets, whatever became of the ROLLBACK.
                Effect.zipRight(rollback(conn)),
                Effect.zipRight(exit)
              )
          )
        )
        return Effect.onExit(body, (exit) => {
          owners.delete(conn)
          return Scope.close(scope, exit)
        })
      })
    })
  )
