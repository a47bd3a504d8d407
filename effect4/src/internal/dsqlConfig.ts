/**
 * The Effect 4 face of the shared configuration rules (`Settings` in @effect-dsql/core): Effect's durations in,
 * `Config.ConfigError`s, `Duration`s and `Option`s out. Defaults, validation and messages live in the core, once.
 *
 * @internal
 */
import { Endpoint, Settings } from "@effect-dsql/core"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Record from "effect/Record"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"
import type { DsqlConfig, Options } from "../DsqlConfig.js"
import { version } from "./version.js"

/** `Duration.format` may throw on durations too large to split into parts. */
const formatDuration = Option.liftThrowable(Duration.format)

const line: Settings.Line = {
  driverName: `effect-dsql/${version}`,
  durationMillis: (value) =>
    Option.getOrUndefined(Option.map(Duration.fromInput(value as Duration.Input), Duration.toMillis)),
  showDuration: (value) =>
    Duration.isDuration(value)
      ? Option.getOrElse(formatDuration(value), () => `${Duration.toMillis(value)} millis`)
      : undefined
}

/** @internal */
export const isClusterId = Endpoint.isClusterId

/** @internal */
export const regionFromEndpoint = (host: string): Option.Option<string> =>
  Option.fromNullishOr(Endpoint.regionFromEndpoint(host))

/** An issue at its key, without the input: a refused connection string may hold a password. */
const schemaIssue = ({ kind, message, path }: Settings.Issue): SchemaIssue.Issue =>
  new SchemaIssue.Pointer(
    path,
    kind === "Missing"
      ? new SchemaIssue.MissingKey({ messageMissingKey: message })
      : new SchemaIssue.InvalidValue({ message })
  )

/** Every issue kept: one, or all of them side by side. */
const configError = (issues: readonly [Settings.Issue, ...Array<Settings.Issue>]): Config.ConfigError =>
  new Config.ConfigError(
    new Schema.SchemaError(
      issues.length === 1
        ? schemaIssue(issues[0])
        : new SchemaIssue.Composite(Schema.Unknown.ast, [schemaIssue(issues[0]), ...issues.slice(1).map(schemaIssue)])
    )
  )

const toConfig = (settings: Settings.Settings): DsqlConfig => ({
  ...settings,
  clusterId: Option.fromUndefinedOr(settings.clusterId),
  profile: Option.fromUndefinedOr(settings.profile),
  tokenDuration: Duration.millis(settings.tokenDuration),
  maxConnectionLifetime: Duration.millis(settings.maxConnectionLifetime),
  idleTimeout: Duration.millis(settings.idleTimeout),
  connectTimeout: Duration.millis(settings.connectTimeout),
  hostAddress: Option.fromUndefinedOr(settings.hostAddress),
  caPem: Option.fromUndefinedOr(settings.caPem)
})

const fromResult = (result: Settings.Result<Settings.Settings>): Effect.Effect<DsqlConfig, Config.ConfigError> =>
  result._tag === "Success" ? Effect.succeed(toConfig(result.value)) : Effect.fail(configError(result.issues))

/** @internal */
export const fromOptions = (
  options: Options,
  fallbackRegion: Option.Option<string>
): Effect.Effect<DsqlConfig, Config.ConfigError> =>
  fromResult(Settings.fromOptions(options, Option.getOrUndefined(fallbackRegion), line))

const variable = (name: string) => Config.map(Config.option(Config.String(name)), Option.getOrUndefined)

const awsVariables = Config.all({
  AWS_REGION: variable("AWS_REGION"),
  AWS_DEFAULT_REGION: variable("AWS_DEFAULT_REGION")
})

/** @internal */
export const awsRegion: Config.Config<Option.Option<string>> = Config.map(
  awsVariables,
  (env) => Option.fromUndefinedOr(Settings.awsRegion(env))
)

/** @internal */
export const config: Config.Config<DsqlConfig> = Config.all({
  dsql: Config.nested(Config.all(Record.map(Settings.envNames, variable)), Settings.envPrefix),
  aws: awsVariables
}).pipe(Config.mapEffect(({ aws, dsql }) => fromResult(Settings.fromEnv({ dsql, ...aws }, line))))
