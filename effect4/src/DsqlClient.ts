/**
 * `SqlClient` and `PgClient` for Aurora DSQL on @effect/sql-pg 4's native driver: a fresh IAM token for every new
 * physical connection, verify-full TLS with SNI, direct TLS (ALPN `postgresql`) by default, connections recycled
 * before DSQL's one-hour limit with a jitter that only shortens their life, back-off on DSQL's connection limits,
 * DSQL's own message and SQLSTATE in every `SqlError`, and transactions that behave on DSQL (a failed COMMIT, or one
 * the server answered with `ROLLBACK`, is a typed failure; a nested transaction joins its own client's outer one
 * instead of opening a savepoint, which DSQL refuses).
 *
 * @since 2.0.0
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Reactivity from "effect/reactivity/Reactivity"
import type * as Scope from "effect/Scope"
import type * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import * as DsqlConfig from "./DsqlConfig.js"
import * as internal from "./internal/client.js"
import * as TokenSigner from "./TokenSigner.js"

/**
 * @effect/sql-pg's options for how rows and names are transformed and values parsed, passed to the client as they
 * are: `transformResultNames` (e.g. `String.snakeToCamel`), `transformQueryNames`, `transformJson` and `types`.
 * Functions, so options beside the config rather than part of it.
 *
 * @since 2.0.0
 * @category models
 */
export type ClientOptions = internal.ClientOptions

/**
 * The client, as both services.
 *
 * @since 2.0.0
 * @category models
 */
export type Client = PgClient.PgClient & SqlClient.SqlClient

/**
 * Opens a DSQL client from a normalised config, signing with the `TokenSigner` in context: builds the pool, opens one
 * connection within the connect timeout (TLS, the IAM token and the server's acceptance checked; the connection then
 * stays in the pool for the first statement), and ends the pool when the scope closes. Connection failures, statement
 * failures and COMMIT failures are `SqlError`s whose message carries DSQL's own text and SQLSTATE (also in
 * `reason.cause.code`).
 *
 * @since 2.0.0
 * @category constructors
 */
export const make: (
  config: DsqlConfig.DsqlConfig,
  options?: ClientOptions
) => Effect.Effect<Client, SqlError, Scope.Scope | Reactivity.Reactivity | TokenSigner.TokenSigner> = Effect.fn(
  "DsqlClient.make"
)(function*(config: DsqlConfig.DsqlConfig, options?: ClientOptions) {
  return yield* internal.make(config, options)
})

type Services = PgClient.PgClient | SqlClient.SqlClient

const signerFor = (config: DsqlConfig.DsqlConfig) =>
  TokenSigner.layerFromChain({ profile: Option.getOrUndefined(config.profile) })

/**
 * Runs `effect` with the `TokenSigner` in context when one was provided (a layer provided once is shared by
 * everything under it), otherwise with a default-chain signer of its own, built in the current scope.
 */
const withSigner = <A, E, R>(
  config: DsqlConfig.DsqlConfig,
  effect: Effect.Effect<A, E, R | TokenSigner.TokenSigner>
): Effect.Effect<A, E, Exclude<R, TokenSigner.TokenSigner> | Scope.Scope> =>
  Effect.flatMap(Effect.serviceOption(TokenSigner.TokenSigner), (provided) =>
    Option.isSome(provided)
      ? Effect.provideService(effect, TokenSigner.TokenSigner, provided.value)
      : Effect.flatMap(Layer.build(signerFor(config)), (signer) => Effect.provide(effect, signer)))

const fromConfig = (
  config: Effect.Effect<DsqlConfig.DsqlConfig, Config.ConfigError>,
  options?: ClientOptions
): Layer.Layer<Services, Config.ConfigError | SqlError> =>
  PgClient.layerFrom(Effect.flatMap(config, (resolved) => withSigner(resolved, make(resolved, options))))

const fromEnvironment: Effect.Effect<DsqlConfig.DsqlConfig, Config.ConfigError> = Effect.gen(function*() {
  return yield* DsqlConfig.config
})

/**
 * Options for `layerConfig`: each field a plain value or a `Config` of it.
 *
 * @since 2.0.0
 * @category models
 */
export type ConfigInput = {
  readonly [K in keyof DsqlConfig.Options]: DsqlConfig.Options[K] | Config.Config<DsqlConfig.Options[K]>
}

/** Resolves each field that is a `Config`, then normalises, the region falling back to `AWS_REGION`. */
const resolveInput = (input: ConfigInput) =>
  Effect.gen(function*() {
    const fields: Record<string, Config.Config<unknown>> = {}
    // `?? {}`: callers without types may pass nothing at all, which must fail typed like a missing host
    for (const [key, value] of Object.entries(input ?? {})) {
      fields[key] = Config.isConfig(value) ? value : Config.succeed(value)
    }
    const options = (yield* Config.all(fields)) as DsqlConfig.Options
    return yield* DsqlConfig.make(options, yield* DsqlConfig.awsRegion)
  })

const resolveUrl = (url: string, overrides?: Omit<DsqlConfig.Options, "url" | "host">) =>
  Effect.gen(function*() {
    return yield* DsqlConfig.fromUrl(url, overrides, yield* DsqlConfig.awsRegion)
  })

/**
 * The client configured from the environment (`DSQL_HOST` or `DSQL_URL`, … — see `DsqlConfig.config`), with
 * credentials from the default AWS chain or `DSQL_PROFILE`. Provides `SqlClient` and `PgClient`. Every layer of this
 * module signs with the `TokenSigner` it is given when one is provided to it (`TokenSigner.layerStatic`,
 * `layerFromProvider`, a chain shared by several clients), and otherwise with a default-chain signer of its own.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SqlClient } from "effect/sql"
 * import { DsqlClient } from "effect-dsql"
 *
 * const program = Effect.gen(function*() {
 *   const sql = yield* SqlClient.SqlClient
 *   return yield* sql`SELECT 'Hello, DSQL!' AS greeting`
 * })
 *
 * program.pipe(Effect.provide(DsqlClient.layer))
 * ```
 *
 * @since 2.0.0
 * @category layers
 */
export const layer: Layer.Layer<Services, Config.ConfigError | SqlError> = fromConfig(fromEnvironment)

/**
 * The client from explicit options, each a plain value or a `Config`, and @effect/sql-pg's `ClientOptions`.
 *
 * @example
 * ```ts
 * import { Config, String } from "effect"
 * import { DsqlClient } from "effect-dsql"
 *
 * const Live = DsqlClient.layerConfig(
 *   { host: Config.String("CLUSTER_ENDPOINT"), maxConnections: 20 },
 *   { transformResultNames: String.snakeToCamel }
 * )
 * ```
 *
 * @since 2.0.0
 * @category layers
 */
export const layerConfig = (
  input: ConfigInput,
  options?: ClientOptions
): Layer.Layer<Services, Config.ConfigError | SqlError> => fromConfig(resolveInput(input), options)

/**
 * The client from a connection string: `dsql://admin@<cluster>.dsql.us-east-1.on.aws/postgres`,
 * `postgres://…?region=…&profile=…&tokenDurationSecs=…`.
 *
 * @since 2.0.0
 * @category layers
 */
export const layerFromUrl = (
  url: string,
  overrides?: Omit<DsqlConfig.Options, "url" | "host">,
  options?: ClientOptions
): Layer.Layer<Services, Config.ConfigError | SqlError> => fromConfig(resolveUrl(url, overrides), options)

/**
 * Options for `connect`: those of `layerConfig` but the pool sizes.
 *
 * @since 2.0.0
 * @category models
 */
export type ConnectInput = Omit<ConfigInput, "maxConnections" | "minConnections">

const oneConnection = (input: ConnectInput) =>
  Effect.map(
    resolveInput(input),
    (config): DsqlConfig.DsqlConfig => ({ ...config, maxConnections: 1, minConnections: 1 })
  )

/**
 * One connection for scripts, with the same token and TLS rules as the pool, closed when the scope closes and
 * replaced transparently when it reaches its lifetime. Signs with the `TokenSigner` in context when there is one (so
 * connecting per request reuses one credential cache), otherwise with the default AWS chain or the configured
 * profile.
 *
 * @example
 * ```ts
 * import { Config, Effect } from "effect"
 * import { DsqlClient } from "effect-dsql"
 *
 * const program = Effect.gen(function*() {
 *   const sql = yield* DsqlClient.connect({ host: Config.String("DSQL_HOST") })
 *   return yield* sql`SELECT now()`
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 2.0.0
 * @category constructors
 */
export const connect = (
  input: ConnectInput,
  options?: ClientOptions
): Effect.Effect<Client, Config.ConfigError | SqlError, Scope.Scope> =>
  Effect.flatMap(
    oneConnection(input),
    (config) => withSigner(config, make(config, options)).pipe(Effect.provide(Reactivity.layer))
  )
