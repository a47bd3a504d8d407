/**
 * `@effect/opentelemetry` 4 on DsqlLocal: one request's span tree through in-memory exporters, OCC retries as
 * attempts of their own, the metrics, and no secret in anything exported.
 */
import { assert, describe, layer } from "@effect/vitest"
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  PeriodicExportingMetricReader
} from "@opentelemetry/sdk-metrics"
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Effect, Metric } from "effect"
import { DsqlClient } from "effect-dsql"
import * as Example from "../../examples/opentelemetry.js"
import * as DsqlLocal from "../utils/dsqlLocal.js"
import { inEnv, logOf } from "./run.js"

/** One attempt's transaction: BEGIN, the two statements, COMMIT, and a ROLLBACK after a COMMIT that failed. */
const transaction = (committed: boolean) => [
  "sql.transaction",
  "  BEGIN postgres",
  "  postgres: UPDATE otel_account SET balance = balance - $1 WHERE id = $2",
  "  postgres: UPDATE otel_account SET balance = balance + $1 WHERE id = $2",
  "  COMMIT postgres",
  ...(committed ? [] : ["  ROLLBACK postgres"])
]

/** The request's tree when the first two COMMITs lose an OCC conflict: three attempts, each a whole transaction. */
const expectedTree = [
  "POST /transfers",
  ...[
    ["(dsql.occ.attempt=1, dsql.occ.code=OC000)", false],
    ["(dsql.occ.attempt=2, dsql.occ.code=OC000)", false],
    ["(dsql.occ.attempt=3)", true]
  ].flatMap(([attempt, committed]) => [
    `  OccRetry.attempt ${attempt}`,
    ...transaction(committed as boolean).map((line) => `    ${line}`)
  ])
]

/** Metrics are counted per registry: a fresh one per test, so each counts only its own run. */
const freshMetrics = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.provideService(effect, Metric.MetricRegistry, new Map())

/** Everything an exporter would send about a span, as text. */
const exportedText = (span: ReadableSpan) =>
  JSON.stringify({
    name: span.name,
    attributes: span.attributes,
    events: span.events.map((event) => ({ name: event.name, attributes: event.attributes })),
    links: span.links.map((link) => link.attributes),
    status: span.status,
    resource: span.resource.attributes
  })

const byStart = (a: ReadableSpan, b: ReadableSpan) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1]

describe("examples/opentelemetry", () => {
  layer(DsqlLocal.layer(), { excludeTestServices: true })((it) => {
    it.effect(
      "exports a retried request's span tree and the metrics, with no token or secret in them",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const spans = new InMemorySpanExporter()
          const metrics = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
          const reader = new PeriodicExportingMetricReader({ exporter: metrics, exportIntervalMillis: 60_000 })

          const { exported, finished } = yield* inEnv(
            server.env,
            Effect.gen(function*() {
              yield* Effect.gen(function*() {
                const [from, to] = yield* Example.setup
                server.faults.failNextCommits(2)
                yield* Example.transfer(from, to, 10)
              }).pipe(Effect.provide(DsqlClient.layer), Effect.ensuring(Effect.sync(() => server.faults.reset())))
              yield* Effect.promise(() => reader.forceFlush())
              return { finished: spans.getFinishedSpans(), exported: metrics.getMetrics() }
            }).pipe(Effect.provide(Example.telemetryLayer(new SimpleSpanProcessor(spans), reader)), freshMetrics)
          )

          const requests = finished.filter((span) => span.name === Example.requestSpan)
          assert.strictEqual(requests.length, 1)
          assert.isUndefined(requests[0].parentSpanContext, "the request is a root span")
          assert.strictEqual(requests[0].attributes["transfer.amount"], 10)
          assert.deepStrictEqual(Example.spanTree(finished, Example.requestSpan), expectedTree)

          // The two lost COMMITs fail their COMMIT span and their attempt; the third attempt ends well.
          const trace = requests[0].spanContext().traceId
          const inRequest = (name: string) =>
            finished.filter((span) => span.name === name && span.spanContext().traceId === trace).sort(byStart)
          assert.deepStrictEqual(inRequest("COMMIT postgres").map((span) => span.status.code), [2, 2, 0])
          assert.deepStrictEqual(inRequest("OccRetry.attempt").map((span) => span.status.code), [2, 2, 0])
          for (const statement of inRequest("postgres")) {
            assert.deepInclude(statement.attributes, { "server.address": server.hostname, "db.namespace": "postgres" })
          }

          const signs = finished.filter((span) => span.name === "TokenSigner.sign")
          assert.isAtLeast(signs.length, 1)
          for (const sign of signs) {
            assert.deepInclude(sign.attributes, {
              "dsql.host": server.hostname,
              "dsql.region": server.region,
              "dsql.user": "admin",
              "dsql.action": "DbConnectAdmin"
            })
          }
          assert.strictEqual(Example.metricTotal(exported, "dsql_tokens_signed_total"), signs.length)
          assert.strictEqual(Example.metricTotal(exported, "dsql_occ_conflicts_total"), 2)
          // Observations: the CREATE TABLE and the INSERT of the setup, and the transfer.
          assert.strictEqual(Example.metricTotal(exported, "dsql_occ_attempts"), 3)

          // No token (a presigned URL: its signature, credential, date), no secret key and no password anywhere in what
          // would leave the process.
          const text = [...finished.map(exportedText), JSON.stringify(exported)].join("\n")
          assert.include(text, server.hostname, "attributes were serialised")
          for (
            const secret of [server.credentials.secretAccessKey, "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Date"]
          ) {
            assert.notInclude(text, secret)
          }
          assert.notMatch(text, /password/i)
        }),
      { timeout: 120_000 }
    )

    it.effect("prints the request's span tree and the metrics it exported", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const lines = yield* inEnv(server.env, logOf(Example.main).pipe(freshMetrics))
        assert.strictEqual(lines.length, 3, lines.join("\n"))
        assert.strictEqual(
          lines[0],
          [
            "opentelemetry: span tree of one request:",
            "  POST /transfers",
            "    OccRetry.attempt (dsql.occ.attempt=1)",
            ...transaction(true).map((line) => `      ${line}`)
          ].join("\n")
        )
        const signs = /^opentelemetry: (\d+) TokenSigner\.sign span\(s\), one per new connection$/.exec(lines[1])
        assert.isNotNull(signs, lines[1])
        assert.strictEqual(
          lines[2],
          `opentelemetry: metrics: dsql_tokens_signed_total ${
            signs![1]
          }, dsql_occ_conflicts_total 0, dsql_occ_attempts 3`
        )
      }), { timeout: 120_000 })
  })
})
