/**
 * What an example printed: its `Console.log` lines, captured instead of written to stdout.
 */
import { Effect } from "effect"

/** Runs `effect` and returns its result with the lines it logged through `Console.log`. */
export const capturingLog = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const console = yield* Effect.console
    const result = yield* Effect.withConsole(effect, {
      ...console,
      log: (...args: ReadonlyArray<unknown>) => Effect.sync(() => lines.push(args.map(String).join(" ")))
    })
    return { result, lines }
  })

/** The lines an example logged. */
export const logOf = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.map(capturingLog(effect), ({ lines }) => lines)
