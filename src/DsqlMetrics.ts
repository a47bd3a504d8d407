/**
 * The metrics effect-dsql records. Export them to your metrics backend with Effect's `Metric` APIs.
 *
 * @since 0.1.0
 */
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"

/**
 * Authentication tokens signed (one per new physical connection).
 *
 * @since 0.1.0
 * @category metrics
 */
export const tokensSigned = Metric.counter("dsql_tokens_signed_total", {
  description: "IAM authentication tokens signed"
})

/**
 * AWS credential resolutions (the first one and each refresh before expiry).
 *
 * @since 0.1.0
 * @category metrics
 */
export const credentialResolutions = Metric.counter("dsql_credential_resolutions_total", {
  description: "AWS credential resolutions, first and refreshes"
})

/**
 * Physical connections opened by the pool.
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionsOpened = Metric.counter("dsql_connections_opened_total", {
  description: "physical connections opened"
})

/**
 * New-connection attempts retried after DSQL's rate limit (53400) or connection cap (53300).
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectRetries = Metric.counter("dsql_connect_retries_total", {
  description: "connection attempts retried after 53300/53400"
})

/**
 * OCC conflicts seen, tagged with `code` (OC000, OC001 or 40001).
 *
 * @since 0.1.0
 * @category metrics
 */
export const occConflicts = Metric.counter("dsql_occ_conflicts_total", {
  description: "optimistic concurrency conflicts seen"
})

/**
 * Transient errors seen under `withOccRetry` (nothing committed, the transaction is run again), tagged with `code`
 * (the SQLSTATE, e.g. XX000).
 *
 * @since 0.1.0
 * @category metrics
 */
export const transientErrors = Metric.counter("dsql_transient_errors_total", {
  description: "transient errors seen before COMMIT (the transaction was retried)"
})

/**
 * COMMITs that failed otherwise than by an OCC conflict: whether the transaction committed is unknown.
 *
 * @since 0.1.0
 * @category metrics
 */
export const commitOutcomesUnknown = Metric.counter("dsql_commit_outcomes_unknown_total", {
  description: "COMMITs whose outcome is unknown"
})

/**
 * Transactions that gave up after the retry policy ran out.
 *
 * @since 0.1.0
 * @category metrics
 */
export const occRetriesExhausted = Metric.counter("dsql_occ_retries_exhausted_total", {
  description: "transactions that ran out of OCC retries"
})

/**
 * Attempts per transaction run under `withOccRetry` (1 = committed first time).
 *
 * @since 0.1.0
 * @category metrics
 */
export const occAttempts = Metric.histogram(
  "dsql_occ_attempts",
  MetricBoundaries.fromIterable([1, 2, 3, 4, 5, 6, 8, 10, 15, 20]),
  "attempts per transaction under withOccRetry"
)
