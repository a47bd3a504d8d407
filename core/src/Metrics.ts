/**
 * The metrics both lines record: names, descriptions and histogram boundaries, so one dashboard serves both.
 *
 * @since 0.1.0
 */

/**
 * A metric's name and description.
 *
 * @since 0.1.0
 */
export interface Spec {
  readonly name: string
  readonly description: string
}

/**
 * The counters, by the name each line exports them under. `credentialResolutions` carries the attribute `outcome`
 * (`success`, `failure`), `occConflicts` and `transientErrors` the attribute `code`.
 *
 * @since 0.1.0
 */
export const counters = {
  tokensSigned: { name: "dsql_tokens_signed_total", description: "IAM authentication tokens signed" },
  credentialResolutions: {
    name: "dsql_credential_resolutions_total",
    description: "AWS credential resolutions, first and refreshes"
  },
  connectionsOpened: { name: "dsql_connections_opened_total", description: "physical connections opened" },
  connectRetries: { name: "dsql_connect_retries_total", description: "connection attempts retried after 53300/53400" },
  occConflicts: { name: "dsql_occ_conflicts_total", description: "optimistic concurrency conflicts seen" },
  transientErrors: {
    name: "dsql_transient_errors_total",
    description: "transient errors seen before COMMIT (the transaction was retried)"
  },
  commitOutcomesUnknown: {
    name: "dsql_commit_outcomes_unknown_total",
    description: "COMMITs whose outcome is unknown"
  },
  occRetriesExhausted: {
    name: "dsql_occ_retries_exhausted_total",
    description: "transactions that ran out of OCC retries"
  }
} as const satisfies Record<string, Spec>

/**
 * The histogram of attempts per transaction under `withOccRetry` (1 = committed first time).
 *
 * @since 0.1.0
 */
export const occAttempts: Spec & { readonly boundaries: ReadonlyArray<number> } = {
  name: "dsql_occ_attempts",
  description: "attempts per transaction under withOccRetry",
  boundaries: [1, 2, 3, 4, 5, 6, 8, 10, 15, 20]
}
