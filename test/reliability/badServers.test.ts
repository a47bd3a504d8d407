/**
 * Servers a client must refuse or survive: one that does not speak TLS, certificates for another host, expired or
 * from an unknown authority, garbage after the TLS handshake, a server that never answers, an error message of a
 * megabyte. Each ends in a typed `SqlError` that says what is wrong, within the connect timeout, and never crashes
 * the process. Then: no configuration turns TLS off.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Layer, Random } from "effect"
import { DsqlClient, DsqlConfig, TokenSigner } from "effect-dsql"
import { DsqlLocal } from "effect-dsql/local"
import { makeAuthority } from "../../local/src/internal/certificates.js"
import { withEnv } from "../utils/client.js"
import { errorResponse, issued, message, plainServer, tlsServer } from "../utils/fakeServers.js"
import { explain, report, SecretWatch, typedFailure, watched } from "./harness.js"

const watch = new SecretWatch()
const clusterId = "abcdefghij0123456789klmnop"
const hostname = `${clusterId}.dsql.us-east-1.on.aws`
const credentials = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "reliability-bad-servers-secret" }
watch.addSecret(credentials.secretAccessKey)
const connectTimeoutMillis = 2_000
/** Connection attempts made against bad servers, all of which must fail typed. */
const connectAttempts = { count: 0, longestMillis: 0 }

/** Tries to open a client on `port` trusting `ca`; returns the typed error and how long it took. */
const connectTo = (
  port: number,
  options: { readonly ca?: string; readonly sslNegotiation?: "direct" | "postgres"; readonly host?: string } = {}
) =>
  Effect.gen(function*() {
    const started = Date.now()
    const exit = yield* Effect.exit(
      Layer.build(
        DsqlClient.layerConfigWithSigner({
          host: options.host ?? hostname,
          port,
          hostAddress: "127.0.0.1",
          connectTimeout: connectTimeoutMillis,
          sslNegotiation: options.sslNegotiation ?? "direct",
          ...(options.ca === undefined ? {} : { caPem: options.ca })
        }).pipe(Layer.provide(TokenSigner.layerStatic(credentials)))
      ).pipe(Effect.scoped, watched(watch))
    )
    const millis = Date.now() - started
    connectAttempts.count += 1
    connectAttempts.longestMillis = Math.max(connectAttempts.longestMillis, millis)
    const error = typedFailure(exit, watch) as SqlError
    assert.strictEqual(error._tag, "SqlError")
    assert.isAtMost(millis, connectTimeoutMillis + 1_000, "failed within the connect timeout")
    return { error, message: error.message, explained: explain(error), millis }
  })

describe("reliability: bad servers", () => {
  it.scopedLive("a server that does not speak TLS (PostgreSQL's plain port), either negotiation", () =>
    Effect.gen(function*() {
      // PostgreSQL without TLS, as a fake: it answers SSLRequest with N, and closes on a ClientHello.
      const port = yield* plainServer((socket) =>
        socket.once("data", (first: Buffer) => first[0] === 0x16 ? socket.end() : socket.write("N"))
      )
      const classic = yield* connectTo(port, { sslNegotiation: "postgres" })
      assert.include(classic.message, "does not support SSL")
      const direct = yield* connectTo(port, { sslNegotiation: "direct" })
      assert.match(direct.message, /could not connect|no connection/)
    }))

  it.scopedLive("a certificate for another host", () =>
    Effect.gen(function*() {
      const { ca, certificate } = yield* issued(["db.example.com"])
      const port = yield* tlsServer(certificate, (socket) => socket.end())
      const { message } = yield* connectTo(port, { ca })
      assert.include(message, "does not match the host name")
      assert.include(message, "ERR_TLS_CERT_ALTNAME_INVALID")
    }))

  it.scopedLive("an expired certificate", () =>
    Effect.gen(function*() {
      const { ca, certificate } = yield* issued([hostname], new Date(Date.now() - 86_400_000))
      const port = yield* tlsServer(certificate, (socket) => socket.end())
      const { message } = yield* connectTo(port, { ca })
      assert.include(message, "has expired")
    }))

  it.scopedLive("a certificate from an authority the client does not trust", () =>
    Effect.gen(function*() {
      const { certificate } = yield* issued([hostname])
      const trusted = yield* makeAuthority({ commonName: "the authority the client trusts" })
      const port = yield* tlsServer(certificate, (socket) => socket.end())
      for (const ca of [undefined, trusted.certPem]) {
        const { message } = yield* connectTo(port, ca === undefined ? {} : { ca })
        assert.include(message, "TLS verification failed")
        assert.match(message, /not signed by a trusted CA|untrusted CA|self-signed/)
      }
    }))

  it.scopedLive("garbage after the handshake: an unknown authentication request, random bytes, bytes after S", () =>
    Effect.gen(function*() {
      const { ca, certificate } = yield* issued([hostname])
      // pg's parser throws on an authentication code it does not know; unguarded, that is an uncaught exception.
      const unknownAuth = yield* tlsServer(
        certificate,
        (socket) => socket.write(message("R", Buffer.from([0, 0, 0, 99])))
      )
      const auth = yield* connectTo(unknownAuth, { ca })
      assert.include(auth.message, "malformed message from the server")
      // Random bytes, seeded: whatever pg makes of them, the program gets a typed error in time.
      for (const seed of [1, 2, 3, 4]) {
        const bytes = yield* Effect.withRandom(
          Effect.all(Array.from({ length: 2_048 }, () => Random.nextIntBetween(0, 256))),
          Random.make(seed)
        )
        const port = yield* tlsServer(certificate, (socket) => socket.write(Buffer.from(bytes)))
        yield* connectTo(port, { ca })
      }
      // Buffer stuffing: bytes sent in the clear after the S answer must not be read as if they came over TLS.
      const stuffed = yield* tlsServer(
        certificate,
        (socket) => socket.end(),
        Buffer.concat([Buffer.from("S"), message("R", Buffer.from([0, 0, 0, 0]))])
      )
      const stuffing = yield* connectTo(stuffed, { ca, sslNegotiation: "postgres" })
      assert.include(stuffing.message, "error establishing an SSL connection")
    }))

  it.scopedLive("a server that accepts and never answers: failed within connectTimeout", () =>
    Effect.gen(function*() {
      const port = yield* plainServer(() => undefined)
      for (const sslNegotiation of ["direct", "postgres"] as const) {
        const { message, millis } = yield* connectTo(port, { sslNegotiation })
        assert.isAtLeast(millis, connectTimeoutMillis - 100)
        assert.match(message, /no connection to .* within 2s|timeout/)
      }
    }))

  it.scopedLive("a megabyte of error message: typed, and the message quoted short", () =>
    Effect.gen(function*() {
      const { ca, certificate } = yield* issued([hostname])
      const port = yield* tlsServer(certificate, (socket) => socket.write(errorResponse("x".repeat(1_000_000))))
      const { message } = yield* connectTo(port, { ca })
      assert.include(message, "SQLSTATE 08006")
      assert.include(message, "1000000 characters in all")
      assert.isBelow(message.length, 2_000)
    }))

  it.scopedLive("a server that closes right after the handshake", () =>
    Effect.gen(function*() {
      const { ca, certificate } = yield* issued([hostname])
      const port = yield* tlsServer(certificate, (socket) => socket.end())
      const { explained } = yield* connectTo(port, { ca })
      assert.match(explained, /Connection terminated|connection reset/)
    }))
})

describe("reliability: TLS cannot be configured away", () => {
  layer(DsqlLocal.layer(), { excludeTestServices: true, timeout: "120 seconds" })("on DsqlLocal", (it) => {
    /** Options a user might try to turn TLS off with; none is a DsqlConfig field. */
    const attempts = { ssl: false, sslmode: "disable", tls: false, rejectUnauthorized: false }

    it.effect("options and PG* variables that would turn TLS off are ignored: plaintext is still refused", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const plainPort = Number(new URL(server.backendUrl).port)
        const env = { PGSSLMODE: "disable", PGSSLNEGOTIATION: "postgres", PGSSLROOTCERT: "system", PGREQUIRESSL: "0" }
        for (const sslNegotiation of ["direct", "postgres"] as const) {
          const { message } = yield* withEnv(
            env,
            connectTo(plainPort, { sslNegotiation, host: server.hostname })
          )
          assert.match(message, /could not connect|no connection/)
        }
        // The same attempts against DsqlLocal: accepted, over TLS, with the server's certificate checked.
        const before = yield* server.stats
        const input = {
          host: server.hostname,
          port: server.port,
          region: server.region,
          hostAddress: server.address,
          caPem: server.ca,
          ...attempts
        } as DsqlClient.ConfigInput
        yield* withEnv(
          env,
          Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`).pipe(
            Effect.provide(
              DsqlClient.layerConfigWithSigner(input).pipe(Layer.provide(TokenSigner.layerStatic(server.credentials)))
            )
          )
        )
        const after = yield* server.stats
        assert.strictEqual(after.tlsModes.direct - before.tlsModes.direct, 1, "the connection was TLS")
        // And without the CA: refused, whatever rejectUnauthorized the input carried.
        const { message } = yield* connectTo(server.port, { host: server.hostname })
        assert.include(message, "TLS verification failed")
      }))

    it.effect("the resolved config has no switch for TLS, from any source", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const configs = [
          yield* DsqlConfig.make({ host: server.hostname, ...attempts } as DsqlConfig.Options),
          yield* DsqlConfig.fromUrl(`postgres://admin@${server.hostname}/postgres`)
        ]
        for (const config of configs) {
          watch.value("config", config)
          for (const key of Object.keys(attempts)) assert.notProperty(config, key)
          assert.include(["direct", "postgres"], config.sslNegotiation)
        }
        for (const mode of ["disable", "allow", "prefer", "require", "verify-ca"]) {
          const exit = yield* Effect.exit(
            DsqlConfig.fromUrl(`postgres://admin@${server.hostname}/postgres?sslmode=${mode}`)
          )
          assert.include(String(typedFailure(exit)), "unknown parameters \"sslmode\"")
        }
      }))

    it.effect("leaks no secret in anything logged, traced or raised during these cases", () =>
      Effect.gen(function*() {
        watch.assertClean(["span", "error"])
        yield* report({
          file: "badServers",
          case: "non-TLS server, certificate for another host, expired, untrusted CA, garbage after the handshake, " +
            "silent server, 1 MB error message, close after handshake; TLS switched off by options or PG* variables",
          faults: "bad servers (fake TLS servers from local/src/internal/certificates.ts; the backend's plain port)",
          operations: connectAttempts.count,
          errorsSeen: connectAttempts.count,
          dataLost: 0,
          notes: `every attempt a typed SqlError saying why, the slowest after ${connectAttempts.longestMillis} ms ` +
            `(connectTimeout ${connectTimeoutMillis} ms); no uncaught exception`
        })
      }))
  })
})
