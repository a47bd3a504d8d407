/**
 * Fibers of the Effect 4 line interrupted in a running statement, inside a transaction, and in `withOccRetry`'s
 * back-off: each interruption ends within its bound, nothing half written is committed, and the pool then serves
 * at full size with every statement's own answer.
 */
import { assert, layer } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, Ref, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import * as OccRetry from "../src/OccRetry.js"
import { open } from "./utils/client.js"
import * as DsqlLocal from "./utils/dsqlLocal.js"

const poolSize = 3

/** Milliseconds `effect` took. */
const millisOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.timed(effect), ([duration]) => Duration.toMillis(duration))

/** Statements `poolSize` at once, each answered with its own value: no connection is out of step with its session. */
const servesAtFullSize = (sql: SqlClient.SqlClient) =>
  Effect.gen(function*() {
    const values = Array.from({ length: poolSize * 2 }, (_, i) => i + 1)
    const answers = yield* Effect.forEach(
      values,
      (i) => Effect.map(sql<{ i: number }>`SELECT ${i}::int AS i, pg_sleep(0.02)`, ([row]) => row!.i),
      { concurrency: poolSize }
    )
    assert.deepStrictEqual(answers, values)
  })

let tables = 0
/** The server, a client of `poolSize` connections of its own, and a fresh table. */
const withTable = Effect.gen(function*() {
  const server = yield* DsqlLocal.DsqlLocal
  const sql = yield* open(server, { maxConnections: poolSize })
  const table = `e4interrupt_${process.pid}_${++tables}`
  yield* sql`CREATE TABLE ${sql(table)} (id int PRIMARY KEY)`
  return { server, sql, table }
})

// live clocks throughout: the statements and back-off sleeps are real
layer(DsqlLocal.layer(), { timeout: "120 seconds" })("interruption (Effect 4)", (it) => {
  it.effect("a statement the server keeps running: the interruption ends within sql-pg's 5 s drain bound", () =>
    Effect.gen(function*() {
      const server = yield* DsqlLocal.DsqlLocal
      const sql = yield* open(server, { maxConnections: poolSize })
      // wait until it runs: DsqlLocal counts a statement when it forwards it
      const queries = server.stats().queries
      const sleeping = yield* Effect.forkChild(sql`SELECT pg_sleep(9)`)
      while (server.stats().queries === queries) yield* Effect.sleep("5 millis")
      // DsqlLocal ignores a CancelRequest, as DSQL may: sql-pg drains for 5 s, then closes the session
      assert.isBelow(yield* millisOf(Fiber.interrupt(sleeping)), 7_500)
      yield* servesAtFullSize(sql)
      // the closed session counts as open on the server until its statement ends there (at 9 s); then nothing
      // is left but the pool's own connections
      const settled = Effect.suspend(() =>
        server.stats().connectionsOpen <= poolSize ? Effect.void : Effect.fail("sessions left")
      )
      yield* Effect.retry(settled, { schedule: Schedule.spaced("50 millis"), times: 200 })
    }).pipe(TestClock.withLive))

  it.effect("a transaction interrupted after its INSERT commits nothing, and leaves no session in a transaction", () =>
    Effect.gen(function*() {
      const { sql, table } = yield* withTable
      const inserted = yield* Deferred.make<void>()
      const transaction = yield* Effect.forkChild(sql.withTransaction(Effect.gen(function*() {
        yield* sql`INSERT INTO ${sql(table)} VALUES (0)`
        yield* Deferred.succeed(inserted, undefined)
        yield* Effect.never
      })))
      yield* Deferred.await(inserted)
      assert.isBelow(yield* millisOf(Fiber.interrupt(transaction)), 1_000)
      // every connection takes a transaction of its own at once: none was left inside the interrupted one
      yield* Effect.forEach(
        Array.from({ length: poolSize }, (_, i) => i + 1),
        (id) =>
          sql.withTransaction(Effect.andThen(sql`INSERT INTO ${sql(table)} VALUES (${id})`, Effect.sleep("20 millis"))),
        { concurrency: poolSize }
      )
      const ids = yield* sql<{ id: number }>`SELECT id FROM ${sql(table)} ORDER BY id`
      assert.deepStrictEqual(ids.map((row) => row.id), [1, 2, 3])
    }).pipe(TestClock.withLive))

  it.effect("withOccRetry interrupted in its back-off ends at once and tries no more", () =>
    Effect.gen(function*() {
      const { server, sql, table } = yield* withTable
      const attempts = yield* Ref.make(0)
      server.faults.failNextCommits(1)
      const failed = server.stats().commitsFailedByFault
      const retrying = yield* Effect.forkChild(
        Effect.andThen(Ref.update(attempts, (n) => n + 1), sql`INSERT INTO ${sql(table)} VALUES (1)`).pipe(
          OccRetry.withOccRetry({ baseDelay: "30 seconds", maxDelay: "30 seconds" })
        ).pipe(Effect.provideService(SqlClient.SqlClient, sql))
      )
      // the first COMMIT failed: the program now sleeps its 30 s back-off (15 s at least, with half jitter)
      while (server.stats().commitsFailedByFault === failed) yield* Effect.sleep("5 millis")
      yield* Effect.sleep("50 millis")
      assert.isBelow(yield* millisOf(Fiber.interrupt(retrying)), 1_000)
      yield* Effect.sleep("100 millis")
      assert.strictEqual(yield* Ref.get(attempts), 1)
      assert.deepStrictEqual(yield* sql`SELECT id FROM ${sql(table)}`, [])
    }).pipe(TestClock.withLive))
})
