/**
 * The `PgClient` behind `DsqlClient`, on @effect/sql-pg 4's own pool and connections: a fresh IAM token per physical
 * connection (the pool's `password` Effect), verify-full TLS with SNI, direct TLS (ALPN `postgresql`) through a
 * `stream` or the classic SSLRequest, a per-connection lifetime jittered down from the configured one, back-off on
 * DSQL's connection limits, DSQL's own words in every `SqlError`, and transactions without savepoints.
 *
 * @internal
 */
import { Backoff, Diagnostics, SqlState, Tls as CoreTls } from "@effect-dsql/core"
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as PgConnection from "@effect/sql-pg/PgConnection"
import * as PgPool from "@effect/sql-pg/PgPool"
import type * as PgTypes from "@effect/sql-pg/PgTypes"
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import type * as Reactivity from "effect/reactivity/Reactivity"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import type * as SqlConnection from "effect/sql/SqlConnection"
import { AuthenticationError, ConnectionError, SqlError } from "effect/sql/SqlError"
import * as Statement from "effect/sql/Statement"
import * as Stream from "effect/Stream"
import * as Net from "node:net"
import * as Tls from "node:tls"
import type { DsqlConfig } from "../DsqlConfig.js"
import { TokenSigner } from "../TokenSigner.js"
import { sqlStateOf, withDsqlMessage } from "./errors.js"
import * as Metrics from "./metrics.js"
import * as Transaction from "./transaction.js"

/**
 * What a client needs, normalised: `DsqlConfig` but the profile, which only chooses the `TokenSigner`.
 *
 * @internal
 */
export type ClientConfig = Omit<DsqlConfig, "profile">

/**
 * @effect/sql-pg's options for names, JSON and types, passed on as they are.
 *
 * @internal
 */
export type ClientOptions = Pick<
  PgClient.PgClientConfig,
  "transformResultNames" | "transformQueryNames" | "transformJson" | "types"
>

/**
 * Delay before TCP keep-alive probes an idle connection. PrivateLink endpoints and NLBs drop a flow idle for 350 s
 * without telling either end; a probe every minute keeps the flow alive.
 */
const keepAlive = Duration.seconds(60)

/** Share of the configured lifetime cut at random per connection, so a pool's connections don't all expire at once. */
export const lifetimeJitter = 0.1

/** A connection's lifetime: the configured one, shortened by up to `lifetimeJitter` of it, never lengthened. */
export const jitteredLifetimeMillis = (lifetimeMillis: number, random: number): number =>
  Backoff.jitteredMillis(lifetimeMillis, lifetimeJitter, random)

const isConnectionLimitError = (error: SqlError): boolean => SqlState.isConnectionLimit(sqlStateOf(error))

/** sql-pg 4's pool's own failure of a checkout that waited its `acquireTimeout`, the only one it names so. */
const isAcquireTimeout = (error: SqlError): boolean =>
  error.reason._tag === "ConnectionError" && error.reason.operation === "acquireConnection"

/** Back-off before retry `retry` (0, 1, …) after a refusal for DSQL's limits, `random` in [0, 1). */
export const connectRetryDelayMillis = (retry: number, random: number): number =>
  Backoff.jitteredMillis(Backoff.cappedDelayMillis(Backoff.connectRetry, retry), Backoff.connectRetry.jitter, random)

/**
 * The transport: direct TLS with ALPN `postgresql` opened by us (`ssl: false` tells sql-pg not to send an
 * SSLRequest on it), or, for the SSLRequest negotiation, a plain socket to `hostAddress` that sql-pg upgrades itself
 * (without `hostAddress` sql-pg dials `host` itself).
 */
const transport = (config: ClientConfig): Pick<PgPool.Config, "ssl" | "stream" | "keepAlive"> => {
  // verify-full against the DSQL host name, with one secure context per process and extra CA
  const tls = CoreTls.verifyFull(config.host, Option.getOrUndefined(config.caPem))
  const address = Option.getOrElse(config.hostAddress, () => config.host)
  const socketOptions = {
    host: address,
    port: config.port,
    noDelay: true,
    keepAlive: true,
    keepAliveInitialDelay: Duration.toMillis(keepAlive)
  }
  if (config.sslNegotiation === "direct") {
    return { ssl: false, stream: () => Tls.connect({ ...socketOptions, ...tls, ALPNProtocols: ["postgresql"] }) }
  }
  return Option.isSome(config.hostAddress)
    ? { ssl: tls, stream: () => Net.connect(socketOptions) }
    : { ssl: tls, keepAlive }
}

/** A connection whose every failure carries DSQL's message and SQLSTATE. */
class DsqlConnection implements SqlConnection.Connection {
  readonly connection: PgConnection.PgConnection
  constructor(connection: PgConnection.PgConnection) {
    this.connection = connection
  }
  private rows(sql: string, params: ReadonlyArray<unknown>, prepare: boolean) {
    return Effect.map(this.connection.query(sql, params, prepare), (result) => result.rows)
  }
  execute(sql: string, params: ReadonlyArray<unknown>, transformRows: Transform | undefined) {
    return withMessage(mapRows(this.rows(sql, params, true), transformRows))
  }
  executeRaw(sql: string, params: ReadonlyArray<unknown>) {
    return withMessage(this.connection.query(sql, params))
  }
  executeValues(sql: string, params: ReadonlyArray<unknown>) {
    return withMessage(this.connection.queryValues(sql, params))
  }
  executeValuesUnprepared(sql: string, params: ReadonlyArray<unknown>) {
    return withMessage(this.connection.queryValues(sql, params, false))
  }
  executeUnprepared(sql: string, params: ReadonlyArray<unknown>, transformRows: Transform | undefined) {
    return withMessage(mapRows(this.rows(sql, params, false), transformRows))
  }
  executeStream(sql: string, params: ReadonlyArray<unknown>, transformRows: Transform | undefined) {
    const stream = Stream.mapError(this.connection.stream(sql, params), (error) => withDsqlMessage(error))
    return transformRows === undefined
      ? stream
      : Stream.mapArray(stream, (rows) => transformRows(rows) as typeof rows)
  }
}

type Transform = <A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>

const mapRows = <E>(rows: Effect.Effect<ReadonlyArray<any>, E>, transform: Transform | undefined) =>
  transform === undefined ? rows : Effect.map(rows, transform)

const withMessage = <A>(effect: Effect.Effect<A, SqlError>): Effect.Effect<A, SqlError> =>
  Effect.mapError(effect, (error) => withDsqlMessage(error))

/**
 * `effect` in a scope of its own, closed at once when it fails (a failed checkout gives back whatever it took), or
 * with the caller's scope when it succeeds.
 */
const inChildScope = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>): Effect.Effect<A, E, Scope.Scope> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(Effect.scope, (parent) =>
      Effect.flatMap(Scope.fork(parent), (scope) =>
        Effect.onError(
          restore(Scope.provide(effect, scope)),
          (cause) => Scope.close(scope, Exit.failCause(cause))
        )))
  )

/** A signing failure, which the pool's `password` Effect can only raise as a defect, as a typed `SqlError`. */
const signingFailed = (host: string, cause: unknown) =>
  new SqlError({
    reason: new AuthenticationError({
      cause,
      message: `DsqlClient: could not sign an IAM token for ${host}: ${
        cause instanceof Error ? cause.message : String(cause)
      }`,
      operation: "connect"
    })
  })

const TokenSignerErrorTag = "TokenSignerError"

const isTokenSignerError = (defect: unknown): boolean =>
  typeof defect === "object" && defect !== null && (defect as { _tag?: unknown })._tag === TokenSignerErrorTag

const PgJson = Statement.custom<PgClient.PgCustom>("PgJson")

/**
 * Builds the client: the pool, one connection opened within `connectTimeout` (TLS, the token and the server's
 * acceptance checked; the connection then stays in the pool), and the `PgClient` over them.
 *
 * @internal
 */
export const make = Effect.fnUntraced(function*(
  config: ClientConfig,
  options: ClientOptions = {}
): Effect.fn.Return<
  PgClient.PgClient & SqlClient.SqlClient,
  SqlError,
  Scope.Scope | Reactivity.Reactivity | TokenSigner
> {
  const signer = yield* TokenSigner
  const pool = yield* PgPool.make({
    host: config.host,
    port: config.port,
    username: config.user,
    database: config.database,
    // run for every physical connection: one token each
    password: Effect.orDie(
      Effect.map(
        signer.sign({
          hostname: config.host,
          region: config.region,
          user: config.user,
          expiresIn: config.tokenDuration
        }),
        (token) => Redacted.make(Redacted.value(token))
      ).pipe(Effect.tap(() => Metric.update(Metrics.tokensSigned, 1)))
    ),
    ...transport(config),
    connectTimeout: config.connectTimeout,
    applicationName: config.applicationName,
    types: options.types as PgTypes.Registry | undefined,
    maxConnections: config.maxConnections,
    minConnections: config.minConnections,
    idleTimeout: config.idleTimeout,
    // a checkout, waiting for a pooled connection included, is bounded as a connect is (pg-pool's
    // connectionTimeoutMillis in the Effect 3 line)
    acquireTimeout: config.connectTimeout,
    // the pool's own bound counts from the connect; the jittered one below counts from the first checkout
    connectionTTL: config.maxConnectionLifetime
  })

  const lifetimeMillis = Duration.toMillis(config.maxConnectionLifetime)
  const connectTimeoutMillis = Duration.toMillis(config.connectTimeout)
  const retireAt = new WeakMap<PgConnection.PgConnection, number>()

  /**
   * Past its jittered lifetime: its deadline is drawn at its first checkout, where the connection is also counted as
   * opened (the pool opens connections on its own fiber, with no hook of ours; one kept warm for `minConnections`
   * counts when it first serves).
   */
  const retired = (connection: PgConnection.PgConnection): Effect.Effect<boolean> =>
    Effect.clockWith((clock) => {
      const now = clock.currentTimeMillisUnsafe()
      const deadline = retireAt.get(connection)
      if (deadline !== undefined) return Effect.succeed(now >= deadline)
      return Effect.map(Random.next, (random) => {
        retireAt.set(connection, now + jitteredLifetimeMillis(lifetimeMillis, random))
        return false
      }).pipe(Effect.tap(() => Metric.update(Metrics.connectionsOpened, 1)))
    })

  const withoutRetired = (
    checkout: Effect.Effect<PgConnection.PgConnection, SqlError, Scope.Scope>
  ): Effect.Effect<PgConnection.PgConnection, SqlError, Scope.Scope> =>
    Effect.flatMap(checkout, (connection) =>
      Effect.flatMap(
        retired(connection),
        (isRetired) =>
          isRetired ? Effect.andThen(pool.invalidate(connection), withoutRetired(checkout)) : Effect.succeed(connection)
      ))

  /** sql-pg 4's pool found no connection within its `acquireTimeout`, in words that say why. */
  const checkoutTimedOut = (error: SqlError): SqlError =>
    new SqlError({
      reason: new ConnectionError({
        cause: error.reason.cause,
        operation: error.reason.operation,
        message: `DsqlClient: ${
          Diagnostics.checkoutTimedOut(Duration.format(config.connectTimeout), config.maxConnections)
        }`
      })
    })

  /** A failed checkout in DSQL's words; a signing failure, a defect of the pool's `password`, as a typed one. */
  const inDsqlWords = <A>(checkout: Effect.Effect<A, SqlError, Scope.Scope>): Effect.Effect<A, SqlError, Scope.Scope> =>
    checkout.pipe(
      Effect.mapError((error) =>
        isAcquireTimeout(error)
          ? checkoutTimedOut(error)
          : withDsqlMessage(error, `could not connect to ${config.host}`, config.hostInput)
      ),
      Effect.catchDefect((defect) =>
        isTokenSignerError(defect) ? Effect.fail(signingFailed(config.host, defect)) : Effect.die(defect)
      )
    )

  /**
   * `first`, then `attempt` again with back-off while DSQL refuses new connections for its limits (53300, 53400),
   * until `connectTimeout` after `startedAt`, the attempts included (one still opening then fails with the last
   * refusal); every failure in DSQL's words.
   */
  const retryConnect = (
    clock: Clock.Clock,
    startedAt: number,
    attempt: Effect.Effect<PgConnection.PgConnection, SqlError, Scope.Scope>,
    first: Effect.Effect<PgConnection.PgConnection, SqlError, Scope.Scope>
  ): Effect.Effect<PgConnection.PgConnection, SqlError, Scope.Scope> => {
    const loop = (
      retry: number,
      current: Effect.Effect<PgConnection.PgConnection, SqlError, Scope.Scope>
    ): Effect.Effect<PgConnection.PgConnection, SqlError, Scope.Scope> =>
      Effect.catchIf(inDsqlWords(current), isConnectionLimitError, (error) =>
        Effect.flatMap(Random.next, (random) => {
          const delay = connectRetryDelayMillis(retry, random)
          const elapsed = clock.currentTimeMillisUnsafe() - startedAt
          if (!Backoff.withinBudget(elapsed, delay, connectTimeoutMillis)) return Effect.fail(error)
          const bounded = Effect.timeoutOrElse(attempt, {
            duration: Duration.millis(connectTimeoutMillis - elapsed - delay),
            orElse: () => Effect.fail(error)
          })
          return Metric.update(Metrics.connectRetries, 1).pipe(
            Effect.andThen(Effect.sleep(Duration.millis(delay))),
            Effect.andThen(loop(retry + 1, bounded))
          )
        }))
    return loop(0, first)
  }

  /** A checkout in a scope of its own, tried again while DSQL refuses it for its limits (see `retryConnect`). */
  const withConnectRetry = (
    checkout: Effect.Effect<PgConnection.PgConnection, SqlError, Scope.Scope>
  ): Effect.Effect<PgConnection.PgConnection, SqlError, Scope.Scope> => {
    const attempt = inChildScope(checkout)
    return Effect.clockWith((clock) => retryConnect(clock, clock.currentTimeMillisUnsafe(), attempt, attempt))
  }

  const checkout = withoutRetired(pool.get)
  const get = withConnectRetry(checkout)
  // Pinned here rather than through `pool.reserve`: the pool's connection, not a pin's view made anew for each
  // reservation, is what a lifetime and the count of opened connections belong to. Without multiplexing a checkout
  // is already exclusive, so the pin never waits.
  const reserve = Effect.flatMap(get, (connection) => connection.pin)

  // One statement outside a transaction, in a scope of its own that holds its checkout: a first checkout that
  // succeeds, the common case, skips the child scope and the retry machinery, which only a failed one goes through.
  const borrower: SqlConnection.Borrower = (f) =>
    Effect.scoped(Effect.clockWith((clock) => {
      const startedAt = clock.currentTimeMillisUnsafe()
      return Effect.flatMap(
        Effect.catchCause(
          checkout,
          (cause) => retryConnect(clock, startedAt, inChildScope(checkout), Effect.failCause(cause))
        ),
        (connection) => f(new DsqlConnection(connection))
      )
    }))

  // The start-up check: one connection within the connect timeout, back in the pool for the first statement.
  yield* Effect.scoped(get).pipe(
    Effect.timeoutOrElse({
      duration: config.connectTimeout,
      orElse: () =>
        Effect.fail(
          new SqlError({
            reason: new ConnectionError({
              cause: new Error("connect timeout"),
              message: `DsqlClient: no connection to ${config.host} within ${Duration.format(config.connectTimeout)}`,
              operation: "connect"
            })
          })
        )
    })
  )

  const spanAttributes: Record<string, unknown> = {
    "server.address": config.host,
    "dsql.region": config.region,
    ...Option.match(config.clusterId, { onNone: () => ({}), onSome: (id) => ({ "dsql.cluster_id": id }) })
  }
  const clientSpanAttributes: ReadonlyArray<readonly [string, unknown]> = [
    ...Object.entries(spanAttributes),
    ["db.system.name", "postgresql"],
    ["db.namespace", config.database],
    ["server.port", config.port]
  ]
  const compiler = PgClient.makeCompiler(options.transformQueryNames, options.transformJson)
  const transactionConnection = Effect.map(reserve, (connection) => new DsqlConnection(connection))
  const client = yield* SqlClient.make({
    driver: "pg",
    acquirer: Effect.map(get, (connection) => new DsqlConnection(connection)),
    borrower,
    transactionAcquirer: transactionConnection,
    compiler,
    spanAttributes: clientSpanAttributes,
    transformRows: options.transformResultNames === undefined
      ? undefined
      : Statement.defaultTransforms(options.transformResultNames, options.transformJson).array
  })

  const withTransaction = Transaction.make({
    transactionService: client.transactionService,
    spanAttributes: clientSpanAttributes,
    reserve: transactionConnection,
    discard: (conn) => conn instanceof DsqlConnection ? pool.invalidate(conn.connection) : Effect.void,
    beginRetries: config.maxConnections
  })

  return Object.assign(client, {
    [PgClient.TypeId]: PgClient.TypeId,
    withTransaction,
    config: {
      host: config.host,
      port: config.port,
      username: config.user,
      database: config.database,
      applicationName: config.applicationName,
      spanAttributes,
      ...options
    },
    poolStats: pool.stats,
    json: (value: unknown) => Statement.fragment([PgJson(value, undefined, undefined)]),
    listen: (channel: string) =>
      Effect.flatMap(reserve, (connection) => Effect.mapError(connection.listen(channel), (e) => withDsqlMessage(e))),
    notify: (channel: string, payload: string) =>
      Effect.asVoid(Effect.scoped(
        Effect.flatMap(
          Effect.map(get, (connection) => new DsqlConnection(connection)),
          (conn) => conn.executeRaw("SELECT pg_notify($1, $2)", [channel, payload])
        )
      ))
  }) as PgClient.PgClient & SqlClient.SqlClient
})
