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

/**
 * Caches what `resolve` returns and refreshes it from `refreshBeforeMillis` ahead of its expiry. Callers arriving
 * while a resolution runs wait for it and share its outcome, success or failure. A resolution runs under the span
 * passed by the caller that started it; a caller served from the cache reads it synchronously.
 *
 * While the cached credentials remain usable, refresh attempts back off: after an attempt that failed, or that
 * returned credentials already inside the refresh window, the next one waits half their remaining lifetime (a second
 * at least), so a provider that hands out short-lived credentials is not called once per token. A failed refresh
 * falls back on the cached credentials while they last; once nothing usable is cached, every caller tries again.
 * The decisions are `Refresh`'s (the shared core), shared with the other line.
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
    let state: Refresh.State<CachedCredentials, E> = Refresh.empty
    const lock = yield* Semaphore.make(1)

    const attempt = (current: Refresh.State<CachedCredentials, E>, span: Tracer.AnySpan) =>
      Effect.flatMap(Effect.result(Effect.withParentSpan(resolve, span)), (result) =>
        Effect.andThen(
          Metric.update(Metrics.credentialResolution(Result.isSuccess(result) ? "success" : "failure"), 1),
          Effect.clockWith((clock) => {
            const next = Refresh.afterAttempt(
              current,
              Result.isSuccess(result)
                ? { _tag: "Resolved", credentials: result.success }
                : { _tag: "Failed", failure: result.failure },
              clock.currentTimeMillisUnsafe(),
              refreshBeforeMillis
            )
            state = next
            return next._tag === "Cached" ? Effect.succeed(next.credentials) : Effect.fail(next.failure)
          })
        ))

    const refresh = (seen: Refresh.State<CachedCredentials, E>, span: Tracer.AnySpan) =>
      lock.withPermits(1)(
        Effect.suspend(() => {
          const current = state
          return Effect.clockWith((clock) => {
            const next = Refresh.afterWaiting(seen, current, clock.currentTimeMillisUnsafe())
            return next._tag === "Attempt"
              ? attempt(current, span)
              : next._tag === "Serve"
              ? Effect.succeed(next.credentials)
              : Effect.fail(next.failure)
          })
        })
      )

    return (span: Tracer.AnySpan) =>
      Effect.clockWith((clock) => {
        const current = state
        const credentials = Refresh.fresh(current, clock.currentTimeMillisUnsafe())
        return credentials === undefined ? refresh(current, span) : Effect.succeed(credentials)
      })
  })
