/**
 * The metrics behind `DsqlMetrics`, defined here so that the machinery recording them imports no public module.
 * Their names, descriptions and boundaries come from `@effect-dsql/core`'s `Metrics`, shared with the Effect 4 line.
 *
 * @internal
 */
import { Metrics } from "@effect-dsql/core"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"

const counter = ({ description, name }: Metrics.Spec) => Metric.counter(name, { description })

export const tokensSigned = counter(Metrics.counters.tokensSigned)
export const credentialResolutions = counter(Metrics.counters.credentialResolutions)
export const connectionsOpened = counter(Metrics.counters.connectionsOpened)
export const connectRetries = counter(Metrics.counters.connectRetries)
export const occConflicts = counter(Metrics.counters.occConflicts)
export const transientErrors = counter(Metrics.counters.transientErrors)
export const commitOutcomesUnknown = counter(Metrics.counters.commitOutcomesUnknown)
export const occRetriesExhausted = counter(Metrics.counters.occRetriesExhausted)

export const occAttempts = Metric.histogram(
  Metrics.occAttempts.name,
  MetricBoundaries.fromIterable(Metrics.occAttempts.boundaries),
  Metrics.occAttempts.description
)
