import { DsqlSigner } from "@aws-sdk/dsql-signer"
import { assert, describe, it, vi } from "@effect/vitest"
import { Cause, ConfigProvider, Duration, Effect, Exit, Fiber, Layer, Redacted, Tracer } from "effect"
import { TestClock } from "effect/testing"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { inspect } from "node:util"
import * as TokenSigner from "../src/TokenSigner.js"
import { withEnv } from "./utils/env.js"

const HOST = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws"
const REGION = "us-east-1"
const SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
const SESSION_TOKEN = "IQoJb3JpZ2luX2VjSESSIONTOKEN//+/=="
const OCTOBER_FIRST = Date.UTC(2026, 9, 1, 12, 34, 56)

const request = (overrides?: Partial<TokenSigner.SignRequest>): TokenSigner.SignRequest => ({
  hostname: HOST,
  region: REGION,
  user: "admin",
  expiresIn: "15 minutes",
  ...overrides
})

const identity = (accessKeyId: string, expiration?: Date): TokenSigner.AwsCredentialIdentity => ({
  accessKeyId,
  secretAccessKey: SECRET,
  sessionToken: SESSION_TOKEN,
  ...(expiration === undefined ? {} : { expiration })
})

const params = (token: Redacted.Redacted<string>) => new URLSearchParams(Redacted.value(token).split("?")[1])
const accessKeyOf = (token: Redacted.Redacted<string>) => params(token).get("X-Amz-Credential")?.split("/")[0]

const sign = (signerRequest: TokenSigner.SignRequest) =>
  Effect.flatMap(TokenSigner.TokenSigner, (signer) => signer.sign(signerRequest))

/** A provider that counts its calls and answers with `answer(call, now)`, `now` read from the test's clock. */
const countingProvider = (answer: (call: number, now: number) => Promise<TokenSigner.AwsCredentialIdentity>) =>
  Effect.clockWith((clock) => {
    let calls = 0
    const provider: TokenSigner.AwsCredentialIdentityProvider = () => answer(++calls, clock.currentTimeMillisUnsafe())
    return Effect.succeed({ provider, calls: Effect.sync(() => calls) })
  })

const expiringIn = (lifetime: Duration.Input) => (call: number, now: number) =>
  Promise.resolve(identity(`AKID${call}`, new Date(now + Duration.toMillis(Duration.fromInputUnsafe(lifetime)))))

/** A promise the test opens when it chooses, to hold a provider call while concurrent signers pile up. */
const makeGate = () => {
  let open!: () => void
  const opened = new Promise<void>((resolve) => {
    open = resolve
  })
  return { opened, open }
}

/** Runs `effect` with the system clock set to `at`: `@aws-sdk/dsql-signer` dates tokens with `Date`. */
const atSystemTime = <A, E, R>(at: number, effect: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      vi.useFakeTimers({ toFake: ["Date"] })
      vi.setSystemTime(at)
    }),
    () => effect,
    () => Effect.sync(() => vi.useRealTimers())
  )

const officialToken = (credentials: TokenSigner.AwsCredentialIdentity, admin: boolean) =>
  Effect.promise(() => {
    const signer = new DsqlSigner({ hostname: HOST, region: REGION, credentials, expiresIn: 900 })
    return admin ? signer.getDbConnectAdminAuthToken() : signer.getDbConnectAuthToken()
  })

const failureOf = <A, R>(effect: Effect.Effect<A, TokenSigner.TokenSignerError, R>) =>
  Effect.map(Effect.exit(effect), (exit) => {
    assert(Exit.isFailure(exit), "expected a failure")
    const failure = Cause.findErrorOption(exit.cause)
    assert(failure._tag === "Some", `expected a typed failure, got ${Cause.pretty(exit.cause)}`)
    return failure.value
  })

const assertNoSecret = (value: unknown, secrets: ReadonlyArray<string>) => {
  const renderings = [String(value), JSON.stringify(value) ?? "", inspect(value, { depth: Infinity, showHidden: true })]
  for (const rendered of renderings) {
    for (const secret of secrets) assert.notInclude(rendered, secret)
  }
}

const staticLayer = TokenSigner.layerStatic({
  accessKeyId: "AKIDSTATIC",
  secretAccessKey: Redacted.make(SECRET),
  sessionToken: Redacted.make(SESSION_TOKEN)
})

describe("actionFor", () => {
  it("gives DbConnectAdmin to exactly admin", () => {
    assert.strictEqual(TokenSigner.actionFor("admin"), "DbConnectAdmin")
    assert.strictEqual(TokenSigner.actionFor("Admin"), "DbConnect")
    assert.strictEqual(TokenSigner.actionFor("reader"), "DbConnect")
  })
})

describe("token", () => {
  it.effect("has the DSQL shape, session token included, dated by the system clock", () =>
    Effect.gen(function*() {
      const token = yield* atSystemTime(OCTOBER_FIRST, sign(request()))
      const query = params(token)
      assert.isTrue(Redacted.value(token).startsWith(`${HOST}/?Action=DbConnectAdmin&`))
      assert.strictEqual(query.get("X-Amz-Credential"), "AKIDSTATIC/20261001/us-east-1/dsql/aws4_request")
      assert.strictEqual(query.get("X-Amz-Date"), "20261001T123456Z")
      assert.strictEqual(query.get("X-Amz-Expires"), "900")
      assert.strictEqual(query.get("X-Amz-Security-Token"), SESSION_TOKEN)
      assert.match(query.get("X-Amz-Signature") ?? "", /^[0-9a-f]{64}$/)
    }).pipe(Effect.provide(staticLayer)))

  it.effect("equals @aws-sdk/dsql-signer's token at the same instant, for admin and other users", () =>
    Effect.gen(function*() {
      const credentials = identity("AKIDEXAMPLE")
      const signer = yield* TokenSigner.make({ credentials: () => Promise.resolve(credentials) })
      for (const user of ["admin", "reader"]) {
        const [ours, theirs] = yield* atSystemTime(
          OCTOBER_FIRST,
          Effect.all([signer.sign(request({ user })), officialToken(credentials, user === "admin")])
        )
        assert.strictEqual(Redacted.value(ours), theirs)
      }
    }))

  it.effect("accepts 1 second to 7 days, whole seconds", () =>
    Effect.gen(function*() {
      const expiresOf = (expiresIn: Duration.Input) =>
        Effect.map(sign(request({ expiresIn })), (token) => params(token).get("X-Amz-Expires"))
      assert.strictEqual(yield* expiresOf("1 second"), "1")
      assert.strictEqual(yield* expiresOf("1500 millis"), "1")
      assert.strictEqual(yield* expiresOf(Duration.days(7)), "604800")
    }).pipe(Effect.provide(staticLayer)))

  it.effect("refuses a request out of bounds before resolving credentials", () =>
    Effect.gen(function*() {
      const { calls, provider } = yield* countingProvider(expiringIn("1 hour"))
      const signer = yield* TokenSigner.make({ credentials: provider })
      const invalid: Array<Partial<TokenSigner.SignRequest>> = [
        { expiresIn: 0 },
        { expiresIn: "999 millis" },
        { expiresIn: "604801 seconds" },
        { expiresIn: Duration.infinity },
        { expiresIn: "soon" as Duration.Input },
        { hostname: "" },
        { hostname: "evil.example/path" },
        { region: "" },
        { user: "" }
      ]
      for (const overrides of invalid) {
        const error = yield* failureOf(signer.sign(request(overrides)))
        assert.strictEqual(error.reason, "InvalidRequest", JSON.stringify(overrides))
      }
      assert.strictEqual(yield* calls, 0)
    }))
})

describe("credential cache", () => {
  it.effect("calls the provider once for 100 concurrent signatures", () =>
    Effect.gen(function*() {
      const gate = makeGate()
      const { calls, provider } = yield* countingProvider(async (call) => {
        await gate.opened
        return identity(`AKID${call}`)
      })
      const signer = yield* TokenSigner.make({ credentials: provider })
      const signers = yield* Effect.forkChild(
        Effect.forEach(Array.from({ length: 100 }), () => signer.sign(request()), { concurrency: "unbounded" })
      )
      // let every signer reach the cache while the first resolution is held
      yield* TestClock.withLive(Effect.sleep("20 millis"))
      gate.open()
      const tokens = yield* Fiber.join(signers)
      assert.strictEqual(yield* calls, 1)
      assert.isTrue(tokens.every((token) => accessKeyOf(token) === "AKID1"))
    }))

  it.effect("shares one failed resolution between concurrent signers, then tries again", () =>
    Effect.gen(function*() {
      const gate = makeGate()
      const { calls, provider } = yield* countingProvider(async (call) => {
        await gate.opened
        if (call === 1) throw new Error("instance metadata service unreachable")
        return identity(`AKID${call}`)
      })
      const signer = yield* TokenSigner.make({ credentials: provider })
      const signers = yield* Effect.forkChild(
        Effect.forEach(Array.from({ length: 50 }), () => Effect.flip(signer.sign(request())), {
          concurrency: "unbounded"
        })
      )
      yield* TestClock.withLive(Effect.sleep("20 millis"))
      gate.open()
      const errors = yield* Fiber.join(signers)
      assert.isTrue(errors.every((error) => error.reason === "CredentialsUnavailable"))
      assert.include(errors[0]!.message, "instance metadata service unreachable")
      assert.strictEqual(yield* calls, 1)
      assert.strictEqual(accessKeyOf(yield* signer.sign(request())), "AKID2")
      assert.strictEqual(yield* calls, 2)
    }))

  it.effect("refreshes only once the refresh window is reached, 5 minutes before expiration", () =>
    Effect.gen(function*() {
      const { calls, provider } = yield* countingProvider(expiringIn("1 hour"))
      const signer = yield* TokenSigner.make({ credentials: provider })
      assert.strictEqual(accessKeyOf(yield* signer.sign(request())), "AKID1")
      yield* TestClock.adjust(Duration.subtract(Duration.minutes(55), Duration.millis(1)))
      for (let i = 0; i < 10; i++) assert.strictEqual(accessKeyOf(yield* signer.sign(request())), "AKID1")
      assert.strictEqual(yield* calls, 1)
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(accessKeyOf(yield* signer.sign(request())), "AKID2")
      assert.strictEqual(accessKeyOf(yield* signer.sign(request())), "AKID2")
      assert.strictEqual(yield* calls, 2)
    }))

  it.effect("keeps signing with the cached credentials while a refresh fails, backing off between attempts", () =>
    Effect.gen(function*() {
      let healthy = true
      const { calls, provider } = yield* countingProvider((call, now) =>
        healthy ? expiringIn("10 minutes")(call, now) : Promise.reject(new Error("STS unreachable"))
      )
      const signer = yield* TokenSigner.make({ credentials: provider })
      yield* signer.sign(request())
      healthy = false
      // in the refresh window (5 minutes left): the attempt fails, AKID1 goes on
      yield* TestClock.adjust("5 minutes")
      assert.strictEqual(accessKeyOf(yield* signer.sign(request())), "AKID1")
      assert.strictEqual(yield* calls, 2)
      // the next attempt waits half the remaining lifetime: 2.5 minutes
      yield* TestClock.adjust("149 seconds")
      assert.strictEqual(accessKeyOf(yield* signer.sign(request())), "AKID1")
      assert.strictEqual(yield* calls, 2)
      healthy = true
      yield* TestClock.adjust("1 second")
      assert.strictEqual(accessKeyOf(yield* signer.sign(request())), "AKID3")
      assert.strictEqual(yield* calls, 3)
    }))

  it.effect("refuses expired or incomplete credentials from the provider", () =>
    Effect.gen(function*() {
      const answers: Array<TokenSigner.AwsCredentialIdentity> = [
        identity("AKIDEXPIRED", new Date(0)),
        { accessKeyId: "", secretAccessKey: SECRET },
        { accessKeyId: "AKIDNOSECRET", secretAccessKey: "" }
      ]
      const { provider } = yield* countingProvider((call) => Promise.resolve(answers[call - 1]!))
      const signer = yield* TokenSigner.make({ credentials: provider })
      const expired = yield* failureOf(signer.sign(request()))
      assert.strictEqual(expired.reason, "CredentialsUnavailable")
      assert.include(expired.message, "expired at 1970-01-01T00:00:00.000Z")
      for (let i = 0; i < 2; i++) {
        assert.include((yield* failureOf(signer.sign(request()))).message, "no access key or secret")
      }
    }))
})

describe("secrets", () => {
  it.effect("never show in errors, the token's renderings or the TokenSigner.sign span", () =>
    Effect.gen(function*() {
      const secrets = [SECRET, SESSION_TOKEN]
      const token = yield* sign(request({ user: "reader" }))
      assertNoSecret(token, [...secrets, Redacted.value(token)])
      assertNoSecret(yield* failureOf(sign(request({ expiresIn: 0 }))), secrets)
      const unencodable = yield* failureOf(Effect.flatMap(
        TokenSigner.make({ credentials: () => Promise.resolve(identity("AKID\uD800")) }),
        (signer) => signer.sign(request())
      ))
      assert.strictEqual(unencodable.reason, "SigningFailed")
      assertNoSecret(unencodable, secrets)

      const tracer = yield* Effect.tracer
      const spans: Array<Tracer.Span> = []
      const recording = Tracer.make({
        span: (options) => {
          const span = tracer.span(options)
          spans.push(span)
          return span
        }
      })
      const traced = yield* sign(request({ user: "reader" })).pipe(Effect.withTracer(recording))
      assert.deepStrictEqual(spans.map((span) => span.name), ["TokenSigner.sign"])
      const attributes = Object.fromEntries(spans[0]!.attributes)
      assert.deepStrictEqual(attributes, {
        "dsql.host": HOST,
        "dsql.region": REGION,
        "dsql.user": "reader",
        "dsql.action": "DbConnect"
      })
      assertNoSecret(attributes, [...secrets, Redacted.value(traced)])
    }).pipe(Effect.provide(staticLayer)))
})

/** A temporary directory holding AWS config files, pointed at by the AWS_* variables until the scope closes. */
const awsConfigFiles = (config: (dir: string) => string) =>
  Effect.gen(function*() {
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "effect-dsql-e4-signer-"))),
      (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
    )
    fs.writeFileSync(path.join(dir, "config"), config(dir))
    fs.writeFileSync(path.join(dir, "credentials"), "")
    const vars: Record<string, string | undefined> = {
      AWS_CONFIG_FILE: path.join(dir, "config"),
      AWS_SHARED_CREDENTIALS_FILE: path.join(dir, "credentials"),
      AWS_PROFILE: undefined,
      AWS_ACCESS_KEY_ID: undefined,
      AWS_SECRET_ACCESS_KEY: undefined,
      AWS_SESSION_TOKEN: undefined
    }
    yield* withEnv(vars)
    return dir
  })

/** A profile whose `credential_process` prints fixed keys and counts its runs in a file. */
const countingProcessProfile = (profile: string) =>
  Effect.gen(function*() {
    let runs = ""
    yield* awsConfigFiles((dir) => {
      runs = path.join(dir, "runs")
      const script = path.join(dir, "credentials.cjs")
      const output = JSON.stringify({ Version: 1, AccessKeyId: "AKIDPROCESS", SecretAccessKey: SECRET })
      fs.writeFileSync(
        script,
        `require("node:fs").appendFileSync(${JSON.stringify(runs)}, "run\\n")\nconsole.log(${JSON.stringify(output)})\n`
      )
      fs.writeFileSync(runs, "")
      return `[profile ${profile}]\ncredential_process = ${process.execPath} ${JSON.stringify(script)}\n`
    })
    return Effect.sync(() => fs.readFileSync(runs, "utf8").split("\n").filter((line) => line !== "").length)
  })

describe("layers", () => {
  it.live("layerFromChain resolves credentials once per build of the layer, and again when rebuilt", () =>
    Effect.gen(function*() {
      const profile = "dsql-e4-signer-process"
      const runs = yield* countingProcessProfile(profile)
      const signerLayer = TokenSigner.layerFromChain({ profile })
      const signThrice = Effect.map(
        Effect.all([sign(request()), sign(request()), sign(request())]),
        (tokens) => tokens.map(accessKeyOf)
      )
      assert.deepStrictEqual(yield* Effect.provide(signThrice, signerLayer), [
        "AKIDPROCESS",
        "AKIDPROCESS",
        "AKIDPROCESS"
      ])
      assert.strictEqual(yield* runs, 1)
      yield* Effect.provide(signThrice, signerLayer)
      assert.strictEqual(yield* runs, 2)
    }))

  it.live("layer takes the profile from DSQL_PROFILE", () =>
    Effect.gen(function*() {
      const profile = "dsql-e4-signer-config"
      const runs = yield* countingProcessProfile(profile)
      const config = ConfigProvider.layer(ConfigProvider.fromEnv({ env: { DSQL_PROFILE: profile } }))
      const token = yield* sign(request()).pipe(Effect.provide(TokenSigner.layer.pipe(Layer.provide(config))))
      assert.strictEqual(accessKeyOf(token), "AKIDPROCESS")
      assert.strictEqual(yield* runs, 1)
    }))

  it.live("layerFromChain with an unknown profile fails with an actionable CredentialsUnavailable", () =>
    Effect.gen(function*() {
      yield* awsConfigFiles(() => "")
      const error = yield* failureOf(
        sign(request()).pipe(Effect.provide(TokenSigner.layerFromChain({ profile: "no-such-profile" })))
      )
      assert.strictEqual(error.reason, "CredentialsUnavailable")
      assert.include(error.message, "no-such-profile")
      assert.include(error.message, "DSQL_PROFILE")
    }))

  it.effect("layerFromProvider passes refreshBefore on", () =>
    Effect.gen(function*() {
      const { calls, provider } = yield* countingProvider(expiringIn("10 minutes"))
      const signTwice = Effect.gen(function*() {
        yield* sign(request())
        yield* TestClock.adjust("2 minutes")
        return yield* sign(request())
      }).pipe(Effect.provide(TokenSigner.layerFromProvider(provider, { refreshBefore: "9 minutes" })))
      assert.strictEqual(accessKeyOf(yield* signTwice), "AKID2")
      assert.strictEqual(yield* calls, 2)
    }))
})
