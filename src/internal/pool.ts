/**
 * Builds the node-postgres pool behind `DsqlClient`: a fresh IAM token for every new physical connection,
 * verify-full TLS with SNI, direct TLS negotiation, a jittered connection lifetime and back-off on DSQL's
 * connection limits.
 *
 * It relies on pg-pool internals (declared as a dependency): `options.max` read at each checkout, `maxLifetimeSeconds`
 * read per new connection, `connect` replaceable and used by `query`, the `connect` / `remove` events, the text of its
 * queue timeout. A test in test/DsqlClient.test.ts fails by name when one of them changes.
 *
 * @internal
 */
import { Backoff, Diagnostics, SqlState, Tls as CoreTls } from "@effect-dsql/core"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as Tracer from "effect/Tracer"
import * as Net from "node:net"
import type { Duplex } from "node:stream"
import type * as Tls from "node:tls"
import * as Pg from "pg"
import type { DsqlConfig } from "../DsqlConfig.js"
import type * as TokenSigner from "../TokenSigner.js"
import { backoff, curve } from "./backoff.js"
import * as DsqlMetrics from "./metrics.js"

/** True for DSQL's "too many open connections" (53300) and "rate exceeded" (53400) refusals. */
export const isConnectionLimitError = (error: unknown): boolean =>
  typeof error === "object" && error !== null && SqlState.isConnectionLimit((error as { code?: unknown }).code)

/** pg-pool's own failure of a checkout that waited in its queue for `connectionTimeoutMillis`. */
export const isQueueTimeout = (error: Error): boolean => error.message === "timeout exceeded when trying to connect"

/**
 * Back-off for new-connection attempts refused by DSQL's limits: exponential from 20 ms, each delay capped at 1 s and
 * then cut by up to half at random, no retry starting later than `budget` after the first refusal.
 */
export const connectRetrySchedule = (budget: Duration.DurationInput) =>
  backoff({ ...curve(Backoff.connectRetry), maxElapsed: budget })

/**
 * Delay before TCP keep-alive probes an idle connection. PrivateLink endpoints and NLBs drop a flow idle for 350 s
 * without telling either end; a probe every minute keeps the flow alive and finds a dead peer long before that.
 */
export const keepAliveInitialDelay = Duration.seconds(60)

/**
 * How long a pool refused for DSQL's limits stays at the size it had: its waiting requests queue for a released
 * connection, as in a full pool, instead of each asking the server again for a new one.
 */
const holdAfterRefusalMillis = 1_000

/** Share of the configured lifetime cut at random per connection, so a pool's connections don't all expire at once. */
const lifetimeJitter = 0.1

/** Given to pg-pool with a connection whose session ended, so that pg-pool closes it instead of pooling it again. */
const sessionEnded = new Error("the server ended this connection's session")

/** TLS options for verify-full against the DSQL host name, with one secure context per process and extra CA. */
export const tlsOptions = (config: DsqlConfig): Tls.ConnectionOptions =>
  CoreTls.verifyFull(config.host, Option.getOrUndefined(config.caPem))

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

/** Options of @effect/sql-pg's `PgClient` that go to the driver rather than the statement compiler. */
export interface DriverOptions {
  readonly types?: Pg.CustomTypesConfig | undefined
}

/** The span of the fiber running now, if any: a checkout runs synchronously on the fiber that asked for it. */
const currentSpan = (): Tracer.AnySpan | undefined => {
  const fiber = Fiber.getCurrentFiber()
  return fiber._tag === "Some" ? fiber.value.currentSpan : undefined
}

/**
 * Creates the pg pool, whose connections sign their tokens with `signer`. Token signing and connect retries run on the
 * caller's runtime, so its metrics apply to them, but without the caller's span: they are children of the span of the
 * checkout that opened the connection there and then, or roots (a checkout that queued first, a pool refilling
 * itself), never of the span that built the pool.
 */
export const makePool = Effect.fnUntraced(function*(
  config: DsqlConfig,
  signer: TokenSigner.Service,
  driverOptions: DriverOptions = {}
) {
  // Interruptible whatever the flags of the fiber that built the pool (a layer is built uninterruptibly): a connect
  // retry's deadline must be able to interrupt the attempt it is waiting for.
  const runtime = Runtime.updateContext(yield* Effect.runtime<never>(), Context.omit(Tracer.ParentSpan)).pipe(
    Runtime.enableRuntimeFlag(RuntimeFlags.Interruption)
  )
  const runPromiseExit = Runtime.runPromiseExit(runtime)
  const runFork = Runtime.runFork(runtime)
  const withSpan = (span: Tracer.AnySpan | undefined) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    span === undefined ? effect : Effect.withParentSpan(effect, span)

  // pg calls this for every new physical connection. A failure goes to pg as a plain Error naming the cause: pg-pool
  // calls `Error.captureStackTrace` on connection errors, which throws on errors that passed through the fiber
  // runtime, and a FiberFailure would hide which step failed.
  const password = (span: Tracer.AnySpan | undefined) => () =>
    runPromiseExit(
      withSpan(span)(signer.sign({
        hostname: config.host,
        region: config.region,
        user: config.user,
        expiresIn: config.tokenDuration,
        profile: Option.getOrUndefined(config.profile)
      }))
    ).then(Exit.match({
      onSuccess: Redacted.value,
      onFailure: (cause) => {
        const failure = Cause.failureOption(cause)
        throw Option.isSome(failure)
          ? new Error(`could not sign an IAM token: ${failure.value.message}`, { cause: failure.value })
          : new Error("signing an IAM token was interrupted")
      }
    }))

  // The span of the checkout being served right now; pg-pool constructs a new client synchronously inside the
  // checkout that needs it, so the client's token is signed under that checkout's span.
  let checkoutSpan: Tracer.AnySpan | undefined
  class Client extends GuardedClient {
    /**
     * The server ended the session with a FATAL error. pg hands a FATAL that answers a statement to that statement
     * only and leaves the client queryable, so pg-pool would pool it again until the socket's end arrives; a
     * statement sent on it meanwhile fails (measured: 80 statements after a warm pool's 10 sessions were terminated, 16
     * failed, 8 of them sent after their connection's FATAL had arrived).
     */
    sessionEnded = false
    constructor(clientConfig?: Pg.ClientConfig) {
      super({ ...clientConfig, password: password(checkoutSpan) })
      this.connection.on("errorMessage", (message: { readonly severity?: string }) => {
        if (message.severity === "FATAL") this.sessionEnded = true
      })
    }
  }

  const lifetimeSeconds = Duration.toSeconds(config.maxConnectionLifetime)
  const pool = new Pg.Pool({
    host: config.host,
    port: config.port,
    user: config.user,
    database: config.database,
    ssl: tlsOptions(config),
    sslnegotiation: config.sslNegotiation,
    ...Option.match(config.hostAddress, { onNone: () => ({}), onSome: (address) => ({ stream: dialing(address) }) }),
    application_name: config.applicationName,
    max: config.maxConnections,
    min: config.minConnections,
    idleTimeoutMillis: Duration.toMillis(config.idleTimeout),
    connectionTimeoutMillis: Duration.toMillis(config.connectTimeout),
    keepAlive: true,
    keepAliveInitialDelayMillis: Duration.toMillis(keepAliveInitialDelay),
    ...(driverOptions.types === undefined ? {} : { types: driverOptions.types }),
    Client
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
    runFork(Effect.logDebug("DsqlClient: idle connection closed", error.message))
  })
  pool.on("connect", () => {
    runFork(Metric.increment(DsqlMetrics.connectionsOpened))
  })

  const poolConnect = pool.connect.bind(pool) as (callback: ConnectCallback) => void
  /**
   * One checkout from pg-pool. A connection whose session the server already ended is dropped and the checkout
   * made again: nothing was sent on it, so the statement waiting for it goes to a live connection instead.
   */
  const connectOnce = (span: Tracer.AnySpan | undefined, callback: ConnectCallback): void => {
    checkoutSpan = span
    try {
      poolConnect((error, client, release) => {
        if (client instanceof Client && client.sessionEnded) {
          release(sessionEnded)
          connectOnce(span, callback)
        } else {
          callback(error, client, release)
        }
      })
    } finally {
      checkoutSpan = undefined
    }
  }

  // pg-pool opens a new connection for every request that finds no idle one until `max` is reached, so under a
  // refusal each waiting request would be handed to yet another refused attempt while the connections the pool has
  // are released to nobody. Holding `max` at the established connections makes requests queue for those instead.
  // When the hold expires, requests still queued get new connections opened for them, each handed to the queue as
  // soon as it is up: pg-pool itself only opens one for a new request, so a pool whose requests all arrived at once
  // would otherwise stay at its held size and serve its whole queue on those connections, however long that takes.
  let established = 0
  pool.on("connect", () => established++)
  pool.on("remove", () => established--)
  let heldUntil: number | undefined
  let holdTimer: ReturnType<typeof setTimeout> | undefined
  const holdAtEstablishedSize = () => {
    pool.options.max = Math.max(1, Math.min(config.maxConnections, established))
    heldUntil = Date.now() + holdAfterRefusalMillis
    holdTimer ??= setTimeout(endHold, holdAfterRefusalMillis).unref()
  }
  const endHold = () => {
    holdTimer = undefined
    if (heldUntil === undefined) return
    const left = heldUntil - Date.now()
    if (left > 0) {
      holdTimer = setTimeout(endHold, left).unref()
      return
    }
    pool.options.max = config.maxConnections
    heldUntil = undefined
    const room = Math.min(pool.waitingCount, config.maxConnections - pool.totalCount)
    for (let index = 0; index < room; index++) {
      connectOnce(undefined, (error, client, release) => {
        if (!error && client !== undefined) return release()
        if (!error || !isConnectionLimitError(error)) return
        // Refused again: tried anew when this hold ends, a retry like those of requests refused themselves.
        holdAtEstablishedSize()
        runFork(Metric.increment(DsqlMetrics.connectRetries))
      })
    }
  }

  const connectTimeoutMillis = Duration.toMillis(config.connectTimeout)

  /**
   * After DSQL refused a new connection (53300/53400): back off and try again until `connectTimeout` after the
   * checkout began, the attempts included. pg's own error object goes back to pg untouched: errors that passed
   * through the fiber runtime may come out wrapped, and pg-pool calls `Error.captureStackTrace` on what it is given.
   */
  const retryAfterRefusal = (
    refusal: Error,
    startedAt: number,
    span: Tracer.AnySpan | undefined,
    deliver: ConnectCallback
  ) => {
    let lastError = refusal
    let attempts = 0
    const budget = Duration.millis(Math.max(0, connectTimeoutMillis - (Date.now() - startedAt)))
    const connectAgain = Effect.async<readonly [Pg.PoolClient, (err?: Error) => void], Error>((resume) => {
      let abandoned = false
      connectOnce(span, (error, client, release) => {
        if (abandoned) {
          if (client !== undefined) release()
        } else if (error || client === undefined) {
          lastError = error || new Error("pg returned no client")
          resume(Effect.fail(lastError))
        } else {
          resume(Effect.succeed([client, release] as const))
        }
      })
      return Effect.sync(() => {
        abandoned = true
      })
    })
    // The refusal that brought us here is the first attempt; only the attempts after it count as retries.
    const attempt = Effect.suspend(() =>
      attempts++ === 0
        ? Effect.fail(refusal)
        : Effect.zipRight(Metric.increment(DsqlMetrics.connectRetries), connectAgain)
    )
    runFork(
      attempt.pipe(
        Effect.tapError((error) => isConnectionLimitError(error) ? Effect.sync(holdAtEstablishedSize) : Effect.void),
        Effect.retry({ schedule: connectRetrySchedule(budget), while: isConnectionLimitError }),
        Effect.timeoutOption(budget),
        withSpan(span)
      )
    ).addObserver(Exit.match({
      onSuccess: Option.match({
        onNone: () => deliver(lastError, undefined, () => undefined),
        onSome: ([client, release]) => deliver(undefined, client, release)
      }),
      onFailure: () => deliver(lastError, undefined, () => undefined)
    }))
  }

  /** A failed checkout as the caller gets it: pg-pool's queue timeout in words that say why, any other error as it is. */
  const described = (error: Error | undefined): Error | undefined =>
    error && isQueueTimeout(error)
      ? new Error(Diagnostics.checkoutTimedOut(Duration.format(config.connectTimeout), config.maxConnections), {
        cause: error
      })
      : error

  // Checkouts go straight to pg-pool; only a refusal for DSQL's limits enters the (slower) retry path. With a
  // callback (as @effect/sql-pg checks out for every statement) no promise is made: it would be garbage per query.
  function connect(): Promise<Pg.PoolClient>
  function connect(callback: ConnectCallback): undefined
  function connect(callback?: ConnectCallback): Promise<Pg.PoolClient> | undefined {
    if (callback === undefined) {
      return new Promise((resolve, reject) =>
        connect((error, client) => {
          if (error || client === undefined) reject(error || new Error("pg returned no client"))
          else resolve(client)
        })
      )
    }
    const startedAt = Date.now()
    const span = currentSpan()
    // a successful checkout, the common case, allocates nothing more; a failed one is described on its way out
    connectOnce(span, (error, client, release) =>
      !error
        ? callback(error, client, release)
        : isConnectionLimitError(error)
        ? retryAfterRefusal(error, startedAt, span, (last, retried, done) => callback(described(last), retried, done))
        : callback(described(error), client, release))
    return undefined
  }
  pool.connect = connect as typeof pool.connect

  return pool
})
