/**
 * When cached AWS credentials are refreshed: ahead of their expiry, and, while a refresh fails or hands out
 * credentials already inside the refresh window, no more often than every half of their remaining lifetime (a second
 * at least), so a provider of short-lived credentials is not called once per token. Both lines' credential caches
 * keep their state in their own Effect; the arithmetic is this.
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
