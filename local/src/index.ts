/**
 * `@effect-dsql/local`: DsqlLocal, an Aurora DSQL-compatible endpoint in front of a real PostgreSQL, for the test
 * suites of any DSQL client. Importing it loads none of the heavy packages (the embedded PostgreSQL, the SQL parser,
 * the certificate builder): starting a server does.
 *
 * - `LocalServer`: promises in, plain values out, for any program (node-postgres, postgres.js, Drizzle, Effect 4).
 * - `DsqlLocal`: the same server as Effect 3 effects and layers.
 * - The `dsql-local` command: a server for other languages' test suites (`npx dsql-local --json`).
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
 * @since 0.1.0
 */
export * as LocalServer from "./LocalServer.js"
