import { Backoff } from "@effect-dsql/core"
import { assert, describe, it } from "@effect/vitest"
import { FastCheck } from "effect"

describe("Backoff", () => {
  it("the OCC defaults the README states: 20 retries, 40 ms doubling to 1 s, half jitter, 30 s", () => {
    assert.deepStrictEqual(Backoff.occRetry, {
      maxRetries: 20,
      baseDelayMillis: 40,
      maxDelayMillis: 1_000,
      factor: 2,
      jitter: 0.5,
      maxElapsedMillis: 30_000
    })
  })

  it("grows by the factor and stops at the cap", () => {
    const delays = Array.from({ length: 8 }, (_, n) => Backoff.cappedDelayMillis(Backoff.occRetry, n))
    assert.deepStrictEqual(delays, [40, 80, 160, 320, 640, 1_000, 1_000, 1_000])
    assert.strictEqual(Backoff.cappedDelayMillis(Backoff.connectRetry, 0), 20)
    assert.strictEqual(Backoff.cappedDelayMillis(Backoff.leaseWait, 1), 100)
  })

  it.prop(
    "jitter keeps a delay within [d * (1 - jitter), d], jitter clamped to 0..1",
    [
      FastCheck.double({ min: 0, max: 10_000, noNaN: true }),
      FastCheck.double({ min: -2, max: 3, noNaN: true }),
      FastCheck.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })
    ],
    ([delay, jitter, random]) => {
      const jittered = Backoff.jitteredMillis(delay, jitter, random)
      assert.isAtMost(jittered, delay)
      assert.isAtLeast(jittered, delay * (1 - Backoff.clampJitter(jitter)) - 1e-9)
    }
  )

  it("no jitter leaves the delay; full jitter spans 0..d", () => {
    assert.strictEqual(Backoff.jitteredMillis(100, 0, 0.7), 100)
    assert.strictEqual(Backoff.jitteredMillis(100, 1, 0), 100)
    assert.closeTo(Backoff.jitteredMillis(100, 1, 0.999), 0.1, 1e-9)
  })

  it("a retry may start exactly at the budget, not after", () => {
    assert.isTrue(Backoff.withinBudget(29_000, 1_000, 30_000))
    assert.isFalse(Backoff.withinBudget(29_001, 1_000, 30_000))
  })
})
