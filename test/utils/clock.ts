/**
 * Driving the TestClock from outside a fiber that sleeps on it.
 */
import { Effect, Fiber, TestClock } from "effect"

/** Runs `effect` in a fiber and moves the TestClock on, a second at a time (at most 200), until it is done. */
export const runWithClock = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(effect)
    for (let i = 0; i < 200 && (yield* Fiber.poll(fiber))._tag === "None"; i++) {
      yield* TestClock.adjust("1 second")
    }
    return yield* Fiber.await(fiber)
  })
