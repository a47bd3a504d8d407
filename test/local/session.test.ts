/**
 * The session's handshake deadline: a connection that stalls before it is a session is dropped, wherever it stalls
 * (the client before or during TLS, the backend during the login).
 */
import { DsqlSigner } from "@aws-sdk/dsql-signer"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit } from "effect"
import * as net from "node:net"
import * as tls from "node:tls"
import pg from "pg"
import { issueServerCertificate, makeAuthority } from "../../local/src/internal/certificates.js"
import { makeConnectionGate } from "../../local/src/internal/limits.js"
import { backendSessionOptions, makeSessionPolicy } from "../../local/src/internal/policy.js"
import { serveConnection } from "../../local/src/internal/session.js"
import { makeClusterState } from "../../local/src/internal/state.js"
import { SSL_REQUEST_CODE } from "../../local/src/internal/wire.js"

const timeoutMillis = 300
const hostname = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws"

const credentials = { accessKeyId: "AKIDSESSIONTEST", secretAccessKey: "session-test-secret" }

/** A TCP server that accepts connections and never answers: a backend that stalls the login. */
const silentBackend = Effect.acquireRelease(
  Effect.async<{ readonly server: net.Server; readonly sockets: Set<net.Socket> }>((resume) => {
    const sockets = new Set<net.Socket>()
    const server = net.createServer((socket) => {
      socket.on("error", () => {})
      sockets.add(socket)
    })
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ server, sockets })))
  }),
  ({ server, sockets }) =>
    Effect.promise(() =>
      new Promise((resolve) => {
        server.close(resolve)
        for (const socket of sockets) socket.destroy()
      })
    )
)

/** A listener serving every connection with a short handshake deadline, in front of a backend that never answers. */
const listener = Effect.gen(function*() {
  const backend = yield* silentBackend
  const authority = yield* makeAuthority()
  const certificate = yield* issueServerCertificate(authority, { hostnames: [hostname], ipAddresses: ["127.0.0.1"] })
  const state = makeClusterState()
  const serve = serveConnection({
    state,
    gate: makeConnectionGate(state),
    hostname,
    region: "us-east-1",
    secureContext: tls.createSecureContext({ key: certificate.keyPem, cert: certificate.certPem }),
    secretFor: (accessKeyId) => accessKeyId === credentials.accessKeyId ? credentials.secretAccessKey : undefined,
    backend: { host: "127.0.0.1", port: (backend.server.address() as net.AddressInfo).port, password: undefined },
    backendSessionOptions,
    makePolicy: () => makeSessionPolicy(state),
    handshakeTimeoutMillis: timeoutMillis
  })
  const sessions = new Set<Promise<Exit.Exit<void>>>()
  const server = yield* Effect.acquireRelease(
    Effect.async<net.Server>((resume) => {
      const server = net.createServer((socket) => {
        sessions.add(Effect.runPromiseExit(serve(socket)))
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) => Effect.promise(() => new Promise((resolve) => server.close(resolve)))
  )
  return { port: (server.address() as net.AddressInfo).port, state, sessions, ca: authority.certPem }
})

/** Opens a connection, sends `first`, then waits for the server to close it; resolves with the time that took. */
const stall = (port: number, first: Buffer | undefined) =>
  Effect.async<number>((resume) => {
    const socket = net.connect(port, "127.0.0.1", () => {
      if (first !== undefined) socket.write(first)
    })
    const started = performance.now()
    socket.on("error", () => {})
    socket.on("close", () => resume(Effect.succeed(performance.now() - started)))
    socket.resume()
    return Effect.sync(() => socket.destroy())
  })

const sslRequest = () => {
  const bytes = Buffer.alloc(8)
  bytes.writeInt32BE(8, 0)
  bytes.writeInt32BE(SSL_REQUEST_CODE, 4)
  return bytes
}

describe("session", () => {
  it.live("a session that stalls before it is established is dropped at the deadline: before TLS, mid-TLS, at the backend login", () =>
    Effect.scoped(Effect.gen(function*() {
      const { ca, port, sessions, state } = yield* listener
      const [silent, midTls] = yield* Effect.all([stall(port, undefined), stall(port, sslRequest())], {
        concurrency: "unbounded"
      })
      for (const elapsed of [silent, midTls]) {
        expect(elapsed).toBeGreaterThanOrEqual(timeoutMillis - 20)
        expect(elapsed).toBeLessThan(timeoutMillis + 2_000)
      }
      // A client with a valid token whose backend login stalls is dropped at the same deadline.
      const token = yield* Effect.promise(() =>
        new DsqlSigner({ hostname, region: "us-east-1", credentials }).getDbConnectAdminAuthToken()
      )
      const client = new pg.Client({
        host: "127.0.0.1",
        port,
        user: "admin",
        database: "postgres",
        password: token,
        ssl: { ca, servername: hostname }
      })
      client.on("error", () => {})
      const started = performance.now()
      const refused = yield* Effect.flip(Effect.tryPromise(() => client.connect()))
      const elapsed = performance.now() - started
      expect(String(refused.cause)).toMatch(/Connection terminated unexpectedly/)
      expect(elapsed).toBeGreaterThanOrEqual(timeoutMillis - 20)
      expect(elapsed).toBeLessThan(timeoutMillis + 2_000)

      // Each session ended, without a failure (the deadline interrupts it) or being counted as accepted.
      const exits = yield* Effect.promise(() => Promise.all(sessions))
      expect(exits.length).toBe(3)
      for (const exit of exits) expect(Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)).toBe(true)
      expect(state.stats.connectionsAccepted).toBe(0)
    })))
})
