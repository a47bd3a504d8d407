/**
 * effect-dsql for Effect 4: an Effect service layer for Amazon Aurora DSQL.
 *
 * @since 2.0.0
 */

/**
 * Retrying whole transactions on OCC conflicts and transient errors.
 *
 * @since 2.0.0
 */
export * as OccRetry from "./OccRetry.js"
