import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as ChildProcess from "node:child_process"
import * as Net from "node:net"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../..", import.meta.url))

/** Runs a TypeScript entry point of this repository with tsx, as `npm run local` and `npm start` do. */
const run = (file: string, args: ReadonlyArray<string>, env: Record<string, string>) =>
  Effect.async<{ readonly code: number | null; readonly stdout: string; readonly stderr: string }>((resume) => {
    const { DSQL_HOST: _, DSQL_URL: __, DEBUG: ___, ...inherited } = process.env
    ChildProcess.execFile(
      process.execPath,
      ["--import", "tsx", file, ...args],
      { cwd: root, env: { ...inherited, ...env }, timeout: 120_000 },
      (error, stdout, stderr) =>
        resume(Effect.succeed({ code: error === null ? 0 : (error.code as number | null), stdout, stderr }))
    )
  })

/** A port held open for the scope's lifetime. */
const takenPort = Effect.acquireRelease(
  Effect.async<Net.Server>((resume) => {
    const server = Net.createServer()
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  }),
  (server) =>
    Effect.async<void>((resume) => {
      server.close(() => resume(Effect.void))
    })
).pipe(Effect.map((server) => (server.address() as Net.AddressInfo).port))

/** A port nothing listens on. */
const closedPort = Effect.scoped(takenPort)

describe("starting from the command line", () => {
  it.live("the effect-dsql-local CLI prints a port in use as one line and exits with 1", () =>
    Effect.gen(function*() {
      const port = yield* takenPort
      const result = yield* run("src/local/cli.ts", ["--port", String(port)], {})
      expect(result).toEqual({
        code: 1,
        stdout: "",
        stderr: `DsqlLocal could not start: cannot listen on 127.0.0.1:${port}: EADDRINUSE\n`
      })
    }).pipe(Effect.scoped), { timeout: 120_000 })

  it.live("npm start prints why DsqlLocal could not start as one line and exits with 1", () =>
    Effect.gen(function*() {
      const port = yield* closedPort
      const result = yield* run("scripts/start.ts", [], {
        DSQL_LOCAL_BACKEND_URL: `postgres://postgres:secret@127.0.0.1:${port}/postgres`
      })
      expect(result.code).toBe(1)
      expect(result.stderr).toBe(
        `DsqlLocal could not start: Could not connect to the backend PostgreSQL at 127.0.0.1:${port} as postgres\n`
      )
    }), { timeout: 120_000 })
})
