import { Refresh } from "@effect-dsql/core"
import { assert, describe, it } from "@effect/vitest"

const minute = 60_000

describe("Refresh", () => {
  it("attempts a refresh refreshBefore ahead of expiry, never for credentials that do not expire", () => {
    assert.strictEqual(Refresh.attemptAt(60 * minute, 0, 5 * minute), 55 * minute)
    assert.strictEqual(Refresh.attemptAt(undefined, 0, 5 * minute), undefined)
  })

  it("backs off half the remaining lifetime, a second at least, once inside the refresh window", () => {
    assert.strictEqual(Refresh.attemptAt(4 * minute, 0, 5 * minute), 2 * minute)
    assert.strictEqual(Refresh.backOff(1_500, 1_000), 1_000 + Refresh.minAttemptIntervalMillis)
  })

  it("hands out cached credentials while they work and no attempt is due", () => {
    assert.isTrue(Refresh.isFresh(10 * minute, 5 * minute, minute))
    assert.isFalse(Refresh.isFresh(10 * minute, 5 * minute, 5 * minute), "an attempt is due")
    assert.isFalse(Refresh.isFresh(minute, undefined, minute), "expired")
    assert.isTrue(Refresh.isFresh(undefined, undefined, Number.MAX_SAFE_INTEGER), "never expire")
  })
})
