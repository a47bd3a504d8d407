/**
 * Aurora DSQL facts shared by both lines of effect-dsql (Effect 3 and Effect 4) and by DsqlLocal: written once,
 * with no dependency, so no DSQL rule exists in two copies.
 *
 * @since 0.1.0
 */

/**
 * Cluster ids, regions and endpoint host names.
 *
 * @since 0.1.0
 */
export * as Endpoint from "./Endpoint.js"

/**
 * Token durations and connection age.
 *
 * @since 0.1.0
 */
export * as Limits from "./Limits.js"

/**
 * The connection configuration's rules: defaults, validation, messages, connection strings, environment names.
 *
 * @since 0.1.0
 */
export * as Settings from "./Settings.js"

/**
 * SQLSTATE classification: OCC conflicts, transient errors, connection-limit refusals.
 *
 * @since 0.1.0
 */
export * as SqlState from "./SqlState.js"

/**
 * Back-off arithmetic and the retry policies' defaults.
 *
 * @since 0.1.0
 */
export * as Backoff from "./Backoff.js"

/**
 * The metrics both lines record: names, descriptions, boundaries.
 *
 * @since 0.1.0
 */
export * as Metrics from "./Metrics.js"

/**
 * Asynchronous DDL recognition and the migration lease's arithmetic.
 *
 * @since 0.1.0
 */
export * as Migration from "./Migration.js"

/**
 * The token's IAM action and the bounds of a signing request.
 *
 * @since 0.1.0
 */
export * as Token from "./Token.js"

/**
 * The bounded walk along an error's `cause` chain.
 *
 * @since 0.1.0
 */
export * as Causes from "./Causes.js"

/**
 * Errors in words: what a failed connection attempt says to a user.
 *
 * @since 0.1.0
 */
export * as Diagnostics from "./Diagnostics.js"

/**
 * When cached AWS credentials are refreshed.
 *
 * @since 0.1.0
 */
export * as Refresh from "./Refresh.js"

/**
 * How a failed transaction is ended: the ROLLBACK's bound.
 *
 * @since 0.1.0
 */
export * as Transaction from "./Transaction.js"

/**
 * Verify-full TLS options and the process's shared secure contexts.
 *
 * @since 0.1.0
 */
export * as Tls from "./Tls.js"
