/**
 * effect-dsql for Effect 4: an Effect service layer for Amazon Aurora DSQL.
 *
 * @since 2.0.0
 */

/**
 * Where and how to connect to a cluster: environment, connection string or options, one set of rules.
 *
 * @since 2.0.0
 */
export * as DsqlConfig from "./DsqlConfig.js"

/**
 * Retrying whole transactions on OCC conflicts and transient errors.
 *
 * @since 2.0.0
 */
export * as OccRetry from "./OccRetry.js"

/**
 * The metrics effect-dsql records.
 *
 * @since 2.0.0
 */
export * as DsqlMetrics from "./DsqlMetrics.js"

/**
 * Schema migrations that work on Aurora DSQL.
 *
 * @since 2.0.0
 */
export * as DsqlMigrator from "./DsqlMigrator.js"
