/**
 * `effect-dsql/local`: DsqlLocal for effect-dsql's users. The server lives in `@effect-dsql/local` (install it as a
 * dev dependency); this entry point adds the layers that put a `DsqlClient` on it.
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 */
export * as DsqlLocal from "./DsqlLocal.js"

/**
 * DsqlLocal behind promises, for code that is not an Effect 3 program (re-exported from `@effect-dsql/local`).
 *
 * @since 0.2.0
 */
export { LocalServer } from "@effect-dsql/local"
