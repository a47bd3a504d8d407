/**
 * Runs an example as the process's main program: Ctrl-C or SIGTERM interrupts it (its scopes close, the pool ends),
 * a failure is reported, and the exit code says how it ended. A stand-in for `@effect/platform-node`'s
 * `NodeRuntime.runMain`, which this repository does not install for Effect 4.
 */
import type { Effect } from "effect"
import { Runtime } from "effect"
import { pathToFileURL } from "node:url"

const run = Runtime.makeRunMain(({ fiber, teardown }) => {
  const interrupt = () => fiber.interruptUnsafe()
  process.once("SIGINT", interrupt)
  process.once("SIGTERM", interrupt)
  fiber.addObserver((exit) => {
    process.off("SIGINT", interrupt)
    process.off("SIGTERM", interrupt)
    teardown(exit, (code) => process.exit(code))
  })
})

/** Runs `program` when `moduleUrl` (the caller's `import.meta.url`) is the script node was started with. */
export const runMainIfScript = <A, E>(moduleUrl: string, program: Effect.Effect<A, E>): void => {
  if (process.argv[1] !== undefined && moduleUrl === pathToFileURL(process.argv[1]).href) run(program)
}
