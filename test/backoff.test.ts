import { assert, describe, it } from "@effect/vitest"
import { Clock, Duration, Effect, FastCheck, Fiber, Random, Ref, Schedule, TestClock } from "effect"
import { backoff } from "../src/internal/backoff.js"
import { connectRetrySchedule } from "../src/internal/pool.js"

const refusal = Object.assign(new Error("rate exceeded"), { code: "53400" })

/** The delays a schedule asks for over `failures` failures (fewer if it stops), the time passing as it says. */
const delaysOf = (schedule: Schedule.Schedule<Duration.Duration, unknown>, failures: number) =>
  Schedule.run(schedule, 0, Array.from({ length: failures + 1 }, () => refusal)).pipe(
    // `Schedule.run` also emits the output of the step that ends the schedule or the input; that one is no delay.
    Effect.map((chunk) => Array.from(chunk, Duration.toMillis).slice(0, -1))
  )

describe("connect back-off", () => {
  it.effect.prop(
    "jitters every delay within [d / 2, d] after the 1 s cap",
    [FastCheck.string({ minLength: 1, maxLength: 12 })],
    ([seed]) =>
      Effect.gen(function*() {
        const delays = yield* delaysOf(connectRetrySchedule("1 hour"), 24).pipe(
          Effect.withRandom(Random.make(seed))
        )
        assert.strictEqual(delays.length, 24)
        delays.forEach((delay, n) => {
          const capped = Math.min(20 * 2 ** n, 1_000)
          assert.isAtLeast(delay, capped / 2, `delay ${n}`)
          assert.isAtMost(delay, capped, `delay ${n}`)
        })
        // From the 7th retry on every delay is capped: clients refused together must still spread out.
        const afterCap = delays.slice(7)
        assert.isAbove(new Set(afterCap).size, afterCap.length / 2, `capped delays in lockstep: ${afterCap}`)
      })
  )

  it.effect.prop(
    "starts no attempt later than the budget after the first refusal, whatever the attempts take",
    [FastCheck.integer({ min: 50, max: 5_000 }), FastCheck.integer({ min: 0, max: 400 })],
    ([budgetMillis, attemptMillis]) =>
      Effect.gen(function*() {
        const starts = yield* Ref.make<Array<number>>([])
        const attempt = Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          yield* Ref.update(starts, (all) => [...all, now])
          yield* Effect.sleep(Duration.millis(attemptMillis))
          return yield* Effect.fail(refusal)
        })
        const fiber = yield* Effect.fork(
          Effect.retry(attempt, connectRetrySchedule(Duration.millis(budgetMillis)))
        )
        yield* TestClock.adjust("1 hour")
        yield* Fiber.await(fiber)
        const [first, ...retries] = yield* Ref.get(starts)
        const firstRefusal = first! + attemptMillis
        assert.isAbove(retries.length, 0)
        for (const start of retries) assert.isAtMost(start - firstRefusal, budgetMillis)
      }),
    { fastCheck: { numRuns: 40 } }
  )
})

describe("backoff", () => {
  it.effect("caps each delay before its jitter, so a jitter of 0 gives the capped exponential", () =>
    Effect.gen(function*() {
      const delays = yield* delaysOf(
        backoff({ base: "10 millis", factor: 3, maxDelay: "100 millis", jitter: 0, maxElapsed: "1 hour" }),
        6
      )
      assert.deepStrictEqual(delays, [10, 30, 90, 100, 100, 100])
    }))

  it.effect("stops after maxRetries and once the next delay would pass maxElapsed", () =>
    Effect.gen(function*() {
      const options = { base: "100 millis", factor: 2, maxDelay: "1 second", jitter: 0 } as const
      assert.deepStrictEqual(yield* delaysOf(backoff({ ...options, maxRetries: 2, maxElapsed: "1 hour" }), 10), [
        100,
        200
      ])
      // 100 + 200 + 400 = 700 ms fits in 1 s; the next attempt would start at 1.5 s.
      assert.deepStrictEqual(yield* delaysOf(backoff({ ...options, maxElapsed: "1 second" }), 10), [100, 200, 400])
    }))
})
