/**
 * The Effect 3 face of the shared configuration rules (`Settings` in @effect-dsql/core): Effect's durations in,
 * `ConfigError`s, `Duration`s and `Option`s out. Defaults, validation and messages live in the core, once.
 *
 * @internal
 */
import { Endpoint, Settings } from "@effect-dsql/core"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Record from "effect/Record"
import type { DsqlConfig, Options } from "../DsqlConfig.js"
import { version } from "./version.js"

type Result<A> = Either.Either<A, ConfigError.ConfigError>

/** `Duration.format` throws on durations too large for nanoseconds. */
const formatDuration = Option.liftThrowable(Duration.format)

const line: Settings.Line = {
  driverName: `effect-dsql/${version}`,
  durationMillis: (value) => Option.getOrUndefined(Option.map(Duration.decodeUnknown(value), Duration.toMillis)),
  showDuration: (value) =>
    Duration.isDuration(value)
      ? Option.getOrElse(formatDuration(value), () => `${Duration.toMillis(value)} millis`)
      : undefined
}

/** @internal */
export const isClusterId = Endpoint.isClusterId

/** @internal */
export const regionFromEndpoint = (host: string): Option.Option<string> =>
  Option.fromNullable(Endpoint.regionFromEndpoint(host))

/** This line has always named an environment variable as one key (`["DSQL_HOST"]`), so its segments are joined. */
const configError = ({ kind, message, path }: Settings.Issue): ConfigError.ConfigError =>
  kind === "Missing"
    ? ConfigError.MissingData([path.join("_")], message)
    : ConfigError.InvalidData([path.join("_")], message)

const toConfig = (settings: Settings.Settings): DsqlConfig => ({
  ...settings,
  clusterId: Option.fromNullable(settings.clusterId),
  profile: Option.fromNullable(settings.profile),
  tokenDuration: Duration.millis(settings.tokenDuration),
  maxConnectionLifetime: Duration.millis(settings.maxConnectionLifetime),
  idleTimeout: Duration.millis(settings.idleTimeout),
  connectTimeout: Duration.millis(settings.connectTimeout),
  hostAddress: Option.fromNullable(settings.hostAddress),
  caPem: Option.fromNullable(settings.caPem)
})

/** Every issue kept, joined with `ConfigError.And`. */
const fromResult = (result: Settings.Result<Settings.Settings>): Result<DsqlConfig> =>
  result._tag === "Success"
    ? Either.right(toConfig(result.value))
    : Either.left(result.issues.map(configError).reduce((all, error) => ConfigError.And(all, error)))

/** @internal */
export const fromOptions = (options: Options, fallbackRegion: Option.Option<string>): Result<DsqlConfig> =>
  fromResult(Settings.fromOptions(options, Option.getOrUndefined(fallbackRegion), line))

const envString = (name: string) => Config.map(Config.option(Config.string(name)), Option.getOrUndefined)

const awsVariables = Config.all({
  AWS_REGION: envString("AWS_REGION"),
  AWS_DEFAULT_REGION: envString("AWS_DEFAULT_REGION")
})

/** @internal */
export const awsRegion: Config.Config<Option.Option<string>> = Config.map(
  awsVariables,
  (env) => Option.fromNullable(Settings.awsRegion(env))
)

/** @internal */
export const config: Config.Config<DsqlConfig> = Config.all({
  dsql: Config.nested(Config.all(Record.map(Settings.envNames, envString)), Settings.envPrefix),
  aws: awsVariables
}).pipe(Config.mapOrFail(({ aws, dsql }) => fromResult(Settings.fromEnv({ dsql, ...aws }, line))))
