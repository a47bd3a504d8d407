/**
 * The one normaliser behind every way of configuring effect-dsql (environment, connection string, options object).
 * Each input form only says where a value came from (its `Key`); defaults, validation and messages live here once.
 *
 * @internal
 */
import { Endpoint, Limits } from "@effect-dsql/core"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Record from "effect/Record"
import { isIP } from "node:net"
import type { DsqlConfig, Options } from "../DsqlConfig.js"
import { version } from "./version.js"

type Result<A> = Either.Either<A, ConfigError.ConfigError>

type Field = keyof Required<Options>

/**
 * Where a value came from: the path a `ConfigError` carries and the name a message uses.
 */
interface Key {
  readonly path: Array<string>
  readonly label: string
}

/**
 * A value as given. `wholeSeconds` marks the `…_SECS` forms, where a string must be an integer of seconds.
 */
interface Given {
  readonly value: unknown
  readonly key: Key
  readonly wholeSeconds?: boolean
}

type Inputs = { readonly [F in Field]?: Given }

/**
 * How one input form names its fields, and what to suggest when no region is found.
 */
interface Source {
  readonly key: (field: Field) => Key
  readonly fallbackRegionHint: string
}

const defaults = {
  user: "admin",
  database: "postgres",
  port: 5432,
  tokenDuration: Duration.minutes(15),
  maxConnections: 10,
  minConnections: 0,
  maxConnectionLifetime: Duration.minutes(55),
  // Below the 350 s after which PrivateLink and NLBs silently drop an idle flow.
  idleTimeout: Duration.minutes(5),
  connectTimeout: Duration.seconds(10),
  sslNegotiation: "direct"
} as const

const identifierMaxBytes = 63
const applicationNameMaxLength = 63
const driverName = `effect-dsql/${version}`

const hostLabelPattern = /^[a-z0-9_-]{1,63}$/
const controlCharacters = /[\u0000-\u001f\u007f]/
const printableAscii = /^[\x20-\x7e]+$/

/** @internal */
export const isClusterId = Endpoint.isClusterId

/** @internal */
export const regionFromEndpoint = (host: string): Option.Option<string> =>
  Option.fromNullable(Endpoint.regionFromEndpoint(host))

const invalid = (key: Key, message: string): Result<never> => Either.left(ConfigError.InvalidData(key.path, message))

const missing = (key: Key, message: string): Result<never> => Either.left(ConfigError.MissingData(key.path, message))

/** `Duration.format` throws on durations too large for nanoseconds. */
const formatDuration = Option.liftThrowable(Duration.format)

/** A short, printable rendering of a given value for error messages. */
const shown = (value: unknown): string => {
  if (Duration.isDuration(value)) {
    return Option.getOrElse(formatDuration(value), () => `${Duration.toMillis(value)} millis`)
  }
  if (typeof value === "string") return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value)
  if (typeof value === "number" || typeof value === "bigint") return String(value)
  return `a value of type ${Array.isArray(value) ? "array" : typeof value}`
}

/** Validation results of independent fields, with every failure kept (joined with `ConfigError.And`). */
const collect = <R extends { readonly [name: string]: Result<unknown> }>(
  results: R
): Result<{ [K in keyof R]: R[K] extends Result<infer A> ? A : never }> => {
  const errors: Array<ConfigError.ConfigError> = []
  const values: { [name: string]: unknown } = {}
  for (const [name, result] of Object.entries(results)) {
    if (Either.isLeft(result)) errors.push(result.left)
    else values[name] = result.right
  }
  return errors.length === 0
    ? Either.right(values as any)
    : Either.left(errors.reduce((all, error) => ConfigError.And(all, error)))
}

const integerIn = (given: Given, min: number, max: number): Result<number> => {
  const { key, value } = given
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value
  return typeof n === "number" && Number.isSafeInteger(n) && n >= min && n <= max
    ? Either.right(n)
    : invalid(key, `${key.label} must be an integer from ${min} to ${max}; got ${shown(value)}`)
}

/** Strings that are bare numbers are seconds; everything else is read as Effect's `DurationInput`. */
const decodeDuration = (given: Given): Option.Option<Duration.Duration> => {
  const { value, wholeSeconds } = given
  if (typeof value !== "string") return Duration.decodeUnknown(value)
  if (wholeSeconds === true) return /^\d+$/.test(value) ? Option.some(Duration.seconds(Number(value))) : Option.none()
  return /^\d+(\.\d+)?$/.test(value) ? Option.some(Duration.seconds(Number(value))) : Duration.decodeUnknown(value)
}

const durationWhere = (
  given: Given,
  accept: (d: Duration.Duration) => boolean,
  rule: string
): Result<Duration.Duration> =>
  Option.match(Option.filter(decodeDuration(given), accept), {
    onNone: () => invalid(given.key, `${given.key.label} must be ${rule}; got ${shown(given.value)}`),
    onSome: Either.right
  })

const positiveDuration = (given: Given) =>
  durationWhere(
    given,
    (d) => Duration.isFinite(d) && Duration.toMillis(d) > 0,
    "a duration above zero, such as \"30 seconds\" or a number of seconds"
  )

const tokenDuration = (given: Given) =>
  durationWhere(
    given,
    (d) => {
      // Range first, in milliseconds: turning a huge duration into nanoseconds would throw.
      const ms = Duration.toMillis(d)
      return ms >= 1000 && ms <= Limits.maxTokenSeconds * 1000 && Duration.unsafeToNanos(d) % 1_000_000_000n === 0n
    },
    `a whole number of seconds from 1 to ${Limits.maxTokenSeconds} (7 days, the longest an IAM token may live)`
  )

const connectionLifetime = (given: Given) =>
  durationWhere(
    given,
    (d) => Duration.toMillis(d) > 0 && Duration.toMillis(d) < Limits.maxConnectionAgeMillis,
    "above zero and under 60 minutes, because DSQL closes connections at 60 minutes"
  )

const text = (given: Given, fallback: string): Result<string> => {
  const { key, value } = given
  if (typeof value !== "string") return invalid(key, `${key.label} must be a string; got ${shown(value)}`)
  if (value === "") return invalid(key, `${key.label} must not be empty; leave it out to use "${fallback}"`)
  if (controlCharacters.test(value) || new TextEncoder().encode(value).length > identifierMaxBytes) {
    return invalid(
      key,
      `${key.label} must be at most ${identifierMaxBytes} bytes without control characters; got ${shown(value)}`
    )
  }
  return Either.right(value)
}

const profile = ({ key, value }: Given): Result<string> =>
  typeof value === "string" && value !== "" && !controlCharacters.test(value)
    ? Either.right(value)
    : invalid(key, `${key.label} must be an AWS profile name (non-empty, no control characters); got ${shown(value)}`)

const region = ({ key, value }: Given): Result<string> =>
  typeof value === "string" && Endpoint.isRegion(value)
    ? Either.right(value)
    : invalid(key, `${key.label} must be an AWS region in lowercase, such as us-east-1; got ${shown(value)}`)

const sslNegotiation = ({ key, value }: Given): Result<DsqlConfig["sslNegotiation"]> =>
  value === "direct" || value === "postgres"
    ? Either.right(value)
    : invalid(
      key,
      `${key.label} must be "direct" (TLS first, the default) or "postgres" (classic SSLRequest); got ${shown(value)}`
    )

const applicationName = ({ key, value }: Given): Result<string> => {
  const maxPrefix = applicationNameMaxLength - driverName.length - 1
  return typeof value === "string" && printableAscii.test(value) && value.length <= maxPrefix
    ? Either.right(`${value}:${driverName}`)
    : invalid(
      key,
      `${key.label} must be 1 to ${maxPrefix} printable ASCII characters: it is sent as "<prefix>:${driverName}", ` +
        `which PostgreSQL cuts at ${applicationNameMaxLength}; got ${shown(value)}`
    )
}

const caPem = ({ key, value }: Given): Result<string> => {
  if (typeof value === "string") {
    // Environment files often carry a PEM on one line with literal "\n" escapes; Node's TLS needs real newlines.
    const pem = !value.includes("\n") && value.includes("\\n") ? value.replaceAll("\\n", "\n") : value
    if (/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.test(pem)) return Either.right(pem)
  }
  return invalid(
    key,
    `${key.label} must be PEM text with at least one -----BEGIN CERTIFICATE----- block (the certificates themselves, ` +
      `not a file path)`
  )
}

const isHostName = (s: string): boolean =>
  s.length <= 253 && s.split(".").every((label) => hostLabelPattern.test(label))

/** What a valid host turned out to be. */
type Host =
  | { readonly _tag: "ClusterId"; readonly id: string }
  | { readonly _tag: "Endpoint"; readonly host: string; readonly region: Option.Option<string> }

const host = (given: Given, source: Source): Result<Host> => {
  const { key, value } = given
  if (typeof value !== "string") return invalid(key, `${key.label} must be a string; got ${shown(value)}`)
  const addressHint = `put the address in ${source.key("hostAddress").label}`
  if (value === "") {
    return invalid(
      key,
      `${key.label} must not be empty; give an endpoint such as <cluster-id>.dsql.us-east-1.on.aws or a cluster id`
    )
  }
  if (value.includes("://")) {
    return invalid(key, `${key.label} looks like a connection string; give it as ${source.key("url").label} instead`)
  }
  if (/\s/.test(value)) return invalid(key, `${key.label} must not contain whitespace; got ${shown(value)}`)
  const lower = value.toLowerCase()
  if (isClusterId(lower)) return Either.right({ _tag: "ClusterId", id: lower })
  if (isIP(value) !== 0 || /(^|\.)\d+$/.test(value)) {
    return invalid(
      key,
      `${key.label} must be a host name, not an IP address: TLS SNI and the IAM token need the endpoint name; ` +
        addressHint
    )
  }
  if (value.includes(":")) {
    return invalid(
      key,
      `${key.label} must not contain ':'; give the port as ${source.key("port").label} (an IP address: ${addressHint})`
    )
  }
  if (!isHostName(lower)) {
    return invalid(
      key,
      `${key.label} is not a host name: use letters, digits, '-' and '_' in dot-separated labels of 1 to 63 ` +
        `characters; got ${shown(value)}`
    )
  }
  return Either.right({ _tag: "Endpoint", host: lower, region: regionFromEndpoint(lower) })
}

const hostAddress = ({ key, value }: Given): Result<string> => {
  if (typeof value === "string" && (isIP(value) !== 0 || isHostName(value.toLowerCase()))) {
    return Either.right(value)
  }
  return invalid(
    key,
    `${key.label} must be an IPv4 address, an IPv6 address without brackets, or a host name; got ${shown(value)}`
  )
}

const optional = <A>(given: Given | undefined, validate: (given: Given) => Result<A>): Result<Option.Option<A>> =>
  given === undefined ? Either.right(Option.none()) : Either.map(validate(given), Option.some)

const orDefault = <A>(given: Given | undefined, validate: (given: Given) => Result<A>, fallback: A): Result<A> =>
  given === undefined ? Either.right(fallback) : validate(given)

/** Explicit region, then the endpoint's, then the fallback (AWS_REGION…); a bare cluster id expands with it. */
const endpoint = (
  parsed: Host,
  hostKey: Key,
  inputs: Inputs,
  source: Source,
  fallbackRegion: Option.Option<Given>
): Result<Pick<DsqlConfig, "host" | "clusterId" | "region">> => {
  const regionKey = source.key("region")
  const fromHost = parsed._tag === "Endpoint"
    ? Option.map(parsed.region, (value): Given => ({
      value,
      key: { path: hostKey.path, label: `the region in ${hostKey.label}` }
    }))
    : Option.none()
  const chosen = Option.fromNullable(inputs.region).pipe(
    Option.orElse(() => fromHost),
    Option.orElse(() => fallbackRegion)
  )
  if (Option.isNone(chosen)) {
    const why = parsed._tag === "ClusterId"
      ? "is a cluster id"
      : "is not a DSQL endpoint (<cluster-id>.dsql.<region>.on.aws) and the IAM token is signed for a region"
    return missing(
      regionKey,
      `${regionKey.label} is required when ${hostKey.label} ${why}; set ${regionKey.label}${source.fallbackRegionHint}`
    )
  }
  return Either.map(region(chosen.value), (region) => {
    if (parsed._tag === "ClusterId") {
      return { host: Endpoint.endpointFor(parsed.id, region), clusterId: Option.some(parsed.id), region }
    }
    const first = parsed.host.split(".")[0]
    const clusterId = Option.isSome(parsed.region) && isClusterId(first) ? Option.some(first) : Option.none()
    return { host: parsed.host, clusterId, region }
  })
}

const normalise = (
  hostGiven: Given,
  inputs: Inputs,
  source: Source,
  fallbackRegion: Option.Option<Given>
): Result<DsqlConfig> => {
  const fields = collect({
    endpoint: Either.flatMap(
      host(hostGiven, source),
      (parsed) => endpoint(parsed, hostGiven.key, inputs, source, fallbackRegion)
    ),
    user: orDefault(inputs.user, (given) => text(given, defaults.user), defaults.user),
    database: orDefault(inputs.database, (given) => text(given, defaults.database), defaults.database),
    port: orDefault(inputs.port, (given) => integerIn(given, 1, 65535), defaults.port),
    profile: optional(inputs.profile, profile),
    tokenDuration: orDefault(inputs.tokenDuration, tokenDuration, defaults.tokenDuration),
    maxConnections: orDefault(
      inputs.maxConnections,
      (given) => integerIn(given, 1, Number.MAX_SAFE_INTEGER),
      defaults.maxConnections
    ),
    minConnections: orDefault(
      inputs.minConnections,
      (given) => integerIn(given, 0, Number.MAX_SAFE_INTEGER),
      defaults.minConnections
    ),
    maxConnectionLifetime: orDefault(inputs.maxConnectionLifetime, connectionLifetime, defaults.maxConnectionLifetime),
    idleTimeout: orDefault(inputs.idleTimeout, positiveDuration, defaults.idleTimeout),
    connectTimeout: orDefault(inputs.connectTimeout, positiveDuration, defaults.connectTimeout),
    applicationName: orDefault(inputs.applicationName, applicationName, driverName),
    hostAddress: optional(inputs.hostAddress, hostAddress),
    caPem: optional(inputs.caPem, caPem),
    sslNegotiation: orDefault(inputs.sslNegotiation, sslNegotiation, defaults.sslNegotiation)
  })
  return Either.flatMap(fields, ({ endpoint, ...rest }) => {
    if (rest.minConnections > rest.maxConnections) {
      const minKey = inputs.minConnections?.key ?? source.key("minConnections")
      const maxKey = inputs.maxConnections?.key ?? source.key("maxConnections")
      return invalid(
        minKey,
        `${minKey.label} (${rest.minConnections}) must not exceed ${maxKey.label} (${rest.maxConnections})`
      )
    }
    return Either.right({ ...endpoint, ...rest, hostInput: hostGiven.key.label })
  })
}

const urlParameters: { readonly [name: string]: Field } = {
  region: "region",
  profile: "profile",
  tokenDurationSecs: "tokenDuration"
}

const decodePart = (part: string): Option.Option<string> => {
  try {
    return Option.some(decodeURIComponent(part))
  } catch {
    return Option.none()
  }
}

/**
 * Reads `scheme://[user@]host[:port][/database][?region=&profile=&tokenDurationSecs=]` into inputs keyed under
 * the URL's own key. A password is refused before anything else is looked at, so no message can echo part of it.
 */
const parseUrl = (url: Given, source: Source): Result<Inputs & { readonly host: Given }> => {
  const { key, value } = url
  if (typeof value !== "string") return invalid(key, `${key.label} must be a string; got ${shown(value)}`)
  const scheme = /^(?:postgres|postgresql|dsql):\/\//i.exec(value)
  if (scheme === null) {
    const other = /^([a-z][a-z0-9+.-]*):\/\//i.exec(value)
    return invalid(
      key,
      other === null
        ? `${key.label} must start with postgres://, postgresql:// or dsql://`
        : `${key.label} has the scheme "${other[1]}"; use postgres://, postgresql:// or dsql://`
    )
  }
  const rest = value.slice(scheme[0].length)
  const lastAt = rest.lastIndexOf("@")
  if (lastAt >= 0 && rest.slice(0, lastAt).includes(":")) {
    return invalid(
      key,
      `DSQL authenticates with IAM tokens; remove the password from ${key.label} ` +
        `(an '@' anywhere else must be percent-encoded as %40)`
    )
  }
  if (/[\s\u0000-\u001f\u007f#]/.test(rest)) {
    return invalid(key, `${key.label} must not contain whitespace, control characters or '#'; percent-encode them`)
  }
  const part = (field: string): Key => ({ path: key.path, label: `the ${field} in ${key.label}` })
  const badEncoding = (field: string) => invalid(key, `${part(field).label} has invalid percent-encoding`)
  const inputs: { [F in Field]?: Given } = {}

  const authorityEnd = rest.search(/[/?]/)
  const authority = authorityEnd < 0 ? rest : rest.slice(0, authorityEnd)
  const at = authority.lastIndexOf("@")
  if (at >= 0) {
    const user = decodePart(authority.slice(0, at))
    if (Option.isNone(user)) return badEncoding("user")
    inputs.user = { value: user.value, key: part("user") }
  }
  const hostPort = authority.slice(at + 1)
  if (hostPort.startsWith("[")) {
    return invalid(
      key,
      `${key.label} has an IPv6 address as host: TLS SNI and the IAM token need the endpoint name; ` +
        `put the address in ${source.key("hostAddress").label}`
    )
  }
  const colon = hostPort.lastIndexOf(":")
  const host: Given = { value: colon < 0 ? hostPort : hostPort.slice(0, colon), key: part("host") }
  if (colon >= 0) {
    // Never echo the port text: in a malformed URL it may be a password without its '@'.
    const port = hostPort.slice(colon + 1)
    if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
      return invalid(key, `${part("port").label} must be an integer from 1 to 65535`)
    }
    inputs.port = { value: Number(port), key: part("port") }
  }

  const afterAuthority = authorityEnd < 0 ? "" : rest.slice(authorityEnd)
  const queryStart = afterAuthority.indexOf("?")
  const path = queryStart < 0 ? afterAuthority : afterAuthority.slice(0, queryStart)
  if (path.length > 1) {
    if (path.slice(1).includes("/")) return invalid(key, `${part("database").label} must be a single path segment`)
    const database = decodePart(path.slice(1))
    if (Option.isNone(database)) return badEncoding("database")
    inputs.database = { value: database.value, key: part("database") }
  }

  const seen = new Set<string>()
  const unknown: Array<string> = []
  for (const pair of queryStart < 0 ? [] : afterAuthority.slice(queryStart + 1).split("&")) {
    if (pair === "") continue
    const eq = pair.indexOf("=")
    const name = decodePart(eq < 0 ? pair : pair.slice(0, eq))
    const parameter = eq < 0 ? Option.none() : decodePart(pair.slice(eq + 1))
    if (Option.isNone(name)) return badEncoding("query")
    if (eq < 0) return invalid(key, `${key.label} parameter ${shown(name.value)} needs a value (name=value)`)
    if (Option.isNone(parameter)) return badEncoding(`${name.value} parameter`)
    if (seen.has(name.value)) {
      return invalid(key, `${key.label} repeats the parameter ${shown(name.value)}; give each parameter once`)
    }
    seen.add(name.value)
    const field = Object.hasOwn(urlParameters, name.value) ? urlParameters[name.value] : undefined
    if (field === undefined) unknown.push(shown(name.value))
    else inputs[field] = { value: parameter.value, key: part(name.value), wholeSeconds: field === "tokenDuration" }
  }
  if (unknown.length > 0) {
    return invalid(
      key,
      `${key.label} has unknown parameters ${unknown.join(", ")}; accepted: ${Object.keys(urlParameters).join(", ")}`
    )
  }
  return Either.right({ ...inputs, host })
}

/** Host or URL (exactly one); values given alongside a URL override the URL's. */
const resolve = (inputs: Inputs, source: Source, fallbackRegion: Option.Option<Given>): Result<DsqlConfig> => {
  const { url, ...given } = inputs
  const hostKey = source.key("host")
  const urlLabel = source.key("url").label
  if (url !== undefined && given.host !== undefined) {
    return invalid(hostKey, `set ${hostKey.label} or ${urlLabel}, not both`)
  }
  if (url === undefined) {
    return given.host === undefined
      ? missing(
        hostKey,
        `set ${hostKey.label} (an endpoint such as <cluster-id>.dsql.us-east-1.on.aws, or a cluster id) or ${urlLabel}`
      )
      : normalise(given.host, given, source, fallbackRegion)
  }
  return Either.flatMap(parseUrl(url, source), ({ host, ...fromUrl }) => {
    const merged = { ...fromUrl, ...given }
    return normalise(host, merged, source, fallbackRegion)
  })
}

/** The environment names, after `DSQL_`; its keys are also the list of fields. */
const envNames = {
  host: "HOST",
  url: "URL",
  region: "REGION",
  user: "USER",
  database: "DATABASE",
  port: "PORT",
  profile: "PROFILE",
  tokenDuration: "TOKEN_DURATION_SECS",
  maxConnections: "MAX_CONNECTIONS",
  minConnections: "MIN_CONNECTIONS",
  maxConnectionLifetime: "MAX_CONNECTION_LIFETIME",
  idleTimeout: "IDLE_TIMEOUT",
  connectTimeout: "CONNECT_TIMEOUT",
  applicationName: "APPLICATION_NAME",
  hostAddress: "HOSTADDR",
  caPem: "CA_PEM",
  sslNegotiation: "SSL_NEGOTIATION"
} as const satisfies { readonly [F in Field]: string }

const allFields = Object.keys(envNames) as Array<Field>

const givenFrom = (values: { readonly [F in Field]?: unknown }, source: Source, wholeSeconds?: Field): Inputs => {
  const inputs: { [F in Field]?: Given } = {}
  for (const field of allFields) {
    const value = values[field]
    if (value !== undefined) inputs[field] = { value, key: source.key(field), wholeSeconds: field === wholeSeconds }
  }
  return inputs
}

const optionsSource: Source = {
  key: (field) => ({ path: [field], label: field }),
  fallbackRegionHint: ""
}

/** @internal */
export const fromOptions = (options: Options, fallbackRegion: Option.Option<string>): Result<DsqlConfig> =>
  resolve(
    givenFrom(options, optionsSource),
    optionsSource,
    Option.map(fallbackRegion, (value) => ({ value, key: { path: ["region"], label: "the fallback region" } }))
  )

const envSource: Source = {
  key: (field) => ({ path: [`DSQL_${envNames[field]}`], label: `DSQL_${envNames[field]}` }),
  fallbackRegionHint: " or AWS_REGION"
}

/** Set but empty counts as unset: templated environments (compose, CI) often export empty variables. */
const envString = (name: string) =>
  Config.option(Config.string(name)).pipe(Config.map(Option.filter((value) => value !== "")))

/** @internal */
export const awsRegion: Config.Config<Option.Option<string>> = Config.all([
  envString("AWS_REGION"),
  envString("AWS_DEFAULT_REGION")
]).pipe(Config.map(([region, defaultRegion]) => Option.orElse(region, () => defaultRegion)))

/** @internal */
export const config: Config.Config<DsqlConfig> = Config.all({
  dsql: Config.nested(Config.all(Record.map(envNames, envString)), "DSQL"),
  awsRegion: envString("AWS_REGION"),
  awsDefaultRegion: envString("AWS_DEFAULT_REGION")
}).pipe(Config.mapOrFail(({ awsDefaultRegion, awsRegion, dsql }) => {
  const fallback = (name: string) => (value: string): Given => ({ value, key: { path: [name], label: name } })
  return resolve(
    givenFrom(Record.map(dsql, Option.getOrUndefined), envSource, "tokenDuration"),
    envSource,
    Option.map(awsRegion, fallback("AWS_REGION")).pipe(
      Option.orElse(() => Option.map(awsDefaultRegion, fallback("AWS_DEFAULT_REGION")))
    )
  )
}))
