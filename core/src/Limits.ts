/**
 * DSQL's limits that a client or a local stand-in must respect.
 *
 * @since 0.1.0
 */

/**
 * The longest an IAM authentication token may be valid: one week, as SigV4 presigning allows.
 *
 * @since 0.1.0
 */
export const maxTokenSeconds = 604_800

/**
 * How long a token is valid unless told otherwise: 15 minutes, as AWS's signer and connectors default.
 *
 * @since 0.1.0
 */
export const defaultTokenSeconds = 900

/**
 * The server ends every connection after one hour, whatever it is doing.
 *
 * @since 0.1.0
 */
export const maxConnectionAgeMillis = 60 * 60_000
