/**
 * Where and how to connect to an Aurora DSQL cluster, read from the environment, a connection string or an options
 * object. All three go through one normaliser (`Settings` in @effect-dsql/core, which the Effect 4 line uses too),
 * so they share defaults, validation and error messages; every bad input is a `ConfigError` naming the key to fix.
 *
 * @since 0.1.0
 */
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as internal from "./internal/dsqlConfig.js"

/**
 * A validated connection configuration. It holds no secrets: credentials come from the AWS provider chain and
 * tokens are signed per connection.
 *
 * @since 0.1.0
 * @category models
 */
export interface DsqlConfig {
  /** The endpoint host name, lowercased; a bare cluster id is expanded to `<id>.dsql.<region>.on.aws`. */
  readonly host: string
  /** The first label of a DSQL endpoint (`<id>.dsql….on.aws`) when it is a cluster id, or the bare id given. */
  readonly clusterId: Option.Option<string>
  /** The region tokens are signed for: explicit, else the endpoint's, else `AWS_REGION` / `AWS_DEFAULT_REGION`. */
  readonly region: string
  /** Database role, default `"admin"` (never the OS user). */
  readonly user: string
  /** Default `"postgres"`, DSQL's only database. */
  readonly database: string
  /** Default 5432. */
  readonly port: number
  /** AWS shared-config profile for credentials. */
  readonly profile: Option.Option<string>
  /** IAM token lifetime, whole seconds from 1 s to 7 days; default 15 minutes. */
  readonly tokenDuration: Duration.Duration
  /** Pool size, at least 1; default 10. */
  readonly maxConnections: number
  /** Connections kept open, at most `maxConnections`; default 0. */
  readonly minConnections: number
  /** Recycle age, under 60 minutes (DSQL closes connections at 60); default 55 minutes. */
  readonly maxConnectionLifetime: Duration.Duration
  /** Idle connections are closed after this; default 5 minutes, below the 350 s idle cut of PrivateLink and NLBs. */
  readonly idleTimeout: Duration.Duration
  /** Limit on opening one connection; default 10 seconds. */
  readonly connectTimeout: Duration.Duration
  /** `effect-dsql/<version>` or `<prefix>:effect-dsql/<version>`, printable ASCII, at most 63 characters. */
  readonly applicationName: string
  /** Like libpq's `hostaddr`: connect here while TLS SNI, the certificate check and the token use `host`. */
  readonly hostAddress: Option.Option<string>
  /** Extra trusted roots (PEM), on top of Node's defaults. */
  readonly caPem: Option.Option<string>
  /** `"direct"` (default): TLS first with ALPN `postgresql`; `"postgres"`: the classic SSLRequest. */
  readonly sslNegotiation: "direct" | "postgres"
  /**
   * The input the host was read from, as messages name it (`DSQL_HOST`, `the host in DSQL_URL`, `host`, `the host in
   * url`), so that a host not found points there; absent from a config built by hand.
   */
  readonly hostInput?: string | undefined
}

/**
 * Plain input for {@link make}: give `host` or `url` (not both); everything else is optional. Durations are Effect
 * `DurationInput`s, so a bare number means milliseconds.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** An endpoint (`<id>.dsql.<region>.on.aws`, or any host name such as `localhost`) or a 26-character cluster id. */
  readonly host?: string | undefined
  /** `postgres://`, `postgresql://` or `dsql://` `[user@]host[:port][/database][?region=&profile=&tokenDurationSecs=]`. */
  readonly url?: string | undefined
  readonly region?: string | undefined
  readonly user?: string | undefined
  readonly database?: string | undefined
  readonly port?: number | undefined
  readonly profile?: string | undefined
  readonly tokenDuration?: Duration.DurationInput | undefined
  readonly maxConnections?: number | undefined
  readonly minConnections?: number | undefined
  readonly maxConnectionLifetime?: Duration.DurationInput | undefined
  readonly idleTimeout?: Duration.DurationInput | undefined
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** A prefix for `application_name`, sent as `<prefix>:effect-dsql/<version>`. */
  readonly applicationName?: string | undefined
  readonly hostAddress?: string | undefined
  readonly caPem?: string | undefined
  readonly sslNegotiation?: "direct" | "postgres" | undefined
}

/**
 * Validates options and fills in defaults. `fallbackRegion` is used when neither `region` nor the endpoint names one.
 *
 * @example
 * ```ts
 * import { DsqlConfig } from "effect-dsql"
 *
 * const config = DsqlConfig.make({ host: "abcdefghijklmnopqrstuvwxyz", region: "us-east-1" })
 * // host: "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws"
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options,
  fallbackRegion: Option.Option<string> = Option.none()
): Effect.Effect<DsqlConfig, ConfigError.ConfigError> =>
  // `?? {}`: callers without types may pass nothing at all, which must fail typed like a missing host.
  Effect.suspend(() => internal.fromOptions(options ?? {}, fallbackRegion))

/**
 * Reads a connection string. A password in it is refused (DSQL authenticates with IAM tokens); values in
 * `overrides` beat the URL's.
 *
 * @example
 * ```ts
 * import { DsqlConfig } from "effect-dsql"
 *
 * const config = DsqlConfig.fromUrl("dsql://admin@abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws/postgres")
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromUrl = (
  url: string,
  overrides: Omit<Options, "url" | "host"> = {},
  fallbackRegion: Option.Option<string> = Option.none()
): Effect.Effect<DsqlConfig, ConfigError.ConfigError> => make({ ...overrides, url }, fallbackRegion)

/**
 * The region from the AWS SDK's usual variables, `AWS_REGION` then `AWS_DEFAULT_REGION`: the fallback `config` uses,
 * and that `make` / `fromUrl` take as `fallbackRegion`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const awsRegion: Config.Config<Option.Option<string>> = internal.awsRegion

/**
 * The configuration read from the `ConfigProvider` (the environment by default): `DSQL_HOST` or `DSQL_URL`, and
 * `DSQL_REGION`, `DSQL_USER`, `DSQL_DATABASE`, `DSQL_PORT`, `DSQL_PROFILE`, `DSQL_TOKEN_DURATION_SECS`,
 * `DSQL_MAX_CONNECTIONS`, `DSQL_MIN_CONNECTIONS`, `DSQL_MAX_CONNECTION_LIFETIME`, `DSQL_IDLE_TIMEOUT`,
 * `DSQL_CONNECT_TIMEOUT`, `DSQL_APPLICATION_NAME`, `DSQL_HOSTADDR`, `DSQL_CA_PEM`, `DSQL_SSL_NEGOTIATION`; the region
 * falls back to `AWS_REGION`, then `AWS_DEFAULT_REGION`. Durations are Effect duration strings (`"55 minutes"`) or
 * bare numbers of seconds. Variables set to the empty string count as unset; fields set next to `DSQL_URL` override
 * the URL's.
 *
 * @since 0.1.0
 * @category constructors
 */
export const config: Config.Config<DsqlConfig> = internal.config

/**
 * Whether a string is a DSQL cluster id: exactly 26 characters of `[a-z0-9]`.
 *
 * @since 0.1.0
 * @category utils
 */
export const isClusterId: (s: string) => boolean = internal.isClusterId

/**
 * The region in a DSQL endpoint (`<id>.dsql[suffix].<region>.on.aws`, lowercase), as every official connector reads it.
 *
 * @since 0.1.0
 * @category utils
 */
export const regionFromEndpoint: (host: string) => Option.Option<string> = internal.regionFromEndpoint
