/**
 * `effect-dsql/local`: DsqlLocal, a DSQL-compatible endpoint in front of a real PostgreSQL.
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 */
export * as DsqlLocal from "./DsqlLocal.js"
