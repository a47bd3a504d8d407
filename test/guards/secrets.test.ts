/**
 * No secret access key or session token in any rendering of any error the TokenSigner gives, whatever shape of
 * credentials the provider hands back. Tested through the public API only (`layerFromProvider`), so it holds for any
 * signing implementation behind it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, FastCheck, Option } from "effect"
import { TokenSigner } from "effect-dsql"
import { inspect } from "node:util"

const request: TokenSigner.SignRequest = {
  hostname: "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws",
  region: "us-east-1",
  user: "admin",
  expiresIn: "15 minutes"
}

/** What a provider may return (or throw), built around the secret and session token it must never leak. */
const shapes = {
  "no access key id": (secret: string, token: string) => ({ secretAccessKey: secret, sessionToken: token }),
  "empty access key id": (secret: string, token: string) => ({
    accessKeyId: "",
    secretAccessKey: secret,
    sessionToken: token
  }),
  "access key id not a string": (secret: string, token: string) => ({
    accessKeyId: 42,
    secretAccessKey: secret,
    sessionToken: token
  }),
  "no secret": (_secret: string, token: string) => ({ accessKeyId: "AKIDNOSECRET", sessionToken: token }),
  "empty secret": (_secret: string, token: string) => ({
    accessKeyId: "AKIDEMPTY",
    secretAccessKey: "",
    sessionToken: token
  }),
  "secret not a string": (secret: string, token: string) => ({
    accessKeyId: "AKIDOBJECT",
    secretAccessKey: { value: secret },
    sessionToken: token
  }),
  "expired": (secret: string, token: string) => ({
    accessKeyId: "AKIDEXPIRED",
    secretAccessKey: secret,
    sessionToken: token,
    // expired under the TestClock (at 0) as under the real one
    expiration: new Date(0)
  }),
  "expiration not a date": (secret: string, token: string) => ({
    accessKeyId: "AKIDBADDATE",
    secretAccessKey: secret,
    sessionToken: token,
    expiration: new Date(Number.NaN)
  }),
  "session token not valid UTF-16": (secret: string, token: string) => ({
    accessKeyId: "AKIDBADTOKEN",
    secretAccessKey: secret,
    sessionToken: `${token}\uD800`
  }),
  "access key id not valid UTF-16": (secret: string, token: string) => ({
    accessKeyId: "AKID\uD800",
    secretAccessKey: secret,
    sessionToken: token
  }),
  "nothing at all": () => undefined,
  "null": () => null
} as const

type Shape = keyof typeof shapes

/** Every way the error and its causes can end up in front of someone: message, string, JSON, inspect, pretty cause. */
const renderings = (error: unknown): Array<string> => {
  const found: Array<string> = [Cause.pretty(Cause.fail(error)), inspect(error, { depth: 20 })]
  for (let current: unknown = error, depth = 0; current !== undefined && current !== null && depth < 10; depth++) {
    found.push(String(current), inspect(current, { depth: 20 }))
    try {
      found.push(JSON.stringify(current))
    } catch {
      // a cyclic cause has no JSON rendering to leak through
    }
    if (typeof current === "object") found.push(String((current as { message?: unknown }).message))
    current = typeof current === "object" ? (current as { cause?: unknown }).cause : undefined
  }
  return found
}

const signWith = (provider: () => Promise<unknown>, signRequest: TokenSigner.SignRequest = request) =>
  Effect.flatMap(TokenSigner.TokenSigner, (signer) => signer.sign(signRequest)).pipe(
    Effect.provide(TokenSigner.layerFromProvider(provider as Parameters<typeof TokenSigner.layerFromProvider>[0])),
    Effect.exit
  )

const assertTypedFailureWithoutSecrets = (
  exit: Exit.Exit<unknown, TokenSigner.TokenSignerError>,
  secrets: ReadonlyArray<string>
) => {
  assert.isTrue(Exit.isFailure(exit), "expected the signer to fail")
  const cause = (exit as Exit.Failure<unknown, TokenSigner.TokenSignerError>).cause
  const failure = Cause.failureOption(cause)
  assert.isTrue(Option.isSome(failure), "a typed TokenSignerError, not a defect")
  const error = Option.getOrThrow(failure)
  assert.strictEqual(error._tag, "TokenSignerError")
  for (const text of renderings(error)) {
    for (const secret of secrets) assert.notInclude(text, secret)
  }
  return error
}

const secretArbitrary = FastCheck.stringMatching(/^[A-Za-z0-9+/]{24,40}$/)
const sessionTokenArbitrary = FastCheck.stringMatching(/^[A-Za-z0-9+/=]{32,64}$/)

describe("TokenSigner errors", () => {
  it.effect.prop(
    "never contain the secret access key or the session token, for every shape of bad credentials",
    [FastCheck.constantFrom(...(Object.keys(shapes) as Array<Shape>)), secretArbitrary, sessionTokenArbitrary],
    ([shape, secret, token]) =>
      Effect.gen(function*() {
        const exit = yield* signWith(() => Promise.resolve(shapes[shape](secret, token)))
        const error = assertTypedFailureWithoutSecrets(exit, [secret, token])
        assert.include(["CredentialsUnavailable", "SigningFailed"], error.reason, shape)
      }),
    { fastCheck: { numRuns: 120 } }
  )

  it.effect("every shape is refused, each with a message that says what is wrong", () =>
    Effect.gen(function*() {
      const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
      const token = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN"
      for (const shape of Object.keys(shapes) as Array<Shape>) {
        const exit = yield* signWith(() => Promise.resolve(shapes[shape](secret, token)))
        const error = assertTypedFailureWithoutSecrets(exit, [secret, token])
        assert.isAbove(error.message.length, 20, shape)
      }
    }))

  it.effect("never contain them when the request itself is refused", () =>
    Effect.gen(function*() {
      const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
      const token = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN"
      const valid = () => Promise.resolve({ accessKeyId: "AKIDVALID", secretAccessKey: secret, sessionToken: token })
      for (
        const bad of [
          { ...request, expiresIn: "0 seconds" as const },
          { ...request, expiresIn: "8 days" as const },
          { ...request, hostname: "" },
          { ...request, region: "" },
          { ...request, user: "" }
        ]
      ) {
        const error = assertTypedFailureWithoutSecrets(yield* signWith(valid, bad), [secret, token])
        assert.strictEqual(error.reason, "InvalidRequest")
      }
    }))

  it.effect("never contain them when the provider fails", () =>
    Effect.gen(function*() {
      const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
      const exit = yield* signWith(() => Promise.reject(new Error("Could not load credentials from any providers")))
      const error = assertTypedFailureWithoutSecrets(exit, [secret])
      assert.strictEqual(error.reason, "CredentialsUnavailable")
      assert.include(error.message, "Could not load credentials from any providers")
    }))
})
