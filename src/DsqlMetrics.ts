/**
 * The metrics effect-dsql records. Export them to your metrics backend with Effect's `Metric` APIs.
 *
 * @since 0.1.0
 */
import { Metrics } from "@effect-dsql/core"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"

/** A counter named and described as in `@effect-dsql/core`, shared with the Effect 4 line. */
const counter = ({ description, name }: Metrics.Spec) => Metric.counter(name, { description })

/**
 * Authentication tokens signed (one per new physical connection).
 *
 * @since 0.1.0
 * @category metrics
 */
export const tokensSigned = counter(Metrics.counters.tokensSigned)

/**
 * AWS credential resolutions (the first one and each refresh before expiry).
 *
 * @since 0.1.0
 * @category metrics
 */
export const credentialResolutions = counter(Metrics.counters.credentialResolutions)

/**
 * Physical connections opened by the pool.
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionsOpened = counter(Metrics.counters.connectionsOpened)

/**
 * New-connection attempts retried after DSQL's rate limit (53400) or connection cap (53300).
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectRetries = counter(Metrics.counters.connectRetries)

/**
 * OCC conflicts seen, tagged with `code` (OC000, OC001 or 40001).
 *
 * @since 0.1.0
 * @category metrics
 */
export const occConflicts = counter(Metrics.counters.occConflicts)

/**
 * Transient errors seen under `withOccRetry` (nothing committed, the transaction is run again), tagged with `code`
 * (the SQLSTATE, e.g. XX000).
 *
 * @since 0.1.0
 * @category metrics
 */
export const transientErrors = counter(Metrics.counters.transientErrors)

/**
 * COMMITs that failed otherwise than by an OCC conflict: whether the transaction committed is unknown.
 *
 * @since 0.1.0
 * @category metrics
 */
export const commitOutcomesUnknown = counter(Metrics.counters.commitOutcomesUnknown)

/**
 * Transactions that gave up after the retry policy ran out.
 *
 * @since 0.1.0
 * @category metrics
 */
export const occRetriesExhausted = counter(Metrics.counters.occRetriesExhausted)

/**
 * Attempts per transaction run under `withOccRetry` (1 = committed first time).
 *
 * @since 0.1.0
 * @category metrics
 */
export const occAttempts = Metric.histogram(
  Metrics.occAttempts.name,
  MetricBoundaries.fromIterable(Metrics.occAttempts.boundaries),
  Metrics.occAttempts.description
)
