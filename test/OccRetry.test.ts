import type * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { assert, describe, expectTypeOf, it } from "@effect/vitest"
import { Cause, Duration, Effect, Exit, FastCheck, Fiber, Option, Random, Ref, Schedule, TestClock } from "effect"
import { OccConflict, OccRetry, withOccRetry } from "effect-dsql"
import { runWithClock } from "./utils/clock.js"

/** A pg DatabaseError as node-postgres reports it. */
const databaseError = (code: string, message: string) => Object.assign(new Error(message), { code, severity: "ERROR" })

const conflict = (marker: "OC000" | "OC001") =>
  new SqlError({
    message: "Failed to execute statement",
    cause: databaseError(
      "40001",
      marker === "OC000"
        ? "change conflicts with another transaction (OC000)"
        : "schema has been updated by another transaction (OC001)"
    )
  })

/** Fails with `error` for the first `failures` attempts, then succeeds with the attempt number. */
const flaky = (attempts: Ref.Ref<number>, failures: number, error: SqlError = conflict("OC000")) =>
  Ref.updateAndGet(attempts, (n) => n + 1).pipe(
    Effect.flatMap((n) => n <= failures ? Effect.fail(error) : Effect.succeed(n))
  )

describe("OccRetry.classify", () => {
  it("reads the OC000 and OC001 markers from SQLSTATE 40001", () => {
    assert.strictEqual(Option.getOrThrow(OccRetry.classify(conflict("OC000"))).code, "OC000")
    assert.strictEqual(Option.getOrThrow(OccRetry.classify(conflict("OC001"))).code, "OC001")
  })

  it("accepts older message texts and bare 40001", () => {
    const older = new SqlError({ cause: databaseError("40001", "mutation conflicts with another transaction, retry") })
    assert.strictEqual(Option.getOrThrow(OccRetry.classify(older)).code, "40001")
    const withPlease = new SqlError({
      cause: databaseError("40001", "change conflicts with another transaction, please retry: (OC000)")
    })
    assert.strictEqual(Option.getOrThrow(OccRetry.classify(withPlease)).code, "OC000")
  })

  it("accepts literal OC000 / OC001 codes and walks nested causes", () => {
    const nested = new SqlError({ cause: { cause: databaseError("OC001", "schema changed") } })
    assert.strictEqual(Option.getOrThrow(OccRetry.classify(nested)).code, "OC001")
  })

  it("takes a literal code over a marker in the message", () => {
    for (const [code, named] of [["OC001", "OC000"], ["OC000", "OC001"]] as const) {
      const error = new SqlError({ cause: databaseError(code, `change conflicts with another transaction (${named})`) })
      assert.strictEqual(Option.getOrThrow(OccRetry.classify(error)).code, code)
    }
  })

  it("keeps the SqlError as cause and the server message", () => {
    const error = conflict("OC000")
    const occ = Option.getOrThrow(OccRetry.classify(error, 3))
    assert.strictEqual(occ.cause, error)
    assert.strictEqual(occ.attempts, 3)
    assert.include(occ.message, "(OC000)")
  })

  it("ignores other errors", () => {
    assert.isTrue(Option.isNone(OccRetry.classify(new SqlError({ cause: databaseError("23505", "duplicate key") }))))
    assert.isTrue(Option.isNone(OccRetry.classify(new SqlError({ cause: new Error("socket hang up") }))))
  })

  it.prop("never throws on arbitrary causes", [FastCheck.anything()], ([cause]) => {
    const result = OccRetry.classify(new SqlError({ cause }))
    assert.isTrue(Option.isOption(result))
  })
})

describe("OccRetry.policy", () => {
  const delaysOf = (options: OccRetry.Options, inputs: number) =>
    Schedule.run(
      OccRetry.policy(options),
      0,
      Array.from({ length: inputs }, () =>
        new OccConflict({ code: "OC000", message: "", attempts: 1, cause: conflict("OC000") }))
    ).pipe(
      // `Schedule.run` also emits the output of the step that ends the schedule; that one is not a delay.
      Effect.map((chunk) =>
        Array.from(chunk, Duration.toMillis).slice(0, -1)
      )
    )

  it.effect("grows exponentially and caps each delay without jitter", () =>
    Effect.gen(function*() {
      const delays = yield* delaysOf({
        baseDelay: "10 millis",
        factor: 2,
        maxDelay: "50 millis",
        jitter: 0,
        maxRetries: 6
      }, 10)
      assert.deepStrictEqual(delays, [10, 20, 40, 50, 50, 50])
    }))

  it.effect("stops after maxRetries", () =>
    Effect.gen(function*() {
      const delays = yield* delaysOf({ maxRetries: 3, jitter: 0 }, 10)
      assert.strictEqual(delays.length, 3)
    }))

  it.effect("keeps jittered delays within [(1 - jitter) * d, d]", () =>
    Effect.gen(function*() {
      const options = { baseDelay: "100 millis", factor: 2, maxDelay: "1 second", jitter: 0.5, maxRetries: 5 } as const
      const plain = yield* delaysOf({ ...options, jitter: 0 }, 10)
      const jittered = yield* delaysOf(options, 10).pipe(Effect.withRandom(Random.make("seed-1")))
      jittered.forEach((delay, i) => {
        assert.isAtLeast(delay, plain[i]! * 0.5 - 1e-9)
        assert.isAtMost(delay, plain[i]! + 1e-9)
      })
      assert.notDeepEqual(jittered, plain)
    }))

  it.effect("stops on an input that is not an OccConflict", () =>
    Effect.gen(function*() {
      const outputs = yield* Schedule.run(OccRetry.policy(), 0, [new Error("other"), new Error("other")])
      // Only the output of the step that ends the schedule: no delay, no retry.
      assert.strictEqual(outputs.length, 1)
    }))

  it.effect.prop(
    "attempts never exceed maxRetries + 1",
    [FastCheck.integer({ min: 0, max: 8 }), FastCheck.integer({ min: 0, max: 20 })],
    ([maxRetries, failures]) =>
      Effect.gen(function*() {
        const attempts = yield* Ref.make(0)
        const exit = yield* runWithClock(OccRetry.execWithRetry(flaky(attempts, failures), { maxRetries }))
        const made = yield* Ref.get(attempts)
        assert.strictEqual(made, Math.min(failures, maxRetries) + 1)
        assert.strictEqual(Exit.isSuccess(exit), failures <= maxRetries)
      })
  )
})

describe("OccRetry.execWithRetry", () => {
  it.effect("retries OCC conflicts until the statement succeeds", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const exit = yield* runWithClock(OccRetry.execWithRetry(flaky(attempts, 3)))
      assert.deepStrictEqual(exit, Exit.succeed(4))
      assert.strictEqual(yield* Ref.get(attempts), 4)
    }))

  it.effect("fails with the last OccConflict, counting attempts, when retries run out", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const exit = yield* runWithClock(
        OccRetry.execWithRetry(flaky(attempts, 100, conflict("OC001")), { maxRetries: 2 })
      )
      assert.strictEqual(yield* Ref.get(attempts), 3)
      const error = Exit.isFailure(exit) ? Option.getOrThrow(Cause.failureOption(exit.cause)) : undefined
      assert.instanceOf(error, OccConflict)
      assert.strictEqual((error as OccConflict).code, "OC001")
      assert.strictEqual((error as OccConflict).attempts, 3)
    }))

  it.effect("does not retry other errors and passes them through unchanged", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const unique = new SqlError({ cause: databaseError("23505", "duplicate key value") })
      const exit = yield* runWithClock(OccRetry.execWithRetry(flaky(attempts, 5, unique)))
      assert.strictEqual(yield* Ref.get(attempts), 1)
      assert.isTrue(Exit.isFailure(exit))
      const error = Option.getOrThrow(Cause.failureOption((exit as Exit.Failure<number, SqlError>).cause))
      assert.strictEqual(error._tag, "SqlError")
      assert.strictEqual(error.cause, unique.cause)
    }))

  it.effect("does not retry defects", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const exit = yield* runWithClock(
        OccRetry.execWithRetry(Effect.zipRight(Ref.update(attempts, (n) => n + 1), Effect.die("boom")))
      )
      assert.strictEqual(yield* Ref.get(attempts), 1)
      assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause))
    }))

  it.effect("waits between attempts per the policy", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const fiber = yield* Effect.fork(
        OccRetry.execWithRetry(flaky(attempts, 2), { baseDelay: "100 millis", factor: 2, jitter: 0 })
      )
      yield* TestClock.adjust("99 millis")
      assert.strictEqual(yield* Ref.get(attempts), 1)
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Ref.get(attempts), 2)
      yield* TestClock.adjust("199 millis")
      assert.strictEqual(yield* Ref.get(attempts), 2)
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(fiber), 3)
    }))

  it.effect("stops at once when interrupted during a back-off sleep", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const fiber = yield* Effect.fork(OccRetry.execWithRetry(flaky(attempts, 5), { baseDelay: "1 hour", jitter: 0 }))
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Ref.get(attempts), 1)
      const exit = yield* Fiber.interrupt(fiber)
      assert.isTrue(Exit.isInterrupted(exit))
      yield* TestClock.adjust("2 hours")
      assert.strictEqual(yield* Ref.get(attempts), 1)
    }))

  it.effect("is dual", () =>
    Effect.gen(function*() {
      const a = yield* Ref.make(0)
      const b = yield* Ref.make(0)
      const piped = flaky(a, 1).pipe(OccRetry.execWithRetry({ jitter: 0 }))
      const direct = OccRetry.execWithRetry(flaky(b, 1))
      assert.deepStrictEqual(yield* runWithClock(piped), Exit.succeed(2))
      assert.deepStrictEqual(yield* runWithClock(direct), Exit.succeed(2))
    }))
})

describe("withOccRetry and execWithRetry types", () => {
  const program = Effect.fail("ProgramError" as const) as Effect.Effect<number, "ProgramError", "Requirement">
  type Retried = Effect.Effect<number, "ProgramError" | OccRetry.Failure, "Requirement" | SqlClient.SqlClient>
  type Executed = Effect.Effect<number, "ProgramError" | OccRetry.Failure, "Requirement">

  it("declare SqlError, OccConflict, TransientError and CommitOutcomeUnknown besides the program's errors, in every form", () => {
    expectTypeOf(withOccRetry(program)).toEqualTypeOf<Retried>()
    expectTypeOf(withOccRetry(program, { maxRetries: 1 })).toEqualTypeOf<Retried>()
    expectTypeOf(program.pipe(withOccRetry())).toEqualTypeOf<Retried>()
    expectTypeOf(program.pipe(withOccRetry({ maxRetries: 1 }))).toEqualTypeOf<Retried>()
    expectTypeOf(OccRetry.execWithRetry(program)).toEqualTypeOf<Executed>()
    expectTypeOf(OccRetry.execWithRetry(program, { maxRetries: 1 })).toEqualTypeOf<Executed>()
    expectTypeOf(program.pipe(OccRetry.execWithRetry())).toEqualTypeOf<Executed>()
    expectTypeOf(program.pipe(OccRetry.execWithRetry({ maxRetries: 1 }))).toEqualTypeOf<Executed>()
  })

  it("reject the bare function in a pipe, which would lose the program's types", () => {
    // @ts-expect-error withOccRetry must be called in a pipe: `withOccRetry()`
    expectTypeOf(program.pipe(withOccRetry)).toBeObject()
    // @ts-expect-error execWithRetry must be called in a pipe: `OccRetry.execWithRetry()`
    expectTypeOf(program.pipe(OccRetry.execWithRetry)).toBeObject()
  })
})
