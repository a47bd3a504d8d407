/**
 * The rules of a connection configuration, written once for both lines: defaults, the validation of every field and
 * its message, host / cluster id / region resolution, connection strings, the `DSQL_*` environment names and
 * `application_name`. Each input form (options object, connection string, environment) only says where a value came
 * from (its key and the label messages use); each line turns the plain {@link Result} into its own `Config` types.
 *
 * @since 0.1.0
 */
import { isIP } from "node:net"
import { endpointFor, isClusterId, isRegion, regionFromEndpoint } from "./Endpoint.js"
import { defaultTokenSeconds, maxConnectionAgeMillis, maxTokenSeconds } from "./Limits.js"

/**
 * A configuration field, as named in an options object.
 *
 * @since 0.1.0
 */
export type Field =
  | "host"
  | "url"
  | "region"
  | "user"
  | "database"
  | "port"
  | "profile"
  | "tokenDuration"
  | "maxConnections"
  | "minConnections"
  | "maxConnectionLifetime"
  | "idleTimeout"
  | "connectTimeout"
  | "applicationName"
  | "hostAddress"
  | "caPem"
  | "sslNegotiation"

/**
 * A normalised configuration. Durations are milliseconds; absent optional values are `undefined`.
 *
 * @since 0.1.0
 */
export interface Settings {
  /** The endpoint host name, lowercased; a bare cluster id is expanded to `<id>.dsql.<region>.on.aws`. */
  readonly host: string
  /** The first label of a DSQL endpoint when it is a cluster id, or the bare id given. */
  readonly clusterId: string | undefined
  /** Explicit, else the endpoint's, else the fallback (`AWS_REGION`, `AWS_DEFAULT_REGION`). */
  readonly region: string
  readonly user: string
  readonly database: string
  readonly port: number
  readonly profile: string | undefined
  /** Milliseconds, a whole number of seconds from 1 s to 7 days. */
  readonly tokenDuration: number
  readonly maxConnections: number
  readonly minConnections: number
  /** Milliseconds, above zero and under 60 minutes. */
  readonly maxConnectionLifetime: number
  /** Milliseconds, finite and above zero. */
  readonly idleTimeout: number
  /** Milliseconds, finite and above zero. */
  readonly connectTimeout: number
  /** `<driverName>` or `<prefix>:<driverName>`, printable ASCII, at most 63 characters. */
  readonly applicationName: string
  readonly hostAddress: string | undefined
  /** PEM text with real newlines. */
  readonly caPem: string | undefined
  readonly sslNegotiation: "direct" | "postgres"
  /** The input the host was read from, as messages name it (`DSQL_HOST`, `the host in DSQL_URL`, `host`, …). */
  readonly hostInput: string
}

/**
 * What is wrong with one key: `Missing` when it must be given, `Invalid` when its value is refused. `path` is the
 * key (`["DSQL", "HOST"]`, `["host"]`, `["url"]`); the message names it as the user wrote it.
 *
 * @since 0.1.0
 */
export interface Issue {
  readonly kind: "Missing" | "Invalid"
  readonly path: ReadonlyArray<string>
  readonly message: string
}

/**
 * A normalised value, or every issue found (independent fields are all checked).
 *
 * @since 0.1.0
 */
export type Result<A> =
  | { readonly _tag: "Success"; readonly value: A }
  | { readonly _tag: "Failure"; readonly issues: readonly [Issue, ...Array<Issue>] }

/**
 * What a line brings: its driver name and how it reads and prints its own duration values (Effect's
 * `DurationInput`). Strings that are bare numbers are seconds and are read before `durationMillis` is asked.
 *
 * @since 0.1.0
 */
export interface Line {
  /** `<package>/<version>`, sent as `application_name`. */
  readonly driverName: string
  /** Milliseconds for a duration input of the line, `undefined` for anything else; must not throw. */
  readonly durationMillis: (value: unknown) => number | undefined
  /** How a message shows a duration value of the line; `undefined` for anything else; must not throw. */
  readonly showDuration: (value: unknown) => string | undefined
}

/**
 * The defaults (durations in milliseconds).
 *
 * @since 0.1.0
 */
export const defaults = {
  user: "admin",
  database: "postgres",
  port: 5432,
  tokenDuration: defaultTokenSeconds * 1000,
  maxConnections: 10,
  minConnections: 0,
  maxConnectionLifetime: 55 * 60_000,
  // Below the 350 s after which PrivateLink and NLBs silently drop an idle flow.
  idleTimeout: 5 * 60_000,
  connectTimeout: 10_000,
  sslNegotiation: "direct"
} as const

/**
 * The environment variables are `DSQL_<name>`.
 *
 * @since 0.1.0
 */
export const envPrefix = "DSQL"

/**
 * Each field's environment name, after `DSQL_`.
 *
 * @since 0.1.0
 */
export const envNames = {
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

/** The query parameters a connection string may carry, and the field each sets. */
const urlParameters: { readonly [name: string]: Field } = {
  region: "region",
  profile: "profile",
  tokenDurationSecs: "tokenDuration"
}

/**
 * The environment as read: `dsql` holds the `DSQL_*` values by field. Empty strings count as unset.
 *
 * @since 0.1.0
 */
export interface Environment {
  readonly dsql: { readonly [F in Field]?: string | undefined }
  readonly AWS_REGION?: string | undefined
  readonly AWS_DEFAULT_REGION?: string | undefined
}

/**
 * Where a value came from: the path an issue carries and the name its message uses.
 */
interface Key {
  readonly path: ReadonlyArray<string>
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

/** The line and the input form a value is checked for. */
interface Context {
  readonly line: Line
  readonly source: Source
}

const identifierMaxBytes = 63
const applicationNameMaxLength = 63

const hostLabelPattern = /^[a-z0-9_-]{1,63}$/
const controlCharacters = /[\u0000-\u001f\u007f]/
const printableAscii = /^[\x20-\x7e]+$/

const succeed = <A>(value: A): Result<A> => ({ _tag: "Success", value })

const fail = (kind: Issue["kind"], key: Key, message: string): Result<never> => ({
  _tag: "Failure",
  issues: [{ kind, path: key.path, message }]
})

const invalid = (key: Key, message: string) => fail("Invalid", key, message)

const map = <A, B>(result: Result<A>, f: (a: A) => B): Result<B> =>
  result._tag === "Success" ? succeed(f(result.value)) : result

const flatMap = <A, B>(result: Result<A>, f: (a: A) => Result<B>): Result<B> =>
  result._tag === "Success" ? f(result.value) : result

/** A short, printable rendering of a given value for error messages. */
const shown = (value: unknown, { line }: Context): string => {
  const duration = line.showDuration(value)
  if (duration !== undefined) return duration
  if (typeof value === "string") return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value)
  if (typeof value === "number" || typeof value === "bigint") return String(value)
  return `a value of type ${Array.isArray(value) ? "array" : typeof value}`
}

/** Results of independent fields, with every issue kept, in field order. */
const collect = <R extends { readonly [name: string]: Result<unknown> }>(
  results: R
): Result<{ [K in keyof R]: R[K] extends Result<infer A> ? A : never }> => {
  const issues: Array<Issue> = []
  const values: { [name: string]: unknown } = {}
  for (const [name, result] of Object.entries(results)) {
    if (result._tag === "Failure") issues.push(...result.issues)
    else values[name] = result.value
  }
  const [first, ...rest] = issues
  return first === undefined ? succeed(values as any) : { _tag: "Failure", issues: [first, ...rest] }
}

const integerIn = (given: Given, ctx: Context, min: number, max: number): Result<number> => {
  const { key, value } = given
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value
  return typeof n === "number" && Number.isSafeInteger(n) && n >= min && n <= max
    ? succeed(n)
    : invalid(key, `${key.label} must be an integer from ${min} to ${max}; got ${shown(value, ctx)}`)
}

/** Strings that are bare numbers are seconds; everything else is the line's duration input. */
const durationMillis = ({ value, wholeSeconds }: Given, { line }: Context): number | undefined => {
  if (typeof value !== "string") return line.durationMillis(value)
  if (wholeSeconds === true) return /^\d+$/.test(value) ? Number(value) * 1000 : undefined
  return /^\d+(\.\d+)?$/.test(value) ? Number(value) * 1000 : line.durationMillis(value)
}

const durationWhere = (given: Given, ctx: Context, accept: (millis: number) => boolean, rule: string) => {
  const millis = durationMillis(given, ctx)
  return millis !== undefined && accept(millis)
    ? succeed(millis)
    : invalid(given.key, `${given.key.label} must be ${rule}; got ${shown(given.value, ctx)}`)
}

const positiveDuration = (given: Given, ctx: Context) =>
  durationWhere(
    given,
    ctx,
    (ms) => Number.isFinite(ms) && ms > 0,
    "a duration above zero, such as \"30 seconds\" or a number of seconds"
  )

const tokenDuration = (given: Given, ctx: Context) =>
  durationWhere(
    given,
    ctx,
    (ms) => ms >= 1000 && ms <= maxTokenSeconds * 1000 && ms % 1000 === 0,
    `a whole number of seconds from 1 to ${maxTokenSeconds} (7 days, the longest an IAM token may live)`
  )

const connectionLifetime = (given: Given, ctx: Context) =>
  durationWhere(
    given,
    ctx,
    (ms) => ms > 0 && ms < maxConnectionAgeMillis,
    "above zero and under 60 minutes, because DSQL closes connections at 60 minutes"
  )

const text = (given: Given, ctx: Context, fallback: string): Result<string> => {
  const { key, value } = given
  if (typeof value !== "string") return invalid(key, `${key.label} must be a string; got ${shown(value, ctx)}`)
  if (value === "") return invalid(key, `${key.label} must not be empty; leave it out to use "${fallback}"`)
  if (controlCharacters.test(value) || new TextEncoder().encode(value).length > identifierMaxBytes) {
    return invalid(
      key,
      `${key.label} must be at most ${identifierMaxBytes} bytes without control characters; got ${shown(value, ctx)}`
    )
  }
  return succeed(value)
}

const profile = ({ key, value }: Given, ctx: Context): Result<string> =>
  typeof value === "string" && value !== "" && !controlCharacters.test(value)
    ? succeed(value)
    : invalid(
      key,
      `${key.label} must be an AWS profile name (non-empty, no control characters); got ${shown(value, ctx)}`
    )

const region = ({ key, value }: Given, ctx: Context): Result<string> =>
  typeof value === "string" && isRegion(value)
    ? succeed(value)
    : invalid(key, `${key.label} must be an AWS region in lowercase, such as us-east-1; got ${shown(value, ctx)}`)

const sslNegotiation = ({ key, value }: Given, ctx: Context): Result<Settings["sslNegotiation"]> =>
  value === "direct" || value === "postgres"
    ? succeed(value)
    : invalid(
      key,
      `${key.label} must be "direct" (TLS first, the default) or "postgres" (classic SSLRequest); ` +
        `got ${shown(value, ctx)}`
    )

const applicationName = ({ key, value }: Given, ctx: Context): Result<string> => {
  const { driverName } = ctx.line
  const maxPrefix = applicationNameMaxLength - driverName.length - 1
  return typeof value === "string" && printableAscii.test(value) && value.length <= maxPrefix
    ? succeed(`${value}:${driverName}`)
    : invalid(
      key,
      `${key.label} must be 1 to ${maxPrefix} printable ASCII characters: it is sent as "<prefix>:${driverName}", ` +
        `which PostgreSQL cuts at ${applicationNameMaxLength}; got ${shown(value, ctx)}`
    )
}

const caPem = ({ key, value }: Given): Result<string> => {
  if (typeof value === "string") {
    // Environment files often carry a PEM on one line with literal "\n" escapes; Node's TLS needs real newlines.
    const pem = !value.includes("\n") && value.includes("\\n") ? value.replaceAll("\\n", "\n") : value
    if (/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.test(pem)) return succeed(pem)
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
  | { readonly _tag: "Endpoint"; readonly host: string; readonly region: string | undefined }

const host = (given: Given, ctx: Context): Result<Host> => {
  const { key, value } = given
  const { source } = ctx
  if (typeof value !== "string") return invalid(key, `${key.label} must be a string; got ${shown(value, ctx)}`)
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
  if (/\s/.test(value)) return invalid(key, `${key.label} must not contain whitespace; got ${shown(value, ctx)}`)
  const lower = value.toLowerCase()
  if (isClusterId(lower)) return succeed({ _tag: "ClusterId", id: lower })
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
        `characters; got ${shown(value, ctx)}`
    )
  }
  return succeed({ _tag: "Endpoint", host: lower, region: regionFromEndpoint(lower) })
}

const hostAddress = ({ key, value }: Given, ctx: Context): Result<string> => {
  if (typeof value === "string" && (isIP(value) !== 0 || isHostName(value.toLowerCase()))) return succeed(value)
  return invalid(
    key,
    `${key.label} must be an IPv4 address, an IPv6 address without brackets, or a host name; got ${shown(value, ctx)}`
  )
}

const optional = <A>(given: Given | undefined, validate: (given: Given) => Result<A>): Result<A | undefined> =>
  given === undefined ? succeed(undefined) : validate(given)

const orDefault = <A>(given: Given | undefined, validate: (given: Given) => Result<A>, fallback: A): Result<A> =>
  given === undefined ? succeed(fallback) : validate(given)

/** Explicit region, then the endpoint's, then the fallback (AWS_REGION…); a bare cluster id expands with it. */
const endpoint = (
  parsed: Host,
  hostKey: Key,
  inputs: Inputs,
  ctx: Context,
  fallbackRegion: Given | undefined
): Result<Pick<Settings, "host" | "clusterId" | "region">> => {
  const regionKey = ctx.source.key("region")
  const fromHost = parsed._tag === "Endpoint" && parsed.region !== undefined
    ? { value: parsed.region, key: { path: hostKey.path, label: `the region in ${hostKey.label}` } }
    : undefined
  const chosen = inputs.region ?? fromHost ?? fallbackRegion
  if (chosen === undefined) {
    const why = parsed._tag === "ClusterId"
      ? "is a cluster id"
      : "is not a DSQL endpoint (<cluster-id>.dsql.<region>.on.aws) and the IAM token is signed for a region"
    return fail(
      "Missing",
      regionKey,
      `${regionKey.label} is required when ${hostKey.label} ${why}; ` +
        `set ${regionKey.label}${ctx.source.fallbackRegionHint}`
    )
  }
  return map(region(chosen, ctx), (region) => {
    if (parsed._tag === "ClusterId") return { host: endpointFor(parsed.id, region), clusterId: parsed.id, region }
    const first = parsed.host.split(".")[0]
    const clusterId = parsed.region !== undefined && isClusterId(first) ? first : undefined
    return { host: parsed.host, clusterId, region }
  })
}

const normalise = (
  hostGiven: Given,
  inputs: Inputs,
  ctx: Context,
  fallbackRegion: Given | undefined
): Result<Settings> => {
  const fields = collect({
    endpoint: flatMap(host(hostGiven, ctx), (parsed) => endpoint(parsed, hostGiven.key, inputs, ctx, fallbackRegion)),
    user: orDefault(inputs.user, (given) => text(given, ctx, defaults.user), defaults.user),
    database: orDefault(inputs.database, (given) => text(given, ctx, defaults.database), defaults.database),
    port: orDefault(inputs.port, (given) => integerIn(given, ctx, 1, 65535), defaults.port),
    profile: optional(inputs.profile, (given) => profile(given, ctx)),
    tokenDuration: orDefault(inputs.tokenDuration, (given) => tokenDuration(given, ctx), defaults.tokenDuration),
    maxConnections: orDefault(
      inputs.maxConnections,
      (given) => integerIn(given, ctx, 1, Number.MAX_SAFE_INTEGER),
      defaults.maxConnections
    ),
    minConnections: orDefault(
      inputs.minConnections,
      (given) => integerIn(given, ctx, 0, Number.MAX_SAFE_INTEGER),
      defaults.minConnections
    ),
    maxConnectionLifetime: orDefault(
      inputs.maxConnectionLifetime,
      (given) => connectionLifetime(given, ctx),
      defaults.maxConnectionLifetime
    ),
    idleTimeout: orDefault(inputs.idleTimeout, (given) => positiveDuration(given, ctx), defaults.idleTimeout),
    connectTimeout: orDefault(inputs.connectTimeout, (given) => positiveDuration(given, ctx), defaults.connectTimeout),
    applicationName: orDefault(inputs.applicationName, (given) => applicationName(given, ctx), ctx.line.driverName),
    hostAddress: optional(inputs.hostAddress, (given) => hostAddress(given, ctx)),
    caPem: optional(inputs.caPem, caPem),
    sslNegotiation: orDefault(inputs.sslNegotiation, (given) => sslNegotiation(given, ctx), defaults.sslNegotiation)
  })
  return flatMap(fields, ({ endpoint, ...rest }) => {
    if (rest.minConnections > rest.maxConnections) {
      const minKey = inputs.minConnections?.key ?? ctx.source.key("minConnections")
      const maxKey = inputs.maxConnections?.key ?? ctx.source.key("maxConnections")
      return invalid(
        minKey,
        `${minKey.label} (${rest.minConnections}) must not exceed ${maxKey.label} (${rest.maxConnections})`
      )
    }
    return succeed({ ...endpoint, ...rest, hostInput: hostGiven.key.label })
  })
}

const decodePart = (part: string): string | undefined => {
  try {
    return decodeURIComponent(part)
  } catch {
    return undefined
  }
}

/**
 * Reads `scheme://[user@]host[:port][/database][?region=&profile=&tokenDurationSecs=]` into inputs keyed under
 * the URL's own key. A password is refused before anything else is looked at, so no message can echo part of it.
 */
const parseUrl = (url: Given, ctx: Context): Result<Inputs & { readonly host: Given }> => {
  const { key, value } = url
  if (typeof value !== "string") return invalid(key, `${key.label} must be a string; got ${shown(value, ctx)}`)
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
    if (user === undefined) return badEncoding("user")
    inputs.user = { value: user, key: part("user") }
  }
  const hostPort = authority.slice(at + 1)
  if (hostPort.startsWith("[")) {
    return invalid(
      key,
      `${key.label} has an IPv6 address as host: TLS SNI and the IAM token need the endpoint name; ` +
        `put the address in ${ctx.source.key("hostAddress").label}`
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
    if (database === undefined) return badEncoding("database")
    inputs.database = { value: database, key: part("database") }
  }

  const seen = new Set<string>()
  const unknown: Array<string> = []
  for (const pair of queryStart < 0 ? [] : afterAuthority.slice(queryStart + 1).split("&")) {
    if (pair === "") continue
    const eq = pair.indexOf("=")
    const name = decodePart(eq < 0 ? pair : pair.slice(0, eq))
    if (name === undefined) return badEncoding("query")
    if (eq < 0) return invalid(key, `${key.label} parameter ${shown(name, ctx)} needs a value (name=value)`)
    const parameter = decodePart(pair.slice(eq + 1))
    if (parameter === undefined) return badEncoding(`${name} parameter`)
    if (seen.has(name)) {
      return invalid(key, `${key.label} repeats the parameter ${shown(name, ctx)}; give each parameter once`)
    }
    seen.add(name)
    const field = Object.hasOwn(urlParameters, name) ? urlParameters[name] : undefined
    if (field === undefined) unknown.push(shown(name, ctx))
    else inputs[field] = { value: parameter, key: part(name), wholeSeconds: field === "tokenDuration" }
  }
  if (unknown.length > 0) {
    return invalid(
      key,
      `${key.label} has unknown parameters ${unknown.join(", ")}; accepted: ${Object.keys(urlParameters).join(", ")}`
    )
  }
  return succeed({ ...inputs, host })
}

/** Host or URL (exactly one); values given alongside a URL override the URL's. */
const resolve = (inputs: Inputs, ctx: Context, fallbackRegion: Given | undefined): Result<Settings> => {
  const { url, ...given } = inputs
  const hostKey = ctx.source.key("host")
  const urlLabel = ctx.source.key("url").label
  if (url !== undefined && given.host !== undefined) {
    return invalid(hostKey, `set ${hostKey.label} or ${urlLabel}, not both`)
  }
  if (url === undefined) {
    return given.host === undefined
      ? fail(
        "Missing",
        hostKey,
        `set ${hostKey.label} (an endpoint such as <cluster-id>.dsql.us-east-1.on.aws, or a cluster id) or ${urlLabel}`
      )
      : normalise(given.host, given, ctx, fallbackRegion)
  }
  return flatMap(
    parseUrl(url, ctx),
    ({ host, ...fromUrl }) => normalise(host, { ...fromUrl, ...given }, ctx, fallbackRegion)
  )
}

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

const envSource: Source = {
  key: (field) => ({ path: [envPrefix, envNames[field]], label: `${envPrefix}_${envNames[field]}` }),
  fallbackRegionHint: " or AWS_REGION"
}

/**
 * Validates an options object and fills in defaults. Give `host` or `url`, not both; values given beside `url`
 * beat the URL's. `fallbackRegion` is used when neither `region` nor the endpoint names one. Never throws.
 *
 * @example
 * ```ts
 * import { Settings } from "@effect-dsql/core"
 *
 * const line: Settings.Line = {
 *   driverName: "my-driver/1.0.0",
 *   durationMillis: (value) => (typeof value === "number" ? value : undefined),
 *   showDuration: () => undefined
 * }
 * Settings.fromOptions({ host: "abcdefghijklmnopqrstuvwxyz", region: "us-east-1" }, undefined, line)
 * // { _tag: "Success", value: { host: "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws", … } }
 * ```
 * @since 0.1.0
 */
export const fromOptions = (
  options: { readonly [F in Field]?: unknown },
  fallbackRegion: string | undefined,
  line: Line
): Result<Settings> =>
  resolve(
    givenFrom(options, optionsSource),
    { line, source: optionsSource },
    fallbackRegion === undefined
      ? undefined
      : { value: fallbackRegion, key: { path: ["region"], label: "the fallback region" } }
  )

const set = (value: string | undefined): string | undefined => value === "" ? undefined : value

/**
 * The region from the AWS SDK's usual variables, `AWS_REGION` then `AWS_DEFAULT_REGION` (empty counts as unset).
 *
 * @since 0.1.0
 */
export const awsRegion = (env: Omit<Environment, "dsql">): string | undefined =>
  set(env.AWS_REGION) ?? set(env.AWS_DEFAULT_REGION)

/**
 * Validates the `DSQL_*` variables; the region falls back to `AWS_REGION`, then `AWS_DEFAULT_REGION`. Empty
 * variables count as unset (templated environments often export them); `DSQL_TOKEN_DURATION_SECS` is whole seconds.
 *
 * @since 0.1.0
 */
export const fromEnv = (env: Environment, line: Line): Result<Settings> => {
  const dsql: { [F in Field]?: string | undefined } = {}
  for (const field of allFields) dsql[field] = set(env.dsql[field])
  const fallback = (name: "AWS_REGION" | "AWS_DEFAULT_REGION"): Given | undefined => {
    const value = set(env[name])
    return value === undefined ? undefined : { value, key: { path: [name], label: name } }
  }
  return resolve(
    givenFrom(dsql, envSource, "tokenDuration"),
    { line, source: envSource },
    fallback("AWS_REGION") ?? fallback("AWS_DEFAULT_REGION")
  )
}
