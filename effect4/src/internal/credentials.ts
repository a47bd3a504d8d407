/**
 * The machinery behind `TokenSigner`: a single-flight cache of AWS credentials, refreshed ahead of their expiry and
 * backing off between refresh attempts while the cached credentials remain usable.
 *
 * @internal
 */
import { Refresh } from "@effect-dsql/core"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Semaphore from "effect/Semaphore"
import type * as Tracer from "effect/Tracer"
import * as Metrics from "./metrics.js"

/**
 * Resolved credentials, secrets redacted, with the instant they stop working.
 *
 * @internal
 */
export interface CachedCredentials {
  readonly accessKeyId: string
  readonly secretAccessKey: Redacted.Redacted<string>
  readonly sessionToken: Redacted.Redacted<string> | undefined
  /** Epoch millis after which the credentials are unusable; `undefined` when they never expire. */
  readonly expiresAt: number | undefined
}

type CacheState<E> =
  | { readonly _tag: "Empty" }
  /** `attemptAt`: epoch millis from which a refresh is attempted; `undefined` when the credentials never expire. */
  | { readonly _tag: "Cached"; readonly credentials: CachedCredentials; readonly attemptAt: number | undefined }
  | { readonly _tag: "Failed"; readonly failure: E }

/**
 * Caches what `resolve` returns and refreshes it from `refreshBeforeMillis` ahead of its expiry. Callers arriving
 * while a resolution runs wait for it and share its outcome, success or failure. A resolution runs under the span
 * passed by the caller that started it; a caller served from the cache reads it synchronously.
 *
 * While the cached credentials remain usable, refresh attempts back off: after an attempt that failed, or that
 * returned credentials already inside the refresh window, the next one waits half their remaining lifetime (a second
 * at least), so a provider that hands out short-lived credentials is not called once per token. A failed refresh
 * falls back on the cached credentials while they last; once nothing usable is cached, every caller tries again.
 *
 * The cache lives in the returned function: each call of `makeCredentialCache` (each layer build) starts empty.
 *
 * @internal
 */
export const makeCredentialCache = <E>(
  resolve: Effect.Effect<CachedCredentials, E>,
  refreshBeforeMillis: number
): Effect.Effect<(span: Tracer.AnySpan) => Effect.Effect<CachedCredentials, E>> =>
  Effect.gen(function*() {
    // written only under `lock`; a plain variable, so the common case, fresh credentials, costs no effect
    let state: CacheState<E> = { _tag: "Empty" }
    const lock = yield* Semaphore.make(1)

    const usable = (current: CacheState<E>, now: number): CachedCredentials | undefined =>
      current._tag === "Cached" && Refresh.isUsable(current.credentials.expiresAt, now)
        ? current.credentials
        : undefined

    const cache = (credentials: CachedCredentials, attemptAt: number | undefined) =>
      Effect.sync(() => {
        state = { _tag: "Cached", credentials, attemptAt }
        return credentials
      })

    const attempt = (current: CacheState<E>, span: Tracer.AnySpan): Effect.Effect<CachedCredentials, E> =>
      Effect.flatMap(Effect.result(Effect.withParentSpan(resolve, span)), (result) =>
        Effect.andThen(
          Metric.update(Metrics.credentialResolution(Result.isSuccess(result) ? "success" : "failure"), 1),
          Effect.clockWith((clock) => {
            const now = clock.currentTimeMillisUnsafe()
            if (Result.isSuccess(result)) {
              return cache(result.success, Refresh.attemptAt(result.success.expiresAt, now, refreshBeforeMillis))
            }
            const previous = usable(current, now)
            if (previous === undefined) {
              state = { _tag: "Failed", failure: result.failure }
              return Effect.fail(result.failure)
            }
            return cache(
              previous,
              previous.expiresAt === undefined ? undefined : Refresh.backOff(previous.expiresAt, now)
            )
          })
        ))

    // `seen` is the state the caller found stale; any other state under the lock is an attempt that ended meanwhile
    const refresh = (seen: CacheState<E>, span: Tracer.AnySpan): Effect.Effect<CachedCredentials, E> =>
      lock.withPermits(1)(
        Effect.suspend(() => {
          const current = state
          if (current === seen) return attempt(current, span)
          if (current._tag === "Failed") return Effect.fail(current.failure)
          return Effect.clockWith((clock) => {
            const credentials = usable(current, clock.currentTimeMillisUnsafe())
            return credentials === undefined ? attempt(current, span) : Effect.succeed(credentials)
          })
        })
      )

    return (span: Tracer.AnySpan) =>
      Effect.clockWith((clock) => {
        const now = clock.currentTimeMillisUnsafe()
        const current = state
        return current._tag === "Cached" && Refresh.isFresh(current.credentials.expiresAt, current.attemptAt, now)
          ? Effect.succeed(current.credentials)
          : refresh(current, span)
      })
  })
