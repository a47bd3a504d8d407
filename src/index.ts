/**
 * effect-dsql: the Effect service layer for Amazon Aurora DSQL.
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 */
export * as DsqlClient from "./DsqlClient.js"

/**
 * @since 0.1.0
 */
export * as DsqlConfig from "./DsqlConfig.js"

/**
 * @since 0.1.0
 */
export * as DsqlMetrics from "./DsqlMetrics.js"

/**
 * @since 0.1.0
 */
export * as DsqlMigrator from "./DsqlMigrator.js"

/**
 * @since 0.1.0
 */
export * as OccRetry from "./OccRetry.js"

/**
 * @since 0.1.0
 */
export * as TokenSigner from "./TokenSigner.js"

/**
 * @since 0.1.0
 */
export { CommitOutcomeUnknown, OccConflict, TransientError, withOccRetry } from "./OccRetry.js"
