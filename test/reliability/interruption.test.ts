/**
 * 1,000 fibers interrupted at random points: in plain queries, inside transactions, and between the attempts of
 * `withOccRetry` (its COMMIT or its back-off sleep, with DsqlLocal failing a share of commits). Afterwards no
 * session is left in a transaction, no transaction is half written, and the pool still serves at full size.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { withOccRetry } from "effect-dsql"
import { DsqlLocal } from "effect-dsql/local"
import { checkPairs, pairsTable, report, SecretWatch, sessionsOf, watched, watchedClient } from "./harness.js"

const watch = new SecretWatch()
const file = "interruption"

type Phase = "not started" | "query" | "transaction" | "commit or back-off" | "done"

describe("reliability: interruption", () => {
  layer(DsqlLocal.layer(), { excludeTestServices: true, timeout: "120 seconds" })("on DsqlLocal", (it) => {
    it.effect(
      "1,000 fibers interrupted in queries, transactions and back-off sleeps leave nothing behind",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const table = yield* pairsTable(server, "interrupted_pairs")
          const applicationName = `reliability-interrupt-${process.pid}`
          yield* server.faults.failCommitShare(0.5)
          const interruptedIn: Record<Phase, number> = {
            "not started": 0,
            "query": 0,
            "transaction": 0,
            "commit or back-off": 0,
            "done": 0
          }
          const committed: Array<string> = []
          let longestInterruptMillis = 0
          const fullSize = yield* Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            yield* Effect.forEach(
              Array.from({ length: 1_000 }, (_, i) => i),
              (i) =>
                Effect.gen(function*() {
                  let phase: Phase = "not started"
                  const tx = `tx-${i}`
                  const pair = Effect.gen(function*() {
                    phase = "transaction"
                    yield* sql`INSERT INTO ${sql(table)} VALUES (${tx}, 1)`
                    yield* sql`SELECT pg_sleep(${Math.random() * 0.02})`
                    yield* sql`INSERT INTO ${sql(table)} VALUES (${tx}, 2)`
                    phase = "commit or back-off"
                  })
                  const work = i % 3 === 0
                    ? Effect.suspend(() => {
                      phase = "query"
                      return sql`SELECT pg_sleep(${Math.random() * 0.05})`
                    })
                    : i % 3 === 1
                    ? sql.withTransaction(pair)
                    : withOccRetry(pair, { baseDelay: "50 millis", maxDelay: "200 millis", maxRetries: 20 })
                  const fiber = yield* Effect.fork(
                    work.pipe(Effect.tap(() => {
                      phase = "done"
                      if (i % 3 !== 0) committed.push(tx)
                    }))
                  )
                  yield* Effect.sleep(Math.random() * 100)
                  const seenIn = phase
                  const started = Date.now()
                  yield* Fiber.interrupt(fiber)
                  longestInterruptMillis = Math.max(longestInterruptMillis, Date.now() - started)
                  interruptedIn[seenIn] += 1
                }),
              { concurrency: 20, discard: true }
            )
            yield* server.faults.reset
            // Sessions settle (a cancelled statement, a ROLLBACK in flight), then none may be left in a transaction.
            const sessions = yield* sessionsOf(server, applicationName).pipe(
              Effect.repeat({
                until: (states) => Object.keys(states).every((state) => !state.startsWith("idle in transaction")),
                times: 40
              }),
              Effect.delay("50 millis")
            )
            assert.deepStrictEqual(
              Object.keys(sessions).filter((state) => state.startsWith("idle in transaction")),
              [],
              "a session was left in a transaction"
            )
            // All ten connections at once: only possible if every interrupted fiber gave its connection back.
            const started = Date.now()
            const pids = yield* Effect.forEach(
              Array.from({ length: 10 }),
              () => sql<{ pid: number }>`SELECT pg_backend_pid() AS pid, pg_sleep(0.5)`,
              { concurrency: 10 }
            )
            return { distinct: new Set(pids.map((rows) => rows[0]!.pid)).size, millis: Date.now() - started }
          }).pipe(
            Effect.provide(watchedClient(watch, server, { maxConnections: 10, applicationName })),
            watched(watch),
            Effect.ensuring(server.faults.reset)
          )
          const { lost, stored } = yield* checkPairs(server, table, committed)
          assert.strictEqual(fullSize.distinct, 10, "ten connections served at once")
          assert.isBelow(fullSize.millis, 2_000, "the ten ran concurrently")
          for (const phase of ["query", "transaction", "commit or back-off"] as const) {
            assert.isAbove(interruptedIn[phase], 20, `fibers interrupted in ${phase}`)
          }
          assert.isBelow(longestInterruptMillis, 6_000, "an interruption never hangs")
          yield* report({
            file,
            case:
              "1,000 fibers interrupted at random (0-100 ms, 20 at a time) on a pool of 10, half the commits failing with OC000",
            faults: `interrupted in query ${interruptedIn.query}, in transaction ${interruptedIn.transaction}, at ` +
              `commit or back-off ${interruptedIn["commit or back-off"]}, before start ${
                interruptedIn["not started"]
              }, after end ${interruptedIn.done}`,
            operations: 1_000,
            errorsSeen: 0,
            dataLost: lost,
            notes:
              `${stored} transactions stored, all with both rows; no session idle in transaction; 10 connections ` +
              `usable at once afterwards; longest interruption ${longestInterruptMillis} ms`
          })
        }),
      120_000
    )

    it.effect("leaks no secret in anything logged, traced or raised during these cases", () =>
      Effect.sync(() => watch.assertClean(["span"])))
  })
})
