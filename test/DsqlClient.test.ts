import { Diagnostics } from "@effect-dsql/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { assert, describe, it, layer, vi } from "@effect/vitest"
import {
  Cause,
  ConfigProvider,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  Layer,
  Metric,
  Option,
  Schedule,
  String as Str,
  Tracer
} from "effect"
import { DsqlClient, DsqlConfig, DsqlMetrics, OccRetry, TokenSigner } from "effect-dsql"
import { DsqlLocal } from "effect-dsql/local"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Net from "node:net"
import * as Path from "node:path"
import pg from "pg"
import packageJson from "../package.json" with { type: "json" }
import { isQueueTimeout, tlsOptions } from "../src/internal/pool.js"
import { backendQuery, clientLayer, uniqueTable, withEnv } from "./utils/client.js"
import { signToken, tlsFor } from "./utils/dsqlLocal.js"
import { plainServer } from "./utils/fakeServers.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  assert.isTrue(Exit.isFailure(exit), "expected a failure")
  const cause = (exit as Exit.Failure<A, E>).cause
  assert.isFalse(Cause.isDie(cause), `expected a typed failure, got a defect: ${Cause.pretty(cause)}`)
  return Option.getOrThrow(Cause.failureOption(cause))
}

const query = <A extends object>(statement: (sql: SqlClient.SqlClient) => Effect.Effect<ReadonlyArray<A>, SqlError>) =>
  Effect.flatMap(SqlClient.SqlClient, statement)

describe("DsqlClient", () => {
  layer(DsqlLocal.layer(), { excludeTestServices: true })("on DsqlLocal", (it) => {
    it.effect("runs the quick start through DsqlClient.layer configured only by the environment", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const rows = yield* withEnv(
          server.env,
          query((sql) => sql<{ greeting: string }>`SELECT 'Hello, DSQL!' AS greeting`).pipe(
            Effect.provide(DsqlClient.layer)
          )
        )
        assert.deepStrictEqual(rows, [{ greeting: "Hello, DSQL!" }])
      }))

    it.effect("signs one token per new physical connection, not per query", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const before = yield* server.stats
        yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* Effect.forEach(Array.from({ length: 40 }), () => sql`SELECT pg_sleep(0.02)`, { concurrency: 40 })
          yield* Effect.forEach(Array.from({ length: 40 }), () => sql`SELECT 1`, { concurrency: 8 })
        }).pipe(Effect.provide(clientLayer(server, { maxConnections: 4 })))
        const after = yield* server.stats
        const connections = after.connectionsAccepted - before.connectionsAccepted
        const tokens = after.tokensVerified - before.tokensVerified
        assert.strictEqual(tokens, connections)
        assert.isAtLeast(connections, 1)
        assert.isAtMost(connections, 4)
      }))

    it.effect("negotiates direct TLS by default and SSLRequest on request", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const select = query((sql) => sql`SELECT 1`)
        const before = yield* server.stats
        yield* Effect.provide(select, clientLayer(server, { maxConnections: 1 }))
        const middle = yield* server.stats
        yield* Effect.provide(select, clientLayer(server, { maxConnections: 1, sslNegotiation: "postgres" }))
        const after = yield* server.stats
        assert.strictEqual(middle.tlsModes.direct - before.tlsModes.direct, 1)
        assert.strictEqual(after.tlsModes.sslrequest - middle.tlsModes.sslrequest, 1)
      }))

    it.effect("refuses a server whose certificate is not trusted", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const exit = yield* Effect.exit(
          Layer.build(
            DsqlClient.layerConfigWithSigner({
              host: server.hostname,
              port: server.port,
              region: server.region,
              hostAddress: server.address
            }).pipe(Layer.provide(TokenSigner.layerStatic(server.credentials)))
          ).pipe(Effect.scoped)
        )
        assert.include(String((failureOf(exit) as SqlError).message), "TLS verification failed")
      }))

    it.effect("refuses a certificate issued for another host", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const exit = yield* Effect.exit(
          Layer.build(clientLayer(server, { host: "db.example.com", region: server.region })).pipe(Effect.scoped)
        )
        assert.include(String((failureOf(exit) as SqlError).message), "does not match the host name")
      }))

    it.effect("refuses a server that does not speak TLS", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const backendPort = Number(new URL(server.backendUrl).port)
        for (const sslNegotiation of ["postgres", "direct"] as const) {
          const exit = yield* Effect.exit(
            Layer.build(clientLayer(server, { port: backendPort, sslNegotiation, connectTimeout: "3 seconds" })).pipe(
              Effect.scoped
            )
          )
          assert.match(String((failureOf(exit) as SqlError).message), /could not connect|no connection/)
        }
      }))

    it.effect("surfaces DSQL's refusal of a wrongly signed token as a typed error with DSQL's message", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const wrongSecret = TokenSigner.layerStatic({ ...server.credentials, secretAccessKey: "not-the-secret" })
        const exit = yield* Effect.exit(
          Layer.build(clientLayer(server, {}, wrongSecret)).pipe(Effect.scoped)
        )
        const message = String((failureOf(exit) as SqlError).message)
        assert.include(message, "unable to accept connection, access denied")
        assert.include(message, "08006")
        assert.include(message, "signature we calculated does not match")
        assert.notInclude(message, "not-the-secret")
      }))

    it.effect("surfaces a signer failure as a typed error that names the signing step and keeps its cause", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const failing = TokenSigner.layerFromProvider(() => Promise.reject(new Error("metadata service unreachable")))
        const exit = yield* Effect.exit(Layer.build(clientLayer(server, {}, failing)).pipe(Effect.scoped))
        const error = failureOf(exit) as SqlError
        assert.include(error.message, "could not sign an IAM token")
        assert.include(error.message, "metadata service unreachable")
        const signerError = (error.cause as { cause?: { _tag?: string; reason?: string } }).cause
        assert.strictEqual(signerError?._tag, "TokenSignerError")
        assert.strictEqual(signerError?.reason, "CredentialsUnavailable")
      }))

    it.effect("describes a failure whose cause chain loops instead of overflowing the stack", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const broker: { message: string; cause?: unknown } = { message: "credentials broker unreachable" }
        broker.cause = { message: "retried through the broker", cause: broker }
        const looping = Layer.succeed(
          TokenSigner.TokenSigner,
          TokenSigner.TokenSigner.of({
            sign: () =>
              Effect.fail(
                new TokenSigner.TokenSignerError({ reason: "SigningFailed", message: "no token", cause: broker })
              )
          })
        )
        // Effect's own `Cause.pretty` overflows on a looping cause, so the failure is read without rendering it
        const failure = yield* Effect.flip(Layer.build(clientLayer(server, {}, looping)).pipe(Effect.scoped))
        assert.include(failure.message, "no token: credentials broker unreachable: retried through the broker")
      }))

    it.effect("surfaces an expired token as a typed error with DSQL's message", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        yield* server.faults.setMaxTokenAge("0 seconds")
        const exit = yield* Effect.exit(Layer.build(clientLayer(server)).pipe(Effect.scoped)).pipe(
          Effect.ensuring(server.faults.setMaxTokenAge(undefined))
        )
        assert.include(String((failureOf(exit) as SqlError).message), "access denied")
      }))

    it.effect("recycles connections before the server's age limit, with no error reaching the program", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        yield* server.faults.setMaxConnectionAge("3 seconds")
        const before = yield* server.stats
        const served = yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          let count = 0
          const deadline = Date.now() + 7_000
          while (Date.now() < deadline) {
            yield* Effect.forEach(Array.from({ length: 4 }), () => sql`SELECT 1`, { concurrency: 4 })
            count += 4
            yield* Effect.sleep("50 millis")
          }
          return count
        }).pipe(
          Effect.provide(clientLayer(server, { maxConnections: 4, maxConnectionLifetime: "2 seconds" })),
          Effect.ensuring(server.faults.setMaxConnectionAge("60 minutes"))
        )
        const after = yield* server.stats
        assert.isAbove(served, 100)
        assert.strictEqual(after.connectionsClosedByAge - before.connectionsClosedByAge, 0)
        assert.isAbove(after.connectionsAccepted - before.connectionsAccepted, 4, "connections were recycled")
      }))

    it.effect("makes a failed COMMIT a typed failure, classifiable as an OccConflict", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const table = uniqueTable("commit_fail")
        yield* backendQuery(server, `CREATE TABLE ${table} (id int PRIMARY KEY)`)
        const exit = yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* server.faults.failNextCommits(1, "OC000")
          return yield* Effect.exit(sql.withTransaction(sql`INSERT INTO ${sql(table)} VALUES (1)`))
        }).pipe(Effect.provide(clientLayer(server)))
        const error = failureOf(exit) as SqlError
        assert.strictEqual(error._tag, "SqlError")
        assert.strictEqual(Option.getOrThrow(OccRetry.classify(error)).code, "OC000")
        assert.deepStrictEqual(yield* backendQuery(server, `SELECT count(*)::int AS n FROM ${table}`), [{ n: 0 }])
      }))

    it.effect("joins nested transactions instead of opening savepoints", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const table = uniqueTable("nested")
        yield* backendQuery(server, `CREATE TABLE ${table} (id int PRIMARY KEY)`)
        yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const insert = (id: number) => sql`INSERT INTO ${sql(table)} VALUES (${id})`
          yield* sql.withTransaction(Effect.zipRight(insert(1), sql.withTransaction(insert(2))))
          const failed = yield* Effect.exit(
            sql.withTransaction(
              Effect.zipRight(insert(3), sql.withTransaction(Effect.zipRight(insert(4), Effect.fail("no"))))
            )
          )
          assert.deepStrictEqual(failed, Exit.fail("no"))
        }).pipe(Effect.provide(clientLayer(server)))
        assert.deepStrictEqual(
          yield* backendQuery(server, `SELECT id FROM ${table} ORDER BY id`),
          [{ id: 1 }, { id: 2 }]
        )
      }))

    it.effect("cancels an interrupted query and gives its connection back", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const marker = uniqueTable("interrupted")
        yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const fiber = yield* Effect.fork(sql.unsafe(`SELECT pg_sleep(30), '${marker}'`))
          yield* Effect.sleep("300 millis")
          yield* Fiber.interrupt(fiber)
          // Both pooled connections are needed at once: this only completes if the interrupted one came back.
          const both = yield* Effect.all([sql`SELECT pg_sleep(0.2)`, sql`SELECT pg_sleep(0.2)`], { concurrency: 2 })
            .pipe(
              Effect.timeout("5 seconds")
            )
          assert.strictEqual(both.length, 2)
        }).pipe(Effect.provide(clientLayer(server, { maxConnections: 2 })))
        const active = yield* backendQuery(
          server,
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE '%${marker}%' AND pid <> pg_backend_pid()`
        )
        assert.deepStrictEqual(active, [{ n: 0 }])
      }))

    it.effect("ends every connection when the scope closes", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const appName = "scope-close-test"
        yield* Effect.provide(
          query((sql) => sql`SELECT 1`),
          clientLayer(server, { maxConnections: 3, minConnections: 3, applicationName: appName })
        )
        const left = yield* backendQuery(
          server,
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE '${appName}:%'`
        ).pipe(Effect.repeat({ until: (rows) => rows[0]?.n === 0, times: 20 }), Effect.delay("50 millis"))
        assert.deepStrictEqual(left, [{ n: 0 }])
      }))

    it.effect("signs a later connection's token under the span that needed it, not under DsqlClient.make", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const native = yield* Effect.tracer
        const spans: Array<Tracer.Span> = []
        const collecting = Tracer.make({
          span: (...args) => {
            const span = native.span(...args)
            spans.push(span)
            return span
          },
          context: native.context
        })
        yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          // The startup connection busy, the next statement needs a new connection.
          const marker = uniqueTable("busy")
          const busy = yield* Effect.fork(sql.unsafe(`SELECT pg_sleep(0.5), '${marker}'`))
          yield* backendQuery(
            server,
            `SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE '%${marker}%' AND pid <> pg_backend_pid()`
          ).pipe(Effect.repeat({ until: (rows) => rows[0]?.n === 1, schedule: Schedule.spaced("20 millis") }))
          yield* Effect.withSpan(sql`SELECT 1`, "later work")
          yield* Fiber.join(busy)
        }).pipe(Effect.provide(clientLayer(server, { maxConnections: 2 })), Effect.withTracer(collecting))
        const ancestors = (span: Tracer.AnySpan): Array<string> =>
          span._tag === "Span" && Option.isSome(span.parent)
            ? [span.parent.value._tag === "Span" ? span.parent.value.name : "external", ...ancestors(span.parent.value)]
            : []
        const signs = spans.filter((span) => span.name === "TokenSigner.sign").map(ancestors)
        assert.strictEqual(signs.length, 2, "one token for the startup connection, one for the later one")
        assert.include(signs[0], "DsqlClient.make")
        assert.notInclude(signs[1], "DsqlClient.make")
        assert.include(signs[1], "later work")
      }))

    it.effect("probes idle connections with TCP keep-alive within seconds, and closes idle ones before 350 s", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const setKeepAlive = vi.spyOn(Net.Socket.prototype, "setKeepAlive")
        // DsqlLocal runs in this process too: only the client's sockets, those dialing the server, count.
        const calls = yield* Effect.provide(query((sql) => sql`SELECT 1`), clientLayer(server, { maxConnections: 1 }))
          .pipe(
            Effect.zipRight(
              Effect.sync(() =>
                setKeepAlive.mock.calls.filter((_, index) =>
                  (setKeepAlive.mock.contexts[index] as Net.Socket).remotePort === server.port
                )
              )
            ),
            Effect.ensuring(Effect.sync(() => setKeepAlive.mockRestore()))
          )
        assert.isAbove(calls.length, 0)
        for (const [enable, initialDelay] of calls) {
          assert.isTrue(enable)
          assert.isAbove(initialDelay ?? 0, 0)
          assert.isBelow(initialDelay ?? 0, 350_000)
        }
        const defaults = yield* DsqlConfig.make({ host: server.hostname, region: server.region })
        assert.isBelow(Duration.toMillis(defaults.idleTimeout), 350_000)
      }))

    it.effect("counts only the retries of a refused connection, and fails it within connectTimeout", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const appName = uniqueTable("refused")
        const connectTimeout = 1_500
        yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          // The startup connection closes when idle, so the statement below needs a new one.
          yield* backendQuery(
            server,
            `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE '${appName}:%'`
          ).pipe(Effect.repeat({ until: (rows) => rows[0]?.n === 0, schedule: Schedule.spaced("20 millis") }))
          const retriesBefore = (yield* Metric.value(DsqlMetrics.connectRetries)).count
          const before = yield* server.stats
          yield* server.faults.setLimits({ connectionBurst: 0.5, connectionRatePerSecond: 0.001 })
          const started = Date.now()
          const exit = yield* Effect.exit(sql`SELECT 1`).pipe(Effect.ensuring(server.faults.reset))
          const elapsed = Date.now() - started
          const refused = (yield* server.stats).connectionsRefused - before.connectionsRefused
          const retries = (yield* Metric.value(DsqlMetrics.connectRetries)).count - retriesBefore
          assert.strictEqual((failureOf(exit).cause as { code?: string }).code, "53400")
          assert.isAtLeast(refused, 3)
          assert.strictEqual(retries, refused - 1)
          assert.isAtLeast(elapsed, connectTimeout / 2)
          assert.isAtMost(elapsed, connectTimeout + 250)
        }).pipe(
          Effect.provide(
            clientLayer(server, { applicationName: appName, idleTimeout: "50 millis", connectTimeout })
          )
        )
      }))

    it.effect("gives a refused statement's connection up at connectTimeout, an attempt still opening included", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        yield* Effect.addFinalizer(() => server.faults.reset)
        // a TCP relay to DsqlLocal that, once stalled, accepts connections and never answers
        let stalled = false
        const relayPort = yield* plainServer((client) => {
          if (stalled) return
          const upstream = Net.connect(server.port, "127.0.0.1").on("error", () => client.destroy())
          client.pipe(upstream).pipe(client)
          client.on("close", () => upstream.destroy())
        })
        const connectTimeout = 3_000
        yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          // the start-up connection, held: the statement below needs a new one
          yield* sql.reserve
          const before = (yield* server.stats).connectionsRefused
          // every new connection refused for the rate (53400): the statement's checkout backs off and tries again
          yield* server.faults.setLimits({ connectionBurst: 0.5, connectionRatePerSecond: 0.001 })
          const started = Date.now()
          const statement = yield* Effect.fork(Effect.exit(sql`SELECT 1`))
          yield* Effect.sleep("1600 millis")
          assert.isAtLeast((yield* server.stats).connectionsRefused - before, 2, "the refused connection was retried")
          // then never answered: the next attempt (backed off by at most 1 s) is still opening when the budget ends
          stalled = true
          const exit = yield* Fiber.join(statement)
          const elapsed = Date.now() - started
          assert.strictEqual((failureOf(exit).cause as { code?: string }).code, "53400", "the last refusal")
          assert.isAtMost(elapsed, connectTimeout + 700)
        }).pipe(
          Effect.scoped,
          Effect.provide(clientLayer(server, { port: relayPort, maxConnections: 2, connectTimeout }))
        )
      }).pipe(Effect.scoped))

    it.effect("says why a checkout found no connection within connectTimeout, and what to change", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          // the pool's only connection, held until the scope ends
          yield* sql.reserve
          const error = failureOf(yield* Effect.exit(sql`SELECT 1`))
          assert.include(
            (error.cause as Error).message,
            "no connection within connectTimeout (300ms): the pool's 1 connection stayed in use"
          )
        }).pipe(Effect.scoped, Effect.provide(clientLayer(server, { maxConnections: 1, connectTimeout: 300 })))
      }))

    it.effect("passes @effect/sql-pg's name transforms and custom type parsers to layerConfig and connect", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const table = uniqueTable("transforms")
        yield* backendQuery(server, `CREATE TABLE ${table} (account_id int PRIMARY KEY, balance_due numeric)`)
        const options: DsqlClient.ClientOptions = {
          transformResultNames: Str.snakeToCamel,
          transformQueryNames: Str.camelToSnake,
          types: {
            getTypeParser: ((oid: number, format?: "text" | "binary") =>
              oid === pg.types.builtins.NUMERIC ? Number : pg.types.getTypeParser(oid, format)) as never
          }
        }
        const program = (id: number) =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            yield* sql`INSERT INTO ${sql(table)} ${sql.insert({ accountId: id, balanceDue: "12.50" })}`
            return yield* sql`SELECT account_id, balance_due FROM ${sql(table)} WHERE account_id = ${id}`
          })
        const signer = TokenSigner.layerStatic(server.credentials)
        const viaLayer = yield* program(1).pipe(
          Effect.provide(
            DsqlClient.layerConfigWithSigner(DsqlLocal.clientConfig(server), options).pipe(Layer.provide(signer))
          )
        )
        const viaConnect = yield* Effect.flatMap(
          DsqlClient.connectWithSigner(DsqlLocal.clientConfig(server), options),
          (client) =>
            Effect.provideService(program(2), SqlClient.SqlClient, client)
        ).pipe(Effect.scoped, Effect.provide(signer))
        const viaEnvironment = yield* withEnv(
          server.env,
          Effect.flatMap(
            DsqlClient.connect(DsqlLocal.clientConfig(server), options),
            (client) => Effect.provideService(program(3), SqlClient.SqlClient, client)
          ).pipe(Effect.scoped)
        )
        assert.deepStrictEqual([...viaLayer, ...viaConnect, ...viaEnvironment], [
          { accountId: 1, balanceDue: 12.5 },
          { accountId: 2, balanceDue: 12.5 },
          { accountId: 3, balanceDue: 12.5 }
        ])
      }))

    it.effect("runs on a pg-pool whose internals the pool relies on are as tested (fails loudly when they change)", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const internals = (what: string) => `pg-pool changed: ${what}; src/internal/pool.ts relies on it`
        const declared = (packageJson as { dependencies: Record<string, string> }).dependencies["pg-pool"]
        assert.isDefined(
          declared,
          "pg-pool must be a declared dependency: src/internal/pool.ts relies on its internals"
        )
        const fromPg = createRequire(createRequire(import.meta.url).resolve("pg"))
        const loaded = JSON.parse(
          Fs.readFileSync(Path.join(Path.dirname(fromPg.resolve("pg-pool")), "package.json"), "utf8")
        ) as { version: string }
        const [major, minor] = loaded.version.split(".").map(Number)
        const [, wantMajor, wantMinor] = /^\^(\d+)\.(\d+)\./.exec(declared!)!.map(Number)
        assert.isTrue(
          major === wantMajor && minor! >= wantMinor!,
          internals(`pg loads pg-pool ${loaded.version}, outside the declared ${declared}`)
        )

        const token = yield* Effect.orDie(signToken(server))
        let lifetimeReads = 0
        const pool = new pg.Pool({
          host: server.address,
          port: server.port,
          user: "admin",
          database: "postgres",
          password: token,
          ssl: tlsFor(server),
          sslnegotiation: "direct",
          max: 2
        } as pg.PoolConfig)
        yield* Effect.addFinalizer(() => Effect.promise(() => pool.end()))
        // Connections that end while idle (their lifetime over) report it here; pg-pool has already dropped them.
        pool.on("error", () => undefined)
        const events: Array<string> = []
        for (const event of ["connect", "remove"] as const) pool.on(event, () => events.push(event))

        assert.strictEqual(pool.options.max, 2, internals("options.max no longer holds the pool size"))
        Object.defineProperty(pool.options, "maxLifetimeSeconds", {
          get: () => {
            lifetimeReads++
            return 0.3
          },
          set: () => undefined
        })
        const poolConnect = pool.connect.bind(pool)
        let replacedConnectCalls = 0
        pool.connect = ((callback: Parameters<typeof poolConnect>[0]) => {
          replacedConnectCalls++
          return poolConnect(callback)
        }) as typeof pool.connect

        yield* Effect.promise(() => pool.query("SELECT 1"))
        assert.strictEqual(replacedConnectCalls, 1, internals("pool.query no longer checks out through pool.connect"))
        assert.isAtLeast(lifetimeReads, 1, internals("maxLifetimeSeconds is not read per connection"))
        assert.deepStrictEqual(events, ["connect"], internals("no 'connect' event for a new connection"))
        yield* Effect.promise(() => new Promise<void>((resolve) => pool.once("remove", () => resolve()))).pipe(
          Effect.timeoutFail({
            duration: "10 seconds",
            onTimeout: () => new Error(internals("maxLifetimeSeconds no longer ends a connection at that age"))
          })
        )

        // `max` is read at every checkout: lowered, a second checkout waits for the first.
        pool.options.max = 1
        const first = yield* Effect.promise(() => pool.connect())
        const second = pool.connect()
        assert.strictEqual(pool.waitingCount, 1, internals("options.max is no longer read at each checkout"))
        first.release()
        ;(yield* Effect.promise(() => second)).release()

        // A checkout queued past connectionTimeoutMillis fails with the text pool.ts recognises.
        pool.options.connectionTimeoutMillis = 100
        const held = yield* Effect.promise(() => pool.connect())
        const timedOut = yield* Effect.promise(() => pool.connect().then(() => undefined, (error: Error) => error))
        held.release()
        assert.isTrue(
          timedOut !== undefined && isQueueTimeout(timedOut),
          internals("a checkout queued past connectionTimeoutMillis no longer fails with the text pool.ts recognises")
        )
      }).pipe(Effect.scoped))

    it.effect("never sends a statement on a connection whose session the server ended", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const { failures, terminated } = yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* Effect.forEach(Array.from({ length: 10 }), () => sql`SELECT pg_sleep(0.05)`, { concurrency: 10 })
          // Connected beforehand (unlike backendQuery), so the statements start as soon as the terminations are done.
          const admin = yield* Effect.acquireRelease(
            Effect.promise(async () => {
              const client = new pg.Client({ connectionString: server.backendUrl })
              await client.connect()
              return client
            }),
            (client) => Effect.promise(() => client.end())
          )
          // A failover, an administrator's pg_terminate_backend, the 60-minute cut: every session ends while idle,
          // its FATAL still on the way when the next statements start.
          const terminated = yield* Effect.promise(() =>
            admin.query(
              `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
               WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'`
            )
          )
          const outcomes = yield* Effect.forEach(
            Array.from({ length: 80 }),
            (_, n) => Effect.either(sql`SELECT ${n}::int AS n`),
            { concurrency: 8 }
          )
          return {
            failures: outcomes.filter(Either.isLeft).map((failure) => failure.left),
            terminated: terminated.rowCount!
          }
        }).pipe(Effect.provide(clientLayer(server, { maxConnections: 10 })), Effect.scoped)
        assert.strictEqual(terminated, 10)
        // Only a statement already sent when its session's FATAL arrived fails, with that FATAL: whether it ran is
        // unknown, so it is not sent again. Once the FATAL is in, its connection is never handed out again.
        assert.isAtMost(failures.length, terminated)
        for (const failure of failures) {
          assert.strictEqual((failure.cause as { code?: string }).code, "57P01", failure.message)
        }
      }))

    it.effect("checks a new client by opening one connection, with no query round trip of its own", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const before = yield* server.stats
        yield* Effect.scoped(Layer.build(clientLayer(server, { maxConnections: 2 })))
        const after = yield* server.stats
        assert.strictEqual(after.connectionsAccepted - before.connectionsAccepted, 1)
        assert.strictEqual(after.queries - before.queries, 0)
      }))

    it.effect("gives every pool that trusts the same caPem one shared secure context", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const config = yield* DsqlConfig.make({ host: server.hostname, region: server.region, caPem: server.ca })
        const first = tlsOptions(config).secureContext
        assert.isDefined(first)
        assert.strictEqual(tlsOptions(config).secureContext, first)
      }))

    /**
     * Runs `count` copies of `query` at once on a fresh client under DsqlLocal's connection limits `limits` (reset
     * after): the rows, and how many connections the server refused and accepted meanwhile.
     */
    const queriesUnderLimits = (
      limits: { readonly connectionRatePerSecond: number; readonly connectionBurst: number },
      count: number,
      query: (sql: SqlClient.SqlClient) => Effect.Effect<ReadonlyArray<unknown>, SqlError>,
      overrides: DsqlClient.ConfigInput
    ) =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const before = yield* server.stats
        const rows = yield* server.faults.setLimits(limits).pipe(
          Effect.zipRight(
            Effect.flatMap(SqlClient.SqlClient, (sql) =>
              Effect.map(
                Effect.forEach(Array.from({ length: count }), () => query(sql), { concurrency: count }),
                (results) => results.flat()
              )).pipe(Effect.provide(clientLayer(server, overrides)))
          ),
          Effect.ensuring(server.faults.reset)
        )
        const after = yield* server.stats
        return {
          rows,
          refused: after.connectionsRefused - before.connectionsRefused,
          accepted: after.connectionsAccepted - before.connectionsAccepted
        }
      })

    it.effect("grows a refused pool again for its queued queries once the rate limit grants connections", () =>
      Effect.gen(function*() {
        // The start-up check takes the one connection of the burst; the three more the queries ask for at once are
        // refused, and the pool serves its queue on the one it has until the rate (2/s) grants more.
        const { accepted, refused, rows } = yield* queriesUnderLimits(
          { connectionRatePerSecond: 2, connectionBurst: 1 },
          4,
          (sql) => sql`SELECT pg_sleep(0.5)`,
          { maxConnections: 4 }
        )
        assert.strictEqual(rows.length, 4)
        assert.isAtLeast(refused, 1)
        assert.isAtLeast(accepted, 2)
      }))

    it.effect("serves checkouts refused for the rate limit on the connection it has, not after the connect timeout", () =>
      Effect.gen(function*() {
        // The start-up check takes the burst's one connection; the next is granted only after 100 s. The three
        // connections the queries ask for are refused, and their queries must run on the one the pool has: waiting
        // for a grant instead, they would fail at the 3 s connect timeout with 53400.
        const { accepted, refused, rows } = yield* queriesUnderLimits(
          { connectionRatePerSecond: 0.01, connectionBurst: 1 },
          12,
          (sql) => sql`SELECT 1 AS one`,
          { maxConnections: 4, connectTimeout: "3 seconds" }
        )
        assert.strictEqual(rows.length, 12)
        assert.isAtLeast(refused, 1)
        assert.strictEqual(accepted, 1)
      }))

    it.effect("opens a single scoped connection with connectWithSigner", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const rows = yield* Effect.gen(function*() {
          const sql = yield* DsqlClient.connectWithSigner({
            host: server.hostname,
            port: server.port,
            region: server.region,
            hostAddress: server.address,
            caPem: server.ca
          })
          return yield* sql<{ user: string }>`SELECT current_user AS user`
        }).pipe(Effect.scoped, Effect.provide(TokenSigner.layerStatic(server.credentials)))
        assert.deepStrictEqual(rows, [{ user: "admin" }])
      }))
  })
})

layer(DsqlLocal.layerClient(), { excludeTestServices: true })("DsqlLocal.layerClient", (it) => {
  it.effect("provides a client on a fresh DsqlLocal, with the server at hand for faults", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const server = yield* DsqlLocal.DsqlLocal
      const rows = yield* sql<{ greeting: string }>`SELECT 'Hello, DSQL!' AS greeting`
      assert.deepStrictEqual(rows, [{ greeting: "Hello, DSQL!" }])
      assert.isAtLeast((yield* server.stats).tokensVerified, 1)
    }))
})

describe("DsqlClient without a server", () => {
  it.live("fails with a typed error when nothing listens", () =>
    Effect.gen(function*() {
      const port = yield* Effect.async<number>((resume) => {
        const probe = Net.createServer().listen(0, "127.0.0.1", () => {
          const { port } = probe.address() as Net.AddressInfo
          probe.close(() => resume(Effect.succeed(port)))
        })
      })
      const exit = yield* Effect.exit(
        Layer.build(
          DsqlClient.layerConfigWithSigner({
            host: "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws",
            port,
            hostAddress: "127.0.0.1",
            connectTimeout: "2 seconds"
          }).pipe(Layer.provide(TokenSigner.layerStatic({ accessKeyId: "AKIDEXAMPLE", secretAccessKey: "x" })))
        ).pipe(Effect.scoped)
      )
      assert.include(String((failureOf(exit) as SqlError).message), "connection refused")
    }))
  it.effect("names the input the host came from when the host is not found", () =>
    Effect.gen(function*() {
      const notFound = Object.assign(new Error("getaddrinfo ENOTFOUND orders.internal.example.com"), {
        code: "ENOTFOUND"
      })
      const host = "orders.internal.example.com"
      const fromEnvironment = (env: Record<string, string>) =>
        Effect.withConfigProvider(
          DsqlConfig.config,
          ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" })
        )
      const configs = [
        yield* DsqlConfig.make({ host, region: "us-east-1" }),
        yield* DsqlConfig.fromUrl(`postgres://${host}?region=us-east-1`),
        yield* fromEnvironment({ DSQL_HOST: host, DSQL_REGION: "us-east-1" }),
        yield* fromEnvironment({ DSQL_URL: `postgres://${host}?region=us-east-1` })
      ]
      assert.deepStrictEqual(configs.map((config) => Diagnostics.describeError(notFound, config.hostInput)), [
        "host name not found: check host",
        "host name not found: check the host in url",
        "host name not found: check DSQL_HOST",
        "host name not found: check the host in DSQL_URL"
      ])
    }))
})
