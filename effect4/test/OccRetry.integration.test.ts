/**
 * OccRetry of the Effect 4 line against DsqlLocal (through its promise API), on `@effect/sql-pg` 4 signing each
 * connection with `@aws-sdk/dsql-signer`: conflicts and transient errors injected by DsqlLocal's faults.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Exit, Layer, Option, Ref } from "effect"
import { OccRetry } from "effect-dsql"
import { SqlClient, SqlError } from "effect/sql"
import { TestClock } from "effect/testing"
import * as DsqlLocal from "./utils/dsqlLocal.js"

let tables = 0
/** A fresh table, and a transaction inserting `id` into it that counts its attempts. */
const setup = Effect.gen(function*() {
  const server = yield* DsqlLocal.DsqlLocal
  server.faults.reset()
  const sql = yield* SqlClient.SqlClient
  const table = `occ4_${process.pid}_${++tables}`
  yield* sql`CREATE TABLE ${sql(table)} (id int PRIMARY KEY)`
  const attempts = yield* Ref.make(0)
  const insert = (id: number, last: Effect.Effect<void> = Effect.void) =>
    Effect.gen(function*() {
      yield* Ref.update(attempts, (n) => n + 1)
      yield* sql`INSERT INTO ${sql(table)} VALUES (${id})`
      yield* last
    })
  const rows = Effect.map(sql<{ id: number }>`SELECT id FROM ${sql(table)} ORDER BY id`, (all) => all.map((r) => r.id))
  return { server, attempts, insert, rows }
})

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  assert.isTrue(Exit.isFailure(exit), "expected a failure")
  return Option.getOrThrow(Exit.findErrorOption(exit as Exit.Exit<A, E>))
}

// Back-off sleeps need real time: `TestClock.withLive` in each test (`layer` provides the test clock).
describe("OccRetry on DsqlLocal (Effect 4)", () => {
  layer(Layer.provideMerge(DsqlLocal.pgClient, DsqlLocal.layer()), { timeout: "120 seconds" })(
    "with @effect/sql-pg 4",
    (it) => {
      it.effect("conflicts at COMMIT (faults.failNextCommits) are retried to one commit", () =>
        Effect.gen(function*() {
          const { attempts, insert, rows, server } = yield* setup
          server.faults.failNextCommits(2, "OC001")
          yield* insert(1).pipe(OccRetry.withOccRetry({ baseDelay: "1 millis" }))
          assert.strictEqual(yield* Ref.get(attempts), 3)
          assert.deepStrictEqual(yield* rows, [1])
        }).pipe(TestClock.withLive))

      it.effect("fails with the last OccConflict when the retries run out, nothing committed", () =>
        Effect.gen(function*() {
          const { attempts, insert, rows, server } = yield* setup
          server.faults.failNextCommits(3)
          const error = failureOf(
            yield* Effect.exit(insert(1).pipe(OccRetry.withOccRetry({ maxRetries: 1, baseDelay: "1 millis" })))
          )
          assert.isTrue(OccRetry.isOccConflict(error) && error.code === "OC000" && error.attempts === 2, String(error))
          assert.strictEqual(yield* Ref.get(attempts), 2)
          assert.deepStrictEqual(yield* rows, [])
        }).pipe(TestClock.withLive))

      it.effect("XX000 before COMMIT (faults.failNextStatements) is a TransientError, retried", () =>
        Effect.gen(function*() {
          const { attempts, insert, rows, server } = yield* setup
          server.faults.failNextStatements(1)
          yield* insert(1).pipe(OccRetry.withOccRetry({ baseDelay: "1 millis" }))
          assert.strictEqual(yield* Ref.get(attempts), 2)
          assert.deepStrictEqual(yield* rows, [1])
        }).pipe(TestClock.withLive))

      it.effect("XX000 at COMMIT is CommitOutcomeUnknown, never retried", () =>
        Effect.gen(function*() {
          const { attempts, insert, server } = yield* setup
          server.faults.failNextCommits(1, "XX000")
          const error = failureOf(yield* Effect.exit(insert(1).pipe(OccRetry.withOccRetry({ baseDelay: "1 millis" }))))
          assert.isTrue(OccRetry.isCommitOutcomeUnknown(error), String(error))
          assert.include(error.message, "server unavailable")
          assert.strictEqual(yield* Ref.get(attempts), 1)
        }).pipe(TestClock.withLive))

      it.effect("a connection lost during COMMIT is CommitOutcomeUnknown, never retried", () =>
        Effect.gen(function*() {
          const { attempts, insert, server } = yield* setup
          const dropCommit = Effect.sync(() => server.faults.dropNextQueries(1))
          const error = failureOf(
            yield* Effect.exit(insert(1, dropCommit).pipe(OccRetry.withOccRetry({ baseDelay: "1 millis" })))
          )
          assert.isTrue(OccRetry.isCommitOutcomeUnknown(error), String(error))
          assert.strictEqual(yield* Ref.get(attempts), 1)
        }).pipe(TestClock.withLive))

      it.effect("inside a transaction of its client, withOccRetry opens nothing: the conflict reaches the outer one", () =>
        Effect.gen(function*() {
          const { attempts, insert, rows, server } = yield* setup
          const sql = yield* SqlClient.SqlClient
          const inner = yield* Ref.make(0)
          server.faults.failNextCommits(1)
          const nested = Effect.andThen(
            Ref.update(inner, (n) => n + 1),
            insert(1).pipe(OccRetry.withOccRetry({ baseDelay: "1 millis" }))
          )
          yield* Effect.andThen(sql`SELECT 1`, nested).pipe(OccRetry.withOccRetry({ baseDelay: "1 millis" }))
          // One transaction per outer attempt: the inner call ran once per attempt, retrying nothing itself.
          assert.strictEqual(yield* Ref.get(inner), 2)
          assert.strictEqual(yield* Ref.get(attempts), 2)
          assert.deepStrictEqual(yield* rows, [1])
        }).pipe(TestClock.withLive))

      it.effect("execWithRetry, alone, retries a conflict but not a transient error (autocommit is its own COMMIT)", () =>
        Effect.gen(function*() {
          const tries = yield* Ref.make(0)
          /** Fails with a server error of `code` on the first try, then succeeds. */
          const failingOnce = (code: string, message: string) =>
            Effect.flatMap(Ref.updateAndGet(tries, (n) => n + 1), (n) =>
              n === 1
                ? Effect.fail(
                  new SqlError.SqlError({
                    reason: new SqlError.UnknownError({ cause: Object.assign(new Error(message), { code }) })
                  })
                )
                : Effect.succeed(n))
          assert.strictEqual(
            yield* OccRetry.execWithRetry(failingOnce("40001", "change conflicts (OC000)"), { baseDelay: "1 millis" }),
            2
          )
          yield* Ref.set(tries, 0)
          const exit = yield* Effect.exit(OccRetry.execWithRetry(failingOnce("XX000", "server unavailable")))
          assert.strictEqual(failureOf(exit)._tag, "SqlError")
          assert.strictEqual(yield* Ref.get(tries), 1)
        }).pipe(TestClock.withLive))
    }
  )
})
