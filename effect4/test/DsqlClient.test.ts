/**
 * DsqlClient on DsqlLocal: tokens per physical connection, TLS, negotiation, lifetime, connection-limit back-off,
 * DSQL's words in errors, and DSQL-correct transactions.
 */
import { assert, layer } from "@effect/vitest"
import { Cause, ConfigProvider, Deferred, Effect, Exit, Fiber, Layer, Random, Ref } from "effect"
import { SqlClient } from "effect/sql"
import { SqlError } from "effect/sql/SqlError"
import { TestClock } from "effect/testing"
import * as DsqlClient from "../src/DsqlClient.js"
import { connectRetryDelayMillis, jitteredLifetimeMillis } from "../src/internal/client.js"
import * as OccRetry from "../src/OccRetry.js"
import * as TokenSigner from "../src/TokenSigner.js"
import { open, optionsFor, signerFor } from "./utils/client.js"
import * as DsqlLocal from "./utils/dsqlLocal.js"
import { withEnv } from "./utils/env.js"
import { tcpProxy } from "./utils/tcpProxy.js"

/** Environment credentials DsqlLocal does not accept. */
const refusedKeys: Record<string, string | undefined> = {
  AWS_ACCESS_KEY_ID: "AKIAREFUSEDBYDSQLLOC",
  AWS_SECRET_ACCESS_KEY: "refused-by-dsql-local",
  AWS_SESSION_TOKEN: undefined,
  AWS_PROFILE: undefined
}

/** Holds one of `sql`'s connections in an open transaction until `release`, which waits for it to commit. */
const holdConnection = (sql: SqlClient.SqlClient) =>
  Effect.gen(function*() {
    const holding = yield* Deferred.make<void>()
    const release = yield* Deferred.make<void>()
    const holder = yield* Effect.forkScoped(sql.withTransaction(
      Effect.andThen(Deferred.succeed(holding, undefined), Deferred.await(release))
    ))
    yield* Deferred.await(holding)
    return { release: Effect.andThen(Deferred.succeed(release, undefined), Fiber.join(holder)) }
  })

const failureOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.exit(effect), (exit) => {
    assert(Exit.isFailure(exit), "expected a failure")
    const failure = Cause.findErrorOption(exit.cause)
    assert(failure._tag === "Some", `expected a typed failure, got ${Cause.pretty(exit.cause)}`)
    assert(failure.value instanceof SqlError, `expected a SqlError, got ${Cause.pretty(exit.cause)}`)
    return failure.value
  })

const stats = Effect.map(DsqlLocal.DsqlLocal, (server) => server.stats())

const backendPid = (sql: SqlClient.SqlClient) =>
  Effect.map(sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`, ([row]) => row!.pid)

let tableCount = 0
/** A table of its own for the test (tests share the server). */
const freshTable = (sql: SqlClient.SqlClient) =>
  Effect.gen(function*() {
    const name = `e4client_${process.pid}_${++tableCount}`
    yield* sql.unsafe(`CREATE TABLE ${name} (id int PRIMARY KEY, note text)`)
    return name
  })

layer(DsqlLocal.layer(), { timeout: "120 seconds" })("DsqlClient on DsqlLocal", (it) => {
  it("connection lifetime jitter only shortens, by at most a tenth", () => {
    for (const random of [0, 0.25, 0.5, 0.999]) {
      const lifetime = jitteredLifetimeMillis(600_000, random)
      assert.isAtMost(lifetime, 600_000)
      assert.isAtLeast(lifetime, 540_000)
    }
    assert.strictEqual(jitteredLifetimeMillis(600_000, 0), 600_000)
    assert.isBelow(connectRetryDelayMillis(0, 0.999), connectRetryDelayMillis(0, 0) + 1)
    assert.strictEqual(connectRetryDelayMillis(10, 0), 1_000)
  })

  it.effect("signs one token per physical connection, and reuses pooled connections", () =>
    Effect.gen(function*() {
      const server = yield* DsqlLocal.DsqlLocal
      const before = yield* stats
      const sql = yield* open(server, { maxConnections: 4 })
      // four transactions held open together need four connections
      const started = yield* Ref.make(0)
      const allStarted = yield* Deferred.make<void>()
      const hold = sql.withTransaction(Effect.gen(function*() {
        yield* sql`SELECT 1`
        if ((yield* Ref.updateAndGet(started, (n) => n + 1)) === 4) yield* Deferred.succeed(allStarted, undefined)
        yield* Deferred.await(allStarted)
      }))
      yield* Effect.all([hold, hold, hold, hold], { concurrency: "unbounded" })
      for (let i = 0; i < 10; i++) yield* sql`SELECT ${i} AS i`
      const after = yield* stats
      assert.strictEqual(after.connectionsAccepted - before.connectionsAccepted, 4)
      assert.strictEqual(after.tokensVerified - before.tokensVerified, 4)
    }))

  it.effect("opens direct TLS by default and SSLRequest with sslNegotiation postgres", () =>
    Effect.gen(function*() {
      const server = yield* DsqlLocal.DsqlLocal
      const modes = Effect.map(stats, (s) => s.tlsModes)
      const before = yield* modes
      yield* Effect.scoped(Effect.flatMap(open(server), (sql) => sql`SELECT 1`))
      const afterDirect = yield* modes
      assert.strictEqual(afterDirect.direct - before.direct, 1)
      assert.strictEqual(afterDirect.sslrequest - before.sslrequest, 0)
      yield* Effect.scoped(Effect.flatMap(open(server, { sslNegotiation: "postgres" }), (sql) => sql`SELECT 1`))
      const afterRequest = yield* modes
      assert.strictEqual(afterRequest.sslrequest - afterDirect.sslrequest, 1)
      assert.strictEqual(afterRequest.direct - afterDirect.direct, 0)
    }))

  it.effect("refuses a server whose certificate does not chain to a trusted CA, or names another host", () =>
    Effect.gen(function*() {
      const server = yield* DsqlLocal.DsqlLocal
      for (const sslNegotiation of ["direct", "postgres"] as const) {
        const untrusted = yield* failureOf(Effect.scoped(open(server, { sslNegotiation, caPem: undefined })))
        assert.strictEqual(untrusted.reason._tag, "ConnectionError")
        assert.include(untrusted.message, "TLS verification failed")
        assert.include(untrusted.message, server.hostname)
        const wrongName = yield* failureOf(Effect.scoped(open(server, { sslNegotiation, host: "db.example.com" })))
        assert.include(wrongName.message, "does not match the host name")
      }
    }))

  it.effect("sends application_name", () =>
    Effect.gen(function*() {
      const server = yield* DsqlLocal.DsqlLocal
      const sql = yield* open(server, { applicationName: "orders" })
      const [row] = yield* sql<{ application_name: string }>`SHOW application_name`
      assert.strictEqual(row!.application_name, "orders:effect-dsql/2.0.0")
    }))

  it.effect("fails typed, in DSQL's words, when the token is refused or cannot be signed", () =>
    Effect.gen(function*() {
      const server = yield* DsqlLocal.DsqlLocal
      const wrongKey = TokenSigner.layerStatic({ accessKeyId: server.credentials.accessKeyId, secretAccessKey: "x" })
      const refused = yield* failureOf(Effect.scoped(open(server, {}, wrongKey)))
      assert.include(refused.message, "access denied")
      assert.include(refused.message, "SQLSTATE 08006")
      const noCredentials = TokenSigner.layerFromProvider(() => Promise.reject(new Error("no IMDS here")))
      const unsigned = yield* failureOf(Effect.scoped(open(server, {}, noCredentials)))
      assert.strictEqual(unsigned.reason._tag, "AuthenticationError")
      assert.include(unsigned.message, "could not sign an IAM token")
      assert.include(unsigned.message, "no IMDS here")
    }))

  it.effect("puts DSQL's message and SQLSTATE in every SqlError", () =>
    Effect.gen(function*() {
      const server = yield* DsqlLocal.DsqlLocal
      const sql = yield* open(server)
      const error = yield* failureOf(sql`TRUNCATE pg_class`)
      assert.include(error.message, "unsupported statement: Truncate")
      assert.include(error.message, "SQLSTATE 0A000")
      assert.strictEqual((error.reason.cause as { code?: string }).code, "0A000")
    }))

  it.effect("retries a connection refused for the cluster's connection limit until one is free", () =>
    Effect.gen(function*() {
      const server = yield* DsqlLocal.DsqlLocal
      yield* Effect.acquireRelease(
        Effect.sync(() => server.faults.setLimits({ maxConnections: 1 })),
        () => Effect.sync(() => server.faults.reset())
      )
      // every connection attempt signs a token first: counting signatures counts attempts
      let attempts = 0
      const counting = Layer.effect(
        TokenSigner.TokenSigner,
        Effect.map(TokenSigner.TokenSigner, (signer) =>
          TokenSigner.TokenSigner.of({
            sign: (request) => Effect.andThen(Effect.sync(() => attempts++), signer.sign(request))
          }))
      ).pipe(Layer.provide(signerFor(server)))
      // on the live clock: the pool's connect timeouts must be able to fire
      const sql = yield* TestClock.withLive(open(server, { maxConnections: 2, connectTimeout: "20 seconds" }, counting))
      const holder = yield* holdConnection(sql)
      // the second statement needs a second connection, which the cluster refuses (53300) until the first is free
      const second = yield* Effect.forkScoped(TestClock.withLive(sql<{ one: number }>`SELECT 1 AS one`))
      // the start-up connection, the refused attempt and at least one retry
      yield* TestClock.withLive(
        Effect.gen(function*() {
          while (attempts < 3) yield* Effect.sleep("10 millis")
        }).pipe(Effect.timeoutOrElse({
          duration: "10 seconds",
          orElse: () => Effect.die("the refused attempt was not retried")
        }))
      )
      yield* holder.release
      assert.deepStrictEqual(yield* Fiber.join(second), [{ one: 1 }])
    }))

  it.effect("retries a connection refused for the cluster's connection rate (53400), failing in its words at last", () =>
    Effect.gen(function*() {
      const server = yield* DsqlLocal.DsqlLocal
      yield* Effect.addFinalizer(() => Effect.sync(() => server.faults.reset()))
      const refused = () => server.stats().connectionsRefused
      // a bucket that never holds a whole token: every new connection is refused for the rate
      const noNewConnections = () => server.faults.setLimits({ connectionBurst: 0.5, connectionRatePerSecond: 0.001 })
      // on the live clock: the pool's connect timeouts must be able to fire
      const sql = yield* TestClock.withLive(open(server, { maxConnections: 2, connectTimeout: "20 seconds" }))
      const holder = yield* holdConnection(sql)
      const before = refused()
      noNewConnections()
      // the second statement needs a second connection: refused (53400) until the bucket fills again
      const second = yield* Effect.forkScoped(TestClock.withLive(sql<{ one: number }>`SELECT 1 AS one`))
      yield* TestClock.withLive(
        Effect.gen(function*() {
          while (refused() - before < 2) yield* Effect.sleep("10 millis")
        }).pipe(Effect.timeoutOrElse({
          duration: "10 seconds",
          orElse: () => Effect.die("the refused connection was not retried")
        }))
      )
      server.faults.setLimits({ connectionBurst: 1, connectionRatePerSecond: 1_000 })
      assert.deepStrictEqual(yield* Fiber.join(second), [{ one: 1 }])
      yield* holder.release

      // refused until connectTimeout: the start-up check fails with the last refusal, in DSQL's words
      noNewConnections()
      const atStart = refused()
      const error = yield* failureOf(TestClock.withLive(Effect.scoped(open(server, { connectTimeout: "1 second" }))))
      assert.include(error.message, "rate exceeded")
      assert.include(error.message, "SQLSTATE 53400")
      assert.isAtLeast(refused() - atStart, 2, "the refused connection was retried")
    }))

  it.effect("gives a refused statement's connection up at connectTimeout, an attempt still opening included", () =>
    Effect.gen(function*() {
      const server = yield* DsqlLocal.DsqlLocal
      yield* Effect.addFinalizer(() => Effect.sync(() => server.faults.reset()))
      const refused = () => server.stats().connectionsRefused
      const proxy = yield* tcpProxy(server.port)
      const connectTimeout = 3_000
      const sql = yield* TestClock.withLive(open(server, { port: proxy.port, maxConnections: 2, connectTimeout }))
      const holder = yield* holdConnection(sql)
      const before = refused()
      // every new connection refused for the rate (53400): the statement's checkout backs off and tries again
      server.faults.setLimits({ connectionBurst: 0.5, connectionRatePerSecond: 0.001 })
      const started = Date.now()
      const second = yield* Effect.forkScoped(TestClock.withLive(Effect.exit(sql`SELECT 1`)))
      yield* TestClock.withLive(Effect.sleep("1600 millis"))
      assert.isAtLeast(refused() - before, 2, "the refused connection was retried")
      // then never answered: the next attempt (backed off by at most 1 s) is still opening when the budget ends
      proxy.stall()
      const exit = yield* Fiber.join(second)
      const elapsed = Date.now() - started
      assert(Exit.isFailure(exit), "the statement got no connection")
      assert.include(Cause.pretty(exit.cause), "SQLSTATE 53400", "it fails with the last refusal")
      assert.isAtMost(elapsed, connectTimeout + 700)
      yield* holder.release
    }))

  it.effect("says why a checkout found no connection within connectTimeout, and what to change", () =>
    Effect.gen(function*() {
      const sql = yield* open(yield* DsqlLocal.DsqlLocal, { maxConnections: 1, connectTimeout: "300 millis" })
      // the pool's only connection, held until the scope ends
      yield* sql.reserve
      const error = yield* failureOf(TestClock.withLive(sql`SELECT 1`))
      assert.include(
        error.message,
        "DsqlClient: no connection within connectTimeout (300ms): the pool's 1 connection stayed in use"
      )
    }))

  it.effect("still bounds a checkout waiting for a release after statements, transactions and timed-out checkouts", () =>
    Effect.gen(function*() {
      const sql = yield* open(yield* DsqlLocal.DsqlLocal, { maxConnections: 1, connectTimeout: "300 millis" })
      const timedOut = (label: string) =>
        Effect.gen(function*() {
          const held = yield* holdConnection(sql)
          // a checkout the bound let wait for a release would hang here: the test's own deadline names it
          const waited = yield* failureOf(
            TestClock.withLive(sql`SELECT 1`.pipe(Effect.timeoutOrElse({
              duration: "5 seconds",
              orElse: () => Effect.die(`${label}: a checkout waited past connectTimeout`)
            })))
          )
          assert.include(waited.message, "no connection within connectTimeout (300ms)", label)
          yield* held.release
        })
      yield* sql`SELECT 1`.pipe(Effect.repeat({ times: 2 }))
      yield* sql.withTransaction(sql`SELECT 1`)
      yield* timedOut("after statements and a transaction")
      // the connection, given back, serves the next statement at once
      yield* sql`SELECT 1`
      yield* timedOut("after a timed-out checkout")
    }))

  it.effect("recycles a connection at its jittered lifetime, never later than the configured one", () =>
    Effect.gen(function*() {
      const server = yield* DsqlLocal.DsqlLocal
      const tokens = Effect.map(stats, (s) => s.tokensVerified)
      // the largest jitter: the connection's life is cut to just over 0.9 of the configured 10 minutes
      const maxJitter: Random.Random = { nextDoubleUnsafe: () => 0.999, nextIntUnsafe: () => 0 }
      const sql = yield* open(server, { maxConnections: 1, maxConnectionLifetime: "10 minutes", idleTimeout: "1 hour" })
        .pipe(Effect.provideService(Random.Random, maxJitter))
      const opened = yield* tokens
      yield* TestClock.adjust("539 seconds")
      yield* sql`SELECT 1`
      assert.strictEqual(yield* tokens, opened, "recycled before 0.9 of its lifetime")
      yield* TestClock.adjust("31 seconds")
      yield* sql`SELECT 1`
      assert.strictEqual(yield* tokens, opened + 1, "not recycled at 0.95 of its lifetime with the largest jitter")
    }))

  it.effect("commits, and fails typed when COMMIT fails or is answered ROLLBACK", () =>
    Effect.gen(function*() {
      const server = yield* DsqlLocal.DsqlLocal
      const sql = yield* open(server)
      const table = yield* freshTable(sql)
      yield* sql.withTransaction(sql`INSERT INTO ${sql(table)} VALUES (1, 'committed')`)
      server.faults.failNextCommits(1, "OC000")
      const conflict = yield* failureOf(sql.withTransaction(sql`INSERT INTO ${sql(table)} VALUES (2, 'conflict')`))
      assert.strictEqual(conflict.reason._tag, "SerializationError")
      assert.include(conflict.message, "OC000")
      assert.include(conflict.message, "SQLSTATE 40001")
      const rolledBack = yield* failureOf(sql.withTransaction(Effect.gen(function*() {
        yield* sql`INSERT INTO ${sql(table)} VALUES (3, 'aborted')`
        yield* Effect.ignore(sql`TRUNCATE ${sql(table)}`)
      })))
      assert.include(rolledBack.message, "COMMIT was answered with ROLLBACK")
      const rows = yield* sql<{ id: number }>`SELECT id FROM ${sql(table)} ORDER BY id`
      assert.deepStrictEqual(rows, [{ id: 1 }])
    }))

  it.effect("a transaction whose BEGIN meets an ended session on each of the pool's connections still commits", () =>
    Effect.gen(function*() {
      const server = yield* DsqlLocal.DsqlLocal
      const sql = yield* open(server, { maxConnections: 4, minConnections: 4 })
      const table = yield* freshTable(sql)
      yield* Effect.all(Array.from({ length: 4 }, () => sql`SELECT pg_sleep(0.05)`), { concurrency: 4 })
      // The next four statements, the BEGINs on the pooled connections in turn, find their session gone: only the
      // fifth attempt can open the transaction. Nothing of the transaction ran before, so trying again is safe.
      yield* Effect.acquireRelease(
        Effect.sync(() => server.faults.dropNextQueries(4)),
        () => Effect.sync(() => server.faults.reset())
      )
      yield* sql.withTransaction(sql`INSERT INTO ${sql(table)} VALUES (1, 'committed')`)
      assert.deepStrictEqual(yield* sql<{ id: number }>`SELECT id FROM ${sql(table)}`, [{ id: 1 }])
    }))

  it.effect("a session ended after BEGIN fails the transaction: the program is never run again", () =>
    Effect.gen(function*() {
      const server = yield* DsqlLocal.DsqlLocal
      const sql = yield* open(server)
      const table = yield* freshTable(sql)
      let attempts = 0
      const error = yield* failureOf(sql.withTransaction(Effect.gen(function*() {
        attempts++
        server.faults.dropNextQueries(1)
        yield* sql`INSERT INTO ${sql(table)} VALUES (1, 'lost')`
      })))
      assert.strictEqual(error.reason._tag, "ConnectionError")
      assert.strictEqual(attempts, 1)
      assert.deepStrictEqual(yield* sql<{ id: number }>`SELECT id FROM ${sql(table)}`, [])
    }))

  it.effect("a ROLLBACK without an answer for 5 s discards its connection; the caller gets the program's failure", () =>
    Effect.gen(function*() {
      const server = yield* DsqlLocal.DsqlLocal
      yield* Effect.addFinalizer(() => Effect.sync(() => server.faults.reset()))
      const sql = yield* open(server, { maxConnections: 1, idleTimeout: "1 hour" })
      const table = yield* freshTable(sql)
      const before = yield* backendPid(sql)
      const transaction = yield* Effect.forkChild(Effect.exit(sql.withTransaction(Effect.gen(function*() {
        yield* sql`INSERT INTO ${sql(table)} VALUES (1, 'rolled back')`
        // from here the session's packets are held: the ROLLBACK gets no answer
        server.faults.setLatency(3_600_000)
        return yield* Effect.fail("program failed")
      }))))
      // the ROLLBACK's bound runs on the test clock: a second at a time (for at most 5 minutes) until it has ended
      for (let second = 0; second < 300 && transaction.pollUnsafe() === undefined; second++) {
        yield* TestClock.adjust("1 second")
        yield* TestClock.withLive(Effect.sleep("20 millis"))
      }
      assert.isDefined(transaction.pollUnsafe(), "the ROLLBACK held the transaction past its bound")
      const exit = yield* Fiber.join(transaction)
      assert.deepStrictEqual(exit, Exit.fail("program failed"))
      server.faults.setLatency(0)
      const after = yield* backendPid(sql)
      assert.notStrictEqual(after, before, "the connection whose ROLLBACK got no answer was not used again")
      assert.deepStrictEqual(yield* sql<{ id: number }>`SELECT id FROM ${sql(table)}`, [])
    }))

  it.effect("a ROLLBACK that fails leaves the caller the program's own failure, not a defect", () =>
    Effect.gen(function*() {
      const server = yield* DsqlLocal.DsqlLocal
      const sql = yield* open(server, { maxConnections: 1 })
      const table = yield* freshTable(sql)
      const exit = yield* Effect.exit(sql.withTransaction(Effect.gen(function*() {
        yield* sql`INSERT INTO ${sql(table)} VALUES (1, 'rolled back')`
        // the next statement, the ROLLBACK, is answered by dropping the connection
        server.faults.dropNextQueries(1)
        return yield* Effect.fail("program failed")
      })))
      assert.deepStrictEqual(exit, Exit.fail("program failed"))
      assert.deepStrictEqual(yield* sql<{ id: number }>`SELECT id FROM ${sql(table)}`, [])
    }))

  it.effect("keeps the SQLSTATE where OccRetry reads it: withOccRetry retries a COMMIT conflict to one commit", () =>
    Effect.gen(function*() {
      const server = yield* DsqlLocal.DsqlLocal
      const sql = yield* open(server)
      const table = yield* freshTable(sql)
      let attempts = 0
      server.faults.failNextCommits(2, "OC000")
      yield* Effect.suspend(() => {
        attempts++
        return sql`INSERT INTO ${sql(table)} VALUES (1, 'once')`
      }).pipe(
        OccRetry.withOccRetry({ baseDelay: "1 millis" }),
        Effect.provideService(SqlClient.SqlClient, sql),
        TestClock.withLive
      )
      assert.strictEqual(attempts, 3)
      assert.deepStrictEqual(yield* sql<{ id: number }>`SELECT id FROM ${sql(table)}`, [{ id: 1 }])
    }))

  it.effect("joins a nested transaction to its own client's outer one, never sending SAVEPOINT", () =>
    Effect.gen(function*() {
      const server = yield* DsqlLocal.DsqlLocal
      const sql = yield* open(server)
      const table = yield* freshTable(sql)
      const refusedBefore = (yield* stats).statementsRefused
      yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql`INSERT INTO ${sql(table)} VALUES (1, 'outer')`
        yield* sql.withTransaction(sql`INSERT INTO ${sql(table)} VALUES (2, 'inner')`)
      }))
      const failed = yield* Effect.exit(sql.withTransaction(Effect.gen(function*() {
        yield* sql`INSERT INTO ${sql(table)} VALUES (3, 'outer')`
        yield* sql.withTransaction(
          Effect.andThen(sql`INSERT INTO ${sql(table)} VALUES (4, 'inner')`, Effect.fail("no"))
        )
      })))
      assert.isTrue(Exit.isFailure(failed))
      assert.deepStrictEqual(yield* sql<{ id: number }>`SELECT id FROM ${sql(table)} ORDER BY id`, [{ id: 1 }, {
        id: 2
      }])
      assert.strictEqual((yield* stats).statementsRefused, refusedBefore, "a statement (SAVEPOINT) was refused")
    }))

  it.effect("runs a transaction of another client on that client's connection, not joining ours", () =>
    Effect.gen(function*() {
      const server = yield* DsqlLocal.DsqlLocal
      const ours = yield* open(server)
      const theirs = yield* open(server)
      const table = yield* freshTable(ours)
      const failed = yield* Effect.exit(ours.withTransaction(Effect.gen(function*() {
        yield* theirs.withTransaction(theirs`INSERT INTO ${theirs(table)} VALUES (1, 'theirs')`)
        return yield* Effect.fail("ours fails")
      })))
      assert.isTrue(Exit.isFailure(failed))
      assert.deepStrictEqual(yield* ours<{ id: number }>`SELECT id FROM ${ours(table)}`, [{ id: 1 }])
    }))

  it.effect("layer reads the environment, layerFromUrl a connection string, each signing with the signer provided", () =>
    Effect.gen(function*() {
      const server = yield* DsqlLocal.DsqlLocal
      // keys the server refuses: a client that built a chain of its own instead of using the signer would fail
      yield* withEnv(refusedKeys)
      const select = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ one: number }>`SELECT 1 AS one`)
      const fromEnv = DsqlClient.layer.pipe(
        Layer.provide(Layer.merge(signerFor(server), ConfigProvider.layer(ConfigProvider.fromEnv({ env: server.env }))))
      )
      assert.deepStrictEqual(yield* Effect.provide(select, fromEnv), [{ one: 1 }])
      const fromUrl = DsqlClient.layerFromUrl(
        `dsql://admin@${server.hostname}:${server.port}/postgres?region=${server.region}`,
        { hostAddress: server.address, caPem: server.ca }
      ).pipe(Layer.provide(signerFor(server)))
      assert.deepStrictEqual(yield* Effect.provide(select, fromUrl), [{ one: 1 }])
    }))

  it.effect("layer reads the environment and signs with the default AWS credential chain", () =>
    Effect.gen(function*() {
      const server = yield* DsqlLocal.DsqlLocal
      const vars: Record<string, string | undefined> = {
        AWS_ACCESS_KEY_ID: server.credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: server.credentials.secretAccessKey,
        AWS_SESSION_TOKEN: undefined,
        AWS_PROFILE: undefined
      }
      yield* withEnv(vars)
      const select = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ one: number }>`SELECT 1 AS one`)
      const live = DsqlClient.layer.pipe(
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: server.env })))
      )
      assert.deepStrictEqual(yield* Effect.provide(select, live), [{ one: 1 }])
    }))

  it.effect("connect opens exactly one connection, signing with the signer provided", () =>
    Effect.gen(function*() {
      const server = yield* DsqlLocal.DsqlLocal
      yield* withEnv(refusedKeys)
      const before = (yield* stats).connectionsAccepted
      const sql = yield* DsqlClient.connect(optionsFor(server)).pipe(Effect.provide(signerFor(server)))
      yield* Effect.all([sql`SELECT 1`, sql`SELECT 2`, sql`SELECT 3`], { concurrency: "unbounded" })
      assert.strictEqual((yield* stats).connectionsAccepted - before, 1)
    }))
})
