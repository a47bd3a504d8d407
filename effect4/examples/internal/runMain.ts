/**
 * Runs an example as the process's main program with `@effect/platform-node`'s `NodeRuntime.runMain`: Ctrl-C or
 * SIGTERM interrupts it (its scopes close, the pool ends), a failure is reported, and the exit code says how it ended.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import type { Effect } from "effect"
import { pathToFileURL } from "node:url"

/** Runs `program` when `moduleUrl` (the caller's `import.meta.url`) is the script node was started with. */
export const runMainIfScript = <A, E>(moduleUrl: string, program: Effect.Effect<A, E>): void => {
  if (process.argv[1] !== undefined && moduleUrl === pathToFileURL(process.argv[1]).href) {
    NodeRuntime.runMain(program)
  }
}
