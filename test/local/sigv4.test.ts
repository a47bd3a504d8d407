import { DsqlSigner } from "@aws-sdk/dsql-signer"
import { describe, expect, it } from "@effect/vitest"
import { Effect, FastCheck, Redacted } from "effect"
import { vi } from "vitest"
import type { VerifyInput, VerifyResult } from "../../local/src/internal/sigv4.js"
import { verifyToken } from "../../local/src/internal/sigv4.js"
import type { TokenRejection } from "../../local/src/internal/state.js"
import * as TokenSigner from "../../src/TokenSigner.js"

const hostname = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws"
const region = "us-east-1"
const accessKeyId = "AKIAIOSFODNN7EXAMPLE"
const secretAccessKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
const sessionToken = "IQoJb3JpZ2luX2VjEXAMPLEsessionToken+with/base64=chars//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="

interface SignOptions {
  readonly action?: "DbConnect" | "DbConnectAdmin"
  readonly hostname?: string
  readonly region?: string
  readonly secretAccessKey?: string
  readonly sessionToken?: string
  readonly expiresIn?: number
}

const sign = (options: SignOptions = {}) =>
  Effect.tryPromise(() => {
    const signer = new DsqlSigner({
      hostname: options.hostname ?? hostname,
      region: options.region ?? region,
      credentials: {
        accessKeyId,
        secretAccessKey: options.secretAccessKey ?? secretAccessKey,
        ...(options.sessionToken === undefined ? {} : { sessionToken: options.sessionToken })
      },
      expiresIn: options.expiresIn ?? 900
    })
    return options.action === "DbConnect" ? signer.getDbConnectAuthToken() : signer.getDbConnectAdminAuthToken()
  })

/** Signs with the clock set to `at`, so that hints can be compared with DSQL's texts character for character. */
const signAt = (at: string, options: SignOptions = {}) =>
  Effect.acquireUseRelease(
    Effect.sync(() => vi.useFakeTimers({ toFake: ["Date"], now: new Date(at) })),
    () => sign(options),
    () => Effect.sync(() => vi.useRealTimers())
  )

const queryOf = (token: string) => new URLSearchParams(token.slice(token.indexOf("?") + 1))

const signedAt = (token: string): number => {
  const date = queryOf(token).get("X-Amz-Date")!
  return Date.parse(date.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, "$1-$2-$3T$4:$5:$6Z"))
}

const verify = (token: string, overrides: Partial<VerifyInput> = {}): Effect.Effect<VerifyResult> =>
  verifyToken({
    token,
    user: "admin",
    hostname,
    region,
    secretFor: (id) => id === accessKeyId ? secretAccessKey : undefined,
    ...overrides,
    now: overrides.now ?? signedAt(token) + 1_000
  })

/** Rewrites the token's query with its raw `name=value` parts in another order. */
const reorder = (token: string, order: (parts: Array<string>) => Array<string>): string => {
  const [host, query] = token.split("/?")
  return `${host}/?${order(query!.split("&")).join("&")}`
}

const expectNoSecrets = (hint: string, token: string) => {
  const signature = queryOf(token).get("X-Amz-Signature")
  for (const secret of [secretAccessKey, sessionToken, encodeURIComponent(sessionToken), token, signature]) {
    if (secret !== null && secret !== "") expect(hint).not.toContain(secret)
  }
}

const expectRejected = (result: VerifyResult, reason: TokenRejection, token: string): string => {
  expect(result).toMatchObject({ _tag: "Rejected", reason })
  const hint = (result as Extract<VerifyResult, { _tag: "Rejected" }>).hint
  expectNoSecrets(hint, token)
  return hint
}

describe("verifyToken", () => {
  describe("accepts tokens of @aws-sdk/dsql-signer", () => {
    it.effect("admin token without a session token", () =>
      Effect.gen(function*() {
        const token = yield* sign()
        expect(yield* verify(token)).toEqual({ _tag: "Accepted", accessKeyId, action: "DbConnectAdmin" })
      }))

    it.effect("DbConnect token with a session token, for a custom role", () =>
      Effect.gen(function*() {
        const token = yield* sign({ action: "DbConnect", sessionToken })
        expect(token).toContain("X-Amz-Security-Token=")
        expect(yield* verify(token, { user: "app_reader" })).toEqual({
          _tag: "Accepted",
          accessKeyId,
          action: "DbConnect"
        })
      }))

    it.effect("parameters in the AWS CLI order and in reverse", () =>
      Effect.gen(function*() {
        const token = yield* sign({ sessionToken })
        const cliOrder = reorder(token, (parts) => {
          const signature = parts.find((part) => part.startsWith("X-Amz-Signature="))!
          return [...parts.filter((part) => part !== signature), signature]
        })
        expect(cliOrder.indexOf("X-Amz-SignedHeaders=")).toBeLessThan(cliOrder.indexOf("X-Amz-Signature="))
        expect(yield* verify(cliOrder)).toMatchObject({ _tag: "Accepted" })
        expect(yield* verify(reorder(token, (parts) => parts.reverse()))).toMatchObject({ _tag: "Accepted" })
      }))

    it.effect("tokens of TokenSigner, with and without a session token, for admin and for another role", () =>
      Effect.gen(function*() {
        for (const session of [{}, { sessionToken }]) {
          const signer = yield* TokenSigner.make({
            credentials: () => Promise.resolve({ accessKeyId, secretAccessKey, ...session })
          })
          for (const user of ["admin", "app_reader"]) {
            const signed = yield* signer.sign({ hostname, region, user, expiresIn: "15 minutes" })
            expect(yield* verify(Redacted.value(signed), { user })).toEqual({
              _tag: "Accepted",
              accessKeyId,
              action: TokenSigner.actionFor(user)
            })
          }
        }
      }))

    it.effect("the SNI name in another case", () =>
      Effect.gen(function*() {
        const token = yield* sign()
        expect(yield* verify(token, { hostname: hostname.toUpperCase() })).toMatchObject({ _tag: "Accepted" })
      }))

    it.effect("until exactly X-Amz-Date + X-Amz-Expires, and up to 5 minutes early", () =>
      Effect.gen(function*() {
        const token = yield* sign({ expiresIn: 60 })
        expect(yield* verify(token, { now: signedAt(token) + 60_000 })).toMatchObject({ _tag: "Accepted" })
        expect(yield* verify(token, { now: signedAt(token) - 5 * 60_000 })).toMatchObject({ _tag: "Accepted" })
        expectRejected(yield* verify(token, { now: signedAt(token) + 60_001 }), "expired", token)
      }))
  })

  describe("rejects", () => {
    it.effect("malformed tokens", () =>
      Effect.gen(function*() {
        const token = yield* sign({ sessionToken })
        const variants = [
          "",
          "not a token",
          `https://${token}`,
          token.replace(/&X-Amz-Date=[^&]*/, ""),
          token.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"),
          token.replace("%2Fdsql%2F", "%2Frds%2F"),
          token.replace("aws4_request", "aws5_request"),
          token.replace(/X-Amz-Credential=[^%]*/, "X-Amz-Credential="),
          token.replace(/(X-Amz-Credential=[^%]*%2F)\d{8}/, "$119990101"),
          token.replace("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=host%3Bx-amz-date"),
          token.replace(/X-Amz-Date=(\d{8})T\d{6}Z/, "X-Amz-Date=$1T250000Z"),
          token.replace("X-Amz-Expires=900", "X-Amz-Expires=15m"),
          token.replace("%2F", "%2f"),
          token.replace("X-Amz-Credential=", "X-Amz-Credential=%"),
          token.replace(/X-Amz-Signature=[0-9a-f]+/, (signature) => signature.toUpperCase()),
          `${token}&Action=DbConnectAdmin`,
          `${token}&`
        ]
        const now = signedAt(token) + 1_000
        for (const variant of variants) expectRejected(yield* verify(variant, { now }), "malformed", token)
      }))

    it.effect("a credential scope for another region", () =>
      Effect.gen(function*() {
        const token = yield* sign({ region: "eu-west-1", hostname: hostname.replace(region, "eu-west-1") })
        const hint = expectRejected(yield* verify(token), "malformed", token)
        expect(hint).toBe(
          "Error parsing the X-Amz-Credential parameter; the region 'eu-west-1' is wrong; expecting 'us-east-1'"
        )
      }))

    it.effect("an unknown access key id", () =>
      Effect.gen(function*() {
        const token = yield* sign()
        expectRejected(yield* verify(token, { secretFor: () => undefined }), "unknown-access-key", token)
      }))

    it.effect("a signature made with another secret, or over a tampered query", () =>
      Effect.gen(function*() {
        const token = yield* sign({ secretAccessKey: "another-secret" })
        const hint = expectRejected(yield* verify(token), "bad-signature", token)
        expect(hint).toMatch(/^The request signature we calculated does not match the signature you provided\./)
        const tampered = yield* sign({ sessionToken })
        expectRejected(
          yield* verify(tampered.replace("Action=DbConnectAdmin", "Action=DbConnect")),
          "bad-signature",
          tampered
        )
        expectRejected(
          yield* verify(tampered.replace("X-Amz-Expires=900", "X-Amz-Expires=901")),
          "bad-signature",
          tampered
        )
      }))

    it.effect("X-Amz-Expires above 7 days or below 1 second", () =>
      Effect.gen(function*() {
        const token = yield* sign()
        expectRejected(
          yield* verify(token.replace("X-Amz-Expires=900", "X-Amz-Expires=604801")),
          "expires-too-long",
          token
        )
        expectRejected(yield* verify(token.replace("X-Amz-Expires=900", "X-Amz-Expires=0")), "expires-too-long", token)
      }))

    it.effect("an expired token, with DSQL's hint", () =>
      Effect.gen(function*() {
        const token = yield* signAt("2026-11-27T03:50:00Z")
        const hint = expectRejected(yield* verify(token, { now: Date.parse("2026-11-27T04:21:00Z") }), "expired", token)
        expect(hint).toBe(
          "Signature expired: 20261127T035000Z is now earlier than 20261127T040600Z (20261127T042100Z - 15 min.)"
        )
      }))

    it.effect("a token signed more than 5 minutes in the future", () =>
      Effect.gen(function*() {
        const token = yield* signAt("2026-11-27T04:30:00Z")
        const now = Date.parse("2026-11-27T04:21:00Z")
        const hint = expectRejected(yield* verify(token, { now }), "not-yet-valid", token)
        expect(hint).toBe(
          "Signature not yet current: 20261127T043000Z is still later than 20261127T042600Z (20261127T042100Z + 5 min.)"
        )
      }))

    it.effect("a token older than maxTokenAgeSeconds", () =>
      Effect.gen(function*() {
        const token = yield* sign()
        expect(yield* verify(token, { maxTokenAgeSeconds: 60, now: signedAt(token) + 60_000 })).toMatchObject({
          _tag: "Accepted"
        })
        expectRejected(
          yield* verify(token, { maxTokenAgeSeconds: 60, now: signedAt(token) + 61_000 }),
          "too-old",
          token
        )
        expectRejected(yield* verify(token, { maxTokenAgeSeconds: -1e15 }), "too-old", token)
      }))

    it.effect("the wrong action for the user", () =>
      Effect.gen(function*() {
        const connect = yield* sign({ action: "DbConnect" })
        expect(expectRejected(yield* verify(connect), "wrong-action", connect)).toBe(
          "Wrong user to action mapping. user: admin, action: DbConnect"
        )
        const admin = yield* sign()
        expect(expectRejected(yield* verify(admin, { user: "app" }), "wrong-action", admin)).toBe(
          "Wrong user to action mapping. user: app, action: DbConnectAdmin"
        )
        expectRejected(yield* verify(admin, { user: "Admin" }), "wrong-action", admin)
        expect(yield* verify(connect, { user: "Admin" })).toMatchObject({ _tag: "Accepted", action: "DbConnect" })
      }))

    it.effect("a token signed for another cluster", () =>
      Effect.gen(function*() {
        const token = yield* sign({ hostname: hostname.replace("abcdefghij", "zzzzzzzzzz") })
        expectRejected(yield* verify(token), "wrong-host", token)
      }))
  })

  describe("properties", () => {
    it.effect("changing any single character of a valid token never yields Accepted and never throws", () =>
      Effect.gen(function*() {
        const token = yield* sign({ action: "DbConnect", sessionToken })
        const user = "app_writer"
        expect(yield* verify(token, { user })).toMatchObject({ _tag: "Accepted" })
        yield* Effect.promise(() =>
          FastCheck.assert(
            FastCheck.asyncProperty(
              FastCheck.nat({ max: token.length - 1 }),
              FastCheck.integer({ min: 0, max: 0x2ff }),
              async (position, code) => {
                FastCheck.pre(token.charCodeAt(position) !== code)
                const changed = token.slice(0, position) + String.fromCharCode(code) + token.slice(position + 1)
                const result = await Effect.runPromise(verify(changed, { user, now: signedAt(token) + 1_000 }))
                expect(result._tag).toBe("Rejected")
                if (result._tag === "Rejected") expectNoSecrets(result.hint, token)
              }
            ),
            { numRuns: 3_000 }
          )
        )
      }))

    const tokenLike = FastCheck.array(
      FastCheck.tuple(
        FastCheck.constantFrom(
          "Action",
          "X-Amz-Algorithm",
          "X-Amz-Credential",
          "X-Amz-Date",
          "X-Amz-Expires",
          "X-Amz-Signature",
          "X-Amz-SignedHeaders",
          "X-Amz-Security-Token"
        ),
        FastCheck.oneof(
          FastCheck.string(),
          FastCheck.constantFrom("AWS4-HMAC-SHA256", "host", "900", "20261127T035000Z", "DbConnectAdmin"),
          FastCheck.constantFrom(
            "AKID%2F20261127%2Fus-east-1%2Fdsql%2Faws4_request",
            "AKID%2F%2F%2F%2F",
            "%",
            "%E0%A4%A"
          ),
          FastCheck.stringMatching(/^[0-9a-f]{64}$/)
        )
      ),
      { maxLength: 10 }
    ).map((pairs) => `${hostname}/?${pairs.map(([key, value]) => `${key}=${value}`).join("&")}`)

    it.effect("arbitrary strings are rejected without throwing", () =>
      Effect.promise(() =>
        FastCheck.assert(
          FastCheck.asyncProperty(
            FastCheck.oneof(FastCheck.string(), FastCheck.fullUnicodeString(), tokenLike),
            async (token) => {
              const result = await Effect.runPromise(verify(token, { now: Date.parse("2026-11-27T03:50:00Z") }))
              expect(result._tag).toBe("Rejected")
            }
          ),
          { numRuns: 2_000 }
        )
      ))
  })
})
