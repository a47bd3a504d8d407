/**
 * OpenTelemetry with `@effect/opentelemetry` 4: `NodeSdk.layer` exports the library's Effect spans and metrics through
 * whatever span processor and metric reader you give it. One request (a transfer under `withOccRetry`) shows the
 * tree: the request → `OccRetry.attempt` per attempt → `sql.transaction` → its statements and `COMMIT`. No token or
 * secret is in any span or metric: the signer's spans carry host, region, user and action only.
 *
 * In production give `telemetryLayer` a `BatchSpanProcessor` over an OTLP exporter and a
 * `PeriodicExportingMetricReader` over an OTLP metric exporter (`@opentelemetry/exporter-*-otlp-http`), or use
 * `effect/observability`'s `OtlpTracer` / `OtlpMetrics` without the OpenTelemetry SDK. Here both are in memory, and
 * the example prints what they received.
 *
 * Run: `npm run example -w effect4 -- opentelemetry`.
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import type { MetricReader, ResourceMetrics } from "@opentelemetry/sdk-metrics"
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  PeriodicExportingMetricReader
} from "@opentelemetry/sdk-metrics"
import type { ReadableSpan, SpanProcessor } from "@opentelemetry/sdk-trace-base"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Array as Arr, Console, Effect } from "effect"
import { DsqlClient, OccRetry, withOccRetry } from "effect-dsql"
import { SqlClient } from "effect/sql"
import { randomUUID } from "node:crypto"
import { runMainIfScript } from "./internal/runMain.js"

/** OpenTelemetry for the whole program: provide it outside `DsqlClient.layer`, so the client's spans are traced. */
export const telemetryLayer = (spanProcessor: SpanProcessor, metricReader: MetricReader) =>
  NodeSdk.layer(() => ({
    resource: { serviceName: "effect-dsql-example", serviceVersion: "2.0.0" },
    spanProcessor,
    metricReader
  }))

/** The name of the request span, the root of the tree the example prints. */
export const requestSpan = "POST /transfers"

/** The request: a transfer in one transaction, retried on OCC conflicts, under its own span. */
export const transfer = Effect.fn(requestSpan, { kind: "server" })(
  function*(from: string, to: string, amount: number) {
    yield* Effect.annotateCurrentSpan("transfer.amount", amount)
    const sql = yield* SqlClient.SqlClient
    yield* Effect.gen(function*() {
      yield* sql`UPDATE otel_account SET balance = balance - ${amount} WHERE id = ${from}`
      yield* sql`UPDATE otel_account SET balance = balance + ${amount} WHERE id = ${to}`
    }).pipe(withOccRetry())
  }
)

/** The table and two accounts of 100; returns their ids. */
export const setup = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* OccRetry.execWithRetry(
    sql`CREATE TABLE IF NOT EXISTS otel_account (id uuid PRIMARY KEY, balance int NOT NULL)`
  )
  const ids = [randomUUID(), randomUUID()] as const
  yield* OccRetry.execWithRetry(
    sql`INSERT INTO otel_account ${sql.insert(Arr.map(ids, (id) => ({ id, balance: 100 })))}`
  )
  return ids
})

const byStart = (a: ReadableSpan, b: ReadableSpan) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1]

/** The span tree under each span named `root`, one line per span, children indented under their parent. */
export const spanTree = (spans: ReadonlyArray<ReadableSpan>, root: string): Array<string> => {
  const children = new Map<string, Array<ReadableSpan>>()
  for (const span of spans) {
    const parent = span.parentSpanContext?.spanId
    if (parent !== undefined) children.set(parent, [...(children.get(parent) ?? []), span])
  }
  const label = (span: ReadableSpan) => {
    const attributes = ["dsql.occ.attempt", "dsql.occ.code"]
      .filter((key) => span.attributes[key] !== undefined)
      .map((key) => `${key}=${span.attributes[key]}`)
    const statement = span.attributes["db.query.text"]
    const name = statement === undefined ? span.name : `${span.name}: ${String(statement).replace(/\s+/g, " ").trim()}`
    return attributes.length === 0 ? name : `${name} (${attributes.join(", ")})`
  }
  const lines = (span: ReadableSpan, depth: number): Array<string> => [
    `${"  ".repeat(depth)}${label(span)}`,
    ...(children.get(span.spanContext().spanId) ?? []).sort(byStart).flatMap((child) => lines(child, depth + 1))
  ]
  return spans.filter((span) => span.name === root).flatMap((span) => lines(span, 0))
}

/**
 * What a metric exporter last received for `name`, summed over its data points (attributes): a counter's count, a
 * histogram's number of observations; 0 when nothing was recorded.
 */
export const metricTotal = (exported: ReadonlyArray<ResourceMetrics>, name: string): number =>
  (exported.at(-1)?.scopeMetrics ?? [])
    .flatMap((scope) => scope.metrics.filter((metric) => metric.descriptor.name === name))
    .flatMap((metric) => metric.dataPoints as ReadonlyArray<{ readonly value: unknown }>)
    .reduce(
      (sum, point) => sum + (typeof point.value === "number" ? point.value : (point.value as { count: number }).count),
      0
    )

/** The metrics the example prints. */
export const shownMetrics = ["dsql_tokens_signed_total", "dsql_occ_conflicts_total", "dsql_occ_attempts"]

/**
 * The whole example with in-memory exporters: runs the setup and one request on `DsqlClient.layer`, then prints the
 * request's span tree and the metrics the exporters received.
 */
export const main = Effect.suspend(() => {
  const spans = new InMemorySpanExporter()
  const metrics = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
  const reader = new PeriodicExportingMetricReader({ exporter: metrics, exportIntervalMillis: 60_000 })
  return Effect.gen(function*() {
    yield* Effect.flatMap(setup, ([from, to]) => transfer(from, to, 10)).pipe(Effect.provide(DsqlClient.layer))
    const finished = spans.getFinishedSpans()
    yield* Console.log(`opentelemetry: span tree of one request:\n  ${spanTree(finished, requestSpan).join("\n  ")}`)
    yield* Console.log(
      `opentelemetry: ${finished.filter((span) => span.name === "TokenSigner.sign").length} TokenSigner.sign ` +
        `span(s), one per new connection`
    )
    yield* Effect.promise(() => reader.forceFlush())
    yield* Console.log(
      `opentelemetry: metrics: ${
        shownMetrics.map((name) => `${name} ${metricTotal(metrics.getMetrics(), name)}`).join(", ")
      }`
    )
  }).pipe(Effect.provide(telemetryLayer(new SimpleSpanProcessor(spans), reader)))
})

runMainIfScript(import.meta.url, main)
