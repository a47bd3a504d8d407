/**
 * Fibers interrupted at known points: in a plain query, inside a transaction (between statements and in one), during
 * its COMMIT, and in `withOccRetry`'s back-off sleep. Each point is reached a known number of times, signalled from
 * inside it (a statement the backend shows running, a latch in the program, the span event sent just before COMMIT,
 * the back-off's sleep on the fiber's clock), and only then interrupted. Afterwards no session is left in a
 * transaction, no transaction is half written, every interruption returned promptly, and the pool still serves at
 * full size.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, layer } from "@effect/vitest"
import type { Clock, Duration } from "effect"
import { Deferred, Effect, Fiber, Ref, Schedule, Tracer } from "effect"
import { withOccRetry } from "effect-dsql"
import { DsqlLocal } from "effect-dsql/local"
import { backendQuery } from "../utils/client.js"
import { checkPairs, pairsTable, report, SecretWatch, sessionsOf, watched, watchedClient } from "./harness.js"

const watch = new SecretWatch()
const file = "interruption"

/** Fibers interrupted at each point per round: fewer than the pool's 10, so a cancel request finds a connection. */
const fibersPerPoint = 8
const rounds = 4
/** What "promptly" means for one interruption, cancel request and ROLLBACK included, on a loaded machine. */
const promptMillis = 3_000

type Point = "query" | "between statements" | "in a statement" | "commit" | "back-off"

/** The current tracer, with `onEvent` told of every span event before it is recorded. */
const withSpanEvents = (onEvent: (name: string) => void) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.tracer, (tracer) =>
    Effect.withTracer(
      effect,
      Tracer.make({
        span: (...args) =>
          new Proxy(tracer.span(...args), {
            get: (span, key, receiver) =>
              key === "event"
                ? (...event: Parameters<Tracer.Span["event"]>) => {
                  onEvent(event[0])
                  span.event(...event)
                }
                : Reflect.get(span, key, receiver)
          }),
        context: tracer.context
      })
    ))

/** The fiber's clock, with `onSleep` told of every sleep as it starts. */
const withSleeps = (onSleep: (duration: Duration.Duration) => void) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.clock, (clock) =>
    Effect.withClock(
      effect,
      Object.assign(Object.create(clock) as Clock.Clock, {
        sleep: (duration: Duration.Duration) =>
          Effect.zipRight(Effect.sync(() => onSleep(duration)), clock.sleep(duration))
      })
    ))

describe("reliability: interruption", () => {
  layer(DsqlLocal.layer(), { excludeTestServices: true, timeout: "120 seconds" })("on DsqlLocal", (it) => {
    it.effect(
      "fibers interrupted in queries, transactions, COMMITs and back-off sleeps leave nothing behind",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const table = yield* pairsTable(server, "interrupted_pairs")
          const applicationName = `reliability-interrupt-${process.pid}`
          const interrupted: Record<Point, number> = {
            "query": 0,
            "between statements": 0,
            "in a statement": 0,
            "commit": 0,
            "back-off": 0
          }
          const txOf: Record<Point, Array<string>> = {
            "query": [],
            "between statements": [],
            "in a statement": [],
            "commit": [],
            "back-off": []
          }
          let longestInterruptMillis = 0

          /** Waits until the backend runs `count` of this client's sessions in `pg_sleep`. */
          const sleepingSessions = (count: number) =>
            backendQuery<{ n: number }>(
              server,
              `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE '${applicationName}:%' ` +
                `AND state = 'active' AND query LIKE '%pg_sleep%'`
            ).pipe(
              Effect.repeat({ schedule: Schedule.spaced("10 millis"), until: (rows) => rows[0]!.n >= count }),
              Effect.timeoutFail({
                duration: "10 seconds",
                onTimeout: () => new Error(`the backend never ran ${count} of the statements at once`)
              })
            )

          /**
           * Forks one fiber per index into `work` (given a latch to open once the point is reached), waits until
           * `reached` says the point is reached by all, then interrupts each, timing it.
           */
          const interruptAt = <E, R>(
            point: Point,
            work: (
              tx: string,
              reached: Deferred.Deferred<void>,
              hold: Effect.Effect<void>
            ) => Effect.Effect<unknown, E, R>,
            reached: (latches: ReadonlyArray<Deferred.Deferred<void>>) => Effect.Effect<unknown, Error>
          ) =>
            Effect.gen(function*() {
              const latches = yield* Effect.forEach(Array.from({ length: fibersPerPoint }), () => Deferred.make<void>())
              // Opened once every interruption returned or gave up, so that a fiber that could not be interrupted
              // ends and gives its connection back instead of holding the pool's shutdown.
              const unblock = yield* Deferred.make<void>()
              const fibers = yield* Effect.forEach(latches, (latch) => {
                const tx = `${point}-${txOf[point].length}`
                txOf[point].push(tx)
                return Effect.fork(work(tx, latch, Deferred.await(unblock)))
              })
              yield* reached(latches).pipe(
                Effect.timeoutFail({
                  duration: "10 seconds",
                  onTimeout: () => new Error(`the fibers did not all reach ${point} within 10 s`)
                })
              )
              yield* Effect.forEach(fibers, (fiber) =>
                Effect.gen(function*() {
                  const started = Date.now()
                  const exit = yield* Fiber.interrupt(fiber).pipe(
                    Effect.timeoutFail({
                      duration: promptMillis * 2,
                      onTimeout: () => new Error(`an interruption at ${point} did not return`)
                    })
                  )
                  longestInterruptMillis = Math.max(longestInterruptMillis, Date.now() - started)
                  assert.isTrue(exit._tag === "Failure", `a fiber at ${point} ran to its end`)
                  interrupted[point] += 1
                }), { concurrency: "unbounded", discard: true }).pipe(
                  Effect.ensuring(Deferred.succeed(unblock, void 0))
                )
            })

          const allOpened = (latches: ReadonlyArray<Deferred.Deferred<void>>) =>
            Effect.forEach(latches, Deferred.await, { discard: true })

          const fullSize = yield* Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            const firstRow = (tx: string) => sql`INSERT INTO ${sql(table)} VALUES (${tx}, 1)`
            const secondRow = (tx: string) => sql`INSERT INTO ${sql(table)} VALUES (${tx}, 2)`
            for (let round = 0; round < rounds; round++) {
              yield* interruptAt(
                "query",
                () => sql`SELECT pg_sleep(30)`,
                () => sleepingSessions(fibersPerPoint)
              )
              yield* interruptAt(
                "between statements",
                (tx, reached, hold) =>
                  sql.withTransaction(
                    Effect.zipRight(firstRow(tx), Effect.zipRight(Deferred.succeed(reached, void 0), hold))
                  ),
                allOpened
              )
              yield* interruptAt(
                "in a statement",
                (tx) => sql.withTransaction(Effect.zipRight(firstRow(tx), sql`SELECT pg_sleep(30)`)),
                () => sleepingSessions(fibersPerPoint)
              )
              // Every transaction waits at the end of its body until all are there; then every packet is held
              // 500 ms and all COMMIT at once: the interruptions arrive while the server has the COMMITs, whatever
              // the load spread the transactions before.
              const bodiesDone = yield* Ref.make(0)
              const allAtCommit = yield* Deferred.make<void>()
              const commitNow = yield* Deferred.make<void>()
              yield* interruptAt(
                "commit",
                (tx, reached) =>
                  sql.withTransaction(
                    Effect.zipRight(firstRow(tx), secondRow(tx)).pipe(
                      Effect.zipRight(Ref.updateAndGet(bodiesDone, (done) => done + 1)),
                      Effect.tap((done) =>
                        done === fibersPerPoint ? Deferred.succeed(allAtCommit, void 0) : Effect.void
                      ),
                      Effect.zipRight(Deferred.await(commitNow))
                    )
                  ).pipe(
                    withSpanEvents((name) => {
                      if (name === "db.transaction.commit") Deferred.unsafeDone(reached, Effect.void)
                    })
                  ),
                (latches) =>
                  Deferred.await(allAtCommit).pipe(
                    Effect.zipRight(server.faults.setLatency("500 millis")),
                    Effect.zipRight(Deferred.succeed(commitNow, void 0)),
                    Effect.zipRight(allOpened(latches))
                  )
              ).pipe(Effect.ensuring(server.faults.setLatency(0)))
              // The first COMMIT of each fails with OC000; the retry waits a minute, interrupted in that sleep.
              yield* server.faults.failNextCommits(fibersPerPoint)
              yield* interruptAt(
                "back-off",
                (tx, reached) =>
                  withOccRetry(Effect.zipRight(firstRow(tx), secondRow(tx)), {
                    baseDelay: "1 minute",
                    maxDelay: "1 minute",
                    maxElapsed: "1 hour",
                    jitter: 0
                  }).pipe(withSleeps(() => Deferred.unsafeDone(reached, Effect.void))),
                allOpened
              )
            }
            // A cancelled statement's session settles, then none may be left in a transaction.
            const sessions = yield* sessionsOf(server, applicationName).pipe(
              Effect.repeat({
                schedule: Schedule.spaced("50 millis"),
                until: (states) => Object.keys(states).every((state) => !state.startsWith("idle in transaction")),
                times: 100
              })
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
          const { lost, stored } = yield* checkPairs(server, table, txOf.commit)
          // Interrupted before COMMIT, or after a COMMIT that failed: nothing of them may be stored.
          const rows = yield* backendQuery<{ tx: string }>(server, `SELECT DISTINCT tx FROM ${table}`)
          assert.deepStrictEqual(
            rows.map((row) => row.tx).filter((tx) => !tx.startsWith("commit-")),
            [],
            "a transaction interrupted before its COMMIT, or in the back-off after it failed, was stored"
          )
          assert.strictEqual(stored, txOf.commit.length, "every transaction interrupted during COMMIT committed")
          for (const point of Object.keys(interrupted) as Array<Point>) {
            assert.strictEqual(interrupted[point], rounds * fibersPerPoint, `fibers interrupted at ${point}`)
          }
          assert.isBelow(longestInterruptMillis, promptMillis, "an interruption returns promptly")
          assert.strictEqual(fullSize.distinct, 10, "ten connections served at once")
          assert.isBelow(fullSize.millis, 2_000, "the ten ran concurrently")
          yield* report({
            file,
            case: `${rounds} rounds of ${fibersPerPoint} fibers interrupted at each point on a pool of 10, once the ` +
              "point was reached: a query, a transaction between statements and in one, its COMMIT, the back-off",
            faults: "500 ms latency during the COMMITs; every first COMMIT of the back-off fibers failed with OC000",
            operations: rounds * fibersPerPoint * 5,
            errorsSeen: 0,
            dataLost: lost,
            notes: `${stored} transactions stored (those interrupted during COMMIT), all with both rows, none of the ` +
              `others; no session idle in transaction; 10 connections usable at once afterwards; longest ` +
              `interruption ${longestInterruptMillis} ms`
          })
        }),
      60_000
    )

    it.effect("leaks no secret in anything logged, traced or raised during these cases", () =>
      Effect.sync(() => watch.assertClean(["span"])))
  })
})
