/**
 * The machinery behind `TokenSigner`: a single-flight cache of AWS credentials refreshed ahead of expiry, and the
 * SigV4 query presigning of a DSQL token with node:crypto (byte-identical to `@aws-sdk/dsql-signer`, several times
 * faster than `@smithy/signature-v4` because the signing key is derived once per day and region, not per token).
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as SigV4 from "./sigv4.js"

/**
 * Credentials ready for signing, with the instants that drive the cache.
 *
 * @internal
 */
export interface SigningCredentials {
  readonly accessKeyId: string
  readonly secretAccessKey: Redacted.Redacted<string>
  /** The session token already escaped for the query string: escaping a long token per signature is costly. */
  readonly escapedSessionToken: Redacted.Redacted<string> | undefined
  /** Epoch millis after which the credentials are unusable; `undefined` when they never expire. */
  readonly expiresAt: number | undefined
  /** Epoch millis from which a refresh is attempted; `undefined` when they never expire. */
  readonly refreshAt: number | undefined
  /** The signing key of the current day, by region. */
  readonly signingKeys: Map<string, SigningKey>
}

interface SigningKey {
  readonly shortDate: string
  readonly key: Buffer
}

/**
 * Wraps a resolved identity for signing; `expiresAt` is the identity's expiration in epoch millis.
 *
 * @internal
 */
export const makeSigningCredentials = (
  identity: { readonly accessKeyId: string; readonly secretAccessKey: string; readonly sessionToken?: string },
  expiresAt: number | undefined,
  refreshBeforeMillis: number
): SigningCredentials => ({
  accessKeyId: identity.accessKeyId,
  secretAccessKey: Redacted.make(identity.secretAccessKey),
  // the AWS signer leaves an empty session token out of the query; so do we
  escapedSessionToken: identity.sessionToken ? Redacted.make(SigV4.escapeUri(identity.sessionToken)) : undefined,
  expiresAt,
  refreshAt: expiresAt === undefined ? undefined : expiresAt - refreshBeforeMillis,
  signingKeys: new Map()
})

type CacheState<E> =
  | { readonly _tag: "Empty" }
  | { readonly _tag: "Resolved"; readonly credentials: SigningCredentials }
  | { readonly _tag: "RefreshFailed"; readonly failure: E; readonly previous: SigningCredentials | undefined }

const cachedCredentials = <E>(state: CacheState<E>): SigningCredentials | undefined =>
  state._tag === "Resolved" ? state.credentials : state._tag === "RefreshFailed" ? state.previous : undefined

const isFresh = (credentials: SigningCredentials, now: number): boolean =>
  credentials.refreshAt === undefined || now < credentials.refreshAt

const isUsable = (credentials: SigningCredentials, now: number): boolean =>
  credentials.expiresAt === undefined || now < credentials.expiresAt

/**
 * Caches what `resolve` returns until its refresh instant. Callers arriving while a resolution runs wait for it and
 * share its outcome, success or failure. A failed refresh falls back to the previous credentials while they have not
 * expired; nothing is remembered of a failure beyond that, so the next caller tries again.
 *
 * @internal
 */
export const makeCredentialCache = <E>(
  resolve: Effect.Effect<SigningCredentials, E>
): Effect.Effect<Effect.Effect<SigningCredentials, E>> =>
  Effect.gen(function*() {
    const state = yield* Ref.make<CacheState<E>>({ _tag: "Empty" })
    const lock = yield* Effect.makeSemaphore(1)

    const settle = (
      settled: Exclude<CacheState<E>, { readonly _tag: "Empty" }>
    ): Effect.Effect<SigningCredentials, E> => {
      if (settled._tag === "Resolved") return Effect.succeed(settled.credentials)
      const { failure, previous } = settled
      return Effect.flatMap(
        Clock.currentTimeMillis,
        (now) => previous !== undefined && isUsable(previous, now) ? Effect.succeed(previous) : Effect.fail(failure)
      )
    }

    const attempt = (current: CacheState<E>): Effect.Effect<SigningCredentials, E> =>
      Effect.matchEffect(resolve, {
        onSuccess: (credentials) => Effect.as(Ref.set(state, { _tag: "Resolved", credentials }), credentials),
        onFailure: (failure) => {
          const next = { _tag: "RefreshFailed", failure, previous: cachedCredentials(current) } as const
          return Effect.zipRight(Ref.set(state, next), settle(next))
        }
      })

    // `seen` is the state the caller found stale; any other state under the lock is an attempt that ended meanwhile
    const refresh = (seen: CacheState<E>): Effect.Effect<SigningCredentials, E> =>
      lock.withPermits(1)(
        Effect.flatMap(
          Ref.get(state),
          (current) => current === seen || current._tag === "Empty" ? attempt(current) : settle(current)
        )
      )

    return Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.flatMap(Ref.get(state), (current) => {
        const credentials = cachedCredentials(current)
        return credentials !== undefined && isFresh(credentials, now) ? Effect.succeed(credentials) : refresh(current)
      }))
  })

/**
 * What a token is signed for.
 *
 * @internal
 */
export interface PresignRequest {
  readonly hostname: string
  readonly region: string
  readonly action: string
  readonly expiresInSeconds: number
  readonly now: number
}

/**
 * Signs `GET https://<hostname>/?Action=<action>` for service `dsql`, only the `host` header signed, and returns the
 * URL without its scheme: the query keys in the sorted order `@aws-sdk/dsql-signer` writes them.
 *
 * @internal
 */
export const presign = (credentials: SigningCredentials, request: PresignRequest): string => {
  const longDate = new Date(request.now).toISOString().replace(/\.\d{3}Z$/, "Z").replace(/[-:]/g, "")
  const shortDate = longDate.slice(0, 8)
  const scope = SigV4.credentialScope(shortDate, request.region)
  const sessionToken = credentials.escapedSessionToken === undefined
    ? ""
    : `&X-Amz-Security-Token=${Redacted.value(credentials.escapedSessionToken)}`
  const query = `Action=${SigV4.escapeUri(request.action)}&X-Amz-Algorithm=${SigV4.algorithm}` +
    `&X-Amz-Credential=${SigV4.escapeUri(`${credentials.accessKeyId}/${scope}`)}&X-Amz-Date=${longDate}` +
    `&X-Amz-Expires=${request.expiresInSeconds}${sessionToken}`
  const signature = SigV4.signature(signingKey(credentials, request.region, shortDate), {
    amzDate: longDate,
    scope,
    canonicalQuery: `${query}&X-Amz-SignedHeaders=host`,
    host: request.hostname
  }).toString("hex")
  return `${request.hostname}/?${query}&X-Amz-Signature=${signature}&X-Amz-SignedHeaders=host`
}

/** The day's signing key for a region, derived once per day and region for these credentials. */
const signingKey = (credentials: SigningCredentials, region: string, shortDate: string): Buffer => {
  const cached = credentials.signingKeys.get(region)
  if (cached !== undefined && cached.shortDate === shortDate) return cached.key
  const key = SigV4.signingKey(Redacted.value(credentials.secretAccessKey), shortDate, region)
  credentials.signingKeys.set(region, { shortDate, key })
  return key
}
