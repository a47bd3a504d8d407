/**
 * The shared configuration rules on their own, with a line that knows no Effect: durations are plain numbers of
 * milliseconds or `{ ms }` objects. The Effect lines' own suites check their adapters.
 */
import { Settings } from "@effect-dsql/core"
import * as FastCheck from "effect/FastCheck"
import { assert, describe, it } from "vitest"

const clusterId = "abcdefghij0123456789klmnop"
const endpoint = `${clusterId}.dsql.us-east-1.on.aws`
const pem = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n"

/** A duration of this test line. */
interface Ms {
  readonly ms: number
}
const isMs = (value: unknown): value is Ms =>
  typeof value === "object" && value !== null && typeof (value as Ms).ms === "number"

const line: Settings.Line = {
  driverName: "test-line/9.9.9",
  durationMillis: (value) => typeof value === "number" ? value : isMs(value) ? value.ms : undefined,
  showDuration: (value) => isMs(value) ? `${value.ms} ms` : undefined
}

const ok = (result: Settings.Result<Settings.Settings>): Settings.Settings => {
  assert.strictEqual(result._tag, "Success", JSON.stringify(result))
  return (result as Extract<typeof result, { _tag: "Success" }>).value
}

const issues = (result: Settings.Result<Settings.Settings>): ReadonlyArray<Settings.Issue> => {
  assert.strictEqual(result._tag, "Failure", JSON.stringify(result))
  return (result as Extract<typeof result, { _tag: "Failure" }>).issues
}

/** Exactly one issue, at `path`, with the exact message. */
const only = (result: Settings.Result<Settings.Settings>, path: ReadonlyArray<string>, message: string) => {
  const found = issues(result)
  assert.deepStrictEqual(found.map((issue) => [issue.path, issue.message]), [[path, message]])
  return found[0]
}

const options = (values: { readonly [F in Settings.Field]?: unknown }, fallbackRegion?: string) =>
  Settings.fromOptions(values, fallbackRegion, line)

const env = (dsql: Settings.Environment["dsql"], aws: Omit<Settings.Environment, "dsql"> = {}) =>
  Settings.fromEnv({ dsql, ...aws }, line)

describe("Settings", () => {
  it("fills in the defaults, durations in milliseconds, application_name from the line", () => {
    assert.deepStrictEqual(ok(options({ host: endpoint })), {
      host: endpoint,
      clusterId,
      region: "us-east-1",
      user: "admin",
      database: "postgres",
      port: 5432,
      profile: undefined,
      tokenDuration: 900_000,
      maxConnections: 10,
      minConnections: 0,
      maxConnectionLifetime: 3_300_000,
      idleTimeout: 300_000,
      connectTimeout: 10_000,
      applicationName: "test-line/9.9.9",
      hostAddress: undefined,
      caPem: undefined,
      sslNegotiation: "direct",
      hostInput: "host"
    })
  })

  it("gives the same settings from options, the environment and a URL, each naming where the host came from", () => {
    const withoutInput = ({ hostInput, ...settings }: Settings.Settings) => ({ settings, hostInput })
    const fromOptions = withoutInput(ok(options({ host: endpoint })))
    const fromEnv = withoutInput(ok(env({ host: endpoint })))
    const fromUrl = withoutInput(ok(options({ url: `postgres://${endpoint}` })))
    assert.deepStrictEqual(fromEnv.settings, fromOptions.settings)
    assert.deepStrictEqual(fromUrl.settings, fromOptions.settings)
    assert.deepStrictEqual([fromOptions.hostInput, fromEnv.hostInput, fromUrl.hostInput], [
      "host",
      "DSQL_HOST",
      "the host in url"
    ])
  })

  describe("environment", () => {
    it("names every field DSQL_<name>", () => {
      assert.strictEqual(Settings.envPrefix, "DSQL")
      assert.deepStrictEqual(Object.keys(Settings.envNames).sort(), [
        "applicationName",
        "caPem",
        "connectTimeout",
        "database",
        "host",
        "hostAddress",
        "idleTimeout",
        "maxConnectionLifetime",
        "maxConnections",
        "minConnections",
        "port",
        "profile",
        "region",
        "sslNegotiation",
        "tokenDuration",
        "url",
        "user"
      ])
      assert.strictEqual(Settings.envNames.hostAddress, "HOSTADDR")
      assert.strictEqual(Settings.envNames.tokenDuration, "TOKEN_DURATION_SECS")
    })

    it("reads strings: integers, bare seconds, line durations, whole seconds for the token", () => {
      const settings = ok(env({
        host: "db.internal",
        region: "eu-west-1",
        port: "6543",
        tokenDuration: "3600",
        maxConnections: "40",
        minConnections: "5",
        idleTimeout: "120",
        connectTimeout: "2.5",
        applicationName: "billing",
        caPem: pem.replaceAll("\n", "\\n")
      }))
      assert.strictEqual(settings.port, 6543)
      assert.strictEqual(settings.tokenDuration, 3_600_000)
      assert.strictEqual(settings.maxConnections, 40)
      assert.strictEqual(settings.minConnections, 5)
      assert.strictEqual(settings.idleTimeout, 120_000)
      assert.strictEqual(settings.connectTimeout, 2_500)
      assert.strictEqual(settings.applicationName, "billing:test-line/9.9.9")
      assert.strictEqual(settings.caPem, pem)
      only(
        env({ host: endpoint, tokenDuration: "1.5" }),
        ["DSQL", "TOKEN_DURATION_SECS"],
        "DSQL_TOKEN_DURATION_SECS must be a whole number of seconds from 1 to 604800 (7 days, the longest an IAM " +
          "token may live); got \"1.5\""
      )
    })

    it("counts empty variables as unset", () => {
      const settings = ok(env({ host: endpoint, user: "", port: "", url: "" }, { AWS_REGION: "" }))
      assert.strictEqual(settings.user, "admin")
      assert.strictEqual(settings.port, 5432)
    })

    it("falls back to AWS_REGION, then AWS_DEFAULT_REGION, and names the one it used", () => {
      assert.strictEqual(ok(env({ host: clusterId }, { AWS_DEFAULT_REGION: "eu-north-1" })).region, "eu-north-1")
      assert.strictEqual(
        ok(env({ host: clusterId }, { AWS_REGION: "us-west-2", AWS_DEFAULT_REGION: "eu-north-1" })).region,
        "us-west-2"
      )
      only(
        env({ host: clusterId }, { AWS_REGION: "US-EAST-1" }),
        ["AWS_REGION"],
        "AWS_REGION must be an AWS region in lowercase, such as us-east-1; got \"US-EAST-1\""
      )
      assert.strictEqual(Settings.awsRegion({ AWS_REGION: "", AWS_DEFAULT_REGION: "eu-north-1" }), "eu-north-1")
      assert.strictEqual(Settings.awsRegion({}), undefined)
    })

    it("needs DSQL_HOST or DSQL_URL: a Missing issue, suggesting AWS_REGION for the region", () => {
      const none = only(
        env({}),
        ["DSQL", "HOST"],
        "set DSQL_HOST (an endpoint such as <cluster-id>.dsql.us-east-1.on.aws, or a cluster id) or DSQL_URL"
      )
      assert.strictEqual(none.kind, "Missing")
      const region = only(
        env({ host: clusterId }),
        ["DSQL", "REGION"],
        "DSQL_REGION is required when DSQL_HOST is a cluster id; set DSQL_REGION or AWS_REGION"
      )
      assert.strictEqual(region.kind, "Missing")
      only(
        env({ host: endpoint, url: `postgres://${endpoint}` }),
        ["DSQL", "HOST"],
        "set DSQL_HOST or DSQL_URL, not both"
      )
    })
  })

  describe("region and host", () => {
    it("takes the explicit region, then the endpoint's, then the fallback", () => {
      assert.strictEqual(ok(options({ host: endpoint, region: "us-east-2" }, "sa-east-1")).region, "us-east-2")
      assert.strictEqual(ok(options({ host: endpoint }, "sa-east-1")).region, "us-east-1")
      const bare = ok(options({ host: clusterId.toUpperCase() }, "sa-east-1"))
      assert.deepStrictEqual([bare.host, bare.clusterId, bare.region], [
        `${clusterId}.dsql.sa-east-1.on.aws`,
        clusterId,
        "sa-east-1"
      ])
      only(
        options({ host: clusterId }, "nowhere"),
        ["region"],
        "the fallback region must be an AWS region in lowercase, such as us-east-1; got \"nowhere\""
      )
      only(
        options({ host: "localhost" }),
        ["region"],
        "region is required when host is not a DSQL endpoint (<cluster-id>.dsql.<region>.on.aws) and the IAM token " +
          "is signed for a region; set region"
      )
    })

    it("keeps a cluster id only for a DSQL endpoint whose first label is one", () => {
      assert.strictEqual(ok(options({ host: "foo.dsql.us-east-1.on.aws" })).clusterId, undefined)
      assert.strictEqual(ok(options({ host: `${clusterId}.example`, region: "us-east-1" })).clusterId, undefined)
      assert.strictEqual(ok(options({ host: `${clusterId}.dsql-fnh4.ap-northeast-1.on.aws` })).clusterId, clusterId)
    })

    const refused: Array<[host: string, message: string]> = [
      ["", "host must not be empty; give an endpoint such as <cluster-id>.dsql.us-east-1.on.aws or a cluster id"],
      [`postgres://${endpoint}`, "host looks like a connection string; give it as url instead"],
      ["a b", "host must not contain whitespace; got \"a b\""],
      [
        "10.0.0.1",
        "host must be a host name, not an IP address: TLS SNI and the IAM token need the endpoint name; put the " +
        "address in hostAddress"
      ],
      [
        `${endpoint}:5432`,
        "host must not contain ':'; give the port as port (an IP address: put the address in hostAddress)"
      ],
      [
        "bad!host",
        "host is not a host name: use letters, digits, '-' and '_' in dot-separated labels of 1 to 63 characters; " +
        "got \"bad!host\""
      ]
    ]
    it.each(refused)("refuses host %j", (host, message) => {
      only(options({ host, region: "us-east-1" }), ["host"], message)
    })
  })

  describe("validation", () => {
    const base = { host: endpoint }
    const refused: Array<[values: { readonly [F in Settings.Field]?: unknown }, field: string, message: string]> = [
      [{ user: "" }, "user", "user must not be empty; leave it out to use \"admin\""],
      [{ database: "é".repeat(32) }, "database", "database must be at most 63 bytes without control characters"],
      [{ port: 65536 }, "port", "port must be an integer from 1 to 65535; got 65536"],
      [{ port: "54a" }, "port", "port must be an integer from 1 to 65535; got \"54a\""],
      [{ profile: "a\nb" }, "profile", "profile must be an AWS profile name (non-empty, no control characters)"],
      [{ tokenDuration: 1500 }, "tokenDuration", "tokenDuration must be a whole number of seconds from 1 to 604800"],
      [{ tokenDuration: { ms: 604_801_000 } }, "tokenDuration", "got 604801000 ms"],
      [{ maxConnections: 0 }, "maxConnections", "maxConnections must be an integer from 1 to 9007199254740991"],
      [{ minConnections: -1 }, "minConnections", "minConnections must be an integer from 0"],
      [{ minConnections: 11 }, "minConnections", "minConnections (11) must not exceed maxConnections (10)"],
      [
        { maxConnectionLifetime: 3_600_000 },
        "maxConnectionLifetime",
        "maxConnectionLifetime must be above zero and under 60 minutes, because DSQL closes connections at 60 minutes"
      ],
      [{ idleTimeout: Infinity }, "idleTimeout", "idleTimeout must be a duration above zero"],
      [{ connectTimeout: "soon" }, "connectTimeout", "got \"soon\""],
      [{ connectTimeout: [1, 2] }, "connectTimeout", "got a value of type array"],
      [{ applicationName: "x".repeat(48) }, "applicationName", "must be 1 to 47 printable ASCII characters"],
      [{ hostAddress: "[::1]" }, "hostAddress", "an IPv6 address without brackets"],
      [{ caPem: "/etc/ssl/ca.pem" }, "caPem", "not a file path"],
      [{ sslNegotiation: "tls" }, "sslNegotiation", "\"direct\" (TLS first, the default) or \"postgres\""]
    ]
    it.each(refused)("refuses %j", (values, field, fragment) => {
      const [issue] = issues(options({ ...base, ...values }))
      assert.deepStrictEqual(issue.path, [field])
      assert.strictEqual(issue.kind, "Invalid")
      assert.include(issue.message, fragment)
    })

    it("accepts the limits themselves, reading durations through the line", () => {
      const settings = ok(options({
        ...base,
        port: 65535,
        tokenDuration: { ms: 604_800_000 },
        maxConnections: 1,
        minConnections: 1,
        maxConnectionLifetime: 3_599_999,
        applicationName: "x".repeat(47),
        hostAddress: "::1"
      }))
      assert.strictEqual(settings.tokenDuration, 604_800_000)
      assert.strictEqual(settings.maxConnectionLifetime, 3_599_999)
      assert.strictEqual(settings.applicationName.length, 63)
    })

    it("reports every independent issue, in field order", () => {
      const found = issues(options({ host: "", user: "", port: 0, sslNegotiation: "no" }))
      assert.deepStrictEqual(found.map((issue) => issue.path[0]), ["host", "user", "port", "sslNegotiation"])
    })
  })

  describe("connection strings", () => {
    it("reads every part, and values given beside the URL beat it", () => {
      const url = "dsql://my%20user@localhost:5433/my%2Fdb?region=us-east-1&profile=dev&tokenDurationSecs=60"
      const settings = ok(options({ url }))
      assert.deepStrictEqual(
        [settings.user, settings.host, settings.port, settings.database, settings.profile, settings.tokenDuration],
        ["my user", "localhost", 5433, "my/db", "dev", 60_000]
      )
      const overridden = ok(options({ url, user: "alice", tokenDuration: 120_000 }))
      assert.deepStrictEqual([overridden.user, overridden.tokenDuration], ["alice", 120_000])
    })

    const refused: Array<[url: string, message: string]> = [
      ["mysql://localhost/db", "url has the scheme \"mysql\"; use postgres://, postgresql:// or dsql://"],
      [
        "postgres://admin:hunter2@localhost/db",
        "DSQL authenticates with IAM tokens; remove the password from url (an '@' anywhere else must be " +
        "percent-encoded as %40)"
      ],
      ["postgres://localhost:hunter2/db", "the port in url must be an integer from 1 to 65535"],
      [
        "postgres://localhost/db?sslmode=require",
        "url has unknown parameters \"sslmode\"; accepted: region, profile, tokenDurationSecs"
      ],
      ["postgres://localhost/db?region=a&region=b", "url repeats the parameter \"region\"; give each parameter once"],
      ["postgres://localhost/%zz", "the database in url has invalid percent-encoding"],
      [
        "postgres://[::1]/db",
        "url has an IPv6 address as host: TLS SNI and the IAM token need the endpoint name; put the address in hostAddress"
      ],
      [
        "postgres://localhost/db?region=us-east-1&tokenDurationSecs=1.5",
        "the tokenDurationSecs in url must be a whole number of seconds from 1 to 604800 (7 days, the longest an IAM " +
        "token may live); got \"1.5\""
      ]
    ]
    it.each(refused)("refuses %s", (url, message) => {
      only(options({ url }), ["url"], message)
    })

    it("labels URL issues from the environment with DSQL_URL", () => {
      only(
        env({ url: "postgres://localhost/db?region=Mars" }),
        ["DSQL", "URL"],
        "the region in DSQL_URL must be an AWS region in lowercase, such as us-east-1; got \"Mars\""
      )
    })
  })

  it("never throws, and succeeds only with settings that keep their bounds", () => {
    const anyValue = FastCheck.oneof(
      FastCheck.string({ unit: "binary", maxLength: 40 }),
      FastCheck.double(),
      FastCheck.integer({ min: -10, max: 4_000_000 }),
      FastCheck.double().map((ms) => ({ ms })),
      FastCheck.constantFrom(clusterId, endpoint, "localhost", "us-east-1", pem, "postgres://localhost", null)
    )
    const values = FastCheck.dictionary(FastCheck.constantFrom(...Object.keys(Settings.envNames)), anyValue)
    FastCheck.assert(
      FastCheck.property(values, FastCheck.option(FastCheck.constant("us-east-1"), { nil: undefined }), (v, fb) => {
        const result = Settings.fromOptions(v, fb, line)
        if (result._tag === "Failure") return result.issues.length > 0
        const s = result.value
        return s.tokenDuration % 1000 === 0 && s.tokenDuration >= 1000 && s.tokenDuration <= 604_800_000 &&
          s.maxConnectionLifetime > 0 && s.maxConnectionLifetime < 3_600_000 && Number.isFinite(s.idleTimeout) &&
          s.idleTimeout > 0 && Number.isFinite(s.connectTimeout) && s.connectTimeout > 0 &&
          s.minConnections <= s.maxConnections && s.applicationName.length <= 63
      }),
      { numRuns: 1000 }
    )
  })
})
