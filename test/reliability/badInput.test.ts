/**
 * Malformed configuration through every door a user has — `DsqlConfig.make`, `fromUrl`, the environment (read the
 * way the environment is read: `ConfigProvider.fromMap(…, { pathDelim: "_" })`) and `DsqlClient.layerConfig` — must
 * fail with a `ConfigError` that names the key and says what is wanted: never a throw, a defect or a hang. Then the
 * same over random input, and TLS that no configuration can turn off.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Config, ConfigError, ConfigProvider, Effect, Exit, FastCheck, Layer, Option } from "effect"
import { DsqlClient, DsqlConfig, TokenSigner } from "effect-dsql"
import * as Net from "node:net"
import { report } from "./harness.js"

const clusterId = "abcdefghij0123456789klmnop"
const endpoint = `${clusterId}.dsql.us-east-1.on.aws`

/** Reads `effect` with exactly these variables as its environment. */
const withEnv = (vars: Record<string, string>) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.withConfigProvider(effect, ConfigProvider.fromMap(new Map(Object.entries(vars)), { pathDelim: "_" }))

const fromEnv = (vars: Record<string, string>) => withEnv(vars)(DsqlConfig.config)

/** Builds `DsqlClient.layerConfig(input)`, as an application would, with no other environment. */
const buildLayer = (input: DsqlClient.ConfigInput, env: Record<string, string> = {}) =>
  Layer.build(DsqlClient.layerConfig(input)).pipe(Effect.scoped, withEnv(env))

const leaves = (error: ConfigError.ConfigError): Array<{ readonly path: string; readonly message: string }> =>
  error._op === "And" || error._op === "Or"
    ? [...leaves(error.left), ...leaves(error.right)]
    : [{ path: error.path.join("_"), message: error.message }]

interface Row {
  readonly name: string
  /** Built lazily, so that a constructor that throws fails its row instead of the file. */
  readonly run: () => Effect.Effect<unknown, unknown>
  /** The key the error must name (the path of one of its leaves). */
  readonly key: string
  /** Fragments of that leaf's message. */
  readonly says: ReadonlyArray<string>
  /** Text the error must never contain. */
  readonly never?: string
}

const make = (name: string, options: unknown, key: string, ...says: Array<string>): Row => ({
  name: `make: ${name}`,
  run: () => DsqlConfig.make(options as DsqlConfig.Options),
  key,
  says
})

const url = (name: string, text: string, ...says: Array<string>): Row => ({
  name: `fromUrl: ${name}`,
  run: () => DsqlConfig.fromUrl(text),
  key: "url",
  says
})

const env = (name: string, vars: Record<string, string>, key: string, ...says: Array<string>): Row => ({
  name: `env: ${name}`,
  run: () => fromEnv(vars),
  key,
  says
})

const layerConfig = (
  name: string,
  input: unknown,
  key: string,
  says: ReadonlyArray<string>,
  vars: Record<string, string> = {}
): Row => ({
  name: `layerConfig: ${name}`,
  run: () => Effect.suspend(() => buildLayer(input as DsqlClient.ConfigInput, vars)),
  key,
  says
})

const host = { host: endpoint }

const rows: ReadonlyArray<Row> = [
  make("nothing at all", {}, "host", "set host"),
  make("null instead of options", null, "host", "set host"),
  make("an empty host", { host: "" }, "host", "must not be empty"),
  make("an IP address as host", { host: "10.0.0.1", region: "us-east-1" }, "host", "not an IP address", "hostAddress"),
  make("a port inside the host", { host: "db.example.com:5432", region: "us-east-1" }, "host", "give the port as port"),
  make("a connection string as host", { host: `postgres://${endpoint}` }, "host", "give it as url"),
  make("whitespace in the host", { host: "db example.com", region: "us-east-1" }, "host", "whitespace"),
  make("a character no host name has", { host: "db!.example.com", region: "us-east-1" }, "host", "not a host name"),
  make("a cluster id without a region", { host: clusterId }, "region", "region is required", "cluster id"),
  make("another host without a region", { host: "db.example.com" }, "region", "region is required"),
  make("an upper-case region", { ...host, region: "US-EAST-1" }, "region", "lowercase"),
  make("port 0", { ...host, port: 0 }, "port", "from 1 to 65535"),
  make("port 70000", { ...host, port: 70_000 }, "port", "from 1 to 65535"),
  make("a fractional port", { ...host, port: 5432.5 }, "port", "integer"),
  make("an empty user", { ...host, user: "" }, "user", "must not be empty"),
  make("a database name over 63 bytes", { ...host, database: "d".repeat(64) }, "database", "at most 63 bytes"),
  make("a token valid 0 s", { ...host, tokenDuration: "0 seconds" }, "tokenDuration", "from 1 to 604800"),
  make("a token valid 8 days", { ...host, tokenDuration: "8 days" }, "tokenDuration", "7 days"),
  make("a token valid 1.5 s", { ...host, tokenDuration: 1_500 }, "tokenDuration", "whole number of seconds"),
  make("no connections", { ...host, maxConnections: 0 }, "maxConnections", "integer from 1"),
  make("more kept open than allowed", { ...host, minConnections: 5, maxConnections: 2 }, "minConnections", "exceed"),
  make(
    "a lifetime of 60 minutes",
    { ...host, maxConnectionLifetime: "60 minutes" },
    "maxConnectionLifetime",
    "under 60"
  ),
  make("a negative idle timeout", { ...host, idleTimeout: -1 }, "idleTimeout", "above zero"),
  make("an infinite connect timeout", { ...host, connectTimeout: Infinity }, "connectTimeout", "above zero"),
  make("an application name too long", { ...host, applicationName: "a".repeat(60) }, "applicationName", "printable"),
  make("a non-ASCII application name", { ...host, applicationName: "naïve" }, "applicationName", "ASCII"),
  make("a host address that is neither", { ...host, hostAddress: "not an address" }, "hostAddress", "IPv4"),
  make("a file path as CA", { ...host, caPem: "/etc/ssl/certs/ca.pem" }, "caPem", "not a file path"),
  make("TLS negotiation disabled", { ...host, sslNegotiation: "disable" }, "sslNegotiation", "\"direct\""),
  make("both host and url", { ...host, url: `postgres://${endpoint}` }, "host", "not both"),
  make("an empty profile", { ...host, profile: "" }, "profile", "AWS profile name"),
  url("another scheme", `mysql://admin@${endpoint}/postgres`, "scheme \"mysql\""),
  url("no scheme", endpoint, "must start with postgres://"),
  url("a port out of range", `postgres://${endpoint}:99999/postgres`, "port in url"),
  url("sslmode=disable", `postgres://${endpoint}/postgres?sslmode=disable`, "unknown parameters \"sslmode\""),
  url("two path segments", `postgres://${endpoint}/a/b`, "single path segment"),
  url("bad percent-encoding", `postgres://${endpoint}/%zz`, "percent-encoding"),
  url("a parameter without a value", `postgres://${endpoint}/postgres?region`, "needs a value"),
  url("a repeated parameter", `postgres://${endpoint}/?region=us-east-1&region=us-west-2`, "repeats"),
  url("an IPv6 address as host", "postgres://[::1]:5432/postgres", "IPv6"),
  url("a fragment", `postgres://${endpoint}/postgres#primary`, "'#'"),
  url("a token duration that is not a number", `postgres://${endpoint}/?tokenDurationSecs=abc`, "tokenDurationSecs"),
  {
    name: "fromUrl: a password, never echoed",
    run: () => DsqlConfig.fromUrl(`postgres://admin:hunter2@${endpoint}/postgres`),
    key: "url",
    says: ["remove the password"],
    never: "hunter2"
  },
  env("nothing set", {}, "DSQL_HOST", "set DSQL_HOST", "DSQL_URL"),
  env("a port that is not a number", { DSQL_HOST: endpoint, DSQL_PORT: "abc" }, "DSQL_PORT", "from 1 to 65535"),
  env("negative pool", { DSQL_HOST: endpoint, DSQL_MAX_CONNECTIONS: "-3" }, "DSQL_MAX_CONNECTIONS", "integer"),
  env(
    "fractional token seconds",
    { DSQL_HOST: endpoint, DSQL_TOKEN_DURATION_SECS: "1.5" },
    "DSQL_TOKEN_DURATION_SECS",
    "whole"
  ),
  env(
    "a lifetime of 2 hours",
    { DSQL_HOST: endpoint, DSQL_MAX_CONNECTION_LIFETIME: "2 hours" },
    "DSQL_MAX_CONNECTION_LIFETIME",
    "under 60"
  ),
  env("a timeout in words", { DSQL_HOST: endpoint, DSQL_CONNECT_TIMEOUT: "soon" }, "DSQL_CONNECT_TIMEOUT", "duration"),
  env(
    "TLS negotiation off",
    { DSQL_HOST: endpoint, DSQL_SSL_NEGOTIATION: "disable" },
    "DSQL_SSL_NEGOTIATION",
    "direct"
  ),
  env("a CA file path", { DSQL_HOST: endpoint, DSQL_CA_PEM: "/etc/ssl/ca.pem" }, "DSQL_CA_PEM", "not a file path"),
  env("a bad AWS_REGION for a cluster id", { DSQL_HOST: clusterId, AWS_REGION: "Mars" }, "AWS_REGION", "AWS region"),
  env("DSQL_HOST and DSQL_URL", { DSQL_HOST: endpoint, DSQL_URL: `dsql://${endpoint}` }, "DSQL_HOST", "not both"),
  env(
    "sslmode in DSQL_URL",
    { DSQL_URL: `postgres://${endpoint}/?sslmode=require&sslrootcert=x` },
    "DSQL_URL",
    "unknown"
  ),
  env(
    "more kept open than the default pool",
    { DSQL_HOST: endpoint, DSQL_MIN_CONNECTIONS: "20" },
    "DSQL_MIN_CONNECTIONS",
    "exceed"
  ),
  layerConfig("nothing at all", {}, "host", ["set host"]),
  layerConfig("undefined instead of options", undefined, "host", ["set host"]),
  layerConfig("a Config that is not set", { host: Config.string("NOT_SET_ANYWHERE") }, "NOT_SET_ANYWHERE", [""]),
  layerConfig("a Config that does not parse", { ...host, port: Config.integer("PORT") }, "PORT", ["integer"], {
    PORT: "abc"
  }),
  layerConfig("a negative pool", { ...host, maxConnections: -1 }, "maxConnections", ["integer from 1"]),
  layerConfig("sslmode in the url", { url: `postgres://${endpoint}/?sslmode=disable` }, "url", ["unknown parameters"]),
  layerConfig("a number as host", { host: 42 }, "host", ["must be a string"])
]

/** Rows that ended in the ConfigError they should; the last test checks all did. */
const refusedTyped = new Set<string>()
const propertyRuns = { env: 1_000, url: 1_000, layerConfig: 300 }

describe("reliability: bad input", () => {
  it("has at least 40 malformed configs, env values and connection strings", () => {
    assert.isAtLeast(rows.length, 40)
  })

  for (const row of rows) {
    it.effect(row.name, () =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(Effect.suspend(row.run))
        assert.isTrue(Exit.isFailure(exit), "accepted")
        const cause = (exit as Exit.Failure<unknown, unknown>).cause
        assert.isFalse(Cause.isDie(cause), `a defect instead of a typed error: ${Cause.pretty(cause)}`)
        const error = Option.getOrUndefined(Cause.failureOption(cause))
        assert.isTrue(ConfigError.isConfigError(error), `not a ConfigError: ${Cause.pretty(cause)}`)
        const found = leaves(error as ConfigError.ConfigError)
        const leaf = found.find((leaf) => leaf.path === row.key)
        assert.isDefined(leaf, `no error names ${row.key}: ${JSON.stringify(found)}`)
        for (const fragment of row.says) assert.include(leaf!.message, fragment)
        if (row.never !== undefined) assert.notInclude(Cause.pretty(cause), row.never)
        refusedTyped.add(row.name)
      }), 10_000)
  }
})

/** A TCP port nothing listens on. */
const closedPort = Effect.async<number>((resume) => {
  const probe = Net.createServer().listen(0, "127.0.0.1", () => {
    const { port } = probe.address() as Net.AddressInfo
    probe.close(() => resume(Effect.succeed(port)))
  })
})

/** Strings users get wrong: empty, spaces, control characters, other schemes, encodings, numbers. */
const awkwardText = FastCheck.oneof(
  FastCheck.string({ unit: "binary", maxLength: 80 }),
  FastCheck.constantFrom(
    "",
    " ",
    "\u0000",
    "-1",
    "0",
    "1e309",
    "NaN",
    "true",
    "disable",
    "require",
    "60 minutes",
    "5 parsecs",
    "postgres://",
    `postgres://${endpoint}?sslmode=disable`,
    `dsql://admin:pw@${endpoint}`,
    clusterId,
    endpoint,
    "us-east-1",
    "%zz",
    "[::1]",
    "-----BEGIN CERTIFICATE-----"
  )
)

const envKeys = [
  "DSQL_HOST",
  "DSQL_URL",
  "DSQL_REGION",
  "DSQL_USER",
  "DSQL_DATABASE",
  "DSQL_PORT",
  "DSQL_PROFILE",
  "DSQL_TOKEN_DURATION_SECS",
  "DSQL_MAX_CONNECTIONS",
  "DSQL_MIN_CONNECTIONS",
  "DSQL_MAX_CONNECTION_LIFETIME",
  "DSQL_IDLE_TIMEOUT",
  "DSQL_CONNECT_TIMEOUT",
  "DSQL_APPLICATION_NAME",
  "DSQL_HOSTADDR",
  "DSQL_CA_PEM",
  "DSQL_SSL_NEGOTIATION",
  "AWS_REGION",
  "AWS_DEFAULT_REGION"
]

const optionKeys = [
  "host",
  "url",
  "region",
  "user",
  "database",
  "port",
  "profile",
  "tokenDuration",
  "maxConnections",
  "minConnections",
  "maxConnectionLifetime",
  "idleTimeout",
  "applicationName",
  "caPem",
  "sslNegotiation",
  "ssl",
  "sslmode",
  "password"
]

/** Any value a config field could be handed, as such or as a `Config` (set, or reading a variable never set). */
const anyValue = FastCheck.oneof(
  awkwardText,
  FastCheck.integer(),
  FastCheck.double(),
  FastCheck.boolean(),
  FastCheck.constantFrom(null, undefined, Infinity, -0),
  FastCheck.array(FastCheck.integer(), { maxLength: 3 }),
  FastCheck.object({ maxDepth: 1 })
)
const anyField = FastCheck.oneof(
  anyValue,
  anyValue.map((value) => Config.succeed(value)),
  FastCheck.constant(Config.string("RELIABILITY_NEVER_SET"))
)

/**
 * Only a ConfigError, or, for a config that is valid, the SqlError of a server that is not there. Returns which (or
 * "success").
 */
const assertTypedOnly = (exit: Exit.Exit<unknown, unknown>): string => {
  if (Exit.isSuccess(exit)) return "success"
  assert.isFalse(Cause.isDie(exit.cause), Cause.pretty(exit.cause))
  assert.isFalse(Cause.isInterrupted(exit.cause), Cause.pretty(exit.cause))
  const failure = Option.getOrUndefined(Cause.failureOption(exit.cause)) as { _tag?: string; message?: unknown }
  assert.isTrue(ConfigError.isConfigError(failure) || failure?._tag === "SqlError", Cause.pretty(exit.cause))
  assert.isAbove(String(failure.message).length, 0, "an error says something")
  return ConfigError.isConfigError(failure) ? "ConfigError" : "SqlError"
}

describe("reliability: bad input, random", () => {
  it.effect.prop(
    "the environment: any values in any DSQL_ variables give a config or a ConfigError",
    { vars: FastCheck.dictionary(FastCheck.constantFrom(...envKeys), awkwardText, { maxKeys: 8 }) },
    ({ vars }) => Effect.asVoid(Effect.map(Effect.exit(fromEnv(vars)), assertTypedOnly)),
    { fastCheck: { numRuns: propertyRuns.env } }
  )

  it.effect.prop(
    "DSQL_URL: any string gives a config or a ConfigError",
    { text: awkwardText, suffix: FastCheck.string({ unit: "binary", maxLength: 40 }) },
    ({ suffix, text }) =>
      Effect.asVoid(Effect.map(Effect.exit(fromEnv({ DSQL_URL: `postgres://${text}${suffix}` })), assertTypedOnly)),
    { fastCheck: { numRuns: propertyRuns.url } }
  )

  it.live(
    "layerConfig: random config objects fail typed, or connect and fail typed where nothing listens",
    () =>
      Effect.gen(function*() {
        const port = yield* closedPort
        yield* Effect.promise(() =>
          FastCheck.assert(
            FastCheck.asyncProperty(
              FastCheck.dictionary(FastCheck.constantFrom(...optionKeys), anyField, { maxKeys: 8 }),
              async (fields) => {
                // Valid configs must not reach the network: dial a closed local port, quickly.
                const input = { ...fields, hostAddress: "127.0.0.1", port, connectTimeout: "1 second" }
                const layer = Effect.suspend(() =>
                  Layer.build(
                    DsqlClient.layerConfigWithSigner(input as DsqlClient.ConfigInput).pipe(
                      Layer.provide(TokenSigner.layerStatic({ accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" }))
                    )
                  )
                )
                const exit = await Effect.runPromiseExit(layer.pipe(Effect.scoped, withEnv({})))
                assertTypedOnly(exit)
              }
            ),
            { numRuns: propertyRuns.layerConfig }
          )
        )
      }),
    120_000
  )

  it.effect("every malformed input of the table failed typed", () =>
    Effect.gen(function*() {
      assert.strictEqual(refusedTyped.size, rows.length)
      yield* report({
        file: "badInput",
        case: `${rows.length} malformed configs, env values and URLs; properties over random env maps, URLs and ` +
          "config objects",
        faults: "malformed input through make, fromUrl, the environment and layerConfig",
        operations: rows.length + propertyRuns.env + propertyRuns.url + propertyRuns.layerConfig,
        errorsSeen: rows.length,
        dataLost: 0,
        notes:
          "every error a ConfigError naming the key (or, for valid random configs, a SqlError): no throw, defect " +
          "or hang"
      })
    }))
})
