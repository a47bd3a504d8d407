/**
 * The metrics effect-dsql records. Export them to your metrics backend with Effect's `Metric` APIs.
 *
 * @since 0.1.0
 */
import type * as Metric from "effect/Metric"
import * as internal from "./internal/metrics.js"

/**
 * `dsql_tokens_signed_total`: authentication tokens signed (one per new physical connection).
 *
 * @since 0.1.0
 * @category metrics
 */
export const tokensSigned: Metric.Metric.Counter<number> = internal.tokensSigned

/**
 * `dsql_credential_resolutions_total`: AWS credential resolutions (the first one and each refresh before expiry).
 *
 * @since 0.1.0
 * @category metrics
 */
export const credentialResolutions: Metric.Metric.Counter<number> = internal.credentialResolutions

/**
 * `dsql_connections_opened_total`: physical connections opened by the pool.
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionsOpened: Metric.Metric.Counter<number> = internal.connectionsOpened

/**
 * `dsql_connect_retries_total`: new-connection attempts retried after DSQL's rate limit (53400) or connection cap
 * (53300).
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectRetries: Metric.Metric.Counter<number> = internal.connectRetries

/**
 * `dsql_occ_conflicts_total`: OCC conflicts seen, tagged with `code` (OC000, OC001 or 40001).
 *
 * @since 0.1.0
 * @category metrics
 */
export const occConflicts: Metric.Metric.Counter<number> = internal.occConflicts

/**
 * `dsql_transient_errors_total`: transient errors seen under `withOccRetry` (nothing committed, the transaction is run
 * again), tagged with `code` (the SQLSTATE, e.g. XX000).
 *
 * @since 0.1.0
 * @category metrics
 */
export const transientErrors: Metric.Metric.Counter<number> = internal.transientErrors

/**
 * `dsql_commit_outcomes_unknown_total`: COMMITs that failed otherwise than by an OCC conflict: whether the transaction
 * committed is unknown.
 *
 * @since 0.1.0
 * @category metrics
 */
export const commitOutcomesUnknown: Metric.Metric.Counter<number> = internal.commitOutcomesUnknown

/**
 * `dsql_occ_retries_exhausted_total`: transactions that gave up after the retry policy ran out.
 *
 * @since 0.1.0
 * @category metrics
 */
export const occRetriesExhausted: Metric.Metric.Counter<number> = internal.occRetriesExhausted

/**
 * `dsql_occ_attempts`: attempts per transaction run under `withOccRetry` (1 = committed first time).
 *
 * @since 0.1.0
 * @category metrics
 */
export const occAttempts: Metric.Metric.Histogram<number> = internal.occAttempts
