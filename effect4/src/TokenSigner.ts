/**
 * Signs the IAM authentication tokens Aurora DSQL takes as passwords, with `@aws-sdk/dsql-signer`. Credentials are
 * resolved once per layer, cached and refreshed ahead of their expiry; signing itself is local and takes
 * microseconds.
 *
 * @since 2.0.0
 */
import { fromIni, fromNodeProviderChain } from "@aws-sdk/credential-providers"
import { DsqlSigner, type DsqlSignerConfig } from "@aws-sdk/dsql-signer"
import { Token } from "@effect-dsql/core"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Tracer from "effect/Tracer"
import * as internal from "./internal/credentials.js"

/**
 * AWS credentials as `@aws-sdk/dsql-signer` takes them.
 *
 * @since 2.0.0
 * @category models
 */
export type AwsCredentialIdentity = Exclude<NonNullable<DsqlSignerConfig["credentials"]>, (...args: never) => unknown>

/**
 * A source of AWS credentials, such as `fromNodeProviderChain()` or `fromTemporaryCredentials(…)` of
 * `@aws-sdk/credential-providers`.
 *
 * @since 2.0.0
 * @category models
 */
export type AwsCredentialIdentityProvider = () => Promise<AwsCredentialIdentity>

/**
 * The IAM action a token is signed for.
 *
 * @since 2.0.0
 * @category models
 */
export type Action = Token.Action

/**
 * The action DSQL expects for a user: `DbConnectAdmin` for exactly `admin`, `DbConnect` for every other role
 * (`Admin` included: DSQL compares the name exactly).
 *
 * @since 2.0.0
 * @category models
 */
export const actionFor: (user: string) => Action = Token.actionFor

/**
 * What to sign a token for.
 *
 * @since 2.0.0
 * @category models
 */
export interface SignRequest {
  /** The DSQL endpoint host, `<cluster-id>.dsql.<region>.on.aws`: the name the token is for, never an IP override. */
  readonly hostname: string
  readonly region: string
  readonly user: string
  /** How long the token opens connections: 1 second to 7 days, whole seconds (fractions are dropped). */
  readonly expiresIn: Duration.Input
}

/**
 * Signing failed: no usable AWS credentials (`CredentialsUnavailable`, the provider's error in `cause`), a request
 * out of bounds (`InvalidRequest`), or the signature itself (`SigningFailed`). Never carries a secret.
 *
 * @since 2.0.0
 * @category errors
 */
export class TokenSignerError extends Schema.TaggedError<TokenSignerError>("effect-dsql/TokenSignerError")(
  "TokenSignerError",
  {
    reason: Schema.Literals(["CredentialsUnavailable", "InvalidRequest", "SigningFailed"]),
    message: Schema.String,
    cause: Schema.optional(Schema.Defect())
  }
) {}

/**
 * The token signer service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { TokenSigner } from "effect-dsql"
 *
 * const password = Effect.gen(function*() {
 *   const signer = yield* TokenSigner.TokenSigner
 *   return yield* signer.sign({
 *     hostname: "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws",
 *     region: "us-east-1",
 *     user: "admin",
 *     expiresIn: "15 minutes"
 *   })
 * }).pipe(Effect.provide(TokenSigner.layerFromChain()))
 * ```
 *
 * @since 2.0.0
 * @category services
 */
export class TokenSigner extends Context.Service<TokenSigner, {
  readonly sign: (request: SignRequest) => Effect.Effect<Redacted.Redacted<string>, TokenSignerError>
}>()("effect-dsql/TokenSigner") {}

/**
 * Fixed AWS credentials, for `layerStatic`.
 *
 * @since 2.0.0
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
 * @since 2.0.0
 * @category models
 */
export interface MakeOptions {
  /** Where credentials come from. */
  readonly credentials: AwsCredentialIdentityProvider
  /** How long before their `expiration` credentials are refreshed; 5 minutes by default. */
  readonly refreshBefore?: Duration.Input | undefined
}

/**
 * A token signer over a credentials provider, with its own credential cache. The provider is called once, then again
 * only when the credentials come within `refreshBefore` of their expiration; concurrent signatures share one call.
 * While a refresh fails, or when the provider hands out credentials already within `refreshBefore` of their
 * expiration, further attempts wait half the credentials' remaining lifetime (a second at least), and signing goes on
 * with the cached credentials until they expire.
 *
 * Each token is signed by `@aws-sdk/dsql-signer` (its `X-Amz-Date` is the system clock's time: it reads `Date`).
 * Each `sign` is a `TokenSigner.sign` span (`dsql.host`, `dsql.region`, `dsql.user`, `dsql.action`), the parent of the
 * credential resolution it starts and of its failure.
 *
 * @since 2.0.0
 * @category constructors
 */
export const make = (options: MakeOptions): Effect.Effect<TokenSigner["Service"]> =>
  Effect.map(
    internal.makeCredentialCache(
      resolveCredentials(options.credentials),
      Duration.toMillis(Duration.fromInputUnsafe(options.refreshBefore ?? Duration.minutes(5)))
    ),
    (credentials) =>
      TokenSigner.of({
        sign: (request) => {
          const action = actionFor(request.user)
          return Effect.useSpan("TokenSigner.sign", {
            attributes: {
              "dsql.host": request.hostname,
              "dsql.region": request.region,
              "dsql.user": request.user,
              "dsql.action": action
            }
          }, (span) =>
            Effect.flatMap(validateRequest(request, span), (expiresIn) =>
              Effect.flatMap(
                credentials(span),
                (cached) => Effect.map(signWithDsqlSigner(request, action, expiresIn, cached, span), Redacted.make)
              )))
        }
      })
  )

/**
 * A `TokenSigner` over any credentials provider. Each build of the layer has its own credential cache.
 *
 * @since 2.0.0
 * @category layers
 */
export const layerFromProvider = (
  provider: AwsCredentialIdentityProvider,
  options?: Omit<MakeOptions, "credentials">
): Layer.Layer<TokenSigner> => Layer.effect(TokenSigner, make({ ...options, credentials: provider }))

/**
 * A `TokenSigner` with fixed credentials, which never expire.
 *
 * @since 2.0.0
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

/**
 * A `TokenSigner` over the AWS default credential chain (`fromNodeProviderChain`), or over the shared config and
 * credentials files' `profile` when one is given (`fromIni`, resolved here: `@aws-sdk/dsql-signer` ignores its own
 * `profile` option). Each build of the layer makes its own chain and resolves credentials once: share one build
 * (provide the layer once) to share its credentials.
 *
 * @since 2.0.0
 * @category layers
 */
export const layerFromChain = (options?: { readonly profile?: string | undefined }): Layer.Layer<TokenSigner> =>
  Layer.effect(
    TokenSigner,
    Effect.suspend(() => make({ credentials: chainProvider(options?.profile) }))
  )

/**
 * `layerFromChain` with the profile read from `DSQL_PROFILE` when set.
 *
 * @since 2.0.0
 * @category layers
 */
export const layer: Layer.Layer<TokenSigner, Config.ConfigError> = Layer.unwrap(
  Effect.gen(function*() {
    const profile = yield* Config.option(Config.NonEmptyString("PROFILE")).pipe(Config.nested("DSQL"))
    return layerFromChain({ profile: Option.getOrUndefined(profile) })
  })
)

const chainProvider = (profile: string | undefined): AwsCredentialIdentityProvider =>
  profile === undefined ? fromNodeProviderChain() : fromIni({ profile })

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
  Effect.tryPromise({
    try: () => dsqlSignerToken(request, action, expiresIn, credentials),
    catch: (cause) =>
      new TokenSignerError({
        reason: "SigningFailed",
        message: `could not sign a DSQL token for ${request.hostname}`,
        cause
      })
  }).pipe((effect) => Effect.withParentSpan(effect, span))

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

const validateRequest = (request: SignRequest, span: Tracer.Span): Effect.Effect<number, TokenSignerError> => {
  const duration = Duration.fromInput(request.expiresIn)
  const expiresInSeconds = Option.isSome(duration) ? Math.floor(Duration.toSeconds(duration.value)) : Number.NaN
  const problem = Token.problemWith({ ...request, expiresInSeconds })
  return problem === undefined
    ? Effect.succeed(expiresInSeconds)
    : Effect.withParentSpan(Effect.fail(new TokenSignerError({ reason: "InvalidRequest", message: problem })), span)
}

const NO_CREDENTIALS_HINT = "set AWS_PROFILE / DSQL_PROFILE, environment credentials (AWS_ACCESS_KEY_ID and " +
  "AWS_SECRET_ACCESS_KEY), or pass credentials with TokenSigner.layerFromProvider / layerStatic"

const credentialsUnavailable = (problem: string, cause?: unknown) =>
  new TokenSignerError({ reason: "CredentialsUnavailable", message: `${problem}: ${NO_CREDENTIALS_HINT}`, cause })

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
      Effect.clockWith((clock) => {
        // the identity itself never goes into an error: it holds the secret key
        if (!isNonEmptyString(identity?.accessKeyId) || !isNonEmptyString(identity?.secretAccessKey)) {
          return Effect.fail(credentialsUnavailable("the AWS credentials provider returned no access key or secret"))
        }
        const expiresAt = identity.expiration?.getTime()
        if (expiresAt !== undefined && !(expiresAt > clock.currentTimeMillisUnsafe())) {
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
    )
  )

const isNonEmptyString = (value: unknown): value is string => typeof value === "string" && value.length > 0
