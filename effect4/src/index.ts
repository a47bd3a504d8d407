/**
 * effect-dsql for Effect 4: an Effect service layer for Amazon Aurora DSQL.
 *
 * @since 2.0.0
 */

/**
 * @since 2.0.0
 */
export * as TokenSigner from "./TokenSigner.js"
