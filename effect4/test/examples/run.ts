/**
 * Running an example in the test's process as its runner would: with DsqlLocal's settings in the environment, and
 * what it printed through `Console.log` captured.
 */
import { Console, Effect } from "effect"
import { withEnv } from "../utils/env.js"

/**
 * Runs `effect` with `env` merged into `process.env` (read by `DsqlClient.layer`'s config and by the AWS credential
 * chain alike), restoring the previous values afterwards. Each test file runs in its own process (`pool: "forks"`).
 */
export const inEnv = <A, E, R>(env: Readonly<Record<string, string>>, effect: Effect.Effect<A, E, R>) =>
  Effect.scoped(Effect.andThen(withEnv(env), effect))

/** The lines `effect` logged through `Console.log`, instead of writing them to stdout. */
export const logOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const console = yield* Console.Console
    yield* Effect.provideService(effect, Console.Console, {
      ...console,
      log: (...args: ReadonlyArray<unknown>) => lines.push(args.map(String).join(" "))
    })
    return lines
  })
