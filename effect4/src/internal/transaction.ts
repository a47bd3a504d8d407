/**
 * `withTransaction` as DSQL needs it, on Effect 4's `SqlClient.makeWithTransaction`: a nested call joins its own
 * client's outer transaction (DSQL has no savepoints); BEGIN is tried again on another connection when the session
 * turns out ended (nothing of the transaction ran); a COMMIT answered `ROLLBACK` is a typed failure; a ROLLBACK is
 * bounded, and a connection whose ROLLBACK failed or got no answer is discarded, the caller getting the program's own
 * failure.
 *
 * @internal
 */
import { SqlState, Transaction } from "@effect-dsql/core"
import type * as PgConnection from "@effect/sql-pg/PgConnection"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import type * as SqlConnection from "effect/sql/SqlConnection"
import { SqlError, UnknownError } from "effect/sql/SqlError"
import { sqlStateOf } from "./errors.js"

/** See core's `Transaction.rollbackTimeoutMillis`. */
const rollbackTimeout = Duration.millis(Transaction.rollbackTimeoutMillis)

/**
 * What a client gives its transactions.
 *
 * @internal
 */
export interface Options {
  /** The client's own transaction service: a transaction of another client (maybe another cluster) is never joined. */
  readonly transactionService: SqlClient.SqlClient["transactionService"]
  readonly spanAttributes: ReadonlyArray<readonly [string, unknown]>
  /** A connection of the pool for the scope's life, exclusive. */
  readonly reserve: Effect.Effect<SqlConnection.Connection, SqlError, Scope.Scope>
  /** Takes a reserved connection out of the pool: it is closed when released, never handed out again. */
  readonly discard: (conn: SqlConnection.Connection) => Effect.Effect<void>
  /**
   * How many times BEGIN may be tried again: the pool's size. A failover ends every pooled session at once and each
   * dead one is discarded as it is met, so that many retries reach a fresh connection.
   */
  readonly beginRetries: number
}

/**
 * True when `error` says the session was gone when BEGIN was sent: ended by the server (57P01 after an
 * administrator's termination, a failover, the age limit), or its socket closed or failed (sql-pg 4 reports those as a
 * `ConnectionError` of a query; a connect failure is one of `connect`).
 */
const isSessionEnded = (error: SqlError): boolean =>
  SqlState.isSessionEnded(sqlStateOf(error)) ||
  (error.reason._tag === "ConnectionError" && error.reason.operation === "query")

const rolledBack = () =>
  new SqlError({
    reason: new UnknownError({
      cause: new Error("COMMIT answered ROLLBACK"),
      message: "DsqlClient: the transaction was rolled back, nothing of it was committed: COMMIT was answered with " +
        "ROLLBACK because a statement of the transaction failed and its error was caught, which aborts the " +
        "transaction. Let that error fail the transaction, or run the work that recovers from it in a transaction of " +
        "its own.",
      operation: "commit"
    })
  })

/** COMMIT, failing when the server answers `ROLLBACK` (the transaction had been aborted). */
const commit = (conn: SqlConnection.Connection): Effect.Effect<void, SqlError> =>
  Effect.flatMap(
    conn.executeRaw("COMMIT", []),
    (result) => (result as PgConnection.Result).command === "ROLLBACK" ? Effect.fail(rolledBack()) : Effect.void
  )

/**
 * Builds the client's `withTransaction`.
 *
 * @internal
 */
export const make = (options: Options): SqlClient.SqlClient["withTransaction"] => {
  /** BEGIN failures that found the session ended: only those are tried again, never a failure of the program. */
  const endedAtBegin = new WeakSet<object>()

  const begin = (conn: SqlConnection.Connection, statement: string | undefined) =>
    (statement === undefined
      ? conn.execute("BEGIN", [], undefined)
      : conn.executeUnprepared(statement, [], undefined)).pipe(
        Effect.tapError((error) =>
          isSessionEnded(error)
            ? Effect.andThen(Effect.sync(() => endedAtBegin.add(error)), options.discard(conn))
            : Effect.void
        ),
        Effect.asVoid
      )

  /**
   * ROLLBACK, bounded by `rollbackTimeout`; never fails, so that the caller gets the program's own failure. When it
   * fails or gets no answer in time the connection is discarded. The statement itself is not interrupted (sql-pg would
   * drain the stalled session and send a cancel request): releasing the discarded connection closes it under it.
   */
  const rollback = (conn: SqlConnection.Connection) =>
    Effect.gen(function*() {
      const fiber = yield* Effect.forkDetach(conn.executeUnprepared("ROLLBACK", [], undefined))
      const exit = yield* Effect.timeoutOption(Fiber.await(fiber), rollbackTimeout)
      if (Option.isNone(exit) || Exit.isFailure(exit.value)) yield* options.discard(conn)
    })

  const transaction = SqlClient.makeWithTransaction({
    transactionService: options.transactionService,
    spanAttributes: options.spanAttributes,
    acquireConnection: (restore) => restore(options.reserve),
    begin,
    // never used: a nested transaction joins the outer one (below)
    savepoint: () => Effect.void,
    commit,
    // a COMMIT the server refused before running it leaves the transaction open
    onCommitFailure: rollback,
    rollback,
    rollbackSavepoint: () => Effect.void
  })

  const outermost = <A, E, R>(effect: Effect.Effect<A, E, R>, retries: number): Effect.Effect<A, E | SqlError, R> =>
    Effect.catchIf(
      transaction(effect),
      (error): error is SqlError =>
        retries > 0 && typeof error === "object" && error !== null && endedAtBegin.has(error),
      (error) =>
        Effect.logDebug("DsqlClient: session ended before the transaction began, opening it on another connection")
          .pipe(
            Effect.annotateLogs("error", error.message),
            Effect.andThen(outermost(effect, retries - 1))
          )
    )

  // DSQL has no savepoints: a nested transaction is part of its client's outer one and commits or fails with it.
  return (effect) =>
    Effect.flatMap(
      Effect.serviceOption(options.transactionService),
      (open) => Option.isSome(open) ? effect : outermost(effect, options.beginRetries)
    )
}
