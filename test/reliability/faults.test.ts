/**
 * Faults injected into DsqlLocal while a program runs: connections closed at the age limit, a connection dropped
 * mid-query, the server stopped and restarted, tokens refused past an age, the connection rate limit and cap. Each
 * case says what is injected, counts what the program saw, and checks the rows in the backend PostgreSQL directly.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Metric, Redacted } from "effect"
import { DsqlMetrics, OccRetry, TokenSigner, withOccRetry } from "effect-dsql"
import { DsqlLocal } from "effect-dsql/local"
import { connectPg } from "../utils/dsqlLocal.js"
import {
  after,
  checkPairs,
  emptyTally,
  explain,
  mixedLoad,
  pairsTable,
  recordingSigner,
  report,
  runFibers,
  SecretWatch,
  tallied,
  typedFailure,
  watched,
  watchedClient,
  writePair
} from "./harness.js"

const watch = new SecretWatch()
const file = "faults"

const counter = (metric: typeof DsqlMetrics.connectRetries) => Effect.map(Metric.value(metric), (state) => state.count)

describe("reliability: faults", () => {
  layer(DsqlLocal.layer(), { excludeTestServices: true, timeout: "120 seconds" })("on DsqlLocal", (it) => {
    it.effect(
      "connection age limit: 25 s of load, the pool recycles first, no error reaches the program",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const table = yield* pairsTable(server, "age_pairs")
          yield* server.faults.setMaxConnectionAge("4 seconds")
          const before = yield* server.stats
          const { committed, tally } = yield* mixedLoad(watch, table, { fibers: 32, millis: 25_000, writeEvery: 5 })
            .pipe(
              Effect.provide(watchedClient(watch, server, { maxConnections: 8, maxConnectionLifetime: "2 seconds" })),
              watched(watch),
              Effect.ensuring(server.faults.reset)
            )
          const stats = yield* server.stats
          const { lost } = yield* checkPairs(server, table, committed)
          const recycled = stats.connectionsAccepted - before.connectionsAccepted
          assert.deepStrictEqual(
            { failed: tally.failed, died: tally.died },
            { failed: 0, died: 0 },
            tally.firstFailures[0]
          )
          assert.strictEqual(stats.connectionsClosedByAge - before.connectionsClosedByAge, 0, "the server closed first")
          assert.isAtLeast(recycled, 3 * 8, "connections were recycled")
          assert.isAbove(tally.ok, 1_000)
          yield* report({
            file,
            case: "connection age limit 4 s, client lifetime 2 s, 32 fibers × 25 s",
            faults: `server closes connections at 4 s; ${recycled} connections opened, 0 closed by the server`,
            operations: tally.ok + tally.failed,
            errorsSeen: tally.failed + tally.died,
            dataLost: lost
          })
        }),
      60_000
    )

    it.effect("dropped connection mid-query: typed error, next query on a new connection, transactions all or none", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const table = yield* pairsTable(server, "drop_pairs")
        const pid = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`)
        const outcomes = yield* Effect.gen(function*() {
          const first = yield* pid
          yield* server.faults.dropNextQueries(1)
          const dropped = yield* Effect.exit(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`))
          assert.strictEqual(typedFailure(dropped, watch)._tag, "SqlError")
          const next = yield* pid
          assert.notStrictEqual(next[0]!.pid, first[0]!.pid, "the next query ran on a new connection")

          // Drop each statement of a transaction in turn (BEGIN, first INSERT, second INSERT, COMMIT), and the
          // statements of a retry after a first attempt lost an OCC conflict; then one that only conflicts.
          const results: Array<{ tx: string; committed: boolean; error?: string }> = []
          const cases = [
            ...[0, 1, 2, 3].map((position) => ({ position, afterConflict: false })),
            ...[1, 2, 3].map((position) => ({ position, afterConflict: true })),
            { position: undefined, afterConflict: true }
          ]
          for (const { afterConflict, position } of cases) {
            const tx = `${afterConflict ? "occ" : "plain"}-${position ?? "none"}`
            let attempt = 0
            if (afterConflict) yield* server.faults.failNextCommits(1)
            if (position === 0) yield* server.faults.dropNextQueries(1)
            const program = Effect.gen(function*() {
              attempt += 1
              const armed = !afterConflict || attempt === 2
              const sql = yield* SqlClient.SqlClient
              if (armed && position === 1) yield* server.faults.dropNextQueries(1)
              yield* sql`INSERT INTO ${sql(table)} VALUES (${tx}, 1)`
              if (armed && position === 2) yield* server.faults.dropNextQueries(1)
              yield* sql`INSERT INTO ${sql(table)} VALUES (${tx}, 2)`
              if (armed && position === 3) yield* server.faults.dropNextQueries(1)
            })
            const exit = yield* Effect.exit(withOccRetry(program, { baseDelay: "1 millis" }))
            if (exit._tag === "Success") {
              results.push({ tx, committed: true })
            } else {
              const failure = typedFailure(exit, watch)
              assert.isFalse(OccRetry.isOccConflict(failure), "a dropped connection is not an OCC conflict")
              results.push({ tx, committed: false, error: explain(failure) })
            }
            assert.strictEqual(attempt, afterConflict ? 2 : 1, `${tx}: attempts`)
          }
          return results
        }).pipe(
          Effect.provide(watchedClient(watch, server, { maxConnections: 1 })),
          watched(watch),
          Effect.ensuring(server.faults.reset)
        )
        const committed = outcomes.filter((outcome) => outcome.committed).map((outcome) => outcome.tx)
        const { lost } = yield* checkPairs(server, table, committed)
        // A dropped BEGIN (nothing ran yet) was opened again on another connection and committed; every statement
        // dropped after BEGIN failed its transaction; the one that only conflicted committed, once.
        assert.deepStrictEqual(committed, ["plain-0", "occ-none"])
        for (const outcome of outcomes.filter((outcome) => !outcome.committed)) {
          assert.match(outcome.error!, /Connection terminated unexpectedly/, outcome.tx)
        }
        yield* report({
          file,
          case: "connection dropped mid-query (dropNextQueries), alone and in transactions under withOccRetry",
          faults:
            "8 connections dropped: a SELECT; BEGIN / INSERT / INSERT / COMMIT; the retry's statements after an OC000",
          operations: 1 + outcomes.length,
          errorsSeen: 1 + outcomes.filter((outcome) => !outcome.committed).length,
          dataLost: lost,
          notes: "errors expected: a statement dropped after BEGIN fails typed (a dropped BEGIN is retried); no " +
            "transaction half written or duplicated"
        })
      }))

    it.effect(
      "stop and restart on the same port: typed errors while down, none after, no fiber waits past the timeout",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const table = yield* pairsTable(server, "restart_pairs")
          const connectTimeoutMillis = 3_000
          const phases = { before: emptyTally(), down: emptyTally(), recovered: emptyTally() }
          let phase: keyof typeof phases = "before"
          const committed: Array<string> = []
          const chaos = Effect.gen(function*() {
            yield* Effect.sleep("2 seconds")
            phase = "down"
            yield* server.stop
            yield* Effect.sleep("3 seconds")
            yield* server.restart
            // A query already waiting when the server came back may still fail; one second later none may.
            yield* Effect.sleep("1 second")
            phase = "recovered"
          })
          const load = runFibers({
            fibers: 16,
            until: after(10_000),
            operation: (fiber, i) => {
              // an operation counts in the phase it ends in
              const tally = () => phases[phase]
              return i % 4 === 3
                ? tallied(
                  watch,
                  tally,
                  Effect.tap(withOccRetry(writePair(table, `${fiber}-${i}`)), () => committed.push(`${fiber}-${i}`))
                )
                : tallied(watch, tally, Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT pg_sleep(0.01)`)).pipe(
                  Effect.zipLeft(Effect.sleep("5 millis"))
                )
            }
          })
          yield* Effect.all([load, chaos], { concurrency: 2, discard: true }).pipe(
            Effect.provide(watchedClient(watch, server, { maxConnections: 8, connectTimeout: connectTimeoutMillis })),
            watched(watch),
            Effect.ensuring(server.restart.pipe(Effect.orDie))
          )
          const { lost } = yield* checkPairs(server, table, committed)
          const { before, down, recovered } = phases
          assert.strictEqual(before.failed + before.died, 0, before.firstFailures[0])
          assert.isAbove(down.failed, 0, "the program saw the server go away")
          assert.strictEqual(down.died + recovered.died, 0, "no defect")
          assert.strictEqual(recovered.failed, 0, recovered.firstFailures[0])
          assert.isAbove(recovered.ok, 100, "full recovery")
          for (const tally of [before, down, recovered]) {
            assert.isAtMost(tally.maxMillis, connectTimeoutMillis + 1_000, "no operation waited past connectTimeout")
          }
          yield* report({
            file,
            case: "DsqlLocal stopped 3 s and restarted on the same port, 16 fibers × 10 s",
            faults: "listener and all sessions closed, then listening again",
            operations: before.ok + down.ok + down.failed + recovered.ok,
            errorsSeen: down.failed,
            dataLost: lost,
            notes: `errors expected only while down (all typed); longest wait ${
              Math.max(before.maxMillis, down.maxMillis, recovered.maxMillis)
            } ms with connectTimeout ${connectTimeoutMillis} ms`
          })
        }),
      60_000
    )

    it.effect(
      "tokens refused past 2 s of age: new connections still succeed, each with a new token",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          yield* server.faults.setMaxTokenAge("2 seconds")
          const before = yield* server.stats
          const tally = emptyTally()
          // A token signed now and used after 3 s is refused: the fault is live.
          const stale = yield* Effect.flatMap(
            TokenSigner.TokenSigner,
            (signer) =>
              signer.sign({ hostname: server.hostname, region: server.region, user: "admin", expiresIn: "15 minutes" })
          )
            .pipe(Effect.provide(recordingSigner(watch, TokenSigner.layerStatic(server.credentials))))
          yield* Effect.sleep("3 seconds")
          const refused = yield* Effect.exit(Effect.scoped(connectPg(server, { password: Redacted.value(stale) })))
          const refusal = typedFailure(refused)
          assert.strictEqual(refusal.code, "08006")
          assert.match(String(refusal.hint), /Signature expired/)

          yield* runFibers({
            fibers: 8,
            until: after(6_000),
            operation: () =>
              tallied(watch, tally, Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`)).pipe(
                Effect.zipLeft(Effect.sleep("20 millis"))
              )
          }).pipe(
            Effect.provide(watchedClient(watch, server, {
              maxConnections: 4,
              maxConnectionLifetime: "1 second",
              idleTimeout: "300 millis"
            })),
            watched(watch),
            Effect.ensuring(server.faults.reset)
          )
          const stats = yield* server.stats
          const opened = stats.connectionsAccepted - before.connectionsAccepted
          assert.deepStrictEqual(
            { failed: tally.failed, died: tally.died },
            { failed: 0, died: 0 },
            tally.firstFailures[0]
          )
          assert.isAtLeast(opened, 8, "connections kept being opened past the token age")
          assert.strictEqual(stats.tokensVerified - before.tokensVerified, opened, "one fresh token per connection")
          assert.strictEqual(
            stats.tokensRejected["too-old"] - before.tokensRejected["too-old"],
            1,
            "only the stale one"
          )
          yield* report({
            file,
            case: "tokens older than 2 s refused, 8 fibers × 6 s, connections recycled every second",
            faults: `max token age 2 s; ${opened} connections opened, each with its own token`,
            operations: tally.ok + tally.failed,
            errorsSeen: tally.failed + tally.died,
            dataLost: 0
          })
        }),
      60_000
    )

    for (const storm of ["rate", "cap"] as const) {
      it.effect(
        `connection ${storm} limit under a storm: no error, refusals retried with back-off`,
        () =>
          Effect.gen(function*() {
            const server = yield* DsqlLocal.DsqlLocal
            yield* server.faults.setLimits(
              storm === "rate" ? { connectionRatePerSecond: 3, connectionBurst: 2 } : { maxConnections: 4 }
            )
            const before = yield* server.stats
            const retriesBefore = yield* counter(DsqlMetrics.connectRetries)
            const tally = emptyTally()
            const connectTimeoutMillis = 3_000
            yield* runFibers({
              fibers: 64,
              until: after(8_000),
              operation: () =>
                tallied(watch, tally, Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT pg_sleep(0.01)`))
            }).pipe(
              Effect.provide(watchedClient(watch, server, {
                maxConnections: 10,
                maxConnectionLifetime: "2 seconds",
                connectTimeout: connectTimeoutMillis
              })),
              watched(watch),
              Effect.ensuring(server.faults.reset)
            )
            const stats = yield* server.stats
            const refused = stats.connectionsRefused - before.connectionsRefused
            const retried = (yield* counter(DsqlMetrics.connectRetries)) - retriesBefore
            assert.deepStrictEqual(
              { failed: tally.failed, died: tally.died },
              { failed: 0, died: 0 },
              tally.firstFailures[0]
            )
            assert.isAbove(refused, 0, "the server refused connections")
            assert.strictEqual(retried, refused, "every refusal was retried")
            assert.isAtMost(tally.maxMillis, connectTimeoutMillis, "no query waited past connectTimeout")
            assert.isAbove(tally.ok, 1_000, "the pool kept serving from the connections it had")
            yield* report({
              file,
              case: storm === "rate"
                ? "connection rate 3/s (burst 2), pool of 10 recycling every 2 s, 64 fibers × 8 s"
                : "connection cap 4 (pool of 10 recycling every 2 s), 64 fibers × 8 s",
              faults: `${refused} connections refused (${storm === "rate" ? "53400" : "53300"}), ${retried} retried`,
              operations: tally.ok + tally.failed,
              errorsSeen: tally.failed + tally.died,
              dataLost: 0,
              notes: `longest query ${tally.maxMillis} ms`
            })
          }),
        60_000
      )
    }

    it.effect("leaks no secret in anything logged, traced or raised during these cases", () =>
      Effect.sync(() => watch.assertClean(["log", "span", "error"])))
  })
})
