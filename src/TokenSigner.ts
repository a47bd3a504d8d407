/**
 * Signs the IAM authentication tokens Aurora DSQL takes as passwords, with `@aws-sdk/dsql-signer`. Credentials are
 * resolved once, cached and refreshed ahead of their expiry; signing itself is local and takes microseconds.
 *
 * @since 0.1.0
 */
import type { AwsCredentialIdentityProvider } from "@smithy/types"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as internal from "./internal/tokenSigner.js"

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
export const actionFor: (user: string) => Action = internal.actionFor

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

const tokenSignerError: internal.MakeError = (fields) => new TokenSignerError(fields)

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
export const make = (options: MakeOptions): Effect.Effect<Service> => internal.make(options, tokenSignerError)

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
export const layerStatic = (credentials: StaticCredentials): Layer.Layer<TokenSigner> =>
  layerFromProvider(internal.staticProvider(credentials))

/**
 * A signer over the credential chain, with one credential cache per profile it is asked for (`request.profile`, else
 * `profile`), owned by this signer: another signer resolves again.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeChain = (options?: { readonly profile?: string | undefined }): Effect.Effect<Service> =>
  internal.makeChain(options, tokenSignerError)

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
