/**
 * DsqlLocal's front door: open connections per cluster, the new-connection token bucket and the refuse-connections
 * fault, answered the way DSQL answers them.
 *
 * @internal
 */
import type { ClusterState } from "./state.js"
import type { Frame } from "./wire.js"
import { dsqlError } from "./wire.js"

/**
 * Either a slot for one connection (give it back with `release`) or the FATAL error to answer with.
 *
 * @since 0.1.0
 * @category models
 */
export type Admission =
  | { readonly _tag: "Admitted"; readonly release: () => void }
  | { readonly _tag: "Refused"; readonly error: Frame }

/**
 * The per-server admission state: open connections and the token bucket.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConnectionGate {
  /** Takes a token from the bucket and a connection slot, or says why not. */
  readonly admit: () => Admission
  /** Fills the bucket again (after limits are reset). */
  readonly refill: () => void
}

/**
 * DSQL's answer beyond 10,000 open connections (limits.maxConnections).
 *
 * @since 0.1.0
 * @category errors
 */
export const tooManyConnections = dsqlError({
  code: "53300",
  message: "Unable to accept connection, too many open connections.",
  fatal: true
})

/**
 * DSQL's answer when the new-connection token bucket is empty.
 *
 * @since 0.1.0
 * @category errors
 */
export const rateExceeded = dsqlError({
  code: "53400",
  message: "Unable to accept connection, rate exceeded.",
  fatal: true
})

/**
 * The limits are read on every call, so `setLimits` applies to the next connection; a smaller burst caps the tokens
 * already in the bucket.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeConnectionGate = (state: ClusterState): ConnectionGate => {
  let open = 0
  let tokens = state.limits.connectionBurst
  let refilledAt = state.now()

  const takeToken = (): boolean => {
    const now = state.now()
    const { connectionBurst, connectionRatePerSecond } = state.limits
    tokens = Math.min(connectionBurst, tokens + ((now - refilledAt) / 1000) * connectionRatePerSecond)
    refilledAt = now
    if (tokens < 1) return false
    tokens -= 1
    return true
  }

  const admit = (): Admission => {
    if (!takeToken()) return { _tag: "Refused", error: rateExceeded }
    if (open >= state.limits.maxConnections) return { _tag: "Refused", error: tooManyConnections }
    open += 1
    state.stats.connectionsOpen = open
    let released = false
    return {
      _tag: "Admitted",
      release: () => {
        if (released) return
        released = true
        open -= 1
        state.stats.connectionsOpen = open
      }
    }
  }

  return {
    admit,
    refill: () => {
      tokens = state.limits.connectionBurst
      refilledAt = state.now()
    }
  }
}

/**
 * True while the `refuseConnectionsFor` fault is active: new TCP connections are closed at once.
 *
 * @since 0.1.0
 * @category combinators
 */
export const isRefusingConnections = (state: ClusterState): boolean => state.now() < state.faults.refuseConnectionsUntil
