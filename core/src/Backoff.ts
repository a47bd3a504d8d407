/**
 * Back-off arithmetic and the retry policies' defaults shared by both lines: delays grow as `base * factor^n`, each
 * capped at `maxDelay`, then randomised down by up to `jitter` (1 = uniform between 0 and the delay, 0 = none).
 * Times are in milliseconds; each line turns them into its own `Duration` and `Schedule`.
 *
 * @since 0.1.0
 */

/**
 * An exponential back-off with a cap and a jitter band.
 *
 * @since 0.1.0
 */
export interface Curve {
  readonly baseDelayMillis: number
  readonly factor: number
  readonly maxDelayMillis: number
  readonly jitter: number
}

/**
 * A retry policy: the curve, at most `maxRetries` retries, and no retry starting later than `maxElapsedMillis` after
 * the first failure.
 *
 * @since 0.1.0
 */
export interface Policy extends Curve {
  readonly maxRetries: number
  readonly maxElapsedMillis: number
}

/**
 * The OCC retry policy's defaults: up to 20 retries, 40 ms doubling to at most 1 s, half jitter, 30 s in all. Chosen
 * from a sweep of 48 policies on DsqlLocal, 32 workers on 4 hot accounts and then on 64 (bench/README.md): among the
 * policies that never gave up, a 40 ms base committed the most at both levels, with fewer attempts per commit than
 * 10–20 ms (whose retries come back while the winner of the conflict still holds the rows), and the node
 * connectors' 3 retries from 1 ms gave up on 60–90% of the hot transfers. Some jitter keeps clients that collided
 * from retrying in lockstep. The longer budget than the official connectors' also lets schema conflicts (OC001)
 * after concurrent DDL resolve.
 *
 * @since 0.1.0
 */
export const occRetry: Policy = {
  maxRetries: 20,
  baseDelayMillis: 40,
  maxDelayMillis: 1_000,
  factor: 2,
  jitter: 0.5,
  maxElapsedMillis: 30_000
}

/**
 * New connections refused for the cluster's limits (53300 / 53400): 20 ms doubling to at most 1 s, half jitter,
 * within the connect timeout.
 *
 * @since 0.1.0
 */
export const connectRetry: Curve = { baseDelayMillis: 20, factor: 2, maxDelayMillis: 1_000, jitter: 0.5 }

/**
 * A migrator that found the lease taken looks again after 50 ms doubling to at most 1 s, half jitter.
 *
 * @since 0.1.0
 */
export const leaseWait: Curve = { baseDelayMillis: 50, factor: 2, maxDelayMillis: 1_000, jitter: 0.5 }

/**
 * `jitter` clamped to 0..1.
 *
 * @since 0.1.0
 */
export const clampJitter = (jitter: number): number => Math.min(1, Math.max(0, jitter))

/**
 * The delay before retry `retry` (0 = the first), capped, before jitter.
 *
 * @since 0.1.0
 */
export const cappedDelayMillis = (curve: Curve, retry: number): number =>
  Math.min(curve.baseDelayMillis * curve.factor ** retry, curve.maxDelayMillis)

/**
 * `delayMillis` cut by up to `jitter` of itself: `random` (0..1) picks where in `[delay * (1 - jitter), delay]`. The
 * jitter applies after the cap, so clients that reached the cap together still spread out.
 *
 * @since 0.1.0
 */
export const jitteredMillis = (delayMillis: number, jitter: number, random: number): number =>
  delayMillis * (1 - clampJitter(jitter) * random)

/**
 * Whether a retry may wait `delayMillis` more when `elapsedMillis` have passed since the first failure: the last
 * attempt never starts past the budget.
 *
 * @since 0.1.0
 */
export const withinBudget = (elapsedMillis: number, delayMillis: number, budgetMillis: number): boolean =>
  elapsedMillis + delayMillis <= budgetMillis
