import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Option, Random, Ref } from "effect"
import { OccRetry } from "effect-dsql"
import { SqlError } from "effect/sql"
import { TestClock } from "effect/testing"

/** A `SqlError` as `@effect/sql-pg` 4 reports a server error: the server's fields in `reason.cause`. */
const serverError = (code: string, message: string) => {
  const cause = Object.assign(new Error(message), { code, severity: "ERROR" })
  const reason = code === "40001"
    ? new SqlError.SerializationError({ cause, message: "PgConnection: Query failed", operation: "query" })
    : new SqlError.UnknownError({ cause, message: "PgConnection: Query failed", operation: "query" })
  return new SqlError.SqlError({ reason })
}

const conflict = () => serverError("40001", "change conflicts with another transaction (OC000)")

/** Fails with `OccConflict` (classified from a server error) for the first `failures` attempts, recording when each attempt started. */
const flaky = (
  starts: Ref.Ref<Array<number>>,
  failures: number,
  error: () => unknown = () => Option.getOrThrow(OccRetry.classify(conflict()))
) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const all = yield* Ref.updateAndGet(starts, (list) => [...list, now])
    return all.length <= failures ? yield* Effect.fail(error()) : all.length
  })

/** Runs `flaky` under `policy`, moving the test clock far enough for every retry. */
const retried = (failures: number, options?: OccRetry.Options, error?: () => unknown) =>
  Effect.gen(function*() {
    const starts = yield* Ref.make<Array<number>>([])
    const fiber = yield* Effect.forkChild(
      Effect.result(Effect.retry(flaky(starts, failures, error), OccRetry.policy(options)))
    )
    yield* TestClock.adjust("10 minutes")
    const result = yield* Fiber.join(fiber)
    const times = yield* Ref.get(starts)
    return { result, attempts: times.length, delays: times.slice(1).map((time, n) => time - times[n]!) }
  })

describe("OccRetry.classify over @effect/sql-pg 4's SqlError", () => {
  it("reads the marker from the server's message in reason.cause", () => {
    assert.strictEqual(Option.getOrThrow(OccRetry.classify(conflict())).code, "OC000")
    const schema = serverError("40001", "schema has been updated by another transaction, please retry: (OC001)")
    assert.strictEqual(Option.getOrThrow(OccRetry.classify(schema)).code, "OC001")
    assert.strictEqual(Option.getOrThrow(OccRetry.classify(serverError("40001", "conflict"))).code, "40001")
  })

  it("takes a literal code over the message, keeps the SqlError and the server's text", () => {
    const error = serverError("OC001", "change conflicts with another transaction (OC000)")
    const occ = Option.getOrThrow(OccRetry.classify(error, 3))
    assert.strictEqual(occ.code, "OC001")
    assert.strictEqual(occ.cause, error)
    assert.strictEqual(occ.attempts, 3)
    assert.include(occ.message, "(OC000)")
  })

  it("ignores other errors", () => {
    assert.isTrue(Option.isNone(OccRetry.classify(serverError("23505", "duplicate key"))))
    assert.isTrue(Option.isNone(OccRetry.classify(serverError("XX000", "server unavailable"))))
  })
})

describe("OccRetry.policy", () => {
  it.effect("with the defaults: 21 attempts at most, each delay within [d / 2, d] of 40 ms doubling to 1 s", () =>
    Effect.gen(function*() {
      const { attempts, delays, result } = yield* retried(100)
      assert.strictEqual(attempts, 21)
      assert.strictEqual(result._tag, "Failure")
      delays.forEach((delay, n) => {
        const capped = Math.min(40 * 2 ** n, 1_000)
        assert.isAtLeast(delay, capped / 2, `delay ${n}`)
        assert.isAtMost(delay, capped, `delay ${n}`)
      })
    }).pipe(Random.withSeed(1)))

  it.effect("retries a TransientError like a conflict, until success", () =>
    Effect.gen(function*() {
      const transient = () =>
        new OccRetry.TransientError({
          code: "XX000",
          message: "server unavailable",
          attempts: 1,
          cause: serverError("XX000", "server unavailable")
        })
      const { attempts, result } = yield* retried(2, {}, transient)
      assert.strictEqual(attempts, 3)
      assert.deepStrictEqual(result._tag, "Success")
    }))

  it.effect("stops at once on anything else: a raw SqlError, a CommitOutcomeUnknown", () =>
    Effect.gen(function*() {
      const raw = yield* retried(5, {}, conflict)
      assert.strictEqual(raw.attempts, 1)
      const unknown = yield* retried(5, {}, () =>
        new OccRetry.CommitOutcomeUnknown({ message: "unknown", cause: conflict() }))
      assert.strictEqual(unknown.attempts, 1)
    }))

  it.effect("starts no retry past maxElapsed, the coming delay included; maxRetries bounds the count", () =>
    Effect.gen(function*() {
      // 1 s, 2 s (3 s elapsed), then 4 s would end at 7 s > 5 s: three attempts.
      const elapsed = yield* retried(100, {
        baseDelay: "1 second",
        maxDelay: "1 minute",
        jitter: 0,
        maxElapsed: "5 seconds"
      })
      assert.strictEqual(elapsed.attempts, 3)
      assert.deepStrictEqual(elapsed.delays, [1_000, 2_000])
      const counted = yield* retried(100, { maxRetries: 2, jitter: 0 })
      assert.strictEqual(counted.attempts, 3)
      assert.deepStrictEqual(counted.delays, [40, 80])
    }))
})
