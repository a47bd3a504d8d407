/**
 * When cached AWS credentials are refreshed: ahead of their expiry, and, while a refresh fails or hands out
 * credentials already inside the refresh window, no more often than every half of their remaining lifetime (a second
 * at least), so a provider of short-lived credentials is not called once per token. Both lines' credential caches
 * keep a `State` in their own Effect and move it with the transitions below; locking and clocks are theirs.
 *
 * @since 0.1.0
 */

/**
 * The shortest wait between two refresh attempts.
 *
 * @since 0.1.0
 */
export const minAttemptIntervalMillis = 1_000

/**
 * Whether credentials expiring at `expiresAt` (epoch millis; `undefined`: never) still work at `now`.
 *
 * @since 0.1.0
 */
export const isUsable = (expiresAt: number | undefined, now: number): boolean =>
  expiresAt === undefined || now < expiresAt

/**
 * The next refresh attempt after one at `now` that did not bring fresher credentials: half the remaining lifetime
 * away, a second at least.
 *
 * @since 0.1.0
 */
export const backOff = (expiresAt: number, now: number): number =>
  now + Math.max(minAttemptIntervalMillis, (expiresAt - now) / 2)

/**
 * When to attempt the next refresh of credentials just resolved at `now`: `refreshBeforeMillis` ahead of their expiry,
 * or after a back-off when that moment has already come; `undefined` for credentials that never expire.
 *
 * @since 0.1.0
 */
export const attemptAt = (
  expiresAt: number | undefined,
  now: number,
  refreshBeforeMillis: number
): number | undefined => {
  if (expiresAt === undefined) return undefined
  const refreshAt = expiresAt - refreshBeforeMillis
  return refreshAt > now ? refreshAt : backOff(expiresAt, now)
}

/**
 * Whether cached credentials can be handed out at `now` without a refresh attempt.
 *
 * @since 0.1.0
 */
export const isFresh = (expiresAt: number | undefined, nextAttemptAt: number | undefined, now: number): boolean =>
  isUsable(expiresAt, now) && (nextAttemptAt === undefined || now < nextAttemptAt)

/**
 * What a credential cache holds: nothing yet, credentials with the instant from which a refresh is attempted
 * (`undefined`: they never expire), or the failure of the last resolution when nothing usable was left.
 *
 * @since 0.1.0
 */
export type State<C extends { readonly expiresAt: number | undefined }, E> =
  | { readonly _tag: "Empty" }
  | { readonly _tag: "Cached"; readonly credentials: C; readonly attemptAt: number | undefined }
  | { readonly _tag: "Failed"; readonly failure: E }

/**
 * The empty cache.
 *
 * @since 0.1.0
 */
export const empty: State<never, never> = { _tag: "Empty" }

/**
 * The cached credentials when they can be handed out at `now` without a refresh attempt.
 *
 * @since 0.1.0
 */
export const fresh = <C extends { readonly expiresAt: number | undefined }, E>(
  state: State<C, E>,
  now: number
): C | undefined =>
  state._tag === "Cached" && isFresh(state.credentials.expiresAt, state.attemptAt, now) ? state.credentials : undefined

const usable = <C extends { readonly expiresAt: number | undefined }, E>(state: State<C, E>, now: number) =>
  state._tag === "Cached" && isUsable(state.credentials.expiresAt, now) ? state.credentials : undefined

/**
 * What a caller does once it holds the cache's lock, having found `seen` stale: attempt a resolution when the state
 * is still `seen`; otherwise another caller's attempt ended meanwhile, whose outcome it shares (its credentials while
 * usable, its failure), attempting again only when nothing usable is left.
 *
 * @since 0.1.0
 */
export const afterWaiting = <C extends { readonly expiresAt: number | undefined }, E>(
  seen: State<C, E>,
  current: State<C, E>,
  now: number
):
  | { readonly _tag: "Attempt" }
  | { readonly _tag: "Serve"; readonly credentials: C }
  | { readonly _tag: "Fail"; readonly failure: E } =>
{
  if (current === seen) return { _tag: "Attempt" }
  if (current._tag === "Failed") return { _tag: "Fail", failure: current.failure }
  const credentials = usable(current, now)
  return credentials === undefined ? { _tag: "Attempt" } : { _tag: "Serve", credentials }
}

/**
 * The state after a resolution attempted at `now` from `current`: new credentials are cached until
 * `refreshBeforeMillis` ahead of their expiry; a failure falls back on the cached credentials while they work (the
 * next attempt backed off), and is the state once nothing usable is left.
 *
 * @since 0.1.0
 */
export const afterAttempt = <C extends { readonly expiresAt: number | undefined }, E>(
  current: State<C, E>,
  outcome: { readonly _tag: "Resolved"; readonly credentials: C } | { readonly _tag: "Failed"; readonly failure: E },
  now: number,
  refreshBeforeMillis: number
): Exclude<State<C, E>, { readonly _tag: "Empty" }> => {
  if (outcome._tag === "Resolved") {
    const credentials = outcome.credentials
    return { _tag: "Cached", credentials, attemptAt: attemptAt(credentials.expiresAt, now, refreshBeforeMillis) }
  }
  const previous = usable(current, now)
  if (previous === undefined) return { _tag: "Failed", failure: outcome.failure }
  const next = previous.expiresAt === undefined ? undefined : backOff(previous.expiresAt, now)
  return { _tag: "Cached", credentials: previous, attemptAt: next }
}
