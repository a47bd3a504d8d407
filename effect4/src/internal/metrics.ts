/**
 * The metrics effect-dsql records, as values the machinery updates (`DsqlMetrics` documents and re-exports them).
 * Names, descriptions and boundaries come from `@effect-dsql/core`, shared with the Effect 3 line.
 *
 * @internal
 */
import { Metrics } from "@effect-dsql/core"
import * as Metric from "effect/Metric"

const counter = ({ description, name }: Metrics.Spec) => Metric.counter(name, { description })

export const tokensSigned = counter(Metrics.counters.tokensSigned)
export const credentialResolutions = counter(Metrics.counters.credentialResolutions)
export const connectionsOpened = counter(Metrics.counters.connectionsOpened)
export const connectRetries = counter(Metrics.counters.connectRetries)
export const occConflicts = counter(Metrics.counters.occConflicts)
export const transientErrors = counter(Metrics.counters.transientErrors)
export const commitOutcomesUnknown = counter(Metrics.counters.commitOutcomesUnknown)
export const occRetriesExhausted = counter(Metrics.counters.occRetriesExhausted)

export const occAttempts = Metric.histogram(Metrics.occAttempts.name, {
  description: Metrics.occAttempts.description,
  boundaries: Metric.boundariesFromIterable(Metrics.occAttempts.boundaries)
})

/** `credentialResolutions` for one outcome (the attribute the Effect 3 line tags it with). */
export const credentialResolution = (outcome: "success" | "failure") =>
  Metric.withAttributes(credentialResolutions, { outcome })

/** Counts one conflict (`occConflicts`) or transient error (`transientErrors`) under its `code`. */
export const countCode = (metric: Metric.Counter<number>, code: string) =>
  Metric.update(Metric.withAttributes(metric, { code }), 1)
