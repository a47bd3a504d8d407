/**
 * The faults a running DsqlLocal injects, over its shared state; `reset` restores the limits it started with.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { Faults } from "../DsqlLocal.js"
import type { ConnectionGate } from "./limits.js"
import { invalidLimit } from "./options.js"
import type { ClusterState } from "./state.js"
import { noFaults } from "./state.js"

const millis = (duration: Duration.DurationInput): number => Duration.toMillis(Duration.decode(duration))

export const makeFaults = (state: ClusterState, gate: ConnectionGate): Faults => {
  const initialLimits = { ...state.limits }
  return {
    failNextCommits: (count, code = "OC000") =>
      Effect.sync(() => {
        for (let index = 0; index < count; index++) state.faults.commitFailures.push(code)
      }),
    failCommitShare: (share, code = "OC000") =>
      Effect.sync(() => {
        state.faults.commitFailureShare = { share: Math.min(1, Math.max(0, share)), code }
      }),
    failNextStatements: (count) =>
      Effect.sync(() => {
        state.faults.unavailableStatements = count
      }),
    dropNextQueries: (count) =>
      Effect.sync(() => {
        state.faults.dropQueries = count
      }),
    failNextAsyncJobs: (count, details = "injected by DsqlLocal") =>
      Effect.sync(() => {
        for (let index = 0; index < count; index++) state.faults.asyncJobFailures.push(details)
      }),
    refuseConnectionsFor: (duration) =>
      Effect.sync(() => {
        state.faults.refuseConnectionsUntil = state.now() + millis(duration)
      }),
    setLatency: (duration) =>
      Effect.sync(() => {
        state.faults.latencyMillis = millis(duration)
      }),
    setMaxConnectionAge: (duration) =>
      Effect.sync(() => {
        state.limits.maxConnectionAgeMillis = millis(duration)
      }),
    setMaxTokenAge: (duration) =>
      Effect.sync(() => {
        state.limits.maxTokenAgeSeconds = duration === undefined ? undefined : millis(duration) / 1000
      }),
    setLimits: (limits) =>
      Effect.suspend(() => {
        const limit = invalidLimit(limits)
        if (limit !== undefined) return Effect.dieMessage(`DsqlLocal: limits.${limit} must be a positive number`)
        Object.assign(state.limits, limits)
        return Effect.void
      }),
    reset: Effect.sync(() => {
      Object.assign(state.faults, noFaults())
      Object.assign(state.limits, initialLimits)
      gate.refill()
    })
  }
}
