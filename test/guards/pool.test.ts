/**
 * What users of the pool rely on, stated so that a plausible slip fails here within seconds: one token per physical
 * connection, connections refused for DSQL's limits retried until they succeed, a refused pool held at its size,
 * every connection's lifetime inside [0.9 × lifetime, lifetime], and the region from AWS_REGION before
 * AWS_DEFAULT_REGION.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it, layer } from "@effect/vitest"
import {
  Cause,
  Duration,
  Effect,
  Exit,
  FastCheck,
  Fiber,
  Layer,
  Metric,
  Ref,
  Schedule,
  Scope,
  TestClock,
  TestContext,
  TestServices
} from "effect"
import { DsqlClient, DsqlConfig, DsqlMetrics, TokenSigner } from "effect-dsql"
import { DsqlLocal } from "effect-dsql/local"
import type pg from "pg"
import { makePool } from "../../src/internal/pool.js"
import { clientLayer, recordingSigner, withEnv } from "../utils/client.js"
import { connectPg, untilIdle } from "../utils/dsqlLocal.js"
import { errorResponse, issued, tlsServer } from "../utils/fakeServers.js"

const tokensSigned = Effect.map(Metric.value(DsqlMetrics.tokensSigned), (state) => state.count)

/** Waits (real time, at most 10 s) until the server has refused `count` more connections than at `before`. */
const refusals = (server: DsqlLocal.Server, before: DsqlLocal.Stats, count: number) =>
  server.stats.pipe(
    Effect.repeat({
      schedule: Schedule.spaced("5 millis"),
      until: (stats) => stats.connectionsRefused - before.connectionsRefused >= count
    }),
    Effect.timeoutFail({
      duration: "10 seconds",
      onTimeout: () => new Error(`the server did not refuse ${count} connections within 10 s`)
    })
  )

describe("pool", () => {
  layer(DsqlLocal.layer(), { excludeTestServices: true })("on DsqlLocal", (it) => {
    it.effect("signs exactly one token per physical connection, however many queries and transactions", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const signed = yield* Ref.make<Array<TokenSigner.SignRequest>>([])
        const before = yield* server.stats
        const metricBefore = yield* tokensSigned
        yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* Effect.forEach(Array.from({ length: 80 }), (_, i) => sql`SELECT ${i}::int AS n`, { concurrency: 16 })
          yield* Effect.forEach(
            Array.from({ length: 20 }),
            (_, i) => sql.withTransaction(Effect.zipRight(sql`SELECT ${i}::int`, sql`SELECT 1`)),
            { concurrency: 8 }
          )
          yield* Effect.forEach(Array.from({ length: 10 }), () => Effect.scoped(sql.reserve), { concurrency: 4 })
        }).pipe(Effect.provide(clientLayer(server, { maxConnections: 4 }, recordingSigner(server, signed))))
        const after = yield* server.stats
        const connections = after.connectionsAccepted - before.connectionsAccepted
        assert.isAtLeast(connections, 1)
        assert.isAtMost(connections, 4, "a pool of 4")
        assert.strictEqual((yield* Ref.get(signed)).length, connections, "tokens asked of the signer")
        assert.strictEqual((yield* tokensSigned) - metricBefore, connections, "dsql_tokens_signed_total")
        assert.strictEqual(after.tokensVerified - before.tokensVerified, connections, "tokens the server checked")
      }))

    for (const code of ["53300", "53400"] as const) {
      it.effect(`connects after the server refused a new connection with ${code} three times`, () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          // refuse every new connection until `lift`
          let lift: Effect.Effect<void>
          if (code === "53300") {
            // the only slot, held by another client
            yield* untilIdle(server)
            yield* server.faults.setLimits({ maxConnections: 1 })
            const holder = yield* Scope.make()
            yield* Scope.extend(connectPg(server), holder)
            lift = Scope.close(holder, Exit.void)
          } else {
            // an empty bucket that refills once a day
            yield* server.faults.setLimits({ connectionBurst: 1, connectionRatePerSecond: 1 / 86_400 })
            yield* Effect.scoped(connectPg(server))
            lift = server.faults.setLimits({ connectionRatePerSecond: 1_000 })
          }
          const before = yield* server.stats
          const fiber = yield* Effect.fork(
            Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: number }>`SELECT 1::int AS n`).pipe(
              Effect.provide(clientLayer(server, { maxConnections: 1, connectTimeout: "10 seconds" }))
            )
          )
          const gaveUp = Effect.zipRight(
            Fiber.await(fiber),
            Effect.fail(new Error("the client gave up before the server had refused it 3 times"))
          )
          yield* Effect.raceFirst(refusals(server, before, 3), gaveUp)
          yield* lift
          const rows = yield* fiber
          const after = yield* server.stats
          assert.deepStrictEqual(rows, [{ n: 1 }])
          assert.isAtLeast(after.connectionsRefused - before.connectionsRefused, 3)
          assert.strictEqual(after.connectionsAccepted - before.connectionsAccepted, 1, "one attempt got through")
        }).pipe(Effect.ensuring(Effect.flatMap(DsqlLocal.DsqlLocal, (server) => server.faults.reset))))
    }

    it.effect("refused, holds at the size it has: queries queue for its connections instead of asking again", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        // the cluster takes one session: the pool's first connection
        yield* untilIdle(server)
        yield* server.faults.setLimits({ maxConnections: 1 })
        const { before, rows } = yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* sql`SELECT 1`
          const before = yield* server.stats
          const rows = yield* Effect.forEach(
            Array.from({ length: 12 }, (_, i) => i),
            (i) => sql<{ n: number }>`SELECT ${i}::int AS n, pg_sleep(0.005)`,
            { concurrency: 12 }
          )
          return { before, rows }
        }).pipe(Effect.provide(clientLayer(server, { maxConnections: 4, connectTimeout: "10 seconds" })))
        const refused = (yield* server.stats).connectionsRefused - before.connectionsRefused
        assert.strictEqual(rows.length, 12)
        // The pool opens connections for 3 queries, and at most one more (pg-pool fills a freed slot before it
        // reports the refusal); from the first refusal on it holds at its one connection for a second, and the
        // queries, done in tens of milliseconds, all run there.
        assert.isAbove(refused, 0, "the server refused the pool's new connections")
        assert.isAtMost(refused, 4, "refused connections asked for again while the pool held")
      }).pipe(Effect.ensuring(Effect.flatMap(DsqlLocal.DsqlLocal, (server) => server.faults.reset))))

    it.effect("signs for AWS_REGION when AWS_DEFAULT_REGION names another region", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const rows = yield* withEnv(
          { AWS_REGION: server.region, AWS_DEFAULT_REGION: "eu-west-1" },
          Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: number }>`SELECT 1::int AS n`).pipe(
            Effect.provide(
              // a bare cluster id: the host name, its certificate check and the token all take the fallback region
              DsqlClient.layerConfigWithSigner({
                host: server.clusterId,
                port: server.port,
                hostAddress: server.address,
                caPem: server.ca,
                connectTimeout: "5 seconds"
              }).pipe(Layer.provide(TokenSigner.layerStatic(server.credentials)))
            )
          )
        )
        assert.deepStrictEqual(rows, [{ n: 1 }])
      }))
  })
})

describe("connection lifetime", () => {
  /** The lifetime pg-pool gives each new connection (it reads `maxLifetimeSeconds` once per connection). */
  const lifetimesOf = (maxConnectionLifetime: Duration.DurationInput | undefined, samples: number) =>
    Effect.gen(function*() {
      const config = yield* DsqlConfig.make({
        host: "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws",
        ...(maxConnectionLifetime === undefined ? {} : { maxConnectionLifetime })
      })
      const pool: pg.Pool = yield* Effect.acquireRelease(
        Effect.flatMap(TokenSigner.TokenSigner, (signer) => makePool(config, signer)),
        (pool) => Effect.promise(() => pool.end())
      )
      const options = pool.options as { readonly maxLifetimeSeconds: number }
      return Array.from({ length: samples }, () => options.maxLifetimeSeconds)
    }).pipe(
      Effect.scoped,
      Effect.provide(TokenSigner.layerStatic({ accessKeyId: "AKIDEXAMPLE", secretAccessKey: "not-used" }))
    )

  it.effect("is cut at random by up to 10% below the default 55 minutes, never above it", () =>
    Effect.gen(function*() {
      const lifetimes = yield* lifetimesOf(undefined, 2_000)
      const limit = 55 * 60
      for (const seconds of lifetimes) {
        assert.isAtMost(seconds, limit)
        assert.isAtLeast(seconds, 0.9 * limit)
      }
      // spread over the band, so that a pool's connections do not all expire together
      assert.isBelow(Math.min(...lifetimes), 0.91 * limit)
      assert.isAbove(Math.max(...lifetimes), 0.99 * limit)
    }))

  it.effect.prop(
    "lies in [0.9 × lifetime, lifetime] for every configured lifetime",
    [FastCheck.integer({ min: 1, max: 3_599 })],
    ([seconds]) =>
      Effect.gen(function*() {
        const lifetimes = yield* lifetimesOf(Duration.seconds(seconds), 200)
        for (const lifetime of lifetimes) {
          assert.isAtMost(lifetime, seconds)
          assert.isAtLeast(lifetime, 0.9 * seconds)
        }
        assert.isAbove(new Set(lifetimes).size, 1, "each connection draws its own")
      }),
    { fastCheck: { numRuns: 50 } }
  )
})

describe("connect retries", () => {
  it.effect("after a slow refusal, retry no longer than what is left of connectTimeout", () =>
    Effect.gen(function*() {
      const host = "abcdefghij0123456789klmnop.dsql.us-east-1.on.aws"
      const { ca, certificate } = yield* issued([host])
      // The first attempt is refused after a second (real time), the others at once.
      const slowMillis = 1_000
      let attempts = 0
      const port = yield* tlsServer(certificate, (socket) => {
        const refuse = () => socket.end(errorResponse("too many connections", "53300"))
        if (attempts++ === 0) setTimeout(refuse, slowMillis)
        else refuse()
      })
      const config = yield* DsqlConfig.make({
        host,
        port,
        hostAddress: "127.0.0.1",
        caPem: ca,
        connectTimeout: "3 seconds",
        maxConnections: 2
      })
      // Built under the TestClock (provided below): the pool keeps the runtime it was built in, so the retries'
      // back-off and their deadline wait for it.
      const pool = yield* Effect.acquireRelease(
        Effect.flatMap(TokenSigner.TokenSigner, (signer) => makePool(config, signer)).pipe(
          Effect.provide(TokenSigner.layerStatic({ accessKeyId: "AKIDEXAMPLE", secretAccessKey: "unused" }))
        ),
        (pool) => Effect.promise(() => pool.end())
      )
      const checkout = yield* Effect.fork(Effect.async<void, Error>((resume) =>
        pool.connect((error, client, release) => {
          if (client !== undefined) {
            release()
            resume(Effect.void)
          } else {
            resume(Effect.fail(error ?? new Error("no client")))
          }
        })
      ))
      // Once the slow refusal is in, the retries wait on the TestClock (their deadline and their back-off).
      // The refusal that came back holds the pool at its size, 1 of 2: from then on the retries wait on the TestClock.
      for (let polls = 0; pool.options.max !== 1; polls++) {
        if (polls === 1_000) return yield* Effect.fail(new Error("no refusal came back within 10 s"))
        yield* TestServices.provideLive(Effect.sleep("10 millis"))
      }
      // At least a second of the 3 s went to the slow refusal: at most 2 s are left, and they run out here.
      yield* TestClock.adjust(Duration.millis(3_000 - slowMillis))
      const exit = yield* Fiber.await(checkout).pipe(
        Effect.timeoutFail({
          duration: "5 seconds",
          onTimeout: () => new Error("still retrying when connectTimeout had passed since the checkout began")
        }),
        TestServices.provideLive
      )
      assert.isTrue(Exit.isFailure(exit), "no connection could be had")
      const error = Cause.squash((exit as Exit.Failure<void, Error>).cause) as Error
      assert.include(error.message, "too many connections")
    }).pipe(Effect.scoped, Effect.provide(TestContext.TestContext)))
})
