/**
 * Expecting a failure without handing the reporter a live value when the expectation is wrong.
 */
import { Effect } from "effect"

/**
 * The error `effect` fails with. A success dies with a short message instead: `Effect.flip` would make the value
 * (a connected pg client, a whole config) the test's failure, for vitest to serialise and print, and the
 * resource it holds would stay reachable from the report.
 */
export const failureOf = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<E, never, R> =>
  Effect.flip(Effect.zipRight(effect, Effect.dieMessage("expected a failure, but it succeeded")))
