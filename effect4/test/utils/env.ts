/**
 * Environment variables set for a test's scope.
 */
import { Effect } from "effect"

const setEnv = (vars: Record<string, string | undefined>) => {
  for (const [name, value] of Object.entries(vars)) {
    if (value === undefined) delete process.env[name]
    else process.env[name] = value
  }
}

/** Sets (or, for `undefined`, removes) the variables until the scope closes, then restores what was there. */
export const withEnv = (vars: Record<string, string | undefined>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const saved = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]))
      setEnv(vars)
      return saved
    }),
    (saved) => Effect.sync(() => setEnv(saved))
  )
