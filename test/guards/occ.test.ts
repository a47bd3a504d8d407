/**
 * What users of OccRetry rely on, stated so that a plausible slip in the classifier or the default policy fails here:
 * only real OCC conflicts are retried, the default delays are jittered within their band, and the policy's bounds
 * (retries, elapsed time) hold.
 */
import { SqlError } from "@effect/sql/SqlError"
import { assert, describe, it } from "@effect/vitest"
import { Cause, Duration, Effect, Exit, FastCheck, Metric, Option, Random, Ref, Schedule, TestClock } from "effect"
import { DsqlMetrics, OccConflict, OccRetry } from "effect-dsql"
import { runWithClock } from "../utils/clock.js"

/** A `SqlError` carrying a pg `DatabaseError` with this SQLSTATE, as @effect/sql-pg reports a failed statement. */
const sqlError = (code: string, message = "could not serialize access") =>
  new SqlError({
    message: "Failed to execute statement",
    cause: Object.assign(new Error(message), { code, severity: "ERROR" })
  })

/** Fails with `error` on every attempt, counting attempts. */
const alwaysFailing = (attempts: Ref.Ref<number>, error: SqlError) =>
  Effect.zipRight(Ref.update(attempts, (n) => n + 1), Effect.fail(error))

/** SQLSTATEs of class 40 other than 40001: deadlock, integrity constraint, statement completion unknown, … */
const otherClass40 = FastCheck.stringMatching(/^40[0-9A-Z]{3}$/).filter((code) => code !== "40001")

const conflictInput = new OccConflict({ code: "OC000", message: "", attempts: 1, cause: sqlError("40001") })

/** The delays `policy(options)` puts between attempts, for `count` conflicts in a row. */
const delaysOf = (options: OccRetry.Options | undefined, count: number) =>
  Schedule.run(OccRetry.policy(options), 0, Array.from({ length: count }, () => conflictInput)).pipe(
    // The last output is the step that ends the schedule, not a delay.
    Effect.map((chunk) => Array.from(chunk, Duration.toMillis).slice(0, -1))
  )

describe("only OCC conflicts are retried", () => {
  for (const code of ["40P01", "40002", "40003", "40000", "40004"]) {
    it.effect(`${code} fails at the first attempt, unchanged`, () =>
      Effect.gen(function*() {
        const attempts = yield* Ref.make(0)
        const error = sqlError(code)
        const exit = yield* runWithClock(OccRetry.execWithRetry(alwaysFailing(attempts, error)))
        assert.strictEqual(yield* Ref.get(attempts), 1)
        assert.isTrue(Exit.isFailure(exit))
        const failure = Option.getOrThrow(Cause.failureOption((exit as Exit.Failure<never, SqlError>).cause))
        assert.strictEqual(failure._tag, "SqlError")
        assert.strictEqual(failure.cause, error.cause)
        assert.isTrue(Option.isNone(OccRetry.classify(error)))
      }))
  }

  it.prop("no other class-40 SQLSTATE is classified as a conflict", [otherClass40], ([code]) => {
    assert.isTrue(Option.isNone(OccRetry.classify(sqlError(code))), code)
    // not even with DSQL's marker in the text: the SQLSTATE decides
    assert.isTrue(Option.isNone(OccRetry.classify(sqlError(code, "deadlock (OC000)"))), code)
  })

  for (
    const [code, message, expected] of [
      ["40001", "change conflicts with another transaction (OC000)", "OC000"],
      ["40001", "schema has been updated by another transaction (OC001)", "OC001"],
      ["40001", "could not serialize access", "40001"],
      ["OC000", "conflict", "OC000"],
      ["OC001", "schema changed", "OC001"]
    ] as const
  ) {
    it.effect(`${code} "${message}" is retried as ${expected}`, () =>
      Effect.gen(function*() {
        const attempts = yield* Ref.make(0)
        const exit = yield* runWithClock(
          OccRetry.execWithRetry(alwaysFailing(attempts, sqlError(code, message)), { maxRetries: 2 })
        )
        assert.strictEqual(yield* Ref.get(attempts), 3)
        const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
        assert.isTrue(Option.isSome(failure) && failure.value instanceof OccConflict)
        assert.strictEqual((Option.getOrThrow(failure) as OccConflict).code, expected)
      }))
  }
})

describe("the default policy", () => {
  // Documented: 40 ms doubling to at most 1 s, up to 20 retries, each delay cut at random by up to half.
  const unjittered = Array.from({ length: 20 }, (_, n) => Math.min(40 * 2 ** n, 1000))

  it.effect("jitters every run's delays within [d / 2, d] of 40 ms doubling to 1 s", () =>
    Effect.gen(function*() {
      const ratios: Array<number> = []
      for (let seed = 0; seed < 20; seed++) {
        const delays = yield* delaysOf(undefined, 30).pipe(Effect.withRandom(Random.make(`occ-${seed}`)))
        assert.strictEqual(delays.length, unjittered.length, "20 retries")
        delays.forEach((delay, n) => {
          assert.isAtLeast(delay, unjittered[n]! / 2 - 1e-9, `seed ${seed}, delay ${n}`)
          assert.isAtMost(delay, unjittered[n]! + 1e-9, `seed ${seed}, delay ${n}`)
          ratios.push(delay / unjittered[n]!)
        })
        assert.notDeepEqual(delays, unjittered, `seed ${seed}: no jitter`)
      }
      // The band is used, not a sliver of it: clients that collided spread over the whole half.
      assert.isBelow(Math.min(...ratios), 0.6)
      assert.isAbove(Math.max(...ratios), 0.9)
    }))

  it.effect("makes at most 21 attempts", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      yield* runWithClock(OccRetry.execWithRetry(alwaysFailing(attempts, sqlError("40001"))))
      assert.strictEqual(yield* Ref.get(attempts), 21)
    }))

  it.effect("starts no retry once 30 seconds have passed since the first conflict", () =>
    Effect.gen(function*() {
      const starts = yield* Ref.make<Array<number>>([])
      const attempts = yield* Ref.make(0)
      // Each attempt takes 4 s of (test) time: the 30 s budget ends the retries long before 20 of them.
      const slow = Effect.gen(function*() {
        const now = yield* TestClock.currentTimeMillis
        yield* Ref.update(starts, (all) => [...all, now])
        yield* TestClock.sleep("4 seconds")
        return yield* alwaysFailing(attempts, sqlError("40001"))
      })
      const exit = yield* runWithClock(OccRetry.execWithRetry(slow))
      assert.isTrue(Exit.isFailure(exit))
      const [first, ...retries] = yield* Ref.get(starts)
      const firstConflict = first! + 4_000
      assert.isBelow(retries.length, 10, "the time budget, not the retry count, ended it")
      const lastRetry = retries[retries.length - 1]! - firstConflict
      assert.isAtMost(lastRetry, 30_000 + 1_000, "no retry starts past the budget (plus one delay of at most 1 s)")
      assert.isAtLeast(lastRetry, 30_000 - 4_000 - 1_000, "retries go on until the budget is nearly spent")
    }))
})

describe("policy options", () => {
  it.effect.prop(
    "attempts never exceed maxRetries + 1, whatever the options",
    [
      FastCheck.integer({ min: 0, max: 12 }),
      FastCheck.integer({ min: 1, max: 200 }),
      FastCheck.double({ min: 1, max: 4, noNaN: true }),
      FastCheck.double({ min: 0, max: 1, noNaN: true })
    ],
    ([maxRetries, baseMillis, factor, jitter]) =>
      Effect.gen(function*() {
        const attempts = yield* Ref.make(0)
        yield* runWithClock(
          OccRetry.execWithRetry(alwaysFailing(attempts, sqlError("40001")), {
            maxRetries,
            baseDelay: Duration.millis(baseMillis),
            factor,
            jitter,
            maxElapsed: Duration.hours(1)
          })
        )
        assert.strictEqual(yield* Ref.get(attempts), maxRetries + 1)
      }),
    { fastCheck: { numRuns: 40 } }
  )

  it.effect.prop(
    "every delay lies in [(1 - jitter) · min(base · factor^n, maxDelay), min(base · factor^n, maxDelay)]",
    [
      FastCheck.integer({ min: 1, max: 500 }),
      FastCheck.integer({ min: 1, max: 5_000 }),
      FastCheck.double({ min: 1, max: 3, noNaN: true }),
      FastCheck.double({ min: 0, max: 1, noNaN: true }),
      FastCheck.string()
    ],
    ([baseMillis, maxMillis, factor, jitter, seed]) =>
      Effect.gen(function*() {
        const options = {
          baseDelay: Duration.millis(baseMillis),
          maxDelay: Duration.millis(maxMillis),
          factor,
          jitter,
          maxRetries: 8,
          // the elapsed-time budget is not what this property is about
          maxElapsed: Duration.hours(1)
        }
        const delays = yield* delaysOf(options, 12).pipe(Effect.withRandom(Random.make(seed)))
        assert.strictEqual(delays.length, 8)
        delays.forEach((delay, n) => {
          const ceiling = Math.min(baseMillis * factor ** n, maxMillis)
          assert.isAtMost(delay, ceiling + 1e-6)
          assert.isAtLeast(delay, (1 - jitter) * ceiling - 1e-6)
        })
      }),
    { fastCheck: { numRuns: 100 } }
  )
})

describe("metrics", () => {
  const conflicts = (code: string) =>
    Effect.map(Metric.value(Metric.tagged(DsqlMetrics.occConflicts, "code", code)), (state) => state.count)
  const exhausted = Effect.map(Metric.value(DsqlMetrics.occRetriesExhausted), (state) => state.count)
  const attemptsHistogram = Metric.value(DsqlMetrics.occAttempts)

  it.effect("count conflicts by code, give-ups, and attempts per run", () =>
    Effect.gen(function*() {
      const before = {
        oc001: yield* conflicts("OC001"),
        exhausted: yield* exhausted,
        histogram: yield* attemptsHistogram
      }
      const attempts = yield* Ref.make(0)
      const schemaConflict = sqlError("40001", "schema has been updated by another transaction (OC001)")
      yield* runWithClock(OccRetry.execWithRetry(alwaysFailing(attempts, schemaConflict), { maxRetries: 2 }))
      const flaky = Ref.updateAndGet(attempts, (n) => n + 1).pipe(
        Effect.flatMap((n) => n <= 4 ? Effect.fail(schemaConflict) : Effect.succeed(n))
      )
      yield* runWithClock(OccRetry.execWithRetry(flaky))
      const histogram = yield* attemptsHistogram
      assert.strictEqual((yield* conflicts("OC001")) - before.oc001, 3 + 1, "every conflict seen, by its code")
      assert.strictEqual((yield* exhausted) - before.exhausted, 1, "only the run that gave up")
      assert.strictEqual(histogram.count - before.histogram.count, 2, "one observation per run")
      assert.strictEqual(histogram.sum - before.histogram.sum, 3 + 2, "3 attempts, then 2")
    }))
})
