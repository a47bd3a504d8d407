/**
 * `npm run example -- <name> [args…]`: runs `examples/<name>.ts` (or `examples/alternatives/<name>.ts`) in its own
 * process, exactly as `npx tsx examples/<name>.ts [args…]` would. With neither DSQL_HOST nor DSQL_URL set, it first
 * starts DsqlLocal and hands the example its settings (`server.env`) in the environment.
 *
 * `--effect4` first (effect4's `npm run example`): the Effect 4 line's examples, run from `effect4/` so that tsx reads
 * its tsconfig and `effect-dsql` is the Effect 4 package.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Console, Data, Effect, Exit } from "effect"
import { DsqlLocal } from "effect-dsql/local"
import { spawn } from "node:child_process"
import { existsSync, readdirSync } from "node:fs"
import { join, relative } from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
const effect4 = process.argv[2] === "--effect4"
const [name, ...exampleArgs] = process.argv.slice(effect4 ? 3 : 2)
const lineDir = effect4 ? join(root, "effect4") : root
const examplesDir = join(lineDir, "examples")
const usage = effect4 ? "npm run example -w effect4 -- <name>" : "npm run example -- <name>"

class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

const exampleNames = (): Array<string> =>
  ["", "alternatives"].flatMap((dir) =>
    readdirSync(join(examplesDir, dir))
      .filter((file) => file.endsWith(".ts"))
      .map((file) => file.slice(0, -".ts".length))
  )

const findExample = (name: string | undefined): Effect.Effect<string, UsageError> => {
  const candidates = name === undefined
    ? []
    : [join(examplesDir, `${name}.ts`), join(examplesDir, "alternatives", `${name}.ts`)]
  const found = candidates.find(existsSync)
  return found === undefined
    ? Effect.fail(
      new UsageError({
        message: `usage: ${usage}, one of: ${exampleNames().join(", ")}`
      })
    )
    : Effect.succeed(found)
}

/**
 * Runs the example with tsx in a child process, with the arguments that followed its name; its exit code is the
 * result.
 */
const runExample = (file: string, env: NodeJS.ProcessEnv) =>
  Effect.async<number>((resume) => {
    const args = ["--import", "tsx", file, ...exampleArgs]
    const child = spawn(process.execPath, args, { cwd: lineDir, env, stdio: "inherit" })
    child.on("exit", (code, signal) => resume(Effect.succeed(code ?? (signal === null ? 1 : 128))))
    return Effect.sync(() => child.kill("SIGINT"))
  })

const describe = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  return error instanceof Error ? error.message : String(error)
}

const isSet = (name: string) => (process.env[name] ?? "") !== ""

const main = Effect.gen(function*() {
  const file = yield* findExample(name)
  if (isSet("DSQL_HOST") || isSet("DSQL_URL")) {
    return yield* runExample(file, process.env)
  }
  const server = yield* DsqlLocal.start()
  yield* Console.log(
    `DSQL_HOST and DSQL_URL are unset: running ${relative(root, file)} on DsqlLocal (embedded PostgreSQL) at ` +
      `${server.address}:${server.port}`
  )
  return yield* runExample(file, { ...process.env, ...server.env })
}).pipe(
  Effect.scoped,
  Effect.tapErrorCause((cause) => Cause.isInterruptedOnly(cause) ? Effect.void : Console.error(describe(cause)))
)

NodeRuntime.runMain(main, {
  disableErrorReporting: true,
  teardown: (exit, onExit) =>
    onExit(Exit.isSuccess(exit) ? exit.value as number : Cause.isInterruptedOnly(exit.cause) ? 130 : 1)
})
