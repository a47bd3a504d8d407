/**
 * What the configuration promises, checked where it takes effect (the signer's requests, the server's session, the
 * clock, the TLS handshake) rather than in the config value: a slip between DsqlConfig and the pool fails here.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it, layer } from "@effect/vitest"
import { Duration, Effect, Layer, Ref } from "effect"
import { DsqlClient, TokenSigner } from "effect-dsql"
import { DsqlLocal } from "effect-dsql/local"
import * as Net from "node:net"
import Tls from "node:tls"
import { makeAuthority } from "../../local/src/internal/certificates.js"
import { version } from "../../src/internal/version.js"
import { backendQuery, clientLayer, recordingSigner } from "../utils/client.js"
import { plainServer } from "../utils/fakeServers.js"

/** The versions a TLS ClientHello offers in its supported_versions extension (0x0303 is TLS 1.2, 0x0304 TLS 1.3). */
const offeredVersions = (hello: Buffer): Array<number> => {
  // record header, handshake header, legacy version, random; then session id, cipher suites, compression methods
  let at = 5 + 4 + 2 + 32
  at += 1 + hello[at]!
  at += 2 + hello.readUInt16BE(at)
  at += 1 + hello[at]!
  const end = at + 2 + hello.readUInt16BE(at)
  for (at += 2; at < end; at += 4 + hello.readUInt16BE(at + 2)) {
    if (hello.readUInt16BE(at) !== 0x2b) continue
    return Array.from({ length: hello[at + 4]! / 2 }, (_, i) => hello.readUInt16BE(at + 5 + 2 * i))
  }
  return []
}

const applicationName = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql<{ name: string }>`SELECT current_setting('application_name') AS name`
)

describe("DsqlClient configuration, where it takes effect", () => {
  layer(DsqlLocal.layer(), { excludeTestServices: true })("on DsqlLocal", (it) => {
    it.effect("signs every connection for the endpoint name (not the address dialled), region, user and duration", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const requests = yield* Ref.make<Array<TokenSigner.SignRequest>>([])
        yield* Effect.flatMap(
          SqlClient.SqlClient,
          (sql) => Effect.forEach(Array.from({ length: 12 }), () => sql`SELECT pg_sleep(0.01)`, { concurrency: 12 })
        ).pipe(
          Effect.provide(
            clientLayer(server, { maxConnections: 3, tokenDuration: "2 hours" }, recordingSigner(server, requests))
          )
        )
        const signed = yield* Ref.get(requests)
        assert.isAtLeast(signed.length, 1)
        for (const request of signed) {
          assert.strictEqual(request.hostname, server.hostname)
          assert.strictEqual(request.region, server.region)
          assert.strictEqual(request.user, "admin")
          assert.strictEqual(Duration.toSeconds(Duration.decode(request.expiresIn)), 7_200)
        }
      }))

    it.effect("sends application_name as effect-dsql/<version>, or <prefix>:effect-dsql/<version>", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const plain = yield* Effect.provide(applicationName, clientLayer(server, { maxConnections: 1 }))
        assert.deepStrictEqual(plain, [{ name: `effect-dsql/${version}` }])
        const prefixed = yield* Effect.provide(
          applicationName,
          clientLayer(server, { maxConnections: 1, applicationName: "billing" })
        )
        assert.deepStrictEqual(prefixed, [{ name: `billing:effect-dsql/${version}` }])
      }))

    it.effect("keeps a connection idle for seconds open under the default idle timeout", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const before = yield* server.stats
        yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* sql`SELECT 1`
          yield* Effect.sleep("1500 millis")
          yield* sql`SELECT 1`
        }).pipe(Effect.provide(clientLayer(server, { maxConnections: 1 })))
        const after = yield* server.stats
        assert.strictEqual(after.connectionsAccepted - before.connectionsAccepted, 1, "the idle connection was reused")
      }))

    it.effect("connectWithSigner opens one connection, whatever the concurrency, and closes it with the scope", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const before = yield* server.stats
        const rows = yield* Effect.gen(function*() {
          const sql = yield* DsqlClient.connectWithSigner({
            ...DsqlLocal.clientConfig(server),
            applicationName: "guard-single"
          })
          return yield* Effect.forEach(
            Array.from({ length: 8 }),
            (_, i) => sql<{ n: number }>`SELECT ${i}::int AS n, pg_sleep(0.01)`,
            { concurrency: 8 }
          )
        }).pipe(Effect.scoped, Effect.provide(TokenSigner.layerStatic(server.credentials)))
        assert.strictEqual(rows.length, 8)
        const after = yield* server.stats
        assert.strictEqual(after.connectionsAccepted - before.connectionsAccepted, 1)
        const open = yield* backendQuery<{ n: number }>(
          server,
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'guard-single:%'"
        ).pipe(
          Effect.tap(() => Effect.sleep("20 millis")),
          Effect.repeat({ until: (found) => found[0]?.n === 0, times: 100 })
        )
        assert.deepStrictEqual(open, [{ n: 0 }], "closed with its scope")
      }))
  })

  it.live("gives up on a server that accepts and never answers, within the connect timeout", () =>
    Effect.gen(function*() {
      const sockets = new Set<Net.Socket>()
      const silent = yield* Effect.acquireRelease(
        Effect.async<Net.Server>((resume) => {
          const server = Net.createServer((socket) => sockets.add(socket))
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) =>
          Effect.async<void>((resume) => {
            for (const socket of sockets) socket.destroy()
            server.close(() => resume(Effect.void))
          })
      )
      const startedAt = Date.now()
      const exit = yield* Layer.build(
        DsqlClient.layerConfigWithSigner({
          host: "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws",
          port: (silent.address() as Net.AddressInfo).port,
          hostAddress: "127.0.0.1",
          connectTimeout: "1 second"
        }).pipe(Layer.provide(TokenSigner.layerStatic({ accessKeyId: "AKIDEXAMPLE", secretAccessKey: "unused" })))
      ).pipe(
        Effect.scoped,
        // a client that ignores its connect timeout fails here, not at the test timeout
        Effect.timeoutFail({ duration: "8 seconds", onTimeout: () => "still connecting after 8 s" }),
        Effect.exit
      )
      const elapsed = Date.now() - startedAt
      assert.isTrue(exit._tag === "Failure", "the connection cannot succeed")
      assert.notInclude(String(exit), "still connecting after 8 s")
      assert.isAtMost(elapsed, 6_000, "1 s connect timeout, with room for a loaded machine")
    }).pipe(Effect.scoped))

  it.live("offers TLS 1.2 or later only, with or without caPem, even where Node's own minimum was lowered", () =>
    Effect.gen(function*() {
      const hellos: Array<Buffer> = []
      const port = yield* plainServer((socket) =>
        socket.once("data", (hello: Buffer) => {
          hellos.push(hello)
          socket.destroy()
        })
      )
      const { certPem } = yield* makeAuthority()
      const connect = (caPem: string | undefined) =>
        Layer.build(
          DsqlClient.layerConfigWithSigner({
            host: "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws",
            port,
            hostAddress: "127.0.0.1",
            connectTimeout: "5 seconds",
            ...(caPem === undefined ? {} : { caPem })
          }).pipe(Layer.provide(TokenSigner.layerStatic({ accessKeyId: "AKIDEXAMPLE", secretAccessKey: "unused" })))
        ).pipe(Effect.scoped, Effect.exit)
      // as `node --tls-min-v1.0` or a library setting it would: only the client's own minimum keeps TLS 1.0 out
      yield* Effect.acquireUseRelease(
        Effect.sync(() => {
          const previous = Tls.DEFAULT_MIN_VERSION
          Tls.DEFAULT_MIN_VERSION = "TLSv1"
          return previous
        }),
        () => Effect.forEach([undefined, certPem], connect),
        (previous) =>
          Effect.sync(() => {
            Tls.DEFAULT_MIN_VERSION = previous
          })
      )
      assert.strictEqual(hellos.length, 2, "one ClientHello without caPem, one with")
      for (const hello of hellos) {
        const versions = offeredVersions(hello)
        assert.include(versions, 0x0303, "TLS 1.2 offered")
        assert.deepStrictEqual(versions.filter((version) => version < 0x0303), [], "a version below TLS 1.2 offered")
      }
    }).pipe(Effect.scoped))
})
