/**
 * A scoped `SqlClient` for Aurora DSQL, built on @effect/sql-pg and node-postgres: a fresh IAM token for every new
 * physical connection, verify-full TLS, connections recycled before DSQL's one-hour limit, back-off on DSQL's
 * connection limits, and transactions that behave on DSQL (a failed COMMIT, or one the server answered with
 * `ROLLBACK`, is a typed failure; a nested transaction joins its own client's outer one instead of opening a
 * savepoint).
 *
 * @since 0.1.0
 */
import { Diagnostics } from "@effect-dsql/core"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as DsqlConfig from "./DsqlConfig.js"
import { makePool } from "./internal/pool.js"
import { makeWithTransaction } from "./internal/transaction.js"
import * as TokenSigner from "./TokenSigner.js"

/**
 * @effect/sql-pg's options for how rows and names are transformed and values parsed, passed to `PgClient` as they
 * are: `transformResultNames` (e.g. `String.snakeToCamel`), `transformQueryNames` (e.g. `String.camelToSnake`),
 * `transformJson` (apply the name transforms inside JSON values too; default true) and `types` (pg's custom type
 * parsers). Functions, so options beside the config rather than part of it.
 *
 * @since 0.1.0
 * @category models
 */
export type ClientOptions = Pick<
  PgClient.PgClientConfig,
  "transformResultNames" | "transformQueryNames" | "transformJson" | "types"
>

/**
 * Opens a DSQL client from a normalised config and @effect/sql-pg's `ClientOptions`: builds the pool, opens one
 * connection within the connect timeout (TLS, the IAM token and the server's acceptance checked; the connection then
 * stays in the pool for the first query), and ends the pool when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("DsqlClient.make")(function*(
  config: DsqlConfig.DsqlConfig,
  options: ClientOptions = {}
) {
  const signer = yield* TokenSigner.TokenSigner
  const pool = yield* Effect.acquireRelease(
    makePool(config, signer, { types: options.types }),
    (pool) => Effect.promise(() => pool.end()).pipe(Effect.interruptible, Effect.timeoutOption("5 seconds"))
  )
  yield* Effect.tryPromise({
    try: () => pool.connect().then((client) => client.release()),
    catch: (cause) =>
      new SqlError({
        cause,
        message: `DsqlClient: could not connect to ${config.host}: ${
          Diagnostics.describeError(cause, config.hostInput)
        }`
      })
  }).pipe(
    Effect.timeoutFail({
      duration: config.connectTimeout,
      onTimeout: () =>
        new SqlError({
          message: `DsqlClient: no connection to ${config.host} within ${Duration.format(config.connectTimeout)}`
        })
    })
  )
  const spanAttributes = {
    "db.system.name": "postgresql",
    "server.address": config.host,
    "dsql.region": config.region,
    ...Option.match(config.clusterId, { onNone: () => ({}), onSome: (id) => ({ "dsql.cluster_id": id }) })
  }
  const client = yield* PgClient.fromPool({
    acquire: Effect.succeed(pool),
    applicationName: config.applicationName,
    spanAttributes,
    transformResultNames: options.transformResultNames,
    transformQueryNames: options.transformQueryNames,
    transformJson: options.transformJson
  })
  return Object.assign(client, {
    withTransaction: makeWithTransaction(client.reserve, Object.entries(spanAttributes), config.maxConnections)
  }) as PgClient.PgClient
})

const toContext = (client: PgClient.PgClient) =>
  Context.make(PgClient.PgClient, client).pipe(Context.add(SqlClient.SqlClient, client))

/**
 * The `TokenSigner` in context, else a signer over the credential chain made for this client and released with it:
 * the profile of each token comes from the client's configuration either way.
 */
const withSigner = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, Exclude<R, TokenSigner.TokenSigner>> =>
  Effect.flatMap(
    Effect.serviceOption(TokenSigner.TokenSigner),
    (signer) =>
      Effect.provideServiceEffect(
        effect,
        TokenSigner.TokenSigner,
        Option.match(signer, { onNone: () => TokenSigner.makeChain(), onSome: Effect.succeed })
      )
  )

const fromConfig = (
  config: Effect.Effect<DsqlConfig.DsqlConfig, ConfigError.ConfigError>,
  options?: ClientOptions
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, ConfigError.ConfigError | SqlError> =>
  Layer.scopedContext(
    Effect.map(withSigner(Effect.flatMap(config, (resolved) => make(resolved, options))), toContext)
  ).pipe(Layer.provide(Reactivity.layer))

/**
 * Options for `layerConfig`: each field a plain value or a `Config` of it.
 *
 * @since 0.1.0
 * @category models
 */
export type ConfigInput = {
  readonly [K in keyof DsqlConfig.Options]: DsqlConfig.Options[K] | Config.Config<DsqlConfig.Options[K]>
}

/** Resolves each field that is a `Config`, then normalises, the region falling back to `AWS_REGION`. */
const resolveInput = (input: ConfigInput): Effect.Effect<DsqlConfig.DsqlConfig, ConfigError.ConfigError> => {
  // The fields as a tuple, not a record: `Config.all({})` throws (effect 3.22), and `{}` must fail typed like any
  // input without a host. `?? {}`: callers without types may pass nothing at all.
  const entries = Object.entries(input ?? {})
  return Effect.flatMap(
    Config.all([
      Config.all(entries.map(([, value]) => Config.isConfig(value) ? value : Config.succeed(value))),
      DsqlConfig.awsRegion
    ]),
    ([values, fallbackRegion]) =>
      DsqlConfig.make(
        Object.fromEntries(entries.map(([key], index) => [key, values[index]])) as DsqlConfig.Options,
        fallbackRegion
      )
  )
}

const resolveUrl = (url: string, overrides?: Omit<DsqlConfig.Options, "url" | "host">) =>
  Effect.flatMap(DsqlConfig.awsRegion, (fallbackRegion) => DsqlConfig.fromUrl(url, overrides, fallbackRegion))

/**
 * The client configured from the environment (`DsqlConfig.config`: `DSQL_HOST` or `DSQL_URL`, …). Provides
 * `SqlClient` and `PgClient`. Tokens are signed by the `TokenSigner` provided to the layer, if any
 * (`Layer.provide(TokenSigner.layerStatic(…))`), else by a `TokenSigner.layerFromChain` of the layer's own; either
 * way for the configured profile (`DSQL_PROFILE`).
 *
 * @example
 * ```ts
 * import { DsqlClient } from "effect-dsql"
 * import { SqlClient } from "@effect/sql"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const sql = yield* SqlClient.SqlClient
 *   return yield* sql`SELECT 'Hello, DSQL!' AS greeting`
 * })
 *
 * program.pipe(Effect.provide(DsqlClient.layer))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, ConfigError.ConfigError | SqlError> =
  fromConfig(DsqlConfig.config)

/**
 * `layer`, typed to require the `TokenSigner`.
 *
 * @deprecated `layer` signs with the `TokenSigner` provided to it: use `layer.pipe(Layer.provide(signer))`.
 * @since 0.1.0
 * @category layers
 */
export const layerWithSigner: Layer.Layer<
  PgClient.PgClient | SqlClient.SqlClient,
  ConfigError.ConfigError | SqlError,
  TokenSigner.TokenSigner
> = layer

/**
 * The client from explicit options, each a plain value or a `Config`, and @effect/sql-pg's `ClientOptions`; signs as
 * `layer` does.
 *
 * @example
 * ```ts
 * import { DsqlClient } from "effect-dsql"
 * import { Config, String } from "effect"
 *
 * const Live = DsqlClient.layerConfig(
 *   { host: Config.string("CLUSTER_ENDPOINT"), maxConnections: 20 },
 *   { transformResultNames: String.snakeToCamel }
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  input: ConfigInput,
  options?: ClientOptions
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, ConfigError.ConfigError | SqlError> =>
  fromConfig(resolveInput(input), options)

/**
 * `layerConfig`, typed to require the `TokenSigner`.
 *
 * @deprecated `layerConfig` signs with the `TokenSigner` provided to it: use `layerConfig(…).pipe(Layer.provide(…))`.
 * @since 0.1.0
 * @category layers
 */
export const layerConfigWithSigner: (
  input: ConfigInput,
  options?: ClientOptions
) => Layer.Layer<
  PgClient.PgClient | SqlClient.SqlClient,
  ConfigError.ConfigError | SqlError,
  TokenSigner.TokenSigner
> = layerConfig

/**
 * The client from a connection string: `dsql://admin@<cluster>.dsql.us-east-1.on.aws/postgres`,
 * `postgres://…?region=…&profile=…&tokenDurationSecs=…`, with `ClientOptions` as in `layerConfig`; signs as `layer`
 * does.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromUrl = (
  url: string,
  overrides?: Omit<DsqlConfig.Options, "url" | "host">,
  options?: ClientOptions
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, ConfigError.ConfigError | SqlError> =>
  fromConfig(resolveUrl(url, overrides), options)

/**
 * `layerFromUrl`, typed to require the `TokenSigner`.
 *
 * @deprecated `layerFromUrl` signs with the `TokenSigner` provided to it: use `layerFromUrl(…).pipe(Layer.provide(…))`.
 * @since 0.1.0
 * @category layers
 */
export const layerFromUrlWithSigner: (
  url: string,
  overrides?: Omit<DsqlConfig.Options, "url" | "host">,
  options?: ClientOptions
) => Layer.Layer<
  PgClient.PgClient | SqlClient.SqlClient,
  ConfigError.ConfigError | SqlError,
  TokenSigner.TokenSigner
> = layerFromUrl

/**
 * Options for `connect`: those of `layerConfig` but the pool sizes, each a plain value or a `Config`.
 *
 * @since 0.1.0
 * @category models
 */
export type ConnectInput = Omit<ConfigInput, "maxConnections" | "minConnections">

/**
 * One connection for scripts (the Go connector's `dsql.Connect`), with the same token and TLS rules as the pool and
 * `ClientOptions` as in `layerConfig`. Closed when the scope closes; replaced transparently when it reaches its
 * lifetime. Tokens are signed by the `TokenSigner` in context, if any, else by a credential chain made for this
 * connection: provide one signer (`TokenSigner.layer`) to code that connects per request, so that credentials are
 * resolved once, not once per connection.
 *
 * @example
 * ```ts
 * import { DsqlClient, TokenSigner } from "effect-dsql"
 * import { Config, Effect } from "effect"
 *
 * const perRequest = Effect.gen(function*() {
 *   const sql = yield* DsqlClient.connect({ host: Config.string("DSQL_HOST") })
 *   return yield* sql`SELECT now()`
 * }).pipe(Effect.scoped)
 *
 * const server = Effect.forEach([1, 2, 3], () => perRequest).pipe(Effect.provide(TokenSigner.layer))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect = (
  input: ConnectInput,
  options?: ClientOptions
): Effect.Effect<PgClient.PgClient, ConfigError.ConfigError | SqlError, Scope.Scope> =>
  resolveInput({ ...input, maxConnections: 1, minConnections: 1 }).pipe(
    Effect.flatMap((config) => make(config, options)),
    withSigner,
    Effect.provide(Reactivity.layer)
  )

/**
 * `connect`, typed to require the `TokenSigner`.
 *
 * @deprecated `connect` signs with the `TokenSigner` in context: use `connect`.
 * @since 0.1.0
 * @category constructors
 */
export const connectWithSigner: (
  input: ConnectInput,
  options?: ClientOptions
) => Effect.Effect<
  PgClient.PgClient,
  ConfigError.ConfigError | SqlError,
  Scope.Scope | TokenSigner.TokenSigner
> = connect
