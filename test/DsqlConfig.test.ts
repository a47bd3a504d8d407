import { assert, describe, it } from "@effect/vitest"
import { assertNone, assertSome, deepStrictEqual } from "@effect/vitest/utils"
import * as Cause from "effect/Cause"
import type * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Equal from "effect/Equal"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Option from "effect/Option"
import * as DsqlConfig from "../src/DsqlConfig.js"
import { version } from "../src/internal/version.js"
import { failureOf } from "./utils/failure.js"

const clusterId = "abcdefghij0123456789klmnop"
const endpoint = `${clusterId}.dsql.us-east-1.on.aws`
const driverName = `effect-dsql/${version}`
const pem = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n"

/** The environment as users give it: `DSQL_HOST`-style keys, read through a provider that joins paths with `_`. */
const fromEnv = (vars: Record<string, string>) =>
  DsqlConfig.config.pipe(
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(vars)), { pathDelim: "_" }))
  )

interface Failure {
  readonly op: string
  readonly path: string
  readonly message: string
}

const flatten = (error: ConfigError.ConfigError): Array<Failure> =>
  error._op === "And" || error._op === "Or"
    ? [...flatten(error.left), ...flatten(error.right)]
    : [{ op: error._op, path: error.path.join("."), message: error.message }]

const failures = <A>(effect: Effect.Effect<A, ConfigError.ConfigError>) => Effect.map(failureOf(effect), flatten)

/** Exactly one failure, at `path`, whose message contains every fragment. */
const expectFailure = <A>(
  effect: Effect.Effect<A, ConfigError.ConfigError>,
  path: string,
  ...fragments: Array<string>
) =>
  Effect.map(failures(effect), (found) => {
    assert.deepStrictEqual(found.map((failure) => failure.path), [path], JSON.stringify(found))
    for (const fragment of fragments) assert.include(found[0].message, fragment)
    return found[0]
  })

const millis = (d: Duration.Duration) => Duration.toMillis(d)

/**
 * Each expected field of a config. Options and Durations are compared by Equal: chai's deep equality takes any Some
 * for equal to Option.none().
 */
const assertFields = (config: DsqlConfig.DsqlConfig, expected: Partial<DsqlConfig.DsqlConfig>) => {
  for (const [name, value] of Object.entries(expected)) {
    const actual = config[name as keyof DsqlConfig.DsqlConfig]
    if (Equal.isEqual(value)) assert.isTrue(Equal.equals(actual, value), `${name}: ${String(actual)}`)
    else assert.deepStrictEqual(actual, value, name)
  }
}

const regionPattern = /^[a-z]{2}(-[a-z]+)+-\d+$/
const hostPattern = /^[a-z0-9_-]{1,63}(\.[a-z0-9_-]{1,63})*$/

/** Everything a successfully built config promises, whatever the input. */
const assertInvariants = (config: DsqlConfig.DsqlConfig) => {
  assert.match(config.host, hostPattern)
  assert.match(config.region, regionPattern)
  Option.match(config.clusterId, {
    onNone: () => undefined,
    onSome: (id) => {
      assert.isTrue(DsqlConfig.isClusterId(id))
      assert.isTrue(config.host.startsWith(`${id}.dsql`))
    }
  })
  assert.isTrue(Number.isInteger(config.port) && config.port >= 1 && config.port <= 65535)
  for (const name of [config.user, config.database]) {
    assert.isTrue(name.length > 0 && new TextEncoder().encode(name).length <= 63)
  }
  const tokenSeconds = Duration.toSeconds(config.tokenDuration)
  assert.isTrue(Number.isInteger(tokenSeconds) && tokenSeconds >= 1 && tokenSeconds <= 604800)
  assert.isTrue(Number.isInteger(config.maxConnections) && config.maxConnections >= 1)
  assert.isTrue(Number.isInteger(config.minConnections) && config.minConnections >= 0)
  assert.isTrue(config.minConnections <= config.maxConnections)
  assert.isTrue(millis(config.maxConnectionLifetime) > 0 && millis(config.maxConnectionLifetime) < 3_600_000)
  for (const d of [config.idleTimeout, config.connectTimeout]) assert.isTrue(Duration.isFinite(d) && millis(d) > 0)
  assert.isTrue(config.applicationName.endsWith(driverName))
  assert.isAtMost(config.applicationName.length, 63)
  assert.match(config.applicationName, /^[\x20-\x7e]+$/)
  assert.include(["direct", "postgres"], config.sslNegotiation)
  Option.map(config.caPem, (text) => assert.include(text, "-----BEGIN CERTIFICATE-----"))
}

/** Succeeds with a config that keeps every invariant, or fails with ConfigError; never dies, never throws. */
const assertTotal = (exit: Exit.Exit<DsqlConfig.DsqlConfig, ConfigError.ConfigError>) =>
  Exit.match(exit, {
    onSuccess: assertInvariants,
    onFailure: (cause) => {
      assert.isTrue(Cause.isFailType(cause), Cause.pretty(cause))
      assert.isTrue(flatten(Cause.failureOption(cause).pipe(Option.getOrThrow)).length > 0)
    }
  })

describe("DsqlConfig", () => {
  describe("defaults", () => {
    it.effect("fill in everything but the host", () =>
      Effect.gen(function*() {
        const config = yield* DsqlConfig.make({ host: endpoint })
        assert.strictEqual(config.host, endpoint)
        assertSome(config.clusterId, clusterId)
        assert.strictEqual(config.region, "us-east-1")
        assert.strictEqual(config.user, "admin")
        assert.strictEqual(config.database, "postgres")
        assert.strictEqual(config.port, 5432)
        assertNone(config.profile)
        assert.strictEqual(millis(config.tokenDuration), 15 * 60_000)
        assert.strictEqual(config.maxConnections, 10)
        assert.strictEqual(config.minConnections, 0)
        assert.strictEqual(millis(config.maxConnectionLifetime), 55 * 60_000)
        assert.strictEqual(millis(config.idleTimeout), 5 * 60_000)
        assert.strictEqual(millis(config.connectTimeout), 10_000)
        assert.strictEqual(config.applicationName, driverName)
        assertNone(config.hostAddress)
        assertNone(config.caPem)
        assert.strictEqual(config.sslNegotiation, "direct")
      }))

    it.effect("are the same from the environment and from a URL", () =>
      Effect.gen(function*() {
        const fromObject = yield* DsqlConfig.make({ host: endpoint })
        const fromEnvironment = yield* fromEnv({ DSQL_HOST: endpoint })
        const fromUrl = yield* DsqlConfig.fromUrl(`postgres://${endpoint}`)
        // the same config but for where the host came from, which a host not found names
        assert.deepStrictEqual([fromObject, fromEnvironment, fromUrl].map((config) => config.hostInput), [
          "host",
          "DSQL_HOST",
          "the host in url"
        ])
        // node's deep equality, not chai's: chai takes any Some for equal to Option.none()
        deepStrictEqual({ ...fromEnvironment, hostInput: "host" }, fromObject)
        deepStrictEqual({ ...fromUrl, hostInput: "host" }, fromObject)
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
        assertNone(config.clusterId)
        assert.strictEqual(config.region, "eu-west-1")
        assert.strictEqual(config.user, "reporter")
        assert.strictEqual(config.database, "analytics")
        assert.strictEqual(config.port, 6543)
        assertSome(config.profile, "prod")
        assert.strictEqual(millis(config.tokenDuration), 3_600_000)
        assert.strictEqual(config.maxConnections, 40)
        assert.strictEqual(config.minConnections, 5)
        assert.strictEqual(millis(config.maxConnectionLifetime), 50 * 60_000)
        assert.strictEqual(millis(config.idleTimeout), 120_000)
        assert.strictEqual(millis(config.connectTimeout), 2_500)
        assert.strictEqual(config.applicationName, `billing, nightly:${driverName}`)
        assertSome(config.hostAddress, "10.0.0.7")
        assertSome(config.caPem, pem)
        assert.strictEqual(config.sslNegotiation, "postgres")
      }))

    it.scoped("reads the real process environment through ConfigProvider.fromEnv", () =>
      Effect.gen(function*() {
        const vars = { DSQL_HOST: clusterId, DSQL_REGION: "eu-west-3", DSQL_MAX_CONNECTION_LIFETIME: "30 minutes" }
        yield* Effect.acquireRelease(
          Effect.sync(() => {
            const saved = Object.keys(vars).map((name) => [name, process.env[name]] as const)
            Object.assign(process.env, vars)
            return saved
          }),
          (saved) =>
            Effect.sync(() => {
              for (const [name, value] of saved) {
                if (value === undefined) delete process.env[name]
                else process.env[name] = value
              }
            })
        )
        const config = yield* DsqlConfig.config.pipe(Effect.withConfigProvider(ConfigProvider.fromEnv()))
        assert.strictEqual(config.host, `${clusterId}.dsql.eu-west-3.on.aws`)
        assert.strictEqual(millis(config.maxConnectionLifetime), 30 * 60_000)
      }))

    it.effect("reads durations as Effect duration strings or bare seconds", () =>
      Effect.gen(function*() {
        const read = (value: string) =>
          Effect.map(fromEnv({ DSQL_HOST: endpoint, DSQL_CONNECT_TIMEOUT: value }), (c) => millis(c.connectTimeout))
        assert.strictEqual(yield* read("10 seconds"), 10_000)
        assert.strictEqual(yield* read("250 millis"), 250)
        assert.strictEqual(yield* read("30"), 30_000)
        assert.strictEqual(yield* read("0.5"), 500)
        yield* expectFailure(read("10s"), "DSQL_CONNECT_TIMEOUT", "DSQL_CONNECT_TIMEOUT must be a duration", "\"10s\"")
      }))

    it.effect("reads DSQL_TOKEN_DURATION_SECS as whole seconds only", () =>
      Effect.gen(function*() {
        const read = (value: string) => fromEnv({ DSQL_HOST: endpoint, DSQL_TOKEN_DURATION_SECS: value })
        assert.strictEqual(millis((yield* read("604800")).tokenDuration), 604_800_000)
        for (const bad of ["15 minutes", "1.5", "0", "604801", "-1"]) {
          yield* expectFailure(read(bad), "DSQL_TOKEN_DURATION_SECS", "from 1 to 604800")
        }
      }))

    it.effect("treats empty variables as unset", () =>
      Effect.gen(function*() {
        const config = yield* fromEnv({ DSQL_HOST: endpoint, DSQL_USER: "", DSQL_PORT: "", DSQL_URL: "" })
        assert.strictEqual(config.user, "admin")
        assert.strictEqual(config.port, 5432)
      }))

    it.effect("needs DSQL_HOST or DSQL_URL, not both", () =>
      Effect.gen(function*() {
        const none = yield* expectFailure(fromEnv({ DSQL_REGION: "us-east-1" }), "DSQL_HOST", "DSQL_HOST", "DSQL_URL")
        assert.strictEqual(none.op, "MissingData")
        yield* expectFailure(
          fromEnv({ DSQL_HOST: endpoint, DSQL_URL: `postgres://${endpoint}` }),
          "DSQL_HOST",
          "set DSQL_HOST or DSQL_URL, not both"
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
        assertSome(config.profile, "ops")
        assert.strictEqual(millis(config.tokenDuration), 120_000)
        assert.strictEqual(config.region, "us-east-2")
      }))

    it.effect("names the URL in errors about its parts", () =>
      expectFailure(
        fromEnv({ DSQL_URL: "postgres://localhost:5432/db?region=Mars" }),
        "DSQL_URL",
        "region in DSQL_URL"
      ))

    it.effect("reports every bad variable at once", () =>
      Effect.gen(function*() {
        const found = yield* failures(fromEnv({ DSQL_HOST: endpoint, DSQL_PORT: "http", DSQL_USER: "x".repeat(64) }))
        assert.deepStrictEqual(found.map((failure) => failure.path).sort(), ["DSQL_PORT", "DSQL_USER"])
      }))

    it.effect("turns literal \\n escapes in DSQL_CA_PEM into newlines", () =>
      Effect.gen(function*() {
        const config = yield* fromEnv({ DSQL_HOST: endpoint, DSQL_CA_PEM: pem.replaceAll("\n", "\\n") })
        assertSome(config.caPem, pem)
      }))
  })

  describe("region", () => {
    it.effect("expands a bare cluster id with the region", () =>
      Effect.gen(function*() {
        const config = yield* fromEnv({ DSQL_HOST: clusterId, DSQL_REGION: "ap-southeast-2" })
        assert.strictEqual(config.host, `${clusterId}.dsql.ap-southeast-2.on.aws`)
        assertSome(config.clusterId, clusterId)
        assert.strictEqual(config.region, "ap-southeast-2")
      }))

    it.effect("is required for a bare cluster id", () =>
      Effect.gen(function*() {
        const failure = yield* expectFailure(fromEnv({ DSQL_HOST: clusterId }), "DSQL_REGION")
        assert.strictEqual(failure.op, "MissingData")
        assert.strictEqual(
          failure.message,
          "DSQL_REGION is required when DSQL_HOST is a cluster id; set DSQL_REGION or AWS_REGION"
        )
      }))

    it.effect("is required for a host that is not a DSQL endpoint", () =>
      expectFailure(
        fromEnv({ DSQL_HOST: "localhost" }),
        "DSQL_REGION",
        "DSQL_REGION is required when DSQL_HOST is not a DSQL endpoint",
        "set DSQL_REGION or AWS_REGION"
      ))

    it.effect("falls back to AWS_REGION, then AWS_DEFAULT_REGION, read at the top level", () =>
      Effect.gen(function*() {
        const region = (vars: Record<string, string>) =>
          Effect.map(fromEnv({ DSQL_HOST: clusterId, ...vars }), (c) => c.region)
        assert.strictEqual(yield* region({ AWS_REGION: "us-west-2" }), "us-west-2")
        assert.strictEqual(yield* region({ AWS_DEFAULT_REGION: "eu-north-1" }), "eu-north-1")
        assert.strictEqual(yield* region({ AWS_REGION: "us-west-2", AWS_DEFAULT_REGION: "eu-north-1" }), "us-west-2")
        assert.strictEqual(yield* region({ AWS_REGION: "", AWS_DEFAULT_REGION: "eu-north-1" }), "eu-north-1")
        yield* expectFailure(region({ DSQL_AWS_REGION: "us-west-2" }), "DSQL_REGION")
      }))

    it.effect("awsRegion takes AWS_REGION over AWS_DEFAULT_REGION, as the AWS SDK does", () =>
      Effect.gen(function*() {
        const awsRegion = (vars: Record<string, string>) =>
          DsqlConfig.awsRegion.pipe(
            Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(vars)), { pathDelim: "_" }))
          )
        assertSome(yield* awsRegion({ AWS_REGION: "us-west-2", AWS_DEFAULT_REGION: "eu-north-1" }), "us-west-2")
        assertSome(yield* awsRegion({ AWS_DEFAULT_REGION: "eu-north-1", AWS_REGION: "us-west-2" }), "us-west-2")
        assertSome(yield* awsRegion({ AWS_DEFAULT_REGION: "eu-north-1" }), "eu-north-1")
        assertSome(yield* awsRegion({ AWS_REGION: "", AWS_DEFAULT_REGION: "eu-north-1" }), "eu-north-1")
        assertNone(yield* awsRegion({}))
      }))

    it.effect("takes the endpoint's region over AWS_REGION", () =>
      Effect.gen(function*() {
        const config = yield* fromEnv({ DSQL_HOST: endpoint, AWS_REGION: "eu-west-1" })
        assert.strictEqual(config.region, "us-east-1")
      }))

    it.effect("takes an explicit region over the endpoint's and AWS_REGION", () =>
      Effect.gen(function*() {
        const config = yield* fromEnv({ DSQL_HOST: endpoint, DSQL_REGION: "us-east-2", AWS_REGION: "eu-west-1" })
        assert.strictEqual(config.region, "us-east-2")
        assert.strictEqual(config.host, endpoint)
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
      [
        `${clusterId}.dsqlbeta.eu-west-1.on.aws`,
        undefined,
        { host: `${clusterId}.dsqlbeta.eu-west-1.on.aws`, clusterId: Option.some(clusterId), region: "eu-west-1" }
      ],
      [endpoint.toUpperCase(), undefined, { host: endpoint, clusterId: Option.some(clusterId), region: "us-east-1" }],
      ["foo.dsql.us-east-1.on.aws", undefined, { clusterId: Option.none(), region: "us-east-1" }],
      ["localhost", "us-east-1", { host: "localhost", clusterId: Option.none() }],
      ["db.internal", "us-gov-west-1", { host: "db.internal", clusterId: Option.none(), region: "us-gov-west-1" }],
      ["dsql_local", "us-east-1", { host: "dsql_local", clusterId: Option.none() }],
      // a first label shaped like a cluster id names one only in a DSQL endpoint
      [`${clusterId}.db.internal`, "us-east-1", { host: `${clusterId}.db.internal`, clusterId: Option.none() }],
      [clusterId, "eu-central-1", { host: `${clusterId}.dsql.eu-central-1.on.aws`, clusterId: Option.some(clusterId) }],
      ["0".repeat(26), "us-east-1", { host: `${"0".repeat(26)}.dsql.us-east-1.on.aws` }]
    ]
    it.effect.each(accepted)("accepts %s", ([host, region, expected]) =>
      Effect.gen(function*() {
        assertFields(yield* DsqlConfig.make({ host, region }), expected)
      }))

    it.effect("treats a short name without dots as a host name, not a cluster id", () =>
      Effect.gen(function*() {
        yield* expectFailure(DsqlConfig.make({ host: "localhost" }), "region", "is not a DSQL endpoint")
        yield* expectFailure(DsqlConfig.make({ host: "abcdef" }), "region", "is not a DSQL endpoint")
        yield* expectFailure(DsqlConfig.make({ host: clusterId }), "region", "is a cluster id")
      }))

    const rejected: Array<[host: string, fragment: string]> = [
      ["", "host must not be empty"],
      [" ", "host must not contain whitespace"],
      [`${endpoint} `, "host must not contain whitespace"],
      [`postgres://${endpoint}`, "give it as url instead"],
      [`${endpoint}:5432`, "give the port as port"],
      ["::1", "not an IP address"],
      ["[::1]", "must not contain ':'"],
      ["127.0.0.1", "not an IP address"],
      ["a..b", "is not a host name"],
      [`${endpoint}.`, "is not a host name"],
      ["bad!host", "is not a host name"],
      [`${"x".repeat(64)}.example`, "is not a host name"]
    ]
    it.effect.each(rejected)(
      "rejects host %j",
      ([host, fragment]) => expectFailure(DsqlConfig.make({ host, region: "us-east-1" }), "host", fragment)
    )

    it.effect("tells an environment user to use DSQL_URL for a connection string", () =>
      expectFailure(fromEnv({ DSQL_HOST: `postgres://${endpoint}` }), "DSQL_HOST", "give it as DSQL_URL instead"))

    it("isClusterId accepts exactly 26 of [a-z0-9]", () => {
      assert.isTrue(DsqlConfig.isClusterId(clusterId))
      assert.isFalse(DsqlConfig.isClusterId(clusterId.toUpperCase()))
      assert.isFalse(DsqlConfig.isClusterId(clusterId.slice(1)))
      assert.isFalse(DsqlConfig.isClusterId(`${clusterId}a`))
      assert.isFalse(DsqlConfig.isClusterId("localhost"))
      assert.isFalse(DsqlConfig.isClusterId(`${clusterId.slice(1)}-`))
    })

    it("regionFromEndpoint reads the region the way official connectors do", () => {
      assertSome(DsqlConfig.regionFromEndpoint(endpoint), "us-east-1")
      assertSome(DsqlConfig.regionFromEndpoint(`${clusterId}.dsql-fnh4.ap-northeast-1.on.aws`), "ap-northeast-1")
      assertNone(DsqlConfig.regionFromEndpoint("localhost"))
      assertNone(DsqlConfig.regionFromEndpoint(`${clusterId}.dsql.us-east-1.on.aws.evil`))
      assertNone(DsqlConfig.regionFromEndpoint("x.rds.us-east-1.amazonaws.com"))
    })

    it.prop(
      "an endpoint of any suffix form gives its region and cluster id; a bare id, the given region",
      {
        id: FastCheck.stringMatching(/^[a-z0-9]{26}$/),
        suffix: FastCheck.stringMatching(/^(-?[a-z0-9]{0,8})$/),
        region: FastCheck.constantFrom("us-east-1", "eu-west-2", "ap-southeast-1", "us-gov-west-1", "il-central-1")
      },
      ({ id, region, suffix }) => {
        const host = `${id}.dsql${suffix}.${region}.on.aws`
        assertSome(DsqlConfig.regionFromEndpoint(host), region)
        const config = Effect.runSync(DsqlConfig.make({ host: host.toUpperCase() }))
        assert.deepStrictEqual([config.host, config.region], [host, region])
        assertSome(config.clusterId, id)
        const bare = Effect.runSync(DsqlConfig.make({ host: id, region }))
        assert.strictEqual(bare.host, `${id}.dsql.${region}.on.aws`)
        assertSome(bare.clusterId, id)
        assert.isFalse(DsqlConfig.isClusterId(id.slice(1)))
        assert.isFalse(DsqlConfig.isClusterId(`${id}0`))
        assert.isFalse(DsqlConfig.isClusterId(id.replace(/^./, "A")))
      }
    )
  })

  describe("validation", () => {
    const base = { host: endpoint }
    const cases: Array<[options: DsqlConfig.Options, path: string, fragment: string]> = [
      [{ ...base, region: "US-EAST-1" }, "region", "region must be an AWS region in lowercase, such as us-east-1"],
      [{ ...base, region: "useast1" }, "region", "\"useast1\""],
      [{ ...base, region: "" }, "region", "such as us-east-1"],
      [{ ...base, user: "" }, "user", "user must not be empty; leave it out to use \"admin\""],
      [{ ...base, user: "x".repeat(64) }, "user", "at most 63 bytes"],
      [{ ...base, user: "é".repeat(32) }, "user", "at most 63 bytes"],
      [{ ...base, user: "a\u0000b" }, "user", "without control characters"],
      [{ ...base, database: "" }, "database", "database must not be empty; leave it out to use \"postgres\""],
      [{ ...base, port: 0 }, "port", "port must be an integer from 1 to 65535; got 0"],
      [{ ...base, port: 65536 }, "port", "got 65536"],
      [{ ...base, port: 5432.5 }, "port", "got 5432.5"],
      [{ ...base, port: Number.NaN }, "port", "got NaN"],
      [{ ...base, profile: "" }, "profile", "profile must be an AWS profile name"],
      [
        { ...base, tokenDuration: 0 },
        "tokenDuration",
        "tokenDuration must be a whole number of seconds from 1 to 604800"
      ],
      [{ ...base, tokenDuration: "604801 seconds" }, "tokenDuration", "7 days"],
      [{ ...base, tokenDuration: 1500 }, "tokenDuration", "whole number of seconds"],
      [{ ...base, tokenDuration: Duration.infinity }, "tokenDuration", "got Infinity"],
      [{ ...base, tokenDuration: Number.MAX_VALUE }, "tokenDuration", "got 1.7976931348623157e+308"],
      [{ ...base, tokenDuration: Duration.millis(1e303) }, "tokenDuration", "got 1e+303 millis"],
      [{ ...base, maxConnections: 0 }, "maxConnections", "maxConnections must be an integer from 1"],
      [{ ...base, maxConnections: 2.5 }, "maxConnections", "got 2.5"],
      [{ ...base, minConnections: -1 }, "minConnections", "minConnections must be an integer from 0"],
      [{ ...base, minConnections: 11 }, "minConnections", "minConnections (11) must not exceed maxConnections (10)"],
      [{ ...base, maxConnectionLifetime: "60 minutes" }, "maxConnectionLifetime", "under 60 minutes"],
      [{ ...base, maxConnectionLifetime: "2 hours" }, "maxConnectionLifetime", "DSQL closes connections at 60 minutes"],
      [{ ...base, maxConnectionLifetime: 0 }, "maxConnectionLifetime", "above zero"],
      [{ ...base, idleTimeout: 0 }, "idleTimeout", "idleTimeout must be a duration above zero"],
      [{ ...base, idleTimeout: Duration.infinity }, "idleTimeout", "got Infinity"],
      [{ ...base, connectTimeout: "-5 seconds" }, "connectTimeout", "got \"-5 seconds\""],
      [{ ...base, applicationName: "" }, "applicationName", "1 to 45 printable ASCII characters"],
      [{ ...base, applicationName: "naïve" }, "applicationName", `"<prefix>:${driverName}"`],
      [{ ...base, applicationName: "x".repeat(46) }, "applicationName", "PostgreSQL cuts at 63"],
      [{ ...base, hostAddress: "" }, "hostAddress", "hostAddress must be an IPv4 address"],
      [{ ...base, hostAddress: "[::1]" }, "hostAddress", "without brackets"],
      [{ ...base, hostAddress: "10.0.0.1:5432" }, "hostAddress", "got \"10.0.0.1:5432\""],
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
        { maxConnectionLifetime: "61 minutes" },
        { DSQL_MAX_CONNECTION_LIFETIME: "61 minutes" },
        "maxConnectionLifetime",
        "DSQL_MAX_CONNECTION_LIFETIME"
      ],
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
          const fromEnvironment = yield* expectFailure(fromEnv({ DSQL_HOST: endpoint, ...env }), key)
          const labels = [[field, key], ["maxConnections", "DSQL_MAX_CONNECTIONS"]] as const
          const relabelled = labels.reduce((message, [from, to]) => message.replace(from, to), fromObject.message)
          assert.strictEqual(fromEnvironment.message, relabelled)
        })
    )
  })

  describe("connection strings", () => {
    const parsed: Array<[url: string, expected: Partial<DsqlConfig.DsqlConfig>]> = [
      [`postgres://${endpoint}`, { host: endpoint, user: "admin", database: "postgres", port: 5432 }],
      [`postgresql://${endpoint}/`, { host: endpoint, database: "postgres" }],
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
      ],
      ["postgres://localhost?region=us-east-1&", { host: "localhost", region: "us-east-1" }],
      ["postgres://localhost:6543?&region=us-east-1", { port: 6543 }]
    ]
    it.effect.each(parsed)("reads %s", ([url, expected]) =>
      Effect.gen(function*() {
        assertFields(yield* DsqlConfig.fromUrl(url), expected)
      }))

    const refused: Array<[url: string, fragment: string]> = [
      ["mysql://localhost/db", "url has the scheme \"mysql\"; use postgres://, postgresql:// or dsql://"],
      [endpoint, "url must start with postgres://, postgresql:// or dsql://"],
      ["postgres://", "the host in url must not be empty"],
      ["postgres:///db", "the host in url must not be empty"],
      ["postgres://admin:hunter2@localhost/db", "DSQL authenticates with IAM tokens; remove the password from url"],
      ["postgres://:hunter2@localhost/db", "remove the password"],
      ["postgres://localhost:abc/db", "the port in url must be an integer from 1 to 65535"],
      ["postgres://localhost:/db", "the port in url must be an integer"],
      ["postgres://localhost:0/db", "the port in url must be an integer"],
      ["postgres://localhost:65536/db", "the port in url must be an integer"],
      ["postgres://localhost/db?sslmode=require&foo=1", "unknown parameters \"sslmode\", \"foo\""],
      ["postgres://localhost/db?foo=1", "accepted: region, profile, tokenDurationSecs"],
      ["postgres://localhost/db?region=us-east-1&region=us-west-2", "repeats the parameter \"region\""],
      ["postgres://localhost/db?region", "parameter \"region\" needs a value"],
      ["postgres://localhost/a/b?region=us-east-1", "the database in url must be a single path segment"],
      ["postgres://localhost/%zz?region=us-east-1", "the database in url has invalid percent-encoding"],
      ["postgres://%zz@localhost/db?region=us-east-1", "the user in url has invalid percent-encoding"],
      ["postgres://[::1]:5432/db?region=us-east-1", "IPv6 address as host"],
      ["postgres://127.0.0.1/db?region=us-east-1", "put the address in hostAddress"],
      ["postgres://localhost/db#top", "must not contain whitespace, control characters or '#'"],
      ["postgres://local host/db", "must not contain whitespace"],
      ["postgres://localhost/db?region=us-east-1&tokenDurationSecs=15%20minutes", "the tokenDurationSecs in url"],
      ["postgres://localhost/db?region=us-east-1&tokenDurationSecs=0", "whole number of seconds from 1 to 604800"],
      ["postgres://@localhost/db?region=us-east-1", "the user in url must not be empty"]
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
        assert.strictEqual(config.user, "alice")
        assert.strictEqual(config.port, 6000)
        assert.strictEqual(config.database, "other")
        assert.strictEqual(config.region, "eu-west-1")
        assertSome(config.profile, "q")
        assert.strictEqual(millis(config.tokenDuration), 120_000)
        assert.strictEqual(config.host, "localhost")
      }))

    it.effect("never echoes a password", () =>
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
          const found = yield* failures(DsqlConfig.fromUrl(url))
          for (const failure of found) assert.notInclude(failure.message, password)
          const env = yield* failures(fromEnv({ DSQL_URL: url }))
          for (const failure of env) assert.notInclude(failure.message, password)
        }
      }))

    it.effect.prop(
      "refuses any password without echoing it",
      { password: FastCheck.string({ minLength: 1, maxLength: 40 }), encode: FastCheck.boolean() },
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
    const urlPiece = FastCheck.oneof(
      FastCheck.string({ unit: "binary", maxLength: 20 }),
      FastCheck.constantFrom("@", ":", "/", "?", "&", "=", "%", "%zz", "[", "]", "#", clusterId, endpoint, "region=")
    )
    const urlLike = FastCheck.oneof(
      FastCheck.string({ unit: "binary" }),
      FastCheck.tuple(
        FastCheck.constantFrom("postgres://", "postgresql://", "dsql://", "DSQL://", "http://", ""),
        FastCheck.array(urlPiece, { maxLength: 8 })
      ).map(([scheme, pieces]) => scheme + pieces.join(""))
    )

    // Plain `it.prop` over `Effect.runSyncExit`: `it.effect.prop` builds test services per run (~25 ms), and a
    // property's runs hold the event loop, so 1,000 of them starved vitest's RPC past its 60 s timeout under load.
    it.prop(
      "fromUrl never throws or dies",
      { url: urlLike },
      ({ url }) => assertTotal(Effect.runSyncExit(DsqlConfig.fromUrl(url))),
      { fastCheck: { numRuns: 1000 } }
    )

    const anyValue = FastCheck.oneof(
      FastCheck.string({ unit: "binary", maxLength: 70 }),
      FastCheck.integer(),
      FastCheck.double(),
      FastCheck.bigInt(),
      FastCheck.constant(Duration.infinity),
      FastCheck.double().map(Duration.millis),
      FastCheck.bigInt().map(Duration.nanos),
      FastCheck.tuple(FastCheck.double(), FastCheck.double()),
      FastCheck.constant(null),
      FastCheck.object({ maxDepth: 0 })
    )
    const region = FastCheck.constantFrom("us-east-1", "eu-west-1", "ap-southeast-2", "Us-East-1", "nowhere")
    const duration = FastCheck.oneof(
      FastCheck.integer({ min: -10, max: 4_000_000 }),
      FastCheck.tuple(
        FastCheck.integer({ min: -5, max: 700_000 }),
        FastCheck.constantFrom("seconds", "minutes", "hours")
      )
        .map(([n, unit]) => `${n} ${unit}`),
      anyValue
    )
    const maybe = <A>(arbitrary: FastCheck.Arbitrary<A>) => FastCheck.option(arbitrary, { nil: undefined })
    const randomOptions = FastCheck.record({
      host: maybe(
        FastCheck.oneof(FastCheck.constantFrom(clusterId, endpoint, "localhost", "db.internal", "127.0.0.1"), anyValue)
      ),
      url: maybe(FastCheck.oneof(urlLike, FastCheck.constant(`postgres://${endpoint}`))),
      region: maybe(FastCheck.oneof(region, anyValue)),
      user: maybe(FastCheck.oneof(FastCheck.constantFrom("admin", "app"), anyValue)),
      database: maybe(anyValue),
      port: maybe(FastCheck.oneof(FastCheck.integer({ min: -1, max: 70_000 }), anyValue)),
      profile: maybe(anyValue),
      tokenDuration: maybe(duration),
      maxConnections: maybe(FastCheck.oneof(FastCheck.integer({ min: -1, max: 50 }), anyValue)),
      minConnections: maybe(FastCheck.oneof(FastCheck.integer({ min: -1, max: 50 }), anyValue)),
      maxConnectionLifetime: maybe(duration),
      idleTimeout: maybe(duration),
      connectTimeout: maybe(duration),
      applicationName: maybe(anyValue),
      hostAddress: maybe(FastCheck.oneof(FastCheck.constantFrom("10.0.0.1", "::1", "db.internal"), anyValue)),
      caPem: maybe(FastCheck.oneof(FastCheck.constant(pem), anyValue)),
      sslNegotiation: maybe(FastCheck.oneof(FastCheck.constantFrom("direct", "postgres"), anyValue))
    })

    it.prop(
      "make never throws or dies, whatever it is given",
      { options: randomOptions, fallback: maybe(region) },
      ({ fallback, options }) =>
        assertTotal(
          Effect.runSyncExit(DsqlConfig.make(options as DsqlConfig.Options, Option.fromNullable(fallback)))
        ),
      { fastCheck: { numRuns: 1000 } }
    )

    const name = FastCheck.string({ unit: "grapheme", minLength: 1, maxLength: 20 })
      .filter((s) => !/[\u0000-\u001f\u007f]/.test(s) && new TextEncoder().encode(s).length <= 63)
    const label = FastCheck.stringMatching(/^[a-z0-9][a-z0-9-]{0,10}$/)
    const validUrl = FastCheck.record({
      scheme: FastCheck.constantFrom("postgres", "postgresql", "dsql"),
      user: name,
      host: FastCheck.oneof(
        FastCheck.tuple(FastCheck.stringMatching(/^[a-z0-9]{26}$/), region.filter((r) => r === r.toLowerCase()))
          .filter(([, r]) => r !== "nowhere")
          .map(([id, r]) => `${id}.dsql.${r}.on.aws`),
        FastCheck.array(label, { minLength: 1, maxLength: 3 }).map((labels) => [...labels, "internal"].join("."))
      ),
      port: FastCheck.integer({ min: 1, max: 65535 }),
      database: name,
      region: FastCheck.constantFrom("us-east-1", "eu-west-1", "ap-southeast-2"),
      profile: name,
      tokenSeconds: FastCheck.integer({ min: 1, max: 604800 })
    })

    it.prop("a valid URL round-trips its fields", { parts: validUrl }, ({ parts }) => {
      const query = `region=${parts.region}&profile=${encodeURIComponent(parts.profile)}` +
        `&tokenDurationSecs=${parts.tokenSeconds}`
      const url = `${parts.scheme}://${encodeURIComponent(parts.user)}@${parts.host}:${parts.port}/` +
        `${encodeURIComponent(parts.database)}?${query}`
      const config = Effect.runSync(DsqlConfig.fromUrl(url))
      assert.strictEqual(config.user, parts.user)
      assert.strictEqual(config.host, parts.host)
      assert.strictEqual(config.port, parts.port)
      assert.strictEqual(config.database, parts.database)
      assert.strictEqual(config.region, parts.region)
      assertSome(config.profile, parts.profile)
      assert.strictEqual(Duration.toSeconds(config.tokenDuration), parts.tokenSeconds)
      assertInvariants(config)
    }, { fastCheck: { numRuns: 300 } })
  })
})
