/**
 * `npm run example -- <name> [args…]`: runs `examples/<name>.ts` (or `examples/alternatives/<name>.ts`) in its own
 * process, exactly as `npx tsx examples/<name>.ts [args…]` would. With neither DSQL_HOST nor DSQL_URL set, it first
 * starts DsqlLocal and hands the example its settings (`server.env`) in the environment.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Console, Data, Effect, Exit } from "effect"
import { DsqlLocal } from "effect-dsql/local"
import { spawn } from "node:child_process"
import { existsSync, readdirSync } from "node:fs"
import { join, relative } from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
const examplesDir = join(root, "examples")

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
        message: `usage: npm run example -- <name>, one of: ${exampleNames().join(", ")}`
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
    const args = ["--import", "tsx", file, ...process.argv.slice(3)]
    const child = spawn(process.execPath, args, { cwd: root, env, stdio: "inherit" })
    child.on("exit", (code, signal) => resume(Effect.succeed(code ?? (signal === null ? 1 : 128))))
    return Effect.sync(() => child.kill("SIGINT"))
  })

const describe = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  return error instanceof Error ? error.message : String(error)
}

const isSet = (name: string) => (process.env[name] ?? "") !== ""

const main = Effect.gen(function*() {
  const file = yield* findExample(process.argv[2])
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
