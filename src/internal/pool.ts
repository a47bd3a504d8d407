/**
 * Builds the node-postgres pool behind `DsqlClient`: a fresh IAM token for every new physical connection,
 * verify-full TLS with SNI, direct TLS negotiation, a jittered connection lifetime and back-off on DSQL's
 * connection limits.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import * as Net from "node:net"
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

/** Share of the configured lifetime cut at random per connection, so a pool's connections don't all expire at once. */
const lifetimeJitter = 0.1

/**
 * TLS options for verify-full against the DSQL host name: certificate chain and host name checked, SNI sent,
 * TLS 1.2 or later. Extra roots are added to Node's defaults, never replacing them.
 */
export const tlsOptions = (config: DsqlConfig): Tls.ConnectionOptions => ({
  servername: config.host,
  rejectUnauthorized: true,
  minVersion: "TLSv1.2",
  checkServerIdentity: (_hostname, certificate) => Tls.checkServerIdentity(config.host, certificate),
  ...Option.match(config.caPem, {
    onNone: () => ({}),
    onSome: (pem) => ({ ca: [...Tls.rootCertificates, pem] })
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
  const runPromise = Runtime.runPromise(runtime)

  const password = () =>
    runPromise(
      signer.sign({
        hostname: config.host,
        region: config.region,
        user: config.user,
        expiresIn: config.tokenDuration
      }).pipe(Effect.map(Redacted.value))
    )

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
    keepAlive: true
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

  const connectOnce = pool.connect.bind(pool) as (callback: ConnectCallback) => void
  const connect = (callback?: ConnectCallback) => {
    // pg's own error object goes back to pg untouched: errors that passed through the fiber runtime may come out
    // wrapped, and pg-pool calls `Error.captureStackTrace` on what it is given.
    let lastError: Error | undefined
    const attempt = Effect.async<readonly [Pg.PoolClient, (err?: Error) => void], Error>((resume) =>
      connectOnce((error, client, release) => {
        if (error || client === undefined) {
          lastError = error || new Error("pg returned no client")
          resume(Effect.fail(lastError))
        } else {
          resume(Effect.succeed([client, release] as const))
        }
      })
    )
    const promise = new Promise<Pg.PoolClient>((resolve, reject) =>
      Runtime.runCallback(runtime)(
        attempt.pipe(
          Effect.tapError((error) =>
            isConnectionLimitError(error) ? Metric.increment(DsqlMetrics.connectRetries) : Effect.void
          ),
          Effect.retry({ schedule: connectRetrySchedule(config.connectTimeout), while: isConnectionLimitError })
        ),
        {
          onExit: Exit.match({
            onSuccess: ([client, release]) => {
              callback?.(undefined, client, release)
              resolve(client)
            },
            onFailure: () => {
              const error = lastError ?? new Error("connection attempt interrupted")
              callback?.(error, undefined, () => undefined)
              reject(error)
            }
          })
        }
      )
    )
    if (callback === undefined) return promise
    promise.catch(() => undefined)
    return undefined
  }
  pool.connect = connect as typeof pool.connect

  return pool
})
