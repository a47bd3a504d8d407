import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Cause, Config, ConfigProvider, Duration, Effect, Exit, Option, Schema } from "effect"
import type { SchemaIssue } from "effect"
import { DsqlConfig } from "effect-dsql"
import packageJson from "../package.json" with { type: "json" }
import { version } from "../src/internal/version.js"

const clusterId = "abcdefghij0123456789klmnop"
const endpoint = `${clusterId}.dsql.us-east-1.on.aws`
const driverName = `effect-dsql/${version}`
const pem = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n"

/** The environment as users give it: `DSQL_HOST`-style variables, read by Effect 4's environment provider. */
const fromEnv = (env: Record<string, string>, options?: { readonly preserveEmptyStrings: boolean }) =>
  DsqlConfig.config.parse(ConfigProvider.fromEnv({ env, ...options }))

interface Failure {
  readonly kind: "Missing" | "Invalid"
  readonly path: string
  readonly message: string
}

/** The leaves of a ConfigError's issue tree, each with the key it is at (`DSQL.HOST`). */
const leaves = (issue: SchemaIssue.Issue, path: ReadonlyArray<PropertyKey> = []): Array<Failure> => {
  switch (issue._tag) {
    case "Pointer":
      return leaves(issue.issue, [...path, ...issue.path])
    case "Composite":
      return issue.issues.flatMap((inner) => leaves(inner, path))
    case "MissingKey":
      return [{ kind: "Missing", path: path.join("."), message: String(issue.annotations?.messageMissingKey) }]
    case "InvalidValue":
      return [{ kind: "Invalid", path: path.join("."), message: String(issue.annotations?.message) }]
    default:
      throw new Error(`unexpected issue ${issue._tag}`)
  }
}

const flatten = (error: Config.ConfigError): Array<Failure> => {
  assert.strictEqual(error.cause._tag, "SchemaError")
  return leaves((error.cause as Schema.SchemaError).issue)
}

/** The failure, without handing the reporter a whole config when the expectation is wrong. */
const failures = <A>(effect: Effect.Effect<A, Config.ConfigError>) =>
  Effect.map(
    Effect.flip(Effect.andThen(effect, Effect.die(new Error("expected a failure, but it succeeded")))),
    flatten
  )

/** Exactly one failure, at `path`, whose message contains every fragment. */
const expectFailure = <A>(
  effect: Effect.Effect<A, Config.ConfigError>,
  path: string,
  ...fragments: Array<string>
) =>
  Effect.map(failures(effect), (found) => {
    assert.deepStrictEqual(found.map((failure) => failure.path), [path], JSON.stringify(found))
    for (const fragment of fragments) assert.include(found[0].message, fragment)
    return found[0]
  })

const millis = (d: Duration.Duration) => Duration.toMillis(d)

/** Everything a successfully built config promises, whatever the input. */
const assertInvariants = (config: DsqlConfig.DsqlConfig) => {
  assert.match(config.host, /^[a-z0-9_-]{1,63}(\.[a-z0-9_-]{1,63})*$/)
  assert.match(config.region, /^[a-z]{2}(-[a-z]+)+-\d+$/)
  if (Option.isSome(config.clusterId)) {
    assert.isTrue(DsqlConfig.isClusterId(config.clusterId.value))
    assert.isTrue(config.host.startsWith(`${config.clusterId.value}.dsql`))
  }
  assert.isTrue(Number.isInteger(config.port) && config.port >= 1 && config.port <= 65535)
  for (const name of [config.user, config.database]) {
    assert.isTrue(name.length > 0 && new TextEncoder().encode(name).length <= 63)
  }
  const tokenSeconds = Duration.toSeconds(config.tokenDuration)
  assert.isTrue(Number.isInteger(tokenSeconds) && tokenSeconds >= 1 && tokenSeconds <= 604800)
  assert.isTrue(Number.isInteger(config.minConnections) && config.minConnections >= 0)
  assert.isTrue(config.minConnections <= config.maxConnections)
  assert.isTrue(millis(config.maxConnectionLifetime) > 0 && millis(config.maxConnectionLifetime) < 3_600_000)
  for (const d of [config.idleTimeout, config.connectTimeout]) assert.isTrue(Duration.isFinite(d) && millis(d) > 0)
  assert.isTrue(config.applicationName.endsWith(driverName))
  assert.match(config.applicationName, /^[\x20-\x7e]{1,63}$/)
}

/** Succeeds with a config that keeps every invariant, or fails with a ConfigError; never dies, never throws. */
const assertTotal = (exit: Exit.Exit<DsqlConfig.DsqlConfig, Config.ConfigError>) => {
  if (Exit.isSuccess(exit)) return assertInvariants(exit.value)
  const error = Cause.findErrorOption(exit.cause)
  assert.isTrue(Option.isSome(error), Cause.pretty(exit.cause))
  assert.isTrue(flatten(Option.getOrThrow(error)).length > 0)
}

const int = (minimum: number, maximum: number) =>
  Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum, maximum })))

/** Any one of the arbitraries. */
const oneOf = <A>(...arbitraries: ReadonlyArray<Arbitrary.Arbitrary<A>>): Arbitrary.Arbitrary<A> =>
  Arbitrary.flatMap(int(0, arbitraries.length - 1), (i) => arbitraries[i])

/** Strings `encodeURIComponent` takes: Effect's string arbitrary also makes lone surrogates. */
const encodable = Schema.makeFilter((s: string) => {
  try {
    encodeURIComponent(s)
    return true
  } catch {
    return false
  }
})

const constants = <const A extends ReadonlyArray<string>>(values: A) => Arbitrary.schema(Schema.Literals(values))

describe("DsqlConfig", () => {
  it("sends the package version in application_name", () => {
    assert.strictEqual(version, packageJson.version)
  })

  describe("defaults", () => {
    it.effect("fill in everything but the host", () =>
      Effect.gen(function*() {
        const config = yield* DsqlConfig.make({ host: endpoint })
        assert.strictEqual(config.host, endpoint)
        assert.deepStrictEqual(config.clusterId, Option.some(clusterId))
        assert.strictEqual(config.region, "us-east-1")
        assert.strictEqual(config.user, "admin")
        assert.strictEqual(config.database, "postgres")
        assert.strictEqual(config.port, 5432)
        assert.deepStrictEqual(config.profile, Option.none())
        assert.strictEqual(millis(config.tokenDuration), 15 * 60_000)
        assert.strictEqual(config.maxConnections, 10)
        assert.strictEqual(config.minConnections, 0)
        assert.strictEqual(millis(config.maxConnectionLifetime), 55 * 60_000)
        assert.strictEqual(millis(config.idleTimeout), 5 * 60_000)
        assert.strictEqual(millis(config.connectTimeout), 10_000)
        assert.strictEqual(config.applicationName, driverName)
        assert.deepStrictEqual(config.hostAddress, Option.none())
        assert.deepStrictEqual(config.caPem, Option.none())
        assert.strictEqual(config.sslNegotiation, "direct")
      }))

    it.effect("are the same from the environment and from a URL, each naming where the host came from", () =>
      Effect.gen(function*() {
        const split = ({ hostInput, ...config }: DsqlConfig.DsqlConfig) => ({ config, hostInput })
        const fromObject = split(yield* DsqlConfig.make({ host: endpoint }))
        const fromEnvironment = split(yield* fromEnv({ DSQL_HOST: endpoint }))
        const fromUrl = split(yield* DsqlConfig.fromUrl(`postgres://${endpoint}`))
        assert.deepStrictEqual(fromEnvironment.config, fromObject.config)
        assert.deepStrictEqual(fromUrl.config, fromObject.config)
        assert.deepStrictEqual([fromObject.hostInput, fromEnvironment.hostInput, fromUrl.hostInput], [
          "host",
          "DSQL_HOST",
          "the host in url"
        ])
      }))

    it.effect("never take the user from the OS USER variable", () =>
      Effect.gen(function*() {
        const config = yield* fromEnv({ DSQL_HOST: endpoint, USER: "root", LOGNAME: "root" })
        assert.strictEqual(config.user, "admin")
      }))
  })

  describe("environment", () => {
    it.effect("reads every DSQL_ variable", () =>
      Effect.gen(function*() {
        const config = yield* fromEnv({
          DSQL_HOST: "db.internal",
          DSQL_REGION: "eu-west-1",
          DSQL_USER: "reporter",
          DSQL_DATABASE: "analytics",
          DSQL_PORT: "6543",
          DSQL_PROFILE: "prod",
          DSQL_TOKEN_DURATION_SECS: "3600",
          DSQL_MAX_CONNECTIONS: "40",
          DSQL_MIN_CONNECTIONS: "5",
          DSQL_MAX_CONNECTION_LIFETIME: "50 minutes",
          DSQL_IDLE_TIMEOUT: "120",
          DSQL_CONNECT_TIMEOUT: "2.5",
          DSQL_APPLICATION_NAME: "billing, nightly",
          DSQL_HOSTADDR: "10.0.0.7",
          DSQL_CA_PEM: pem,
          DSQL_SSL_NEGOTIATION: "postgres"
        })
        assert.strictEqual(config.host, "db.internal")
        assert.deepStrictEqual(config.clusterId, Option.none())
        assert.strictEqual(config.region, "eu-west-1")
        assert.strictEqual(config.user, "reporter")
        assert.strictEqual(config.database, "analytics")
        assert.strictEqual(config.port, 6543)
        assert.deepStrictEqual(config.profile, Option.some("prod"))
        assert.strictEqual(millis(config.tokenDuration), 3_600_000)
        assert.strictEqual(config.maxConnections, 40)
        assert.strictEqual(config.minConnections, 5)
        assert.strictEqual(millis(config.maxConnectionLifetime), 50 * 60_000)
        assert.strictEqual(millis(config.idleTimeout), 120_000)
        assert.strictEqual(millis(config.connectTimeout), 2_500)
        assert.strictEqual(config.applicationName, `billing, nightly:${driverName}`)
        assert.deepStrictEqual(config.hostAddress, Option.some("10.0.0.7"))
        assert.deepStrictEqual(config.caPem, Option.some(pem))
        assert.strictEqual(config.sslNegotiation, "postgres")
      }))

    it.effect("is read from the ConfigProvider in context, the process environment by default", () =>
      Effect.gen(function*() {
        const vars = { DSQL_HOST: clusterId, DSQL_REGION: "eu-west-3", DSQL_MAX_CONNECTION_LIFETIME: "30 minutes" }
        const config = yield* Effect.provideService(
          DsqlConfig.config,
          ConfigProvider.ConfigProvider,
          ConfigProvider.fromEnvRecord({ ...process.env, ...vars })
        )
        assert.strictEqual(config.host, `${clusterId}.dsql.eu-west-3.on.aws`)
        assert.strictEqual(millis(config.maxConnectionLifetime), 30 * 60_000)
      }))

    it.effect("reads the same keys from a structured provider", () =>
      Effect.gen(function*() {
        const config = yield* DsqlConfig.config.parse(
          ConfigProvider.fromUnknown({ DSQL: { HOST: clusterId, MAX_CONNECTIONS: "3" }, AWS_REGION: "eu-west-2" })
        )
        assert.deepStrictEqual([config.host, config.maxConnections], [`${clusterId}.dsql.eu-west-2.on.aws`, 3])
      }))

    it.effect("composes with the application's own Config, whose keys it leaves alone", () =>
      Effect.gen(function*() {
        const app = Config.all({ dsql: DsqlConfig.config, port: Config.Port("PORT") })
        const { dsql, port } = yield* app.parse(ConfigProvider.fromEnv({ env: { DSQL_HOST: endpoint, PORT: "8080" } }))
        assert.deepStrictEqual([dsql.host, dsql.port, port], [endpoint, 5432, 8080])
      }))

    it.effect("reads durations as Effect duration strings or bare seconds", () =>
      Effect.gen(function*() {
        const read = (value: string) =>
          Effect.map(fromEnv({ DSQL_HOST: endpoint, DSQL_CONNECT_TIMEOUT: value }), (c) => millis(c.connectTimeout))
        assert.strictEqual(yield* read("10 seconds"), 10_000)
        assert.strictEqual(yield* read("250 millis"), 250)
        assert.strictEqual(yield* read("30"), 30_000)
        assert.strictEqual(yield* read("0.5"), 500)
        yield* expectFailure(read("10s"), "DSQL.CONNECT_TIMEOUT", "DSQL_CONNECT_TIMEOUT must be a duration", "\"10s\"")
      }))

    it.effect("reads DSQL_TOKEN_DURATION_SECS as whole seconds only", () =>
      Effect.gen(function*() {
        const read = (value: string) => fromEnv({ DSQL_HOST: endpoint, DSQL_TOKEN_DURATION_SECS: value })
        assert.strictEqual(millis((yield* read("604800")).tokenDuration), 604_800_000)
        for (const bad of ["15 minutes", "1.5", "0", "604801", "-1"]) {
          yield* expectFailure(read(bad), "DSQL.TOKEN_DURATION_SECS", "from 1 to 604800")
        }
      }))

    it.effect("treats empty variables as unset, even from a provider that keeps them", () =>
      Effect.gen(function*() {
        const vars = { DSQL_HOST: endpoint, DSQL_USER: "", DSQL_PORT: "", DSQL_URL: "", AWS_REGION: "" }
        for (const preserveEmptyStrings of [false, true]) {
          const config = yield* fromEnv(vars, { preserveEmptyStrings })
          assert.strictEqual(config.user, "admin")
          assert.strictEqual(config.port, 5432)
        }
      }))

    it.effect("needs DSQL_HOST or DSQL_URL, not both", () =>
      Effect.gen(function*() {
        const none = yield* expectFailure(fromEnv({ DSQL_REGION: "us-east-1" }), "DSQL.HOST", "DSQL_HOST", "DSQL_URL")
        assert.strictEqual(none.kind, "Missing")
        yield* expectFailure(
          fromEnv({ DSQL_HOST: endpoint, DSQL_URL: `postgres://${endpoint}` }),
          "DSQL.HOST",
          "set DSQL_HOST or DSQL_URL, not both"
        )
      }))

    it.effect("names the key in the ConfigError's message, as Effect's own Config errors do", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(fromEnv({ DSQL_HOST: clusterId }))
        assert.strictEqual(error._tag, "ConfigError")
        assert.include(
          error.message,
          "DSQL_REGION is required when DSQL_HOST is a cluster id; set DSQL_REGION or AWS_REGION\n  at [\"DSQL\"][\"REGION\"]"
        )
      }))

    it.effect("lets separate variables override DSQL_URL", () =>
      Effect.gen(function*() {
        const config = yield* fromEnv({
          DSQL_URL: `postgres://bob@${endpoint}:5433/app?profile=dev&tokenDurationSecs=60`,
          DSQL_USER: "alice",
          DSQL_PORT: "6000",
          DSQL_PROFILE: "ops",
          DSQL_TOKEN_DURATION_SECS: "120",
          DSQL_REGION: "us-east-2"
        })
        assert.strictEqual(config.user, "alice")
        assert.strictEqual(config.port, 6000)
        assert.strictEqual(config.database, "app")
        assert.deepStrictEqual(config.profile, Option.some("ops"))
        assert.strictEqual(millis(config.tokenDuration), 120_000)
        assert.strictEqual(config.region, "us-east-2")
      }))

    it.effect("names the URL in errors about its parts", () =>
      expectFailure(
        fromEnv({ DSQL_URL: "postgres://localhost:5432/db?region=Mars" }),
        "DSQL.URL",
        "region in DSQL_URL"
      ))

    it.effect("reports every bad variable at once", () =>
      Effect.gen(function*() {
        const found = yield* failures(fromEnv({ DSQL_HOST: endpoint, DSQL_PORT: "http", DSQL_USER: "x".repeat(64) }))
        assert.deepStrictEqual(found.map((failure) => failure.path).sort(), ["DSQL.PORT", "DSQL.USER"])
      }))

    it.effect("turns literal \\n escapes in DSQL_CA_PEM into newlines", () =>
      Effect.gen(function*() {
        const config = yield* fromEnv({ DSQL_HOST: endpoint, DSQL_CA_PEM: pem.replaceAll("\n", "\\n") })
        assert.deepStrictEqual(config.caPem, Option.some(pem))
      }))
  })

  describe("region", () => {
    it.effect("expands a bare cluster id with the region", () =>
      Effect.gen(function*() {
        const config = yield* fromEnv({ DSQL_HOST: clusterId, DSQL_REGION: "ap-southeast-2" })
        assert.strictEqual(config.host, `${clusterId}.dsql.ap-southeast-2.on.aws`)
        assert.deepStrictEqual(config.clusterId, Option.some(clusterId))
        assert.strictEqual(config.region, "ap-southeast-2")
      }))

    it.effect("is required for a bare cluster id, and for a host that is not a DSQL endpoint", () =>
      Effect.gen(function*() {
        const failure = yield* expectFailure(fromEnv({ DSQL_HOST: clusterId }), "DSQL.REGION")
        assert.strictEqual(failure.kind, "Missing")
        assert.strictEqual(
          failure.message,
          "DSQL_REGION is required when DSQL_HOST is a cluster id; set DSQL_REGION or AWS_REGION"
        )
        yield* expectFailure(
          fromEnv({ DSQL_HOST: "localhost" }),
          "DSQL.REGION",
          "DSQL_REGION is required when DSQL_HOST is not a DSQL endpoint",
          "set DSQL_REGION or AWS_REGION"
        )
      }))

    it.effect("falls back to AWS_REGION, then AWS_DEFAULT_REGION, read at the top level", () =>
      Effect.gen(function*() {
        const region = (vars: Record<string, string>) =>
          Effect.map(fromEnv({ DSQL_HOST: clusterId, ...vars }), (c) => c.region)
        assert.strictEqual(yield* region({ AWS_REGION: "us-west-2" }), "us-west-2")
        assert.strictEqual(yield* region({ AWS_DEFAULT_REGION: "eu-north-1" }), "eu-north-1")
        assert.strictEqual(yield* region({ AWS_REGION: "us-west-2", AWS_DEFAULT_REGION: "eu-north-1" }), "us-west-2")
        yield* expectFailure(region({ DSQL_AWS_REGION: "us-west-2" }), "DSQL.REGION")
      }))

    it.effect("awsRegion takes AWS_REGION over AWS_DEFAULT_REGION, as the AWS SDK does", () =>
      Effect.gen(function*() {
        const awsRegion = (env: Record<string, string>) => DsqlConfig.awsRegion.parse(ConfigProvider.fromEnv({ env }))
        assert.deepStrictEqual(
          yield* awsRegion({ AWS_REGION: "us-west-2", AWS_DEFAULT_REGION: "eu-north-1" }),
          Option.some("us-west-2")
        )
        assert.deepStrictEqual(yield* awsRegion({ AWS_DEFAULT_REGION: "eu-north-1" }), Option.some("eu-north-1"))
        assert.deepStrictEqual(yield* awsRegion({}), Option.none())
      }))

    it.effect("takes an explicit region over the endpoint's, and the endpoint's over AWS_REGION", () =>
      Effect.gen(function*() {
        assert.strictEqual((yield* fromEnv({ DSQL_HOST: endpoint, AWS_REGION: "eu-west-1" })).region, "us-east-1")
        const explicit = yield* fromEnv({ DSQL_HOST: endpoint, DSQL_REGION: "us-east-2", AWS_REGION: "eu-west-1" })
        assert.deepStrictEqual([explicit.region, explicit.host], ["us-east-2", endpoint])
      }))

    it.effect("rejects a malformed AWS_REGION by name", () =>
      expectFailure(
        fromEnv({ DSQL_HOST: clusterId, AWS_REGION: "US-EAST-1" }),
        "AWS_REGION",
        "AWS_REGION",
        "us-east-1"
      ))

    it.effect("uses make's fallback region last", () =>
      Effect.gen(function*() {
        const config = yield* DsqlConfig.make({ host: clusterId }, Option.some("sa-east-1"))
        assert.strictEqual(config.region, "sa-east-1")
        const explicit = yield* DsqlConfig.make({ host: clusterId, region: "us-east-1" }, Option.some("sa-east-1"))
        assert.strictEqual(explicit.region, "us-east-1")
        yield* expectFailure(DsqlConfig.make({ host: clusterId }, Option.some("nowhere")), "region", "fallback region")
      }))
  })

  describe("host forms", () => {
    const accepted: Array<[host: string, region: string | undefined, expected: Partial<DsqlConfig.DsqlConfig>]> = [
      [endpoint, undefined, { host: endpoint, clusterId: Option.some(clusterId), region: "us-east-1" }],
      [
        `${clusterId}.dsql-fnh4.us-east-1.on.aws`,
        undefined,
        { host: `${clusterId}.dsql-fnh4.us-east-1.on.aws`, clusterId: Option.some(clusterId), region: "us-east-1" }
      ],
      [endpoint.toUpperCase(), undefined, { host: endpoint, clusterId: Option.some(clusterId), region: "us-east-1" }],
      ["foo.dsql.us-east-1.on.aws", undefined, { clusterId: Option.none(), region: "us-east-1" }],
      ["localhost", "us-east-1", { host: "localhost", clusterId: Option.none() }],
      ["db.internal", "us-gov-west-1", { host: "db.internal", clusterId: Option.none(), region: "us-gov-west-1" }],
      ["dsql_local", "us-east-1", { host: "dsql_local", clusterId: Option.none() }],
      [clusterId, "eu-central-1", { host: `${clusterId}.dsql.eu-central-1.on.aws`, clusterId: Option.some(clusterId) }]
    ]
    it.effect.each(accepted)("accepts %s", ([host, region, expected]) =>
      Effect.gen(function*() {
        const config = yield* DsqlConfig.make({ host, region })
        for (const [name, value] of Object.entries(expected)) {
          assert.deepStrictEqual(config[name as keyof DsqlConfig.DsqlConfig], value, name)
        }
      }))

    const rejected: Array<[host: string, fragment: string]> = [
      ["", "host must not be empty"],
      [`${endpoint} `, "host must not contain whitespace"],
      [`postgres://${endpoint}`, "give it as url instead"],
      [`${endpoint}:5432`, "give the port as port"],
      ["::1", "not an IP address"],
      ["127.0.0.1", "not an IP address"],
      ["a..b", "is not a host name"],
      ["bad!host", "is not a host name"]
    ]
    it.effect.each(rejected)(
      "rejects host %j",
      ([host, fragment]) => expectFailure(DsqlConfig.make({ host, region: "us-east-1" }), "host", fragment)
    )

    it.effect("tells an environment user to use DSQL_URL for a connection string", () =>
      expectFailure(fromEnv({ DSQL_HOST: `postgres://${endpoint}` }), "DSQL.HOST", "give it as DSQL_URL instead"))

    it("isClusterId accepts exactly 26 of [a-z0-9]", () => {
      assert.isTrue(DsqlConfig.isClusterId(clusterId))
      assert.isFalse(DsqlConfig.isClusterId(clusterId.toUpperCase()))
      assert.isFalse(DsqlConfig.isClusterId(clusterId.slice(1)))
      assert.isFalse(DsqlConfig.isClusterId(`${clusterId}a`))
    })

    it("regionFromEndpoint reads the region the way official connectors do", () => {
      assert.deepStrictEqual(DsqlConfig.regionFromEndpoint(endpoint), Option.some("us-east-1"))
      assert.deepStrictEqual(
        DsqlConfig.regionFromEndpoint(`${clusterId}.dsql-fnh4.ap-northeast-1.on.aws`),
        Option.some("ap-northeast-1")
      )
      assert.deepStrictEqual(DsqlConfig.regionFromEndpoint("localhost"), Option.none())
      assert.deepStrictEqual(DsqlConfig.regionFromEndpoint(`${clusterId}.dsql.us-east-1.on.aws.evil`), Option.none())
    })
  })

  describe("validation", () => {
    const base = { host: endpoint }
    const cases: Array<[options: DsqlConfig.Options, path: string, fragment: string]> = [
      [{ ...base, region: "US-EAST-1" }, "region", "region must be an AWS region in lowercase, such as us-east-1"],
      [{ ...base, user: "" }, "user", "user must not be empty; leave it out to use \"admin\""],
      [{ ...base, user: "é".repeat(32) }, "user", "at most 63 bytes"],
      [{ ...base, database: "" }, "database", "database must not be empty; leave it out to use \"postgres\""],
      [{ ...base, port: 0 }, "port", "port must be an integer from 1 to 65535; got 0"],
      [{ ...base, port: 5432.5 }, "port", "got 5432.5"],
      [{ ...base, profile: "" }, "profile", "profile must be an AWS profile name"],
      [
        { ...base, tokenDuration: 0 },
        "tokenDuration",
        "tokenDuration must be a whole number of seconds from 1 to 604800"
      ],
      [{ ...base, tokenDuration: "604801 seconds" }, "tokenDuration", "7 days"],
      [{ ...base, tokenDuration: 1500 }, "tokenDuration", "whole number of seconds"],
      [{ ...base, tokenDuration: Duration.infinity }, "tokenDuration", "got Infinity"],
      [{ ...base, tokenDuration: Duration.nanos(1_000_000_001n) }, "tokenDuration", "whole number of seconds"],
      [{ ...base, maxConnections: 0 }, "maxConnections", "maxConnections must be an integer from 1"],
      [{ ...base, minConnections: -1 }, "minConnections", "minConnections must be an integer from 0"],
      [{ ...base, minConnections: 11 }, "minConnections", "minConnections (11) must not exceed maxConnections (10)"],
      [{ ...base, maxConnectionLifetime: "60 minutes" }, "maxConnectionLifetime", "under 60 minutes"],
      [{ ...base, maxConnectionLifetime: 0 }, "maxConnectionLifetime", "above zero"],
      [{ ...base, idleTimeout: 0 }, "idleTimeout", "idleTimeout must be a duration above zero"],
      [{ ...base, idleTimeout: Duration.infinity }, "idleTimeout", "got Infinity"],
      [{ ...base, connectTimeout: "-5 seconds" }, "connectTimeout", "got \"-5 seconds\""],
      [{ ...base, connectTimeout: Duration.seconds(-5) }, "connectTimeout", "got -5s"],
      [{ ...base, applicationName: "" }, "applicationName", "1 to 45 printable ASCII characters"],
      [{ ...base, applicationName: "naïve" }, "applicationName", `"<prefix>:${driverName}"`],
      [{ ...base, hostAddress: "[::1]" }, "hostAddress", "without brackets"],
      [{ ...base, caPem: "/etc/ssl/dsql.pem" }, "caPem", "not a file path"],
      [{ ...base, sslNegotiation: "tls" as "direct" }, "sslNegotiation", "\"direct\" (TLS first, the default)"],
      [{ host: endpoint, url: `postgres://${endpoint}` }, "host", "set host or url, not both"],
      [{ region: "us-east-1" }, "host", "set host (an endpoint"]
    ]
    it.effect.each(cases)(
      "rejects %j",
      ([options, path, fragment]) => expectFailure(DsqlConfig.make(options), path, fragment)
    )

    it.effect("accepts the limits themselves", () =>
      Effect.gen(function*() {
        const config = yield* DsqlConfig.make({
          host: endpoint,
          port: 65535,
          user: "é".repeat(31),
          tokenDuration: "604800 seconds",
          maxConnections: 1,
          minConnections: 1,
          maxConnectionLifetime: Duration.subtract(Duration.minutes(60), Duration.millis(1)),
          applicationName: "x".repeat(45),
          hostAddress: "::1"
        })
        assert.strictEqual(config.applicationName.length, 63)
        assert.strictEqual(Duration.toSeconds(config.tokenDuration), 604800)
        assertInvariants(config)
      }))

    const sameRule: Array<[options: DsqlConfig.Options, env: Record<string, string>, field: string, key: string]> = [
      [{ region: "Mars" }, { DSQL_REGION: "Mars" }, "region", "DSQL_REGION"],
      [
        { sslNegotiation: "tls" as "direct" },
        { DSQL_SSL_NEGOTIATION: "tls" },
        "sslNegotiation",
        "DSQL_SSL_NEGOTIATION"
      ],
      [{ minConnections: 20 }, { DSQL_MIN_CONNECTIONS: "20" }, "minConnections", "DSQL_MIN_CONNECTIONS"]
    ]
    it.effect.each(sameRule)(
      "gives the same message for %j from the environment",
      ([options, env, field, key]) =>
        Effect.gen(function*() {
          const fromObject = yield* expectFailure(DsqlConfig.make({ host: endpoint, ...options }), field)
          const fromEnvironment = yield* expectFailure(fromEnv({ DSQL_HOST: endpoint, ...env }), key.replace("_", "."))
          const labels = [[field, key], ["maxConnections", "DSQL_MAX_CONNECTIONS"]] as const
          const relabelled = labels.reduce((message, [from, to]) => message.replace(from, to), fromObject.message)
          assert.strictEqual(fromEnvironment.message, relabelled)
        })
    )
  })

  describe("connection strings", () => {
    const parsed: Array<[url: string, expected: Partial<DsqlConfig.DsqlConfig>]> = [
      [`postgres://${endpoint}`, { host: endpoint, user: "admin", database: "postgres", port: 5432 }],
      [`DSQL://${endpoint}`, { host: endpoint, clusterId: Option.some(clusterId) }],
      [
        "postgresql://bob@db.dsql.eu-west-1.on.aws:5433/app",
        { host: "db.dsql.eu-west-1.on.aws", user: "bob", port: 5433, database: "app", region: "eu-west-1" }
      ],
      [
        `dsql://${clusterId}?region=us-west-2`,
        { host: `${clusterId}.dsql.us-west-2.on.aws`, clusterId: Option.some(clusterId), region: "us-west-2" }
      ],
      [
        "postgres://my%20user%40corp@localhost/my%2Fdb?region=us-east-1&profile=dev%20ops&tokenDurationSecs=3600",
        { user: "my user@corp", database: "my/db", profile: Option.some("dev ops"), tokenDuration: Duration.hours(1) }
      ]
    ]
    it.effect.each(parsed)("reads %s", ([url, expected]) =>
      Effect.gen(function*() {
        const config = yield* DsqlConfig.fromUrl(url)
        for (const [name, value] of Object.entries(expected)) {
          const actual = config[name as keyof DsqlConfig.DsqlConfig]
          if (Duration.isDuration(value)) assert.isTrue(Duration.equals(actual as Duration.Duration, value), name)
          else assert.deepStrictEqual(actual, value, name)
        }
      }))

    const refused: Array<[url: string, fragment: string]> = [
      ["mysql://localhost/db", "url has the scheme \"mysql\"; use postgres://, postgresql:// or dsql://"],
      [endpoint, "url must start with postgres://, postgresql:// or dsql://"],
      ["postgres://", "the host in url must not be empty"],
      ["postgres://admin:hunter2@localhost/db", "DSQL authenticates with IAM tokens; remove the password from url"],
      ["postgres://localhost:abc/db", "the port in url must be an integer from 1 to 65535"],
      ["postgres://localhost/db?sslmode=require&foo=1", "unknown parameters \"sslmode\", \"foo\""],
      ["postgres://localhost/db?region=us-east-1&region=us-west-2", "repeats the parameter \"region\""],
      ["postgres://localhost/db?region", "parameter \"region\" needs a value"],
      ["postgres://localhost/a/b?region=us-east-1", "the database in url must be a single path segment"],
      ["postgres://%zz@localhost/db?region=us-east-1", "the user in url has invalid percent-encoding"],
      ["postgres://[::1]:5432/db?region=us-east-1", "IPv6 address as host"],
      ["postgres://localhost/db#top", "must not contain whitespace, control characters or '#'"],
      ["postgres://localhost/db?region=us-east-1&tokenDurationSecs=15%20minutes", "the tokenDurationSecs in url"]
    ]
    it.effect.each(refused)("refuses %s", ([url, fragment]) => expectFailure(DsqlConfig.fromUrl(url), "url", fragment))

    it.effect("lets overrides beat the URL's values", () =>
      Effect.gen(function*() {
        const config = yield* DsqlConfig.fromUrl(
          "postgres://bob@localhost:5433/app?region=us-east-1&profile=p&tokenDurationSecs=60",
          {
            user: "alice",
            port: 6000,
            database: "other",
            region: "eu-west-1",
            profile: "q",
            tokenDuration: "2 minutes"
          }
        )
        assert.deepStrictEqual(
          [config.user, config.port, config.database, config.region, config.profile, millis(config.tokenDuration)],
          ["alice", 6000, "other", "eu-west-1", Option.some("q"), 120_000]
        )
      }))

    it.effect("never echoes a password, in a message or in the error's rendering", () =>
      Effect.gen(function*() {
        const password = "Tr0ub4dor&3-secret"
        for (
          const url of [
            `postgres://admin:${password}@${endpoint}/postgres`,
            `postgres://admin:${encodeURIComponent(password)}@${endpoint}?foo=1`,
            `postgres://admin:${password}/x@${endpoint}`,
            `postgres://admin:${password}`
          ]
        ) {
          for (
            const error of [yield* Effect.flip(DsqlConfig.fromUrl(url)), yield* Effect.flip(fromEnv({ DSQL_URL: url }))]
          ) {
            assert.notInclude(String(error), password)
            assert.notInclude(JSON.stringify(error.cause), password)
          }
        }
      }))

    it.effect.prop(
      "refuses any password without echoing it",
      { password: Schema.String.check(Schema.isMinLength(1), encodable), encode: Schema.Boolean },
      ({ encode, password }) =>
        Effect.gen(function*() {
          const secret = encode ? encodeURIComponent(password) : password
          const failure = yield* expectFailure(
            DsqlConfig.fromUrl(`postgres://admin:${secret}@${endpoint}/postgres`),
            "url",
            "remove the password from url"
          )
          assert.strictEqual(
            failure.message,
            "DSQL authenticates with IAM tokens; remove the password from url " +
              "(an '@' anywhere else must be percent-encoded as %40)"
          )
        })
    )
  })

  describe("properties", () => {
    const urlPiece = oneOf(
      Arbitrary.schema(Schema.String),
      constants(["@", ":", "/", "?", "&", "=", "%", "%zz", "[", "]", "#", clusterId, endpoint, "region="])
    )
    const urlLike = oneOf(
      Arbitrary.schema(Schema.String),
      Arbitrary.map(
        Arbitrary.all([
          constants(["postgres://", "postgresql://", "dsql://", "DSQL://", "http://", ""]),
          Arbitrary.array(urlPiece, { maxLength: 8 })
        ]),
        ([scheme, pieces]) => scheme + pieces.join("")
      )
    )

    it.prop("fromUrl never throws or dies", { url: urlLike }, ({ url }) => {
      assertTotal(Effect.runSyncExit(DsqlConfig.fromUrl(url)))
    }, { arbitrary: { runs: 1000 } })

    const anyValue = oneOf<unknown>(
      Arbitrary.schema(Schema.String),
      Arbitrary.schema(Schema.Number),
      Arbitrary.schema(Schema.BigInt),
      Arbitrary.Constant(Duration.infinity),
      Arbitrary.map(Arbitrary.schema(Schema.Number), Duration.millis),
      Arbitrary.map(Arbitrary.schema(Schema.BigInt), Duration.nanos),
      Arbitrary.schema(Schema.Tuple([Schema.Number, Schema.Number])),
      Arbitrary.Constant(null),
      Arbitrary.Constant({})
    )
    const maybe = <A>(arbitrary: Arbitrary.Arbitrary<A>) =>
      oneOf<A | undefined>(Arbitrary.Constant(undefined), arbitrary)
    const region = constants(["us-east-1", "eu-west-1", "ap-southeast-2", "Us-East-1", "nowhere"])
    const duration = oneOf<unknown>(
      int(-10, 4_000_000),
      Arbitrary.map(
        Arbitrary.all([int(-5, 700_000), constants(["seconds", "minutes", "hours"])]),
        ([n, unit]) => `${n} ${unit}`
      ),
      anyValue
    )
    const randomOptions = Arbitrary.all({
      host: maybe(oneOf<unknown>(constants([clusterId, endpoint, "localhost", "db.internal", "127.0.0.1"]), anyValue)),
      url: maybe(oneOf<unknown>(urlLike, Arbitrary.Constant(`postgres://${endpoint}`))),
      region: maybe(oneOf<unknown>(region, anyValue)),
      user: maybe(anyValue),
      port: maybe(
        oneOf<unknown>(int(-1, 70_000), anyValue)
      ),
      profile: maybe(anyValue),
      tokenDuration: maybe(duration),
      maxConnections: maybe(
        oneOf<unknown>(int(-1, 50), anyValue)
      ),
      minConnections: maybe(
        oneOf<unknown>(int(-1, 50), anyValue)
      ),
      maxConnectionLifetime: maybe(duration),
      idleTimeout: maybe(duration),
      connectTimeout: maybe(duration),
      applicationName: maybe(anyValue),
      hostAddress: maybe(oneOf<unknown>(constants(["10.0.0.1", "::1", "db.internal"]), anyValue)),
      caPem: maybe(oneOf<unknown>(Arbitrary.Constant(pem), anyValue)),
      sslNegotiation: maybe(oneOf<unknown>(constants(["direct", "postgres"]), anyValue))
    })

    it.prop(
      "make never throws or dies, whatever it is given",
      { options: randomOptions, fallback: maybe(region) },
      ({ fallback, options }) => {
        assertTotal(
          Effect.runSyncExit(DsqlConfig.make(options as DsqlConfig.Options, Option.fromUndefinedOr(fallback)))
        )
      },
      { arbitrary: { runs: 1000 } }
    )

    const name = Schema.String.check(
      Schema.isBetweenLength(1, 20),
      encodable,
      Schema.makeFilter((s) => !/[\u0000-\u001f\u007f]/.test(s) && new TextEncoder().encode(s).length <= 63)
    )
    it.prop(
      "a valid URL round-trips its fields",
      {
        scheme: Schema.Literals(["postgres", "postgresql", "dsql"]),
        user: name,
        id: Schema.String.check(Schema.isPattern(/^[a-z0-9]{26}$/)),
        hostRegion: Schema.Literals(["us-east-1", "eu-west-1", "ap-southeast-2"]),
        port: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 65535 })),
        database: name,
        profile: name,
        tokenSeconds: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 604800 }))
      },
      (parts) => {
        const host = `${parts.id}.dsql.${parts.hostRegion}.on.aws`
        const url = `${parts.scheme}://${encodeURIComponent(parts.user)}@${host}:${parts.port}/` +
          `${encodeURIComponent(parts.database)}?profile=${encodeURIComponent(parts.profile)}` +
          `&tokenDurationSecs=${parts.tokenSeconds}`
        const config = Effect.runSync(DsqlConfig.fromUrl(url))
        assert.deepStrictEqual(
          [config.user, config.host, config.region, config.port, config.database, config.clusterId, config.profile],
          [
            parts.user,
            host,
            parts.hostRegion,
            parts.port,
            parts.database,
            Option.some(parts.id),
            Option.some(parts.profile)
          ]
        )
        assert.strictEqual(Duration.toSeconds(config.tokenDuration), parts.tokenSeconds)
        assertInvariants(config)
      },
      { arbitrary: { runs: 300 } }
    )
  })
})
