/**
 * The machinery behind `TokenSigner`: request validation, credential resolution (and its metrics), the credential
 * chain, and signing with `@aws-sdk/dsql-signer`. It imports only types from the public module, which passes in the
 * constructor of its `TokenSignerError`.
 *
 * @internal
 */
import { fromIni } from "@aws-sdk/credential-provider-ini"
import { defaultProvider } from "@aws-sdk/credential-provider-node"
import { DsqlSigner } from "@aws-sdk/dsql-signer"
import { Limits } from "@effect-dsql/core"
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@smithy/types"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Tracer from "effect/Tracer"
import type { Action, MakeOptions, Service, SignRequest, StaticCredentials, TokenSignerError } from "../TokenSigner.js"
import { type CachedCredentials, makeCredentialCache } from "./credentials.js"
import * as DsqlMetrics from "./metrics.js"

/** Builds the public module's `TokenSignerError`. */
export type MakeError = (fields: {
  readonly reason: TokenSignerError["reason"]
  readonly message: string
  readonly cause?: unknown
}) => TokenSignerError

/** `TokenSigner.actionFor`. */
export const actionFor = (user: string): Action => user === "admin" ? "DbConnectAdmin" : "DbConnect"

/**
 * `TokenSigner.make`: validation, the credential cache over `options.credentials`, and one `DsqlSigner` token per
 * request, under a `TokenSigner.sign` span.
 */
export const make = (options: MakeOptions, makeError: MakeError): Effect.Effect<Service> =>
  Effect.map(
    makeCredentialCache(
      resolveCredentials(options.credentials, makeError),
      Duration.toMillis(options.refreshBefore ?? Duration.minutes(5))
    ),
    (credentials) => ({
      sign: (request) => {
        const action = actionFor(request.user)
        // `useSpan`, not `withSpan`: making the span the parent of every step costs more CPU than the signature
        // itself. The steps that can report under it do so themselves: a credential resolution and any failure.
        return Effect.useSpan("TokenSigner.sign", {
          attributes: {
            "dsql.host": request.hostname,
            "dsql.region": request.region,
            "dsql.user": request.user,
            "dsql.action": action
          },
          // a call-site stack per token would cost more than the signature itself
          captureStackTrace: false
        }, (span) =>
          Effect.flatMap(validateRequest(request, span, makeError), (expiresIn) =>
            Effect.flatMap(credentials(span), (cached) =>
              Effect.flatMap(
                signWithDsqlSigner(request, action, expiresIn, cached, span, makeError),
                (token) =>
                  Effect.as(Metric.increment(DsqlMetrics.tokensSigned), Redacted.make(token))
              ))))
      }
    })
  )

/** What the default chain reads from the environment, through the `ConfigProvider`. */
const chainEnvironment = Config.all({
  profile: Config.option(Config.string("AWS_PROFILE")),
  accessKeyId: Config.option(Config.string("AWS_ACCESS_KEY_ID")),
  secretAccessKey: Config.option(Config.redacted("AWS_SECRET_ACCESS_KEY")),
  sessionToken: Config.option(Config.redacted("AWS_SESSION_TOKEN"))
})

type ChainEnvironment = Config.Config.Success<typeof chainEnvironment>

/**
 * The credentials provider for `profile`, or for the default chain: environment keys first unless `AWS_PROFILE` is
 * set, as in `defaultProvider`, but read from the `ConfigProvider` the signer was built with.
 */
const chainProvider = (profile: string | undefined, environment: ChainEnvironment): AwsCredentialIdentityProvider => {
  if (profile !== undefined) return fromIni({ profile })
  if (Option.isSome(environment.profile)) return defaultProvider({ profile: environment.profile.value })
  const accessKeyId = Option.getOrElse(environment.accessKeyId, () => "")
  const secretAccessKey = Option.getOrUndefined(environment.secretAccessKey)
  // as `fromEnv`: an empty key or secret leaves the environment to the rest of the chain
  if (accessKeyId === "" || secretAccessKey === undefined || Redacted.value(secretAccessKey) === "") {
    return defaultProvider()
  }
  return staticProvider({ accessKeyId, secretAccessKey, sessionToken: Option.getOrUndefined(environment.sessionToken) })
}

/**
 * `TokenSigner.makeChain`: one `make` per profile asked for, created on its first request and kept by this signer
 * alone.
 */
export const makeChain = (
  options: { readonly profile?: string | undefined } | undefined,
  makeError: MakeError
): Effect.Effect<Service> =>
  Effect.map(
    // a ConfigProvider that fails on these plain strings leaves them to the SDK's chain, which reads process.env
    Effect.orElseSucceed(chainEnvironment, () => ({
      profile: Option.none(),
      accessKeyId: Option.none(),
      secretAccessKey: Option.none(),
      sessionToken: Option.none()
    })),
    (environment) => {
      const signers = new Map<string | undefined, Service>()
      const signerFor = (profile: string | undefined): Effect.Effect<Service> =>
        Effect.suspend(() => {
          const existing = signers.get(profile)
          if (existing !== undefined) return Effect.succeed(existing)
          return Effect.map(make({ credentials: chainProvider(profile, environment) }, makeError), (created) => {
            // two first requests may race here: the first one stored wins, so the profile keeps one cache
            const shared = signers.get(profile) ?? created
            signers.set(profile, shared)
            return shared
          })
        })
      return {
        sign: (request) =>
          Effect.flatMap(signerFor(request.profile ?? options?.profile), (signer) => signer.sign(request))
      }
    }
  )

const reveal = (value: Redacted.Redacted<string> | string): string =>
  Redacted.isRedacted(value) ? Redacted.value(value) : value

/** `TokenSigner.layerStatic`'s provider: the fixed credentials, revealed once for the AWS SDK's identity type. */
export const staticProvider = (credentials: StaticCredentials): AwsCredentialIdentityProvider => {
  const sessionToken = credentials.sessionToken === undefined ? undefined : reveal(credentials.sessionToken)
  const identity: AwsCredentialIdentity = {
    accessKeyId: credentials.accessKeyId,
    secretAccessKey: reveal(credentials.secretAccessKey),
    ...(sessionToken === undefined ? {} : { sessionToken })
  }
  return () => Promise.resolve(identity)
}

/** One token from `@aws-sdk/dsql-signer`; a failure is reported under `span`. */
const signWithDsqlSigner = (
  request: SignRequest,
  action: Action,
  expiresIn: number,
  credentials: CachedCredentials,
  span: Tracer.Span,
  makeError: MakeError
): Effect.Effect<string, TokenSignerError> =>
  Effect.async((resume) => {
    dsqlSignerToken(request, action, expiresIn, credentials).then(
      (token) => resume(Effect.succeed(token)),
      (cause) =>
        resume(Effect.withParentSpan(
          Effect.fail(
            makeError({
              reason: "SigningFailed",
              message: `could not sign a DSQL token for ${request.hostname}`,
              cause
            })
          ),
          span
        ))
    )
  })

// async: a throw from DsqlSigner's constructor becomes a rejection
const dsqlSignerToken = async (
  request: SignRequest,
  action: Action,
  expiresIn: number,
  credentials: CachedCredentials
): Promise<string> => {
  const signer = new DsqlSigner({
    hostname: request.hostname,
    region: request.region,
    expiresIn,
    credentials: revealCredentials(credentials)
  })
  return action === "DbConnectAdmin" ? signer.getDbConnectAdminAuthToken() : signer.getDbConnectAuthToken()
}

/** The cached credentials as `DsqlSigner` takes them: the only place their secrets leave `Redacted`. */
const revealCredentials = (credentials: CachedCredentials): AwsCredentialIdentity => ({
  accessKeyId: credentials.accessKeyId,
  secretAccessKey: Redacted.value(credentials.secretAccessKey),
  ...(credentials.sessionToken === undefined ? {} : { sessionToken: Redacted.value(credentials.sessionToken) })
})

const invalidRequest = (message: string, span: Tracer.Span, makeError: MakeError) =>
  Effect.withParentSpan(Effect.fail(makeError({ reason: "InvalidRequest", message })), span)

// printable ASCII without space, and none of the characters that end the host part of a URL
const isHostname = (hostname: string): boolean => /^[\x21-\x7e]+$/.test(hostname) && !/[/?#@]/.test(hostname)

const validateRequest = (
  request: SignRequest,
  span: Tracer.Span,
  makeError: MakeError
): Effect.Effect<number, TokenSignerError> => {
  if (!isHostname(request.hostname)) {
    return invalidRequest(
      `hostname ${JSON.stringify(request.hostname)} is not a host name: expected the DSQL endpoint host`,
      span,
      makeError
    )
  }
  if (request.region.length === 0) {
    return invalidRequest("region is empty: expected the cluster's AWS region", span, makeError)
  }
  if (request.user.length === 0) {
    return invalidRequest("user is empty: expected a database role such as admin", span, makeError)
  }
  const duration = Duration.decodeUnknown(request.expiresIn)
  const seconds = Option.isSome(duration) ? Math.floor(Duration.toSeconds(duration.value)) : Number.NaN
  return seconds >= 1 && seconds <= Limits.maxTokenSeconds
    ? Effect.succeed(seconds)
    : invalidRequest(`expiresIn must be between 1 second and 7 days (${Limits.maxTokenSeconds} s)`, span, makeError)
}

const NO_CREDENTIALS_HINT = "set AWS_PROFILE / DSQL_PROFILE, environment credentials (AWS_ACCESS_KEY_ID and " +
  "AWS_SECRET_ACCESS_KEY), or pass credentials with TokenSigner.layerFromProvider / layerStatic"

const credentialsUnavailable = (makeError: MakeError, problem: string, cause?: unknown) =>
  makeError({ reason: "CredentialsUnavailable", message: `${problem}: ${NO_CREDENTIALS_HINT}`, cause })

const successfulResolutions = Metric.tagged(DsqlMetrics.credentialResolutions, "outcome", "success")
const failedResolutions = Metric.tagged(DsqlMetrics.credentialResolutions, "outcome", "failure")

const resolveCredentials = (
  provider: AwsCredentialIdentityProvider,
  makeError: MakeError
): Effect.Effect<CachedCredentials, TokenSignerError> =>
  Effect.tryPromise({
    try: () => provider(),
    catch: (cause) =>
      credentialsUnavailable(
        makeError,
        cause instanceof Error ? `no AWS credentials found (${cause.message})` : "no AWS credentials found",
        cause
      )
  }).pipe(
    Effect.flatMap((identity) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        // the identity itself never goes into an error: it holds the secret key
        if (!isNonEmptyString(identity?.accessKeyId) || !isNonEmptyString(identity?.secretAccessKey)) {
          return Effect.fail(
            credentialsUnavailable(makeError, "the AWS credentials provider returned no access key or secret")
          )
        }
        const expiresAt = identity.expiration?.getTime()
        if (expiresAt !== undefined && !(expiresAt > now)) {
          return Effect.fail(
            credentialsUnavailable(
              makeError,
              `the AWS credentials provider returned credentials that expired at ${
                Number.isNaN(expiresAt) ? "an invalid date" : new Date(expiresAt).toISOString()
              }`
            )
          )
        }
        return Effect.succeed({
          accessKeyId: identity.accessKeyId,
          secretAccessKey: Redacted.make(identity.secretAccessKey),
          // the AWS signer leaves an empty session token out of the query
          sessionToken: identity.sessionToken ? Redacted.make(identity.sessionToken) : undefined,
          expiresAt
        })
      })
    ),
    Effect.tapBoth({
      onFailure: () => Metric.increment(failedResolutions),
      onSuccess: () => Metric.increment(successfulResolutions)
    })
  )

const isNonEmptyString = (value: unknown): value is string => typeof value === "string" && value.length > 0
