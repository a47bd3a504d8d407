/**
 * The metrics effect-dsql records, with the Effect 3 line's names, descriptions and attributes. Export them to your
 * metrics backend with Effect's `Metric` APIs (`Metric.snapshot`, or an OpenTelemetry exporter).
 *
 * @since 2.0.0
 */
import type * as Metric from "effect/Metric"
import * as Internal from "./internal/metrics.js"

/**
 * `dsql_tokens_signed_total`: authentication tokens signed (one per new physical connection).
 *
 * @stability stable
 * @since 2.0.0
 * @category metrics
 */
export const tokensSigned: Metric.Counter<number> = Internal.tokensSigned

/**
 * `dsql_credential_resolutions_total`: AWS credential resolutions (the first one and each refresh before expiry), with
 * the attribute `outcome` (`success` or `failure`).
 *
 * @stability stable
 * @since 2.0.0
 * @category metrics
 */
export const credentialResolutions: Metric.Counter<number> = Internal.credentialResolutions

/**
 * `dsql_connections_opened_total`: physical connections opened by the pool, each counted when it first serves (one
 * kept warm for `minConnections` counts at its first use).
 *
 * @stability stable
 * @since 2.0.0
 * @category metrics
 */
export const connectionsOpened: Metric.Counter<number> = Internal.connectionsOpened

/**
 * `dsql_connect_retries_total`: new-connection attempts retried after DSQL's rate limit (53400) or connection cap
 * (53300).
 *
 * @stability stable
 * @since 2.0.0
 * @category metrics
 */
export const connectRetries: Metric.Counter<number> = Internal.connectRetries

/**
 * `dsql_occ_conflicts_total`: OCC conflicts seen, with the attribute `code` (OC000, OC001 or 40001).
 *
 * @stability stable
 * @since 2.0.0
 * @category metrics
 */
export const occConflicts: Metric.Counter<number> = Internal.occConflicts

/**
 * `dsql_transient_errors_total`: transient errors seen under `withOccRetry` (nothing committed, the transaction is run
 * again), with the attribute `code` (the SQLSTATE, e.g. XX000).
 *
 * @stability stable
 * @since 2.0.0
 * @category metrics
 */
export const transientErrors: Metric.Counter<number> = Internal.transientErrors

/**
 * `dsql_commit_outcomes_unknown_total`: COMMITs that failed otherwise than by an OCC conflict: whether the transaction
 * committed is unknown.
 *
 * @stability stable
 * @since 2.0.0
 * @category metrics
 */
export const commitOutcomesUnknown: Metric.Counter<number> = Internal.commitOutcomesUnknown

/**
 * `dsql_occ_retries_exhausted_total`: transactions that gave up after the retry policy ran out.
 *
 * @stability stable
 * @since 2.0.0
 * @category metrics
 */
export const occRetriesExhausted: Metric.Counter<number> = Internal.occRetriesExhausted

/**
 * `dsql_occ_attempts`: attempts per transaction run under `withOccRetry` or `execWithRetry` (1 = committed first time).
 *
 * @stability stable
 * @since 2.0.0
 * @category metrics
 */
export const occAttempts: Metric.Histogram<number> = Internal.occAttempts
