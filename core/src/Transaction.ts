/**
 * How both lines end a transaction that failed.
 *
 * @since 0.1.0
 */

/**
 * How long a ROLLBACK may take before its connection is given up: the transaction has already failed, and a session
 * that does not answer (a flow dropped without a reset) would otherwise hold the caller until TCP gives up. The
 * connection is then discarded, never handed to the next caller in an unknown state.
 *
 * @since 0.1.0
 */
export const rollbackTimeoutMillis = 5_000
