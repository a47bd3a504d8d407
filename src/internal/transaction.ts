/**
 * `withTransaction` as DSQL needs it. @effect/sql 0.52 turns a failed COMMIT into a defect and opens a SAVEPOINT for
 * a nested transaction; on DSQL the COMMIT is where optimistic concurrency conflicts surface, and SAVEPOINT is
 * refused. Here a failed COMMIT is a typed `SqlError` failure and a nested call joins the outer transaction.
 *
 * @internal
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlConnection from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"

/**
 * Builds `withTransaction` over `acquire`, which reserves one pooled connection for the life of a scope.
 */
export const makeWithTransaction = (
  acquire: Effect.Effect<SqlConnection.Connection, SqlError, Scope.Scope>,
  spanAttributes: ReadonlyArray<readonly [string, unknown]>
) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
  Effect.flatMap(
    Effect.serviceOption(SqlClient.TransactionConnection),
    Option.match({
      // DSQL has no savepoints: an inner transaction is part of the outer one and commits or fails with it.
      onSome: () => effect,
      onNone: () => runTransaction(acquire, spanAttributes, effect)
    })
  )

const runTransaction = <A, E, R>(
  acquire: Effect.Effect<SqlConnection.Connection, SqlError, Scope.Scope>,
  spanAttributes: ReadonlyArray<readonly [string, unknown]>,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | SqlError, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.useSpan("sql.transaction", { kind: "client", captureStackTrace: false }, (span) => {
      for (const [key, value] of spanAttributes) span.attribute(key, value)
      const event = (name: string) =>
        Effect.flatMap(Clock.currentTimeNanos, (now) => Effect.sync(() => span.event(name, now)))
      return Effect.flatMap(Scope.make(), (scope) => {
        const body = Effect.flatMap(
          Scope.extend(acquire, scope),
          (conn) =>
            conn.executeUnprepared("BEGIN", [], undefined).pipe(
              Effect.zipRight(
                restore(effect).pipe(
                  Effect.provideService(SqlClient.TransactionConnection, [conn, 0] as const),
                  Effect.withParentSpan(span)
                )
              ),
              Effect.exit,
              Effect.flatMap((exit) =>
                Exit.isSuccess(exit)
                  ? event("db.transaction.commit").pipe(
                    Effect.zipRight(conn.executeUnprepared("COMMIT", [], undefined)),
                    Effect.as(exit.value)
                  )
                  : event("db.transaction.rollback").pipe(
                    // A failed ROLLBACK means the connection is gone; the original failure is what matters.
                    Effect.zipRight(Effect.ignore(conn.executeUnprepared("ROLLBACK", [], undefined))),
                    Effect.zipRight(exit)
                  )
              )
            )
        )
        return Effect.onExit(body, (exit) => Scope.close(scope, exit))
      })
    })
  )
