/**
 * The examples runner for this line (`npm run example -w effect4 -- <name>`): the repository's runner with
 * `--effect4`, run as a child process the way npm runs it, starting DsqlLocal itself.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../../..", import.meta.url))

/** Runs the runner with `args` and neither DSQL_HOST nor DSQL_URL set; its exit code and output. */
const runner = (...args: Array<string>) =>
  Effect.callback<{ code: number | null; stdout: string; stderr: string }>((resume) => {
    const { DSQL_HOST: _host, DSQL_URL: _url, ...env } = process.env
    const child = spawn(process.execPath, ["--import", "tsx", "scripts/run-example.ts", "--effect4", ...args], {
      cwd: root,
      env
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk) => stdout += String(chunk))
    child.stderr.on("data", (chunk) => stderr += String(chunk))
    child.on("exit", (code) => resume(Effect.succeed({ code, stdout, stderr })))
    return Effect.sync(() => child.kill("SIGINT"))
  })

describe("npm run example -w effect4", () => {
  it.effect("runs an Effect 4 example from effect4/examples on a DsqlLocal it starts", () =>
    Effect.gen(function*() {
      const { code, stderr, stdout } = yield* runner("single_connection")
      assert.strictEqual(code, 0, stderr)
      const lines = stdout.trim().split("\n")
      assert.match(
        lines[0],
        /^DSQL_HOST and DSQL_URL are unset: running effect4\/examples\/alternatives\/single_connection\.ts on DsqlLocal/
      )
      assert.match(lines[1], /^single_connection: connected to \w+\.dsql\.[a-z0-9-]+\.on\.aws as admin$/)
      assert.match(lines[2], /^single_connection: 3 queries, 1 session/)
    }), { timeout: 60_000 })

  it.effect("names this line's examples when the name is unknown", () =>
    Effect.gen(function*() {
      const { code, stderr } = yield* runner("no_such_example")
      assert.strictEqual(code, 1)
      assert.include(stderr, "usage: npm run example -w effect4 -- <name>, one of: ")
      const offered = /one of: (.+)$/m.exec(stderr)?.[1].split(", ")
      assert.includeMembers(offered ?? [], [
        "drizzle",
        "http_service",
        "lambda",
        "migrations",
        "opentelemetry",
        "single_connection"
      ])
    }))
})
