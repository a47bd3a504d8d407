/**
 * DsqlMetrics of the Effect 4 line, as OccRetry records them against DsqlLocal's faults (each test reads a fresh
 * metric registry).
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Metric } from "effect"
import { DsqlClient, DsqlConfig, DsqlMetrics, OccRetry, TokenSigner } from "effect-dsql"
import { Reactivity } from "effect/reactivity"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import * as DsqlLocal from "./utils/dsqlLocal.js"

let tables = 0
/** A fresh table and an insert into it run under `withOccRetry`; DsqlLocal's faults reset. */
const setup = Effect.gen(function*() {
  const server = yield* DsqlLocal.DsqlLocal
  server.faults.reset()
  const sql = yield* SqlClient.SqlClient
  const table = `metrics4_${process.pid}_${++tables}`
  yield* sql`CREATE TABLE ${sql(table)} (id int PRIMARY KEY)`
  const insert = (options?: OccRetry.Options) =>
    sql`INSERT INTO ${sql(table)} VALUES (1)`.pipe(OccRetry.withOccRetry({ baseDelay: "1 millis", ...options }))
  return { server, insert }
})

const count = (metric: Metric.Counter<number>, attributes?: Metric.Metric.Attributes) =>
  Effect.map(Metric.value(attributes ? Metric.withAttributes(metric, attributes) : metric), (state) => state.count)

const attempts = Effect.map(Metric.value(DsqlMetrics.occAttempts), ({ count, sum }) => ({ count, sum }))

/** Runs the test on its own registry, with the live clock for back-off sleeps. */
const isolated = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  self.pipe(Effect.provideService(Metric.MetricRegistry, new Map()), TestClock.withLive)

/** A client of its own (its own pool) for the test's scope. */
const open = (server: DsqlLocal.DsqlLocal["Service"], options: Partial<DsqlConfig.Options>) =>
  Effect.flatMap(
    DsqlConfig.make({
      host: server.hostname,
      port: server.port,
      region: server.region,
      hostAddress: server.address,
      caPem: server.ca,
      ...options
    }),
    DsqlClient.make
  ).pipe(Effect.provide(Layer.merge(Reactivity.layer, TokenSigner.layerStatic(server.credentials))))

describe("DsqlMetrics (Effect 4)", () => {
  it("keeps the Effect 3 line's names", () => {
    assert.deepStrictEqual(
      [DsqlMetrics.occConflicts.id, DsqlMetrics.occAttempts.id, DsqlMetrics.tokensSigned.id],
      ["dsql_occ_conflicts_total", "dsql_occ_attempts", "dsql_tokens_signed_total"]
    )
  })
})

describe("DsqlMetrics recorded by OccRetry on DsqlLocal", () => {
  layer(Layer.provideMerge(DsqlLocal.pgClient, DsqlLocal.layer()), { timeout: "120 seconds" })("metrics", (it) => {
    it.effect("conflicts by code and attempts per transaction", () =>
      isolated(Effect.gen(function*() {
        const { insert, server } = yield* setup
        server.faults.failNextCommits(2, "OC001")
        yield* insert()
        assert.strictEqual(yield* count(DsqlMetrics.occConflicts, { code: "OC001" }), 2)
        assert.strictEqual(yield* count(DsqlMetrics.occConflicts, { code: "OC000" }), 0)
        assert.deepStrictEqual(yield* attempts, { count: 1, sum: 3 })
        assert.strictEqual(yield* count(DsqlMetrics.occRetriesExhausted), 0)
      })))

    it.effect("a give-up when the retries run out", () =>
      isolated(Effect.gen(function*() {
        const { insert, server } = yield* setup
        server.faults.failNextCommits(3)
        assert.isTrue(Exit.isFailure(yield* Effect.exit(insert({ maxRetries: 1 }))))
        assert.strictEqual(yield* count(DsqlMetrics.occRetriesExhausted), 1)
        assert.strictEqual(yield* count(DsqlMetrics.occConflicts, { code: "OC000" }), 2)
        assert.deepStrictEqual(yield* attempts, { count: 1, sum: 2 })
      })))

    it.effect("transient errors by code", () =>
      isolated(Effect.gen(function*() {
        const { insert, server } = yield* setup
        server.faults.failNextStatements(1)
        yield* insert()
        assert.strictEqual(yield* count(DsqlMetrics.transientErrors, { code: "XX000" }), 1)
        assert.deepStrictEqual(yield* attempts, { count: 1, sum: 2 })
      })))

    it.effect("unknown commit outcomes, not counted as give-ups", () =>
      isolated(Effect.gen(function*() {
        const { insert, server } = yield* setup
        server.faults.failNextCommits(1, "XX000")
        assert.isTrue(Exit.isFailure(yield* Effect.exit(insert())))
        assert.strictEqual(yield* count(DsqlMetrics.commitOutcomesUnknown), 1)
        assert.strictEqual(yield* count(DsqlMetrics.occRetriesExhausted), 0)
        assert.deepStrictEqual(yield* attempts, { count: 1, sum: 1 })
      })))
  })
})

describe("DsqlMetrics recorded by TokenSigner", () => {
  it.effect("a failed credential resolution, by outcome", () =>
    isolated(Effect.gen(function*() {
      const signer = yield* Effect.provide(
        Effect.service(TokenSigner.TokenSigner),
        TokenSigner.layerFromProvider(() => Promise.reject(new Error("no credentials here")))
      )
      const signed = yield* Effect.exit(
        signer.sign({
          hostname: "x.dsql.us-east-1.on.aws",
          region: "us-east-1",
          user: "admin",
          expiresIn: "15 minutes"
        })
      )
      assert.isTrue(Exit.isFailure(signed))
      assert.strictEqual(yield* count(DsqlMetrics.credentialResolutions, { outcome: "failure" }), 1)
      assert.strictEqual(yield* count(DsqlMetrics.credentialResolutions, { outcome: "success" }), 0)
    })))
})

describe("DsqlMetrics recorded by DsqlClient on DsqlLocal", () => {
  layer(DsqlLocal.layer(), { timeout: "120 seconds" })("client", (it) => {
    it.effect("one connection opened per physical connection, none for a pooled one reused", () =>
      isolated(Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const accepted = () => server.stats().connectionsAccepted
        const before = accepted()
        const sql = yield* open(server, { maxConnections: 4 })
        // four transactions held open together need four connections (the start-up one among them)
        let started = 0
        const allStarted = yield* Deferred.make<void>()
        const hold = sql.withTransaction(Effect.gen(function*() {
          yield* sql`SELECT 1`
          if (++started === 4) yield* Deferred.succeed(allStarted, undefined)
          yield* Deferred.await(allStarted)
        }))
        yield* Effect.all([hold, hold, hold, hold], { concurrency: "unbounded" })
        for (let i = 0; i < 3; i++) yield* Effect.all([sql`SELECT 1`, sql.withTransaction(sql`SELECT 2`)])
        assert.strictEqual(accepted() - before, 4)
        assert.strictEqual(yield* count(DsqlMetrics.connectionsOpened), 4)
      })))

    it.effect("a token signed per connection attempt, connect retries after a refusal (53300)", () =>
      isolated(Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        yield* Effect.acquireRelease(
          Effect.sync(() => server.faults.setLimits({ maxConnections: 1 })),
          () => Effect.sync(() => server.faults.reset())
        )
        const sql = yield* open(server, { maxConnections: 2, connectTimeout: "20 seconds" })
        assert.strictEqual(yield* count(DsqlMetrics.tokensSigned), 1, "the start-up connection")
        assert.strictEqual(yield* count(DsqlMetrics.credentialResolutions, { outcome: "success" }), 1)
        const holding = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const holder = yield* Effect.forkScoped(sql.withTransaction(
          Effect.andThen(Deferred.succeed(holding, undefined), Deferred.await(release))
        ))
        yield* Deferred.await(holding)
        // a second connection is refused (53300) until the first is free
        const second = yield* Effect.forkScoped(sql`SELECT 1 AS one`)
        yield* Effect.gen(function*() {
          while ((yield* count(DsqlMetrics.connectRetries)) < 1) yield* Effect.sleep("10 millis")
        }).pipe(Effect.timeoutOrElse({ duration: "10 seconds", orElse: () => Effect.die("no connect retry counted") }))
        yield* Deferred.succeed(release, undefined)
        yield* Effect.andThen(Fiber.join(holder), Fiber.join(second))
        assert.isAtLeast(yield* count(DsqlMetrics.connectRetries), 1)
        // a retry may find the first connection free again: a refused attempt signs, a pooled checkout does not
        assert.isAtLeast(yield* count(DsqlMetrics.tokensSigned), 2, "the start-up connection and the refused attempt")
      })))
  })
})
