/**
 * The metrics behind `DsqlMetrics`, defined here so that the machinery recording them imports no public module.
 * Their names, descriptions and boundaries are documented on the public re-exports.
 *
 * @internal
 */
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"

const counter = (name: string, description: string) => Metric.counter(name, { description })

export const tokensSigned = counter("dsql_tokens_signed_total", "IAM authentication tokens signed")
export const credentialResolutions = counter(
  "dsql_credential_resolutions_total",
  "AWS credential resolutions, first and refreshes"
)
export const connectionsOpened = counter("dsql_connections_opened_total", "physical connections opened")
export const connectRetries = counter("dsql_connect_retries_total", "connection attempts retried after 53300/53400")
export const occConflicts = counter("dsql_occ_conflicts_total", "optimistic concurrency conflicts seen")
export const transientErrors = counter(
  "dsql_transient_errors_total",
  "transient errors seen before COMMIT (the transaction was retried)"
)
export const commitOutcomesUnknown = counter("dsql_commit_outcomes_unknown_total", "COMMITs whose outcome is unknown")
export const occRetriesExhausted = counter(
  "dsql_occ_retries_exhausted_total",
  "transactions that ran out of OCC retries"
)

export const occAttempts = Metric.histogram(
  "dsql_occ_attempts",
  MetricBoundaries.fromIterable([1, 2, 3, 4, 5, 6, 8, 10, 15, 20]),
  "attempts per transaction under withOccRetry"
)
