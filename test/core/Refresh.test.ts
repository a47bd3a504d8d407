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

  describe("the cache's transitions", () => {
    const credentials = (expiresAt: number | undefined) => ({ expiresAt })
    const failure = "provider down"

    it("caches what was resolved, due for refresh refreshBefore ahead of its expiry", () => {
      const next = Refresh.afterAttempt(
        Refresh.empty,
        { _tag: "Resolved", credentials: credentials(60 * minute) },
        0,
        5 * minute
      )
      assert.deepStrictEqual(next, { _tag: "Cached", credentials: credentials(60 * minute), attemptAt: 55 * minute })
      assert.deepStrictEqual(Refresh.fresh(next, minute), credentials(60 * minute))
      assert.isUndefined(Refresh.fresh(next, 55 * minute), "a refresh is due")
    })

    it("a failed refresh keeps usable credentials, the next attempt backed off; with nothing usable it is the state", () => {
      const cached = { _tag: "Cached", credentials: credentials(10 * minute), attemptAt: 5 * minute } as const
      const kept = Refresh.afterAttempt(cached, { _tag: "Failed", failure }, 6 * minute, 5 * minute)
      assert.deepStrictEqual(kept, { _tag: "Cached", credentials: credentials(10 * minute), attemptAt: 8 * minute })
      const expired = Refresh.afterAttempt(cached, { _tag: "Failed", failure }, 10 * minute, 5 * minute)
      assert.deepStrictEqual(expired, { _tag: "Failed", failure })
      assert.deepStrictEqual(Refresh.afterAttempt(Refresh.empty, { _tag: "Failed", failure }, 0, 5 * minute), {
        _tag: "Failed",
        failure
      })
    })

    it("after waiting for the lock: attempt if nothing changed, else share the other attempt's outcome", () => {
      const seen = { _tag: "Cached", credentials: credentials(10 * minute), attemptAt: 5 * minute } as const
      assert.deepStrictEqual(Refresh.afterWaiting(seen, seen, 6 * minute), { _tag: "Attempt" })
      const renewed = { _tag: "Cached", credentials: credentials(70 * minute), attemptAt: 65 * minute } as const
      assert.deepStrictEqual(Refresh.afterWaiting(seen, renewed, 6 * minute), {
        _tag: "Serve",
        credentials: credentials(70 * minute)
      })
      assert.deepStrictEqual(Refresh.afterWaiting(seen, { _tag: "Failed", failure }, 6 * minute), {
        _tag: "Fail",
        failure
      })
      const stale = { _tag: "Cached", credentials: credentials(minute), attemptAt: undefined } as const
      assert.deepStrictEqual(Refresh.afterWaiting(seen, stale, 2 * minute), { _tag: "Attempt" }, "nothing usable")
    })
  })
})
