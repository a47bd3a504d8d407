import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { assert, describe, it, layer } from "@effect/vitest"
import { Cause, Effect, Exit, Metric, Option, Ref, Tracer } from "effect"
import { DsqlMetrics, OccRetry, withOccRetry } from "effect-dsql"
import { DsqlLocal } from "effect-dsql/local"
import { backendQuery, clientLayer, uniqueTable } from "./utils/client.js"

const transientCount = Effect.map(
  Metric.value(Metric.tagged(DsqlMetrics.transientErrors, "code", "XX000")),
  (state) => state.count
)
const unknownCount = Effect.map(Metric.value(DsqlMetrics.commitOutcomesUnknown), (state) => state.count)

/** Runs `effect` with a tracer that records every span it starts, over the current one. */
const recordingSpans = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const base = yield* Effect.tracer
    const spans: Array<Tracer.Span> = []
    const tracer = Tracer.make({
      ...base,
      span: (...args) => {
        const span = base.span(...args)
        spans.push(span)
        return span
      }
    })
    const exit = yield* Effect.exit(Effect.withTracer(effect, tracer))
    return { exit, spans }
  })

/** The failure of `exit`, which must be a typed failure. */
const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  assert.isTrue(Exit.isFailure(exit), "expected a failure")
  return Option.getOrThrow(Cause.failureOption((exit as Exit.Failure<A, E>).cause))
}

/** A transaction that counts its attempts and inserts `id` into `table`. */
const insertCounting = (
  table: string,
  attempts: Ref.Ref<number>,
  id: number,
  body: Effect.Effect<void> = Effect.void
) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* Ref.update(attempts, (n) => n + 1)
    yield* sql`INSERT INTO ${sql(table)} VALUES (${id})`
    yield* body
  })

const rowsOf = (server: DsqlLocal.Server, table: string) =>
  Effect.map(
    backendQuery<{ id: number }>(server, `SELECT id FROM ${table} ORDER BY id`),
    (rows) => rows.map((r) => r.id)
  )

describe("transient errors and unknown COMMIT outcomes on DsqlLocal", () => {
  layer(DsqlLocal.layer(), { excludeTestServices: true })((it) => {
    const setup = (name: string) =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        yield* server.faults.reset
        const table = uniqueTable(name)
        yield* backendQuery(server, `CREATE TABLE ${table} (id int PRIMARY KEY)`)
        return { server, table, attempts: yield* Ref.make(0) }
      })

    it.effect("XX000 before COMMIT is a TransientError: retried, committed once, counted and named on the span", () =>
      Effect.gen(function*() {
        const { attempts, server, table } = yield* setup("transient_retry")
        const before = yield* transientCount
        yield* server.faults.failNextStatements(1)
        const { exit, spans } = yield* recordingSpans(
          insertCounting(table, attempts, 1).pipe(
            withOccRetry({ baseDelay: "1 millis" }),
            Effect.provide(clientLayer(server))
          )
        )
        assert.isTrue(Exit.isSuccess(exit), String(exit))
        assert.strictEqual(yield* Ref.get(attempts), 2)
        assert.deepStrictEqual(yield* rowsOf(server, table), [1])
        assert.strictEqual((yield* transientCount) - before, 1)
        const tried = spans.filter((span) => span.name === "OccRetry.attempt")
        assert.deepStrictEqual(
          tried.map((span) => span.attributes.get("dsql.transient.code")),
          ["XX000", undefined]
        )
      }))

    it.effect("fails with the last TransientError when the retries run out, nothing committed", () =>
      Effect.gen(function*() {
        const { attempts, server, table } = yield* setup("transient_exhausted")
        yield* server.faults.failNextStatements(3)
        const exit = yield* insertCounting(table, attempts, 1).pipe(
          withOccRetry({ maxRetries: 2, baseDelay: "1 millis" }),
          Effect.provide(clientLayer(server)),
          Effect.exit
        )
        const error = failureOf(exit)
        assert.strictEqual(error._tag, "TransientError")
        assert.isTrue(OccRetry.isTransientError(error) && error.code === "XX000" && error.attempts === 3)
        assert.strictEqual(yield* Ref.get(attempts), 3)
        assert.deepStrictEqual(yield* rowsOf(server, table), [])
      }))

    it.effect("XX000 at COMMIT is CommitOutcomeUnknown: one attempt, never retried", () =>
      Effect.gen(function*() {
        const { attempts, server, table } = yield* setup("unknown_xx000")
        const before = yield* unknownCount
        yield* server.faults.failNextCommits(1, "XX000")
        const exit = yield* insertCounting(table, attempts, 1).pipe(
          withOccRetry({ baseDelay: "1 millis" }),
          Effect.provide(clientLayer(server)),
          Effect.exit
        )
        const error = failureOf(exit)
        assert.isTrue(OccRetry.isCommitOutcomeUnknown(error), String(error))
        assert.include(error.message, "COMMIT outcome unknown")
        assert.include(error.message, "server unavailable")
        assert.strictEqual(yield* Ref.get(attempts), 1)
        assert.strictEqual((yield* unknownCount) - before, 1)
      }))

    it.effect("a connection lost during COMMIT is CommitOutcomeUnknown, never retried", () =>
      Effect.gen(function*() {
        const { attempts, server, table } = yield* setup("unknown_dropped")
        // The body's last act: the next query on the server, its COMMIT, is answered by dropping the connection.
        const exit = yield* insertCounting(table, attempts, 1, server.faults.dropNextQueries(1)).pipe(
          withOccRetry({ baseDelay: "1 millis" }),
          Effect.provide(clientLayer(server)),
          Effect.exit
        )
        const error = failureOf(exit)
        assert.isTrue(OccRetry.isCommitOutcomeUnknown(error), String(error))
        assert.strictEqual(yield* Ref.get(attempts), 1)
      }))

    it.effect("a plain withTransaction fails with a SqlError whose cause is the CommitOutcomeUnknown", () =>
      Effect.gen(function*() {
        const { server, table } = yield* setup("unknown_plain")
        yield* server.faults.failNextCommits(1, "XX000")
        const exit = yield* Effect.flatMap(
          SqlClient.SqlClient,
          (sql) => sql.withTransaction(sql`INSERT INTO ${sql(table)} VALUES (1)`)
        ).pipe(
          Effect.provide(clientLayer(server)),
          Effect.exit
        )
        const error = failureOf(exit)
        assert.isTrue(error instanceof SqlError && OccRetry.isCommitOutcomeUnknown(error.cause), String(error))
      }))

    it.effect("an OCC conflict at COMMIT is still a retried OccConflict, not an unknown outcome", () =>
      Effect.gen(function*() {
        const { attempts, server, table } = yield* setup("occ_at_commit")
        yield* server.faults.failNextCommits(1, "OC000")
        const exit = yield* insertCounting(table, attempts, 1).pipe(
          withOccRetry({ baseDelay: "1 millis" }),
          Effect.provide(clientLayer(server)),
          Effect.exit
        )
        assert.isTrue(Exit.isSuccess(exit), String(exit))
        assert.strictEqual(yield* Ref.get(attempts), 2)
        assert.deepStrictEqual(yield* rowsOf(server, table), [1])
      }))
  })
})

describe("execWithRetry and transient errors", () => {
  const unavailable = () =>
    new SqlError({
      message: "Failed to execute statement",
      cause: Object.assign(new Error("server unavailable"), { code: "XX000" })
    })

  it.effect("alone (autocommit), a statement that met XX000 is not retried: the server may have applied it", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const exit = yield* Effect.exit(
        OccRetry.execWithRetry(Effect.zipRight(Ref.update(attempts, (n) => n + 1), Effect.fail(unavailable())))
      )
      assert.strictEqual(failureOf(exit)._tag, "SqlError")
      assert.strictEqual(yield* Ref.get(attempts), 1)
    }))

  it("isRetryable (the policy's filter): TransientError yes; a raw XX000 SqlError or CommitOutcomeUnknown no", () => {
    const transient = new OccRetry.TransientError({
      code: "XX000",
      message: "server unavailable",
      attempts: 1,
      cause: unavailable()
    })
    assert.isTrue(OccRetry.isRetryable(transient))
    assert.isFalse(OccRetry.isRetryable(unavailable()))
    assert.isFalse(
      OccRetry.isRetryable(new OccRetry.CommitOutcomeUnknown({ message: "unknown", cause: unavailable() }))
    )
  })
})
