import { assert, describe, layer } from "@effect/vitest"
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  PeriodicExportingMetricReader
} from "@opentelemetry/sdk-metrics"
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Effect } from "effect"
import { DsqlClient } from "effect-dsql"
import { DsqlLocal } from "effect-dsql/local"
import * as Example from "../../examples/opentelemetry.js"
import { withEnv } from "../utils/client.js"
import { logOf } from "./console.js"

const update = [
  "sql.execute: UPDATE otel_account SET balance = balance - $1 WHERE id = $2",
  "sql.execute: UPDATE otel_account SET balance = balance + $1 WHERE id = $2"
]

/** The request's tree when the first two COMMITs lose an OCC conflict: three attempts, each a whole transaction. */
const expectedTree = [
  "POST /transfers",
  ...["(dsql.occ.attempt=1, dsql.occ.code=OC000)", "(dsql.occ.attempt=2, dsql.occ.code=OC000)", "(dsql.occ.attempt=3)"]
    .flatMap((attempt) => [
      `  OccRetry.attempt ${attempt}`,
      "    sql.transaction",
      ...update.map((statement) => `      ${statement}`)
    ])
]

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

describe("examples/opentelemetry", () => {
  layer(DsqlLocal.layer(), { excludeTestServices: true })((it) => {
    it.effect(
      "exports one request's span tree, TokenSigner.sign spans and metrics, with no secret in them",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const spans = new InMemorySpanExporter()
          const metrics = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
          const reader = new PeriodicExportingMetricReader({ exporter: metrics, exportIntervalMillis: 60_000 })

          const { exported, finished } = yield* withEnv(
            server.env,
            Effect.gen(function*() {
              yield* Effect.gen(function*() {
                const [from, to] = yield* Example.setup
                yield* server.faults.failNextCommits(2)
                yield* Example.transfer(from, to, 10)
              }).pipe(Effect.provide(DsqlClient.layer), Effect.ensuring(server.faults.reset))
              yield* Effect.promise(() => reader.forceFlush())
              return { finished: spans.getFinishedSpans(), exported: metrics.getMetrics() }
            }).pipe(Effect.provide(Example.telemetryLayer(new SimpleSpanProcessor(spans), reader)))
          )

          const requests = finished.filter((span) => span.name === Example.requestSpan)
          assert.strictEqual(requests.length, 1)
          assert.isUndefined(requests[0].parentSpanContext, "the request is a root span")
          assert.deepStrictEqual(Example.spanTree(finished, Example.requestSpan), expectedTree)
          const requestTrace = requests[0].spanContext().traceId
          const transactions = finished
            .filter((span) => span.name === "sql.transaction" && span.spanContext().traceId === requestTrace)
            .sort((a, b) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1])
          // The two lost COMMITs end their transaction's span with the failure recorded as an exception event.
          assert.deepStrictEqual(transactions.map((span) => span.events.map((event) => event.name)), [
            ["db.transaction.commit", "exception"],
            ["db.transaction.commit", "exception"],
            ["db.transaction.commit"]
          ])
          for (const transaction of transactions) {
            assert.deepInclude(transaction.attributes, {
              "dsql.region": server.region,
              "dsql.cluster_id": server.clusterId,
              "server.address": server.hostname
            })
          }

          // Where TokenSigner.sign spans attach is about to change; that they exist, and what they carry, holds.
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
          assert.isAtLeast(Example.metricTotal(exported, "dsql_connections_opened_total"), 1)
          assert.isAtLeast(Example.metricTotal(exported, "dsql_occ_conflicts_total"), 2)
          assert.isAtLeast(Example.metricTotal(exported, "dsql_occ_attempts"), 1)

          // No token (a presigned URL) and no secret key anywhere in what would leave the process.
          const text = [...finished.map(exportedText), JSON.stringify(exported)].join("\n")
          assert.include(text, server.hostname, "attributes were serialised")
          for (
            const secret of [server.credentials.secretAccessKey, "X-Amz-Signature", "X-Amz-Credential", "Amz-Date"]
          ) {
            assert.notInclude(text, secret)
          }
        }),
      { timeout: 120_000 }
    )

    it.effect("prints the request's span tree and the metrics it exported", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const lines = yield* withEnv(server.env, logOf(Example.main))
        assert.strictEqual(lines.length, 3)
        assert.strictEqual(
          lines[0],
          [
            "opentelemetry: span tree of one request:",
            "  POST /transfers",
            "    OccRetry.attempt (dsql.occ.attempt=1)",
            "      sql.transaction",
            ...update.map((statement) => `        ${statement}`)
          ].join("\n")
        )
        const signs = /^opentelemetry: (\d+) TokenSigner\.sign span\(s\), one per new connection$/.exec(lines[1])
        assert.isNotNull(signs, lines[1])
        assert.isAtLeast(Number(signs![1]), 1)
        assert.match(
          lines[2],
          new RegExp(
            `^opentelemetry: metrics: dsql_tokens_signed_total \\d+, dsql_connections_opened_total \\d+, ` +
              `dsql_occ_conflicts_total \\d+$`
          )
        )
      }), { timeout: 120_000 })
  })
})
