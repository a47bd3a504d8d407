/**
 * Signs the IAM authentication tokens Aurora DSQL takes as passwords, with `@aws-sdk/dsql-signer`. Credentials are
 * resolved once, cached and refreshed ahead of their expiry; signing itself is local and takes microseconds.
 *
 * @since 0.1.0
 */
import { fromIni } from "@aws-sdk/credential-provider-ini"
import { defaultProvider } from "@aws-sdk/credential-provider-node"
import { DsqlSigner } from "@aws-sdk/dsql-signer"
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@smithy/types"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Tracer from "effect/Tracer"
import * as DsqlMetrics from "./DsqlMetrics.js"
import * as internal from "./internal/credentials.js"

/**
 * The IAM action a token is signed for.
 *
 * @since 0.1.0
 * @category models
 */
export type Action = "DbConnect" | "DbConnectAdmin"

/**
 * The action DSQL expects for a user: `DbConnectAdmin` for exactly `admin`, `DbConnect` for every other role
 * (`Admin` included: DSQL compares the name exactly).
 *
 * @since 0.1.0
 * @category models
 */
export const actionFor = (user: string): Action => user === "admin" ? "DbConnectAdmin" : "DbConnect"

/**
 * What to sign a token for.
 *
 * @since 0.1.0
 * @category models
 */
export interface SignRequest {
  /** The DSQL endpoint host, `<cluster-id>.dsql.<region>.on.aws`: the name the token is for, never an IP override. */
  readonly hostname: string
  readonly region: string
  readonly user: string
  /** How long the token opens connections: 1 second to 7 days, whole seconds (fractions are dropped). */
  readonly expiresIn: Duration.DurationInput
  /**
   * The AWS shared-config profile the client's configuration names (`profile`, `DSQL_PROFILE`, `?profile=`): a
   * signer over the credential chain signs with that profile's credentials; a signer over given credentials
   * (`layerStatic`, `layerFromProvider`) ignores it.
   */
  readonly profile?: string | undefined
}

/**
 * The token signer.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  readonly sign: (request: SignRequest) => Effect.Effect<Redacted.Redacted<string>, TokenSignerError>
}

/**
 * The token signer service.
 *
 * @example
 * ```ts
 * import * as Effect from "effect/Effect"
 * import { TokenSigner } from "effect-dsql"
 *
 * const password = Effect.flatMap(TokenSigner.TokenSigner, (signer) =>
 *   signer.sign({
 *     hostname: "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws",
 *     region: "us-east-1",
 *     user: "admin",
 *     expiresIn: "15 minutes"
 *   })).pipe(Effect.provide(TokenSigner.layerFromChain()))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export class TokenSigner extends Context.Tag("effect-dsql/TokenSigner")<TokenSigner, Service>() {}

/**
 * Signing failed: no usable AWS credentials (`CredentialsUnavailable`, the provider's error in `cause`), a request
 * out of bounds (`InvalidRequest`), or the signature itself (`SigningFailed`). Never carries a secret.
 *
 * @since 0.1.0
 * @category errors
 */
export class TokenSignerError extends Data.TaggedError("TokenSignerError")<{
  readonly reason: "CredentialsUnavailable" | "InvalidRequest" | "SigningFailed"
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * Fixed AWS credentials, for `layerStatic`.
 *
 * @since 0.1.0
 * @category models
 */
export interface StaticCredentials {
  readonly accessKeyId: string
  readonly secretAccessKey: Redacted.Redacted<string> | string
  readonly sessionToken?: Redacted.Redacted<string> | string | undefined
}

/**
 * Options of `make`.
 *
 * @since 0.1.0
 * @category models
 */
export interface MakeOptions {
  /**
   * Where credentials come from, e.g. `defaultProvider()` of `@aws-sdk/credential-provider-node`, or
   * `fromTemporaryCredentials(…)` of `@aws-sdk/credential-providers` (install it yourself).
   */
  readonly credentials: AwsCredentialIdentityProvider
  /** How long before their `expiration` credentials are refreshed; 5 minutes by default. */
  readonly refreshBefore?: Duration.DurationInput | undefined
}

const MAX_EXPIRES_IN_SECONDS = 604_800

/**
 * A token signer over a credentials provider. The provider is called once, then again only when the credentials
 * come within `refreshBefore` of their expiration; concurrent signatures share one call. While a refresh fails, or
 * when the provider hands out credentials already within `refreshBefore` of their expiration, further refresh attempts
 * wait half the credentials' remaining lifetime (a second at least), and signing goes on with the cached credentials
 * until they expire.
 *
 * Each token is signed by `@aws-sdk/dsql-signer`'s `DsqlSigner` with the cached credentials; its `X-Amz-Date` is the
 * system clock's time (`DsqlSigner` reads `Date`, not Effect's `Clock`). Each `sign` is a `TokenSigner.sign` span
 * (`dsql.host`, `dsql.region`, `dsql.user`, `dsql.action`), the parent of the credential resolution it starts and of
 * its failure, and counts in `dsql_tokens_signed_total` once signed.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: MakeOptions): Effect.Effect<Service> =>
  Effect.map(
    internal.makeCredentialCache(
      resolveCredentials(options.credentials),
      Duration.toMillis(options.refreshBefore ?? Duration.minutes(5))
    ),
    (credentials) =>
      TokenSigner.of({
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
            Effect.flatMap(validateRequest(request, span), (expiresIn) =>
              Effect.flatMap(credentials(span), (cached) =>
                Effect.flatMap(
                  signWithDsqlSigner(request, action, expiresIn, cached, span),
                  (token) => Effect.as(Metric.increment(DsqlMetrics.tokensSigned), Redacted.make(token))
                ))))
        }
      })
  )

/**
 * A `TokenSigner` over any credentials provider.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromProvider = (
  provider: AwsCredentialIdentityProvider,
  options?: Omit<MakeOptions, "credentials">
): Layer.Layer<TokenSigner> => Layer.effect(TokenSigner, make({ ...options, credentials: provider }))

/**
 * A `TokenSigner` with fixed credentials, which never expire.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerStatic = (credentials: StaticCredentials): Layer.Layer<TokenSigner> => {
  const sessionToken = credentials.sessionToken === undefined ? undefined : reveal(credentials.sessionToken)
  const identity: AwsCredentialIdentity = {
    accessKeyId: credentials.accessKeyId,
    secretAccessKey: reveal(credentials.secretAccessKey),
    ...(sessionToken === undefined ? {} : { sessionToken })
  }
  return layerFromProvider(() => Promise.resolve(identity))
}

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
  const secretAccessKey = Option.match(environment.secretAccessKey, { onNone: () => "", onSome: Redacted.value })
  if (accessKeyId === "" || secretAccessKey === "") return defaultProvider()
  const sessionToken = Option.match(environment.sessionToken, { onNone: () => "", onSome: Redacted.value })
  const identity: AwsCredentialIdentity = {
    accessKeyId,
    secretAccessKey,
    ...(sessionToken === "" ? {} : { sessionToken })
  }
  return () => Promise.resolve(identity)
}

/**
 * A signer over the credential chain, with one credential cache per profile it is asked for (`request.profile`, else
 * `profile`), owned by this signer: another signer resolves again.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeChain = (options?: { readonly profile?: string | undefined }): Effect.Effect<Service> =>
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
          return Effect.map(make({ credentials: chainProvider(profile, environment) }), (created) => {
            // two first requests may race here: the first one stored wins, so the profile keeps one cache
            const shared = signers.get(profile) ?? created
            signers.set(profile, shared)
            return shared
          })
        })
      return TokenSigner.of({
        sign: (request) =>
          Effect.flatMap(signerFor(request.profile ?? options?.profile), (signer) => signer.sign(request))
      })
    }
  )

/**
 * A `TokenSigner` over the AWS credential chain. A request that names a `profile` (the client's `profile` /
 * `DSQL_PROFILE`), else the `profile` given here, is signed with that profile of the shared config and credentials
 * files (`fromIni` of `@aws-sdk/credential-provider-ini`, resolved here: `@aws-sdk/dsql-signer` ignores its own
 * `profile` option). Otherwise the default chain: environment keys (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
 * `AWS_SESSION_TOKEN`, skipped when `AWS_PROFILE` is set), read from the `ConfigProvider` when the layer is built,
 * then `defaultProvider` of `@aws-sdk/credential-provider-node` (`AWS_PROFILE` or `default` in the shared files, SSO,
 * `credential_process`, web identity, container and instance metadata).
 *
 * Credentials and their cache belong to the layer: everything the layer is provided to (a `DsqlClient` layer, every
 * `DsqlClient.connect`) shares one resolution per profile, and a layer built again resolves again. As with the AWS
 * SDK's own clients, credentials without an expiration (environment keys, a profile's static keys) are read once per
 * layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromChain = (options?: { readonly profile?: string | undefined }): Layer.Layer<TokenSigner> =>
  Layer.effect(TokenSigner, makeChain(options))

/**
 * `layerFromChain` with the profile read from `DSQL_PROFILE` when set.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<TokenSigner, ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(
    Config.nonEmptyString("PROFILE").pipe(
      Config.withDescription("AWS shared config profile whose credentials sign DSQL tokens"),
      Config.option,
      Config.nested("DSQL")
    ),
    (profile) => layerFromChain({ profile: Option.getOrUndefined(profile) })
  )
)

const reveal = (value: Redacted.Redacted<string> | string): string =>
  Redacted.isRedacted(value) ? Redacted.value(value) : value

/** One token from `@aws-sdk/dsql-signer`; a failure is reported under `span`. */
const signWithDsqlSigner = (
  request: SignRequest,
  action: Action,
  expiresIn: number,
  credentials: internal.CachedCredentials,
  span: Tracer.Span
): Effect.Effect<string, TokenSignerError> =>
  Effect.async((resume) => {
    dsqlSignerToken(request, action, expiresIn, credentials).then(
      (token) => resume(Effect.succeed(token)),
      (cause) =>
        resume(Effect.withParentSpan(
          Effect.fail(
            new TokenSignerError({
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
  credentials: internal.CachedCredentials
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
const revealCredentials = (credentials: internal.CachedCredentials): AwsCredentialIdentity => ({
  accessKeyId: credentials.accessKeyId,
  secretAccessKey: Redacted.value(credentials.secretAccessKey),
  ...(credentials.sessionToken === undefined ? {} : { sessionToken: Redacted.value(credentials.sessionToken) })
})

const invalidRequest = (message: string, span: Tracer.Span) =>
  Effect.withParentSpan(Effect.fail(new TokenSignerError({ reason: "InvalidRequest", message })), span)

// printable ASCII without space, and none of the characters that end the host part of a URL
const isHostname = (hostname: string): boolean => /^[\x21-\x7e]+$/.test(hostname) && !/[/?#@]/.test(hostname)

const validateRequest = (request: SignRequest, span: Tracer.Span): Effect.Effect<number, TokenSignerError> => {
  if (!isHostname(request.hostname)) {
    return invalidRequest(
      `hostname ${JSON.stringify(request.hostname)} is not a host name: expected the DSQL endpoint host`,
      span
    )
  }
  if (request.region.length === 0) return invalidRequest("region is empty: expected the cluster's AWS region", span)
  if (request.user.length === 0) return invalidRequest("user is empty: expected a database role such as admin", span)
  const duration = Duration.decodeUnknown(request.expiresIn)
  const seconds = Option.isSome(duration) ? Math.floor(Duration.toSeconds(duration.value)) : Number.NaN
  return seconds >= 1 && seconds <= MAX_EXPIRES_IN_SECONDS
    ? Effect.succeed(seconds)
    : invalidRequest(`expiresIn must be between 1 second and 7 days (${MAX_EXPIRES_IN_SECONDS} s)`, span)
}

const NO_CREDENTIALS_HINT = "set AWS_PROFILE / DSQL_PROFILE, environment credentials (AWS_ACCESS_KEY_ID and " +
  "AWS_SECRET_ACCESS_KEY), or pass credentials with TokenSigner.layerFromProvider / layerStatic"

const credentialsUnavailable = (problem: string, cause?: unknown) =>
  new TokenSignerError({ reason: "CredentialsUnavailable", message: `${problem}: ${NO_CREDENTIALS_HINT}`, cause })

const successfulResolutions = Metric.tagged(DsqlMetrics.credentialResolutions, "outcome", "success")
const failedResolutions = Metric.tagged(DsqlMetrics.credentialResolutions, "outcome", "failure")

const resolveCredentials = (
  provider: AwsCredentialIdentityProvider
): Effect.Effect<internal.CachedCredentials, TokenSignerError> =>
  Effect.tryPromise({
    try: () => provider(),
    catch: (cause) =>
      credentialsUnavailable(
        cause instanceof Error ? `no AWS credentials found (${cause.message})` : "no AWS credentials found",
        cause
      )
  }).pipe(
    Effect.flatMap((identity) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        // the identity itself never goes into an error: it holds the secret key
        if (!isNonEmptyString(identity?.accessKeyId) || !isNonEmptyString(identity?.secretAccessKey)) {
          return Effect.fail(credentialsUnavailable("the AWS credentials provider returned no access key or secret"))
        }
        const expiresAt = identity.expiration?.getTime()
        if (expiresAt !== undefined && !(expiresAt > now)) {
          return Effect.fail(
            credentialsUnavailable(
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
