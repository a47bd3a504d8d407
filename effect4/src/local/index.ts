/**
 * `effect-dsql/local`: DsqlLocal for Effect 4 programs. The server lives in `@effect-dsql/local` (install it as a dev
 * dependency); this entry point gives it as an Effect 4 service and puts a `DsqlClient` on it.
 *
 * @since 2.0.0
 */

/**
 * @since 2.0.0
 */
export * as DsqlLocal from "./DsqlLocal.js"

/**
 * DsqlLocal behind promises (re-exported from `@effect-dsql/local`).
 *
 * @since 2.0.0
 */
export { LocalServer } from "@effect-dsql/local"
