/**
 * The machinery behind `TokenSigner`: a single-flight cache of AWS credentials, refreshed ahead of their expiry and
 * backing off between refresh attempts while the cached credentials remain usable.
 *
 * @internal
 */
import { Refresh } from "@effect-dsql/core"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Redacted from "effect/Redacted"
import type * as Tracer from "effect/Tracer"

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
 * passed by the caller that started it; a caller served from the cache reads it synchronously and touches no span.
 *
 * While the cached credentials remain usable, refresh attempts back off: after an attempt that failed, or that
 * returned credentials already inside the refresh window, the next one waits half their remaining lifetime (a second
 * at least), so a provider that hands out short-lived credentials is not called once per token. A failed refresh
 * falls back on the cached credentials while they last; once nothing usable is cached, every caller tries again.
 * The decisions are `Refresh`'s (the shared core), shared with the other line.
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
    const lock = yield* Effect.makeSemaphore(1)

    const attempt = (current: Refresh.State<CachedCredentials, E>, span: Tracer.AnySpan) =>
      Effect.flatMap(Effect.either(Effect.withParentSpan(resolve, span)), (result) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const next = Refresh.afterAttempt(
            current,
            Either.isRight(result)
              ? { _tag: "Resolved", credentials: result.right }
              : { _tag: "Failed", failure: result.left },
            now,
            refreshBeforeMillis
          )
          state = next
          return next._tag === "Cached" ? Effect.succeed(next.credentials) : Effect.fail(next.failure)
        }))

    const refresh = (seen: Refresh.State<CachedCredentials, E>, span: Tracer.AnySpan) =>
      lock.withPermits(1)(
        Effect.suspend(() => {
          const current = state
          return Effect.flatMap(Clock.currentTimeMillis, (now) => {
            const next = Refresh.afterWaiting(seen, current, now)
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
        const credentials = Refresh.fresh(current, clock.unsafeCurrentTimeMillis())
        return credentials === undefined ? refresh(current, span) : Effect.succeed(credentials)
      })
  })
