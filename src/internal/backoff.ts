/**
 * The one back-off schedule builder behind the connect retries (`pool.ts`), `OccRetry.policy` and the migrator's wait
 * for the lease (`migrator.ts`).
 *
 * @internal
 */
import { Backoff } from "@effect-dsql/core"
import * as Duration from "effect/Duration"
import * as Schedule from "effect/Schedule"

/**
 * Delays grow as `base * factor^n`, each capped at `maxDelay`, then randomised down by up to `jitter` (0..1, clamped:
 * 1 = uniform between 0 and the delay, 0 = none). At most `maxRetries` retries when given, and no retry starts later
 * than `maxElapsed` after the first failure.
 */
export interface BackoffOptions {
  readonly base: Duration.DurationInput
  readonly factor: number
  readonly maxDelay: Duration.DurationInput
  readonly jitter: number
  readonly maxRetries?: number | undefined
  readonly maxElapsed: Duration.DurationInput
}

/** A shared curve of `@effect-dsql/core` as options of `backoff`. */
export const curve = (shared: Backoff.Curve): Pick<BackoffOptions, "base" | "factor" | "maxDelay" | "jitter"> => ({
  base: Duration.millis(shared.baseDelayMillis),
  factor: shared.factor,
  maxDelay: Duration.millis(shared.maxDelayMillis),
  jitter: shared.jitter
})

/**
 * The back-off as a `Schedule` whose output is the delay before the next attempt. The jitter applies after the cap,
 * so clients that reached `maxDelay` together still spread out; the elapsed bound counts the coming delay, so the
 * last attempt never starts past `maxElapsed` (`Schedule.upTo` would let it).
 */
export const backoff = (options: BackoffOptions): Schedule.Schedule<Duration.Duration, unknown> => {
  const maxDelay = Duration.decode(options.maxDelay)
  const maxElapsed = Duration.decode(options.maxElapsed)
  const jitter = Backoff.clampJitter(options.jitter)
  const capped = Schedule.exponential(options.base, options.factor).pipe(
    Schedule.modifyDelay((delay) => Duration.min(delay, maxDelay))
  )
  const jittered = jitter > 0 ? Schedule.jitteredWith(capped, { min: 1 - jitter, max: 1 }) : capped
  const delays = Schedule.delays(jittered)
  const bounded = options.maxRetries === undefined
    ? delays
    : Schedule.zipLeft(delays, Schedule.recurs(options.maxRetries))
  return bounded.pipe(
    Schedule.intersect(Schedule.elapsed),
    Schedule.whileOutput(([delay, elapsed]) => Duration.lessThanOrEqualTo(Duration.sum(elapsed, delay), maxElapsed)),
    Schedule.map(([delay]) => delay)
  )
}
