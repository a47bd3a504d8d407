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
 * IAM authentication tokens, signed with `@aws-sdk/dsql-signer` over credentials resolved once per layer.
 *
 * @since 2.0.0
 */
export * as TokenSigner from "./TokenSigner.js"

/**
 * The scoped `SqlClient` and `PgClient` on `@effect/sql-pg` 4: a token per connection, verify-full TLS, DSQL-correct
 * transactions.
 *
 * @since 2.0.0
 */
export * as DsqlClient from "./DsqlClient.js"

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

/**
 * The retry combinator and its error classes, also at the top level as in the Effect 3 line.
 *
 * @since 2.0.0
 */
export { CommitOutcomeUnknown, OccConflict, TransientError, withOccRetry } from "./OccRetry.js"
