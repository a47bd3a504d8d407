/**
 * Builds the node-postgres pool behind `DsqlClient`: a fresh IAM token for every new physical connection,
 * verify-full TLS with SNI, direct TLS negotiation, a jittered connection lifetime and back-off on DSQL's
 * connection limits.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import * as Net from "node:net"
import type { Duplex } from "node:stream"
import * as Tls from "node:tls"
import * as Pg from "pg"
import type { DsqlConfig } from "../DsqlConfig.js"
import * as DsqlMetrics from "../DsqlMetrics.js"
import { TokenSigner } from "../TokenSigner.js"

/** SQLSTATEs DSQL answers when a new connection exceeds the cluster's connection cap or rate. */
const connectionLimitCodes: ReadonlySet<string> = new Set(["53300", "53400"])

/** True for DSQL's "too many open connections" (53300) and "rate exceeded" (53400) refusals. */
export const isConnectionLimitError = (error: unknown): boolean =>
  typeof error === "object" && error !== null && connectionLimitCodes.has((error as { code?: unknown }).code as string)

/**
 * Back-off for new-connection attempts refused by DSQL's limits: exponential from 20 ms with jitter, one delay
 * capped at 1 s, all attempts bounded by the connect timeout so a caller never waits past it.
 */
export const connectRetrySchedule = (connectTimeout: Duration.Duration) =>
  Schedule.exponential("20 millis", 2).pipe(
    Schedule.jittered,
    Schedule.union(Schedule.spaced("1 second")),
    Schedule.upTo(connectTimeout)
  )

/**
 * How long a pool refused for DSQL's limits stays at the size it had: its waiting requests queue for a released
 * connection, as in a full pool, instead of each asking the server again for a new one.
 */
const holdAfterRefusalMillis = 1_000

/** Share of the configured lifetime cut at random per connection, so a pool's connections don't all expire at once. */
const lifetimeJitter = 0.1

/**
 * TLS options for verify-full against the DSQL host name: certificate chain and host name checked, SNI sent,
 * TLS 1.2 or later. Extra roots are added to Node's defaults, never replacing them, in one secure context built per
 * pool: passing `ca` instead would parse Node's ~150 roots again on every connection (tens of ms of CPU each).
 */
export const tlsOptions = (config: DsqlConfig): Tls.ConnectionOptions => ({
  servername: config.host,
  rejectUnauthorized: true,
  minVersion: "TLSv1.2",
  checkServerIdentity: (_hostname, certificate) => Tls.checkServerIdentity(config.host, certificate),
  ...Option.match(config.caPem, {
    onNone: () => ({}),
    onSome: (pem) => ({
      secureContext: Tls.createSecureContext({ ca: [...Tls.rootCertificates, pem], minVersion: "TLSv1.2" })
    })
  })
})

/**
 * A socket factory that dials `address` whatever host pg asks for, so that pg keeps using the DSQL host name for
 * SNI, certificate checks and the token (libpq's `hostaddr`).
 */
const dialing = (address: string) => (): Net.Socket => {
  const socket = new Net.Socket()
  const connect = socket.connect.bind(socket) as (port: number, host: string) => Net.Socket
  return Object.assign(socket, { connect: (port: number) => connect(port, address) })
}

/**
 * Makes a throw from a 'data' listener destroy the stream with that error instead of escaping as an uncaught
 * exception.
 */
const guardDataListeners = (stream: Duplex) => {
  for (const listener of stream.listeners("data") as Array<(chunk: Buffer) => void>) {
    stream.off("data", listener)
    stream.on("data", (chunk: Buffer) => {
      try {
        listener(chunk)
      } catch (cause) {
        stream.destroy(new Error("malformed message from the server", { cause }))
      }
    })
  }
}

/**
 * A pg client that a malformed server message can't crash the process with. pg's protocol parser throws from
 * inside the socket's 'data' listener on some messages (an unknown authentication code, a field past the message's
 * end); pg then never sees the error, Node does, as an uncaught exception. Guarded, the connection fails with it.
 */
class GuardedClient extends Pg.Client {
  constructor(config?: Pg.ClientConfig) {
    super(config)
    // pg attaches its parser to the TLS stream just before announcing it; every connection here is TLS.
    this.connection.once("sslconnect", () => guardDataListeners(this.connection.stream))
  }
}

type ConnectCallback = (
  err: Error | undefined,
  client: Pg.PoolClient | undefined,
  release: (err?: Error) => void
) => void

/**
 * Creates the pg pool. Token signing and connect retries run on the caller's runtime, so spans, metrics and the
 * configured `TokenSigner` apply to them.
 */
export const makePool = Effect.fnUntraced(function*(config: DsqlConfig) {
  const signer = yield* TokenSigner
  const runtime = yield* Effect.runtime<never>()
  const runPromiseExit = Runtime.runPromiseExit(runtime)

  // pg calls this for every new physical connection. A failure goes to pg as a plain Error naming the cause: pg-pool
  // calls `Error.captureStackTrace` on connection errors, which throws on errors that passed through the fiber
  // runtime, and a FiberFailure would hide which step failed.
  const password = () =>
    runPromiseExit(signer.sign({
      hostname: config.host,
      region: config.region,
      user: config.user,
      expiresIn: config.tokenDuration
    })).then(Exit.match({
      onSuccess: Redacted.value,
      onFailure: (cause) => {
        const failure = Cause.failureOption(cause)
        throw Option.isSome(failure)
          ? new Error(`could not sign an IAM token: ${failure.value.message}`, { cause: failure.value })
          : new Error("signing an IAM token was interrupted")
      }
    }))

  const lifetimeSeconds = Duration.toSeconds(config.maxConnectionLifetime)
  const pool = new Pg.Pool({
    host: config.host,
    port: config.port,
    user: config.user,
    database: config.database,
    password,
    ssl: tlsOptions(config),
    sslnegotiation: config.sslNegotiation,
    ...Option.match(config.hostAddress, { onNone: () => ({}), onSome: (address) => ({ stream: dialing(address) }) }),
    application_name: config.applicationName,
    max: config.maxConnections,
    min: config.minConnections,
    idleTimeoutMillis: Duration.toMillis(config.idleTimeout),
    connectionTimeoutMillis: Duration.toMillis(config.connectTimeout),
    keepAlive: true,
    Client: GuardedClient
  } as Pg.PoolConfig)

  // pg-pool reads `maxLifetimeSeconds` once per new connection: a getter gives each connection its own jittered
  // lifetime within the configured bound.
  Object.defineProperty(pool.options, "maxLifetimeSeconds", {
    get: () => lifetimeSeconds * (1 - lifetimeJitter * Math.random()),
    set: () => undefined
  })

  // An idle connection's error (server restart, age limit) must never crash the process: pg-pool drops the
  // connection itself, we only record it.
  pool.on("error", (error) => {
    Runtime.runFork(runtime)(Effect.logDebug("DsqlClient: idle connection closed", error.message))
  })
  pool.on("connect", () => {
    Runtime.runFork(runtime)(Metric.increment(DsqlMetrics.connectionsOpened))
  })

  // pg-pool opens a new connection for every request that finds no idle one until `max` is reached, so under a
  // refusal each waiting request would be handed to yet another refused attempt while the connections the pool has
  // are released to nobody. Holding `max` at the established connections makes requests queue for those instead; the
  // hold ends at the first request after it expires, which lets the pool try to grow again.
  let established = 0
  pool.on("connect", () => established++)
  pool.on("remove", () => established--)
  let heldUntil: number | undefined
  const holdAtEstablishedSize = () => {
    pool.options.max = Math.max(1, Math.min(config.maxConnections, established))
    heldUntil = Date.now() + holdAfterRefusalMillis
  }
  const endExpiredHold = () => {
    if (heldUntil === undefined || Date.now() < heldUntil) return
    pool.options.max = config.maxConnections
    heldUntil = undefined
  }

  const connectOnce = pool.connect.bind(pool) as (callback: ConnectCallback) => void

  /**
   * After DSQL refused a new connection (53300/53400): back off and try again within the connect timeout. pg's own
   * error object goes back to pg untouched: errors that passed through the fiber runtime may come out wrapped, and
   * pg-pool calls `Error.captureStackTrace` on what it is given.
   */
  const retryAfterRefusal = (refusal: Error, deliver: ConnectCallback) => {
    let lastError = refusal
    let attempts = 0
    const attempt = Effect.suspend(() =>
      attempts++ === 0 ? Effect.fail(refusal) : Effect.async<readonly [Pg.PoolClient, (err?: Error) => void], Error>(
        (resume) =>
          connectOnce((error, client, release) => {
            if (error || client === undefined) {
              lastError = error || new Error("pg returned no client")
              resume(Effect.fail(lastError))
            } else {
              resume(Effect.succeed([client, release] as const))
            }
          })
      )
    )
    Runtime.runCallback(runtime)(
      attempt.pipe(
        Effect.tapError((error) =>
          isConnectionLimitError(error)
            ? Effect.zipRight(Effect.sync(holdAtEstablishedSize), Metric.increment(DsqlMetrics.connectRetries))
            : Effect.void
        ),
        Effect.retry({ schedule: connectRetrySchedule(config.connectTimeout), while: isConnectionLimitError })
      ),
      {
        onExit: Exit.match({
          onSuccess: ([client, release]) => deliver(undefined, client, release),
          onFailure: () => deliver(lastError, undefined, () => undefined)
        })
      }
    )
  }

  // Checkouts go straight to pg-pool; only a refusal for DSQL's limits enters the (slower) retry path.
  const connect = (callback?: ConnectCallback) => {
    endExpiredHold()
    const promise = new Promise<Pg.PoolClient>((resolve, reject) => {
      const deliver: ConnectCallback = (error, client, release) => {
        callback?.(error, client, release)
        if (error || client === undefined) reject(error || new Error("pg returned no client"))
        else resolve(client)
      }
      connectOnce((error, client, release) =>
        error && isConnectionLimitError(error) ? retryAfterRefusal(error, deliver) : deliver(error, client, release)
      )
    })
    if (callback === undefined) return promise
    promise.catch(() => undefined)
    return undefined
  }
  pool.connect = connect as typeof pool.connect

  return pool
})
