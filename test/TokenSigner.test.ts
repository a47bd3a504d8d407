import { DsqlSigner } from "@aws-sdk/dsql-signer"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it, layer, vi } from "@effect/vitest"
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@smithy/types"
import {
  Cause,
  Clock,
  ConfigProvider,
  Context,
  Duration,
  Effect,
  Exit,
  FastCheck,
  Fiber,
  Layer,
  Metric,
  Option,
  Redacted,
  Ref,
  Runtime,
  TestClock,
  TestServices,
  Tracer
} from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { inspect } from "node:util"
import * as DsqlClient from "../src/DsqlClient.js"
import * as DsqlMetrics from "../src/DsqlMetrics.js"
import { DsqlLocal } from "../src/local/index.js"
import * as TokenSigner from "../src/TokenSigner.js"

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

const identity = (accessKeyId: string, expiration?: Date): AwsCredentialIdentity => ({
  accessKeyId,
  secretAccessKey: SECRET,
  sessionToken: SESSION_TOKEN,
  ...(expiration === undefined ? {} : { expiration })
})

const params = (token: Redacted.Redacted<string>) => new URLSearchParams(Redacted.value(token).split("?")[1])
const accessKeyOf = (token: Redacted.Redacted<string>) => params(token).get("X-Amz-Credential")?.split("/")[0]

const sign = (signerRequest: TokenSigner.SignRequest) =>
  Effect.flatMap(TokenSigner.TokenSigner, (signer) => signer.sign(signerRequest))

/**
 * A provider that counts its calls and answers with `answer(call, now)`, `now` read from the test's clock (TestClock
 * under `it.effect`), so expirations can be set relative to it.
 */
const countingProvider = (answer: (call: number, now: number) => Promise<AwsCredentialIdentity>) =>
  Effect.gen(function*() {
    const calls = yield* Ref.make(0)
    const runtime = yield* Effect.runtime<never>()
    const provider: AwsCredentialIdentityProvider = () =>
      Runtime.runPromise(runtime)(Effect.zip(Ref.updateAndGet(calls, (n) => n + 1), Clock.currentTimeMillis))
        .then(([call, now]) => answer(call, now))
    return { provider, calls: Ref.get(calls) }
  })

const expiringIn = (lifetime: Duration.DurationInput) => (call: number, now: number) =>
  Promise.resolve(identity(`AKID${call}`, new Date(now + Duration.toMillis(lifetime))))

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

/** What `@aws-sdk/dsql-signer` itself produces for the same inputs. */
const officialToken = (options: {
  readonly hostname: string
  readonly region: string
  readonly credentials: AwsCredentialIdentity
  readonly expiresIn: number
  readonly admin: boolean
}) =>
  Effect.promise(() => {
    const signer = new DsqlSigner({
      hostname: options.hostname,
      region: options.region,
      credentials: options.credentials,
      expiresIn: options.expiresIn
    })
    return options.admin ? signer.getDbConnectAdminAuthToken() : signer.getDbConnectAuthToken()
  })

/**
 * Signs 1 ms before `delay` has passed, when the provider must not be called, and at `delay`, when it must be called
 * once; returns the access keys of both tokens.
 */
const keysAroundNextAttempt = (signer: TokenSigner.Service, calls: Effect.Effect<number>, delay: Duration.Duration) =>
  Effect.gen(function*() {
    const before = yield* calls
    yield* TestClock.adjust(Duration.subtract(delay, Duration.millis(1)))
    const early = accessKeyOf(yield* signer.sign(request()))
    assert.strictEqual(yield* calls, before, "the provider was called before the back-off ended")
    yield* TestClock.adjust("1 millis")
    const due = accessKeyOf(yield* signer.sign(request()))
    assert.strictEqual(yield* calls, before + 1, "the provider was not called once the back-off ended")
    return [early, due]
  })

const failureOf = <A, R>(effect: Effect.Effect<A, TokenSigner.TokenSignerError, R>) =>
  Effect.map(Effect.exit(effect), (exit) => {
    assert(Exit.isFailure(exit), "expected a failure")
    const failure = Cause.failureOption(exit.cause)
    assert(failure._tag === "Some", `expected a typed failure, got ${Cause.pretty(exit.cause)}`)
    return failure.value
  })

const renderings = (value: unknown): Array<string> => [
  String(value),
  JSON.stringify(value) ?? "",
  inspect(value, { depth: Infinity, showHidden: true }),
  Cause.pretty(Cause.fail(value))
]

const assertNoSecret = (value: unknown, secrets: ReadonlyArray<string>) => {
  for (const rendered of renderings(value)) {
    for (const secret of secrets) assert.notInclude(rendered, secret)
  }
}

describe("actionFor", () => {
  it("gives DbConnectAdmin to exactly admin", () => {
    assert.strictEqual(TokenSigner.actionFor("admin"), "DbConnectAdmin")
    assert.strictEqual(TokenSigner.actionFor("Admin"), "DbConnect")
    assert.strictEqual(TokenSigner.actionFor("admin "), "DbConnect")
    assert.strictEqual(TokenSigner.actionFor("reader"), "DbConnect")
  })

  it.prop("gives DbConnect to every other name", [FastCheck.string().filter((user) => user !== "admin")], ([user]) => {
    assert.strictEqual(TokenSigner.actionFor(user), "DbConnect")
  })
})

describe("token", () => {
  it.effect("has the DSQL shape, session token included, dated by the system clock", () =>
    Effect.gen(function*() {
      const token = yield* atSystemTime(OCTOBER_FIRST, sign(request()))
      const query = params(token)
      assert.isTrue(Redacted.value(token).startsWith(`${HOST}/?Action=DbConnectAdmin&`))
      assert.strictEqual(query.get("X-Amz-Algorithm"), "AWS4-HMAC-SHA256")
      assert.strictEqual(query.get("X-Amz-Credential"), "AKIDSTATIC/20261001/us-east-1/dsql/aws4_request")
      assert.strictEqual(query.get("X-Amz-Date"), "20261001T123456Z")
      assert.strictEqual(query.get("X-Amz-Expires"), "900")
      assert.strictEqual(query.get("X-Amz-Security-Token"), SESSION_TOKEN)
      assert.strictEqual(query.get("X-Amz-SignedHeaders"), "host")
      assert.match(query.get("X-Amz-Signature") ?? "", /^[0-9a-f]{64}$/)
    }).pipe(
      Effect.provide(TokenSigner.layerStatic({
        accessKeyId: "AKIDSTATIC",
        secretAccessKey: Redacted.make(SECRET),
        sessionToken: Redacted.make(SESSION_TOKEN)
      }))
    ))

  it.effect("signs DbConnect for other users and leaves the session token out when there is none", () =>
    Effect.gen(function*() {
      const token = yield* sign(request({ user: "reader", expiresIn: Duration.hours(1) }))
      assert.isTrue(Redacted.value(token).startsWith(`${HOST}/?Action=DbConnect&`))
      assert.strictEqual(params(token).get("X-Amz-Expires"), "3600")
      assert.isFalse(params(token).has("X-Amz-Security-Token"))
    }).pipe(Effect.provide(TokenSigner.layerStatic({ accessKeyId: "AKIDSTATIC", secretAccessKey: SECRET }))))

  it.effect("equals @aws-sdk/dsql-signer's token at the same instant", () =>
    Effect.gen(function*() {
      const credentials = identity("AKIDEXAMPLE")
      const signer = yield* TokenSigner.make({ credentials: () => Promise.resolve(credentials) })
      for (const user of ["admin", "reader"]) {
        const [ours, theirs] = yield* atSystemTime(
          OCTOBER_FIRST,
          Effect.zip(
            signer.sign(request({ user })),
            officialToken({ hostname: HOST, region: REGION, credentials, expiresIn: 900, admin: user === "admin" })
          )
        )
        assert.strictEqual(Redacted.value(ours), theirs)
      }
    }))

  it.effect.prop(
    "equals @aws-sdk/dsql-signer's token for any host, region, credentials, expiry and instant",
    {
      hostname: FastCheck.domain(),
      region: FastCheck.stringMatching(/^[a-z]{2}-[a-z]{4,9}-[1-9]$/),
      accessKeyId: FastCheck.string({ minLength: 1, unit: "binary" }),
      secretAccessKey: FastCheck.string({ minLength: 1, unit: "binary" }),
      sessionToken: FastCheck.option(FastCheck.string({ unit: "binary" }), { nil: undefined }),
      expiresIn: FastCheck.integer({ min: 1, max: 604_800 }),
      admin: FastCheck.boolean(),
      at: FastCheck.date({ min: new Date("2000-01-01"), max: new Date("2099-12-31"), noInvalidDate: true })
    },
    ({ accessKeyId, admin, at, expiresIn, hostname, region, secretAccessKey, sessionToken }) =>
      Effect.gen(function*() {
        const credentials: AwsCredentialIdentity = {
          accessKeyId,
          secretAccessKey,
          ...(sessionToken === undefined ? {} : { sessionToken })
        }
        const signer = yield* TokenSigner.make({ credentials: () => Promise.resolve(credentials) })
        const [ours, theirs] = yield* atSystemTime(
          at.getTime(),
          Effect.zip(
            signer.sign({ hostname, region, user: admin ? "admin" : "app", expiresIn: `${expiresIn} seconds` }),
            officialToken({ hostname, region, credentials, expiresIn, admin })
          )
        )
        assert.strictEqual(Redacted.value(ours), theirs)
      }),
    { fastCheck: { numRuns: 200 } }
  )

  it.effect("accepts 1 second to 7 days, whole seconds", () =>
    Effect.gen(function*() {
      const expiresOf = (expiresIn: Duration.DurationInput) =>
        Effect.map(sign(request({ expiresIn })), (token) => params(token).get("X-Amz-Expires"))
      assert.strictEqual(yield* expiresOf("1 second"), "1")
      assert.strictEqual(yield* expiresOf("1500 millis"), "1")
      assert.strictEqual(yield* expiresOf(Duration.days(7)), "604800")
    }).pipe(Effect.provide(TokenSigner.layerStatic({ accessKeyId: "AKIDSTATIC", secretAccessKey: SECRET }))))

  it.effect("refuses a request out of bounds before resolving credentials", () =>
    Effect.gen(function*() {
      const { calls, provider } = yield* countingProvider(expiringIn("1 hour"))
      const signer = yield* TokenSigner.make({ credentials: provider })
      const invalid: Array<Partial<TokenSigner.SignRequest>> = [
        { expiresIn: 0 },
        { expiresIn: "999 millis" },
        { expiresIn: "604801 seconds" },
        { expiresIn: Duration.infinity },
        { expiresIn: -5 },
        { expiresIn: "soon" as Duration.DurationInput },
        { hostname: "" },
        { hostname: "host name.dsql.us-east-1.on.aws" },
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
      const signers = yield* Effect.fork(
        Effect.forEach(Array.from({ length: 100 }), () => signer.sign(request()), { concurrency: "unbounded" })
      )
      // let every signer reach the cache while the first resolution is held
      yield* TestServices.provideLive(Effect.sleep("20 millis"))
      gate.open()
      const tokens = yield* signers.await.pipe(Effect.flatten)
      assert.strictEqual(tokens.length, 100)
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
      const signers = yield* Effect.fork(
        Effect.forEach(Array.from({ length: 100 }), () => Effect.flip(signer.sign(request())), {
          concurrency: "unbounded"
        })
      )
      yield* TestServices.provideLive(Effect.sleep("20 millis"))
      gate.open()
      const errors = yield* signers.await.pipe(Effect.flatten)
      assert.isTrue(errors.every((error) => error.reason === "CredentialsUnavailable"))
      assert.strictEqual(yield* calls, 1)
      assert.strictEqual(accessKeyOf(yield* signer.sign(request())), "AKID2")
      assert.strictEqual(yield* calls, 2)
    }))

  it.effect("refreshes only once the refresh window is reached, 5 minutes before expiration", () =>
    Effect.gen(function*() {
      const { calls, provider } = yield* countingProvider(expiringIn("1 hour"))
      const signer = yield* TokenSigner.make({ credentials: provider })
      assert.strictEqual(accessKeyOf(yield* signer.sign(request())), "AKID1")
      yield* TestClock.adjust(Duration.minutes(55).pipe(Duration.subtract(Duration.millis(1))))
      for (let i = 0; i < 10; i++) assert.strictEqual(accessKeyOf(yield* signer.sign(request())), "AKID1")
      assert.strictEqual(yield* calls, 1)
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(accessKeyOf(yield* signer.sign(request())), "AKID2")
      assert.strictEqual(accessKeyOf(yield* signer.sign(request())), "AKID2")
      assert.strictEqual(yield* calls, 2)
    }))

  it.effect("honours refreshBefore", () =>
    Effect.gen(function*() {
      const { calls, provider } = yield* countingProvider(expiringIn("1 hour"))
      const signer = yield* TokenSigner.make({ credentials: provider, refreshBefore: "1 minute" })
      yield* signer.sign(request())
      yield* TestClock.adjust("58 minutes")
      yield* signer.sign(request())
      assert.strictEqual(yield* calls, 1)
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(accessKeyOf(yield* signer.sign(request())), "AKID2")
      assert.strictEqual(yield* calls, 2)
    }))

  it.effect("keeps credentials without expiration forever", () =>
    Effect.gen(function*() {
      const { calls, provider } = yield* countingProvider((call) => Promise.resolve(identity(`AKID${call}`)))
      const signer = yield* TokenSigner.make({ credentials: provider })
      yield* signer.sign(request())
      yield* TestClock.adjust(Duration.days(365))
      assert.strictEqual(accessKeyOf(yield* signer.sign(request())), "AKID1")
      assert.strictEqual(yield* calls, 1)
    }))

  it.effect("fails with CredentialsUnavailable, not a defect, then recovers without a new signer", () =>
    Effect.gen(function*() {
      const unreachable = new Error("connect ECONNREFUSED 169.254.169.254:80")
      const { calls, provider } = yield* countingProvider((call) =>
        call <= 2 ? Promise.reject(unreachable) : Promise.resolve(identity(`AKID${call}`))
      )
      const signer = yield* TokenSigner.make({ credentials: provider })
      for (let i = 0; i < 2; i++) {
        const error = yield* failureOf(signer.sign(request()))
        assert.strictEqual(error._tag, "TokenSignerError")
        assert.strictEqual(error.reason, "CredentialsUnavailable")
        assert.include(error.message, "no AWS credentials found")
        assert.include(error.message, "ECONNREFUSED")
        assert.include(error.message, "AWS_PROFILE / DSQL_PROFILE")
        assert.strictEqual(error.cause, unreachable)
      }
      assert.strictEqual(accessKeyOf(yield* signer.sign(request())), "AKID3")
      assert.strictEqual(yield* calls, 3)
    }))

  it.effect("keeps signing with valid cached credentials while refreshes fail, retrying after half their lifetime", () =>
    Effect.gen(function*() {
      let healthy = true
      const { calls, provider } = yield* countingProvider((call, now) =>
        healthy
          ? expiringIn("1 hour")(call, now)
          : Promise.reject(new Error("ExpiredTokenException: the SSO session has expired"))
      )
      const signer = yield* TokenSigner.make({ credentials: provider })
      yield* signer.sign(request())
      healthy = false
      yield* TestClock.adjust("56 minutes")
      for (let i = 0; i < 10; i++) assert.strictEqual(accessKeyOf(yield* signer.sign(request())), "AKID1")
      assert.strictEqual(yield* calls, 2)
      // 4 minutes were left at the failed attempt: the next one comes 2 minutes later
      assert.deepStrictEqual(yield* keysAroundNextAttempt(signer, calls, Duration.minutes(2)), ["AKID1", "AKID1"])
      assert.strictEqual(yield* calls, 3)
      yield* TestClock.adjust("2 minutes")
      const error = yield* failureOf(signer.sign(request()))
      assert.strictEqual(error.reason, "CredentialsUnavailable")
      assert.strictEqual(yield* calls, 4)
      healthy = true
      assert.strictEqual(accessKeyOf(yield* signer.sign(request())), "AKID5")
      assert.strictEqual(yield* calls, 5)
    }))

  it.effect("backs off when the provider's credentials are already within refreshBefore of their expiration", () =>
    Effect.gen(function*() {
      const { calls, provider } = yield* countingProvider(expiringIn("8 minutes"))
      const signer = yield* TokenSigner.make({ credentials: provider, refreshBefore: "10 minutes" })
      const tokens = yield* Effect.forEach(Array.from({ length: 100 }), () => signer.sign(request()))
      assert.isTrue(tokens.every((token) => accessKeyOf(token) === "AKID1"))
      assert.strictEqual(yield* calls, 1)
      // the next attempt after half the remaining lifetime: 4 minutes
      assert.deepStrictEqual(yield* keysAroundNextAttempt(signer, calls, Duration.minutes(4)), ["AKID1", "AKID2"])
      assert.strictEqual(accessKeyOf(yield* signer.sign(request())), "AKID2")
      assert.strictEqual(yield* calls, 2)
    }))

  it.effect("refuses expired or incomplete credentials from the provider", () =>
    Effect.gen(function*() {
      const answers: Array<AwsCredentialIdentity> = [
        identity("AKIDEXPIRED", new Date(0)),
        { accessKeyId: "", secretAccessKey: SECRET },
        { accessKeyId: "AKIDNOSECRET", secretAccessKey: "" }
      ]
      const { calls, provider } = yield* countingProvider((call) => Promise.resolve(answers[call - 1]!))
      const signer = yield* TokenSigner.make({ credentials: provider })
      const expired = yield* failureOf(signer.sign(request()))
      assert.strictEqual(expired.reason, "CredentialsUnavailable")
      assert.include(expired.message, "expired at 1970-01-01T00:00:00.000Z")
      for (let i = 0; i < 2; i++) {
        const incomplete = yield* failureOf(signer.sign(request()))
        assert.strictEqual(incomplete.reason, "CredentialsUnavailable")
        assert.include(incomplete.message, "no access key or secret")
      }
      assert.strictEqual(yield* calls, 3)
    }))
})

describe("secrets", () => {
  it.effect("never show in errors or in the token's renderings", () =>
    Effect.gen(function*() {
      const secrets = [SECRET, SESSION_TOKEN]
      const invalid = yield* failureOf(sign(request({ expiresIn: 0 })))
      assertNoSecret(invalid, secrets)

      const token = yield* sign(request())
      assertNoSecret(token, [...secrets, Redacted.value(token)])

      const { provider } = yield* countingProvider(() => Promise.resolve(identity("AKIDEXPIRED", new Date(0))))
      const expired = yield* failureOf(
        Effect.flatMap(TokenSigner.make({ credentials: provider }), (signer) => signer.sign(request()))
      )
      assertNoSecret(expired, secrets)

      const unencodable = yield* failureOf(Effect.flatMap(
        TokenSigner.make({ credentials: () => Promise.resolve(identity("AKID\uD800")) }),
        (signer) => signer.sign(request())
      ))
      assert.strictEqual(unencodable.reason, "SigningFailed")
      assertNoSecret(unencodable, secrets)

      const badSessionToken = yield* failureOf(Effect.flatMap(
        TokenSigner.make({
          credentials: () => Promise.resolve({ accessKeyId: "AKID", secretAccessKey: SECRET, sessionToken: "\uDC00" })
        }),
        (signer) => signer.sign(request())
      ))
      assert.strictEqual(badSessionToken.reason, "SigningFailed")
      assertNoSecret(badSessionToken, [SECRET])
    }).pipe(
      Effect.provide(TokenSigner.layerStatic({
        accessKeyId: "AKIDSTATIC",
        secretAccessKey: Redacted.make(SECRET),
        sessionToken: SESSION_TOKEN
      }))
    ))

  it.effect("never show in the TokenSigner.sign span, which carries host, region, user and action", () =>
    Effect.gen(function*() {
      const tracer = yield* Effect.tracer
      const spans: Array<Tracer.Span> = []
      const recording = Tracer.make({
        span: (...args) => {
          const span = tracer.span(...args)
          spans.push(span)
          return span
        },
        context: (f, fiber) => tracer.context(f, fiber)
      })
      const token = yield* sign(request({ user: "reader" })).pipe(Effect.withTracer(recording))
      yield* failureOf(sign(request({ expiresIn: 0 })).pipe(Effect.withTracer(recording)))
      assert.deepStrictEqual(spans.map((span) => span.name), ["TokenSigner.sign", "TokenSigner.sign"])
      const [signed] = spans
      assert.strictEqual(signed!.attributes.get("dsql.host"), HOST)
      assert.strictEqual(signed!.attributes.get("dsql.region"), REGION)
      assert.strictEqual(signed!.attributes.get("dsql.user"), "reader")
      assert.strictEqual(signed!.attributes.get("dsql.action"), "DbConnect")
      for (const span of spans) {
        assertNoSecret(Object.fromEntries(span.attributes), [SECRET, SESSION_TOKEN, Redacted.value(token)])
      }
    }).pipe(
      Effect.provide(TokenSigner.layerStatic({
        accessKeyId: "AKIDSTATIC",
        secretAccessKey: SECRET,
        sessionToken: Redacted.make(SESSION_TOKEN)
      }))
    ))
})

describe("TokenSigner.sign span", () => {
  /** The name of the span the running fiber reports under, read where the fiber's context is current. */
  const currentSpanName = () =>
    Option.flatMap(Fiber.getCurrentFiber(), (fiber) => Context.getOption(fiber.currentContext, Tracer.ParentSpan))
      .pipe(
        Option.flatMap((span) => span._tag === "Span" ? Option.some(span.name) : Option.none()),
        Option.getOrUndefined
      )

  const failureTrace = <A, R>(effect: Effect.Effect<A, TokenSigner.TokenSignerError, R>) =>
    Effect.map(Effect.exit(Effect.withSpan(effect, "caller")), (exit) => {
      assert(Exit.isFailure(exit), "expected a failure")
      return Cause.pretty(exit.cause)
    })

  it.effect("is the parent of a credential resolution, and of every failure", () =>
    Effect.gen(function*() {
      const resolvedUnder: Array<string | undefined> = []
      const signer = yield* TokenSigner.make({
        credentials: () => {
          resolvedUnder.push(currentSpanName())
          return Promise.resolve(identity("AKIDSPAN"))
        }
      })
      yield* Effect.withSpan(Effect.repeatN(signer.sign(request()), 1), "caller")
      assert.deepStrictEqual(resolvedUnder, ["TokenSigner.sign"])

      const noCredentials = yield* TokenSigner.make({ credentials: () => Promise.reject(new Error("no IMDS")) })
      const invalid = yield* failureTrace(signer.sign(request({ expiresIn: 0 })))
      const unavailable = yield* failureTrace(noCredentials.sign(request()))
      const signingFailed = yield* failureTrace(Effect.flatMap(
        TokenSigner.make({ credentials: () => Promise.resolve(identity("AKID\uD800")) }),
        (unencodable) => unencodable.sign(request())
      ))
      for (const trace of [invalid, unavailable, signingFailed]) {
        assert.match(trace, /at TokenSigner\.sign\n\s+at caller/)
      }
    }))
})

describe("metrics", () => {
  it.effect("count tokens signed and credential resolutions", () =>
    Effect.gen(function*() {
      const resolutions = Metric.tagged(DsqlMetrics.credentialResolutions, "outcome", "success")
      const tokensBefore = (yield* Metric.value(DsqlMetrics.tokensSigned)).count
      const resolutionsBefore = (yield* Metric.value(resolutions)).count
      const signer = yield* TokenSigner.make({ credentials: () => Promise.resolve(identity("AKIDMETRICS")) })
      yield* Effect.repeatN(signer.sign(request()), 2)
      assert.strictEqual((yield* Metric.value(DsqlMetrics.tokensSigned)).count - tokensBefore, 3)
      assert.strictEqual((yield* Metric.value(resolutions)).count - resolutionsBefore, 1)
    }))

  it.effect("count a failed credential resolution as a failure, not as a success", () =>
    Effect.gen(function*() {
      const outcomes = Effect.all({
        success: Metric.value(Metric.tagged(DsqlMetrics.credentialResolutions, "outcome", "success")),
        failure: Metric.value(Metric.tagged(DsqlMetrics.credentialResolutions, "outcome", "failure"))
      }).pipe(Effect.map(({ failure, success }) => ({ success: success.count, failure: failure.count })))
      const before = yield* outcomes
      const signer = yield* TokenSigner.make({ credentials: () => Promise.reject(new Error("no credentials here")) })
      const error = yield* failureOf(signer.sign(request()))
      assert.strictEqual(error.reason, "CredentialsUnavailable")
      const after = yield* outcomes
      assert.deepStrictEqual(
        { success: after.success - before.success, failure: after.failure - before.failure },
        { success: 0, failure: 1 }
      )
    }))
})

/** Sets environment variables for the scope and restores the previous values after. */
const withEnv = (vars: Record<string, string | undefined>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const saved = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]))
      setEnv(vars)
      return saved
    }),
    (saved) => Effect.sync(() => setEnv(saved))
  )

const setEnv = (vars: Record<string, string | undefined>) => {
  for (const [name, value] of Object.entries(vars)) {
    if (value === undefined) delete process.env[name]
    else process.env[name] = value
  }
}

/** A temporary directory, removed with the scope. */
const scopedTempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "effect-dsql-token-signer-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** Shared credentials and config files in a temporary directory, pointed at by the AWS_* variables. */
const sharedCredentialsFiles = (credentials: string) =>
  Effect.gen(function*() {
    const dir = yield* scopedTempDir
    const credentialsFile = path.join(dir, "credentials")
    const configFile = path.join(dir, "config")
    fs.writeFileSync(credentialsFile, credentials)
    fs.writeFileSync(configFile, "")
    yield* withEnv({
      AWS_SHARED_CREDENTIALS_FILE: credentialsFile,
      AWS_CONFIG_FILE: configFile,
      AWS_PROFILE: undefined,
      AWS_ACCESS_KEY_ID: undefined,
      AWS_SECRET_ACCESS_KEY: undefined,
      AWS_SESSION_TOKEN: undefined
    })
  })

const PROFILES = `[default]
aws_access_key_id = AKIDDEFAULTPROFILE
aws_secret_access_key = ${SECRET}

[dsql-token-signer-test]
aws_access_key_id = AKIDNAMEDPROFILE
aws_secret_access_key = ${SECRET}
aws_session_token = ${SESSION_TOKEN}

[dsql-token-signer-config]
aws_access_key_id = AKIDCONFIGPROFILE
aws_secret_access_key = ${SECRET}
`

/** A `ConfigProvider` holding only `vars` (and the test secret key), as the environment a chain is built in. */
const environment = (vars: Record<string, string>) =>
  Layer.setConfigProvider(
    ConfigProvider.fromMap(new Map(Object.entries({ AWS_SECRET_ACCESS_KEY: SECRET, ...vars })), { pathDelim: "_" })
  )

const successfulResolutions = Metric.value(Metric.tagged(DsqlMetrics.credentialResolutions, "outcome", "success"))
  .pipe(Effect.map((state) => state.count))

describe("layers", () => {
  it.scoped("layerFromChain reads the given profile from the shared credentials file", () =>
    Effect.gen(function*() {
      yield* sharedCredentialsFiles(PROFILES)
      const token = yield* sign(request()).pipe(
        Effect.provide(TokenSigner.layerFromChain({ profile: "dsql-token-signer-test" }))
      )
      assert.strictEqual(accessKeyOf(token), "AKIDNAMEDPROFILE")
      assert.strictEqual(params(token).get("X-Amz-Security-Token"), SESSION_TOKEN)
    }))

  it.scoped("a chain layer provided once resolves once, and built again resolves again (environment first)", () =>
    Effect.gen(function*() {
      yield* sharedCredentialsFiles(PROFILES)
      const before = yield* successfulResolutions
      const once = TokenSigner.layerFromChain().pipe(Layer.provide(environment({ AWS_ACCESS_KEY_ID: "AKIDFIRST" })))
      const keys = yield* Effect.all([sign(request()), sign(request()), sign(request())]).pipe(Effect.provide(once))
      assert.deepStrictEqual(keys.map(accessKeyOf), ["AKIDFIRST", "AKIDFIRST", "AKIDFIRST"])
      assert.strictEqual((yield* successfulResolutions) - before, 1)
      const again = TokenSigner.layer.pipe(Layer.provide(environment({ AWS_ACCESS_KEY_ID: "AKIDSECOND" })))
      assert.strictEqual(accessKeyOf(yield* sign(request()).pipe(Effect.provide(again))), "AKIDSECOND")
      assert.strictEqual((yield* successfulResolutions) - before, 2)
    }))

  it.scoped("the chain signs for the request's profile, else its own, and skips environment keys under AWS_PROFILE", () =>
    Effect.gen(function*() {
      yield* sharedCredentialsFiles(PROFILES)
      const keyOf = (signerRequest: TokenSigner.SignRequest, chain: Layer.Layer<TokenSigner.TokenSigner>) =>
        Effect.map(sign(signerRequest).pipe(Effect.provide(chain)), accessKeyOf)
      const withKeys = environment({ AWS_ACCESS_KEY_ID: "AKIDFROMENV" })
      const chain = TokenSigner.layerFromChain().pipe(Layer.provide(withKeys))
      assert.strictEqual(yield* keyOf(request(), chain), "AKIDFROMENV")
      assert.strictEqual(yield* keyOf(request({ profile: "dsql-token-signer-test" }), chain), "AKIDNAMEDPROFILE")
      const configured = TokenSigner.layerFromChain({ profile: "dsql-token-signer-config" }).pipe(
        Layer.provide(withKeys)
      )
      assert.strictEqual(yield* keyOf(request(), configured), "AKIDCONFIGPROFILE")
      assert.strictEqual(yield* keyOf(request({ profile: "dsql-token-signer-test" }), configured), "AKIDNAMEDPROFILE")
      const underProfile = environment({ AWS_ACCESS_KEY_ID: "AKIDFROMENV", AWS_PROFILE: "dsql-token-signer-test" })
      assert.strictEqual(
        yield* keyOf(request(), TokenSigner.layerFromChain().pipe(Layer.provide(underProfile))),
        "AKIDNAMEDPROFILE"
      )
    }))

  it.scoped("layerFromChain with an unknown profile fails with an actionable CredentialsUnavailable", () =>
    Effect.gen(function*() {
      yield* sharedCredentialsFiles(PROFILES)
      const error = yield* failureOf(
        sign(request()).pipe(Effect.provide(TokenSigner.layerFromChain({ profile: "no-such-profile" })))
      )
      assert.strictEqual(error.reason, "CredentialsUnavailable")
      assert.include(error.message, "no-such-profile")
      assert.include(error.message, "DSQL_PROFILE")
      assert.instanceOf(error.cause, Error)
    }))

  it.scoped("layer takes the profile from DSQL_PROFILE", () =>
    Effect.gen(function*() {
      yield* sharedCredentialsFiles(PROFILES)
      const config = ConfigProvider.fromMap(new Map([["DSQL_PROFILE", "dsql-token-signer-config"]]), { pathDelim: "_" })
      const token = yield* sign(request()).pipe(
        Effect.provide(TokenSigner.layer.pipe(Layer.provide(Layer.setConfigProvider(config))))
      )
      assert.strictEqual(accessKeyOf(token), "AKIDCONFIGPROFILE")
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

/** A profile whose `credential_process` prints the server's keys and counts its runs in a file. */
const countingProcessProfile = (server: DsqlLocal.Server, profile: string) =>
  Effect.gen(function*() {
    const dir = yield* scopedTempDir
    const runs = path.join(dir, "runs")
    const script = path.join(dir, "credentials.cjs")
    const output = JSON.stringify({
      Version: 1,
      AccessKeyId: server.credentials.accessKeyId,
      SecretAccessKey: server.credentials.secretAccessKey
    })
    fs.writeFileSync(
      script,
      `require("node:fs").appendFileSync(${JSON.stringify(runs)}, "run\\n")\nconsole.log(${JSON.stringify(output)})\n`
    )
    fs.writeFileSync(runs, "")
    const configFile = path.join(dir, "config")
    fs.writeFileSync(configFile, `[profile ${profile}]\ncredential_process = node ${JSON.stringify(script)}\n`)
    fs.writeFileSync(path.join(dir, "credentials"), "")
    yield* withEnv({ AWS_CONFIG_FILE: configFile, AWS_SHARED_CREDENTIALS_FILE: path.join(dir, "credentials") })
    return { runs: Effect.sync(() => fs.readFileSync(runs, "utf8").split("\n").filter((line) => line !== "").length) }
  })

const currentUser = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ user: string }>`SELECT current_user AS user`)

/** `DsqlClient.layer` configured by `server.env` alone, as a process whose environment it is would be. */
const fromServerEnvironment = (server: DsqlLocal.Server) =>
  DsqlClient.layer.pipe(
    Layer.provide(
      Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(server.env)), { pathDelim: "_" }))
    )
  )

layer(DsqlLocal.layer(), { excludeTestServices: true })("signers belong to their layers, on DsqlLocal", (it) => {
  it.scoped("connect called 100 times under one signer resolves the profile its config names once", () =>
    Effect.gen(function*() {
      const server = yield* DsqlLocal.DsqlLocal
      const profile = "dsql-token-signer-process"
      const { runs } = yield* countingProcessProfile(server, profile)
      const perRequest = Effect.scoped(Effect.flatMap(
        DsqlClient.connect({ ...DsqlLocal.clientConfig(server), profile }),
        (sql) => sql<{ one: number }>`SELECT 1 AS one`
      ))
      const rows = yield* Effect.all(Array.from({ length: 100 }, () => perRequest), { concurrency: 10 }).pipe(
        Effect.provide(TokenSigner.layerFromChain())
      )
      assert.deepStrictEqual(rows.flat(), Array.from({ length: 100 }, () => ({ one: 1 })))
      assert.strictEqual(yield* runs, 1)
    }))

  it.scoped("two servers with different keys, each reached through DsqlClient.layer from its own environment", () =>
    Effect.gen(function*() {
      const first = yield* DsqlLocal.DsqlLocal
      const second = yield* DsqlLocal.start({ backendUrl: first.backendUrl })
      assert.notStrictEqual(first.credentials.accessKeyId, second.credentials.accessKeyId)
      for (const server of [first, second, first]) {
        assert.deepStrictEqual(yield* currentUser.pipe(Effect.provide(fromServerEnvironment(server))), [{
          user: "admin"
        }])
      }
      const atOnce = yield* Effect.all(
        [first, second].map((server) => currentUser.pipe(Effect.provide(fromServerEnvironment(server)))),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(atOnce, [[{ user: "admin" }], [{ user: "admin" }]])
    }))

  it.scoped("two layers with different static credentials in one process, at once", () =>
    Effect.gen(function*() {
      const first = yield* DsqlLocal.DsqlLocal
      const second = yield* DsqlLocal.start({ backendUrl: first.backendUrl })
      const atOnce = yield* Effect.all(
        [first, second].map((server) =>
          currentUser.pipe(
            Effect.provide(
              DsqlClient.layerConfig(DsqlLocal.clientConfig(server)).pipe(
                Layer.provide(TokenSigner.layerStatic(server.credentials))
              )
            )
          )
        ),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(atOnce, [[{ user: "admin" }], [{ user: "admin" }]])
    }))
})
