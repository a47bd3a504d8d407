import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as ChildProcess from "node:child_process"
import { readFileSync } from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import pg from "pg"
import { childrenOf, isWatchdog, stillThere } from "./harness/processes.js"

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

/**
 * Runs the CLI with tsx in a process group of its own, as a shell runs a foreground job, until it serves (it printed
 * its psql command, or with `--json` its line); then `stop` signals it and the result is how it exited. The scope
 * kills the group if it still runs (a failed test).
 */
const serveCli = (args: ReadonlyArray<string> = []) =>
  Effect.acquireRelease(
    Effect.async<
      { readonly child: ChildProcess.ChildProcess; readonly exit: Promise<Exited>; readonly printed: string },
      Error
    >((resume) => {
      const { DSQL_LOCAL_BACKEND_URL: _, DSQL_LOCAL_PORT: __, ...env } = process.env
      const child = ChildProcess.spawn(process.execPath, ["--import", "tsx", "local/src/cli.ts", ...args], {
        cwd: root,
        env,
        detached: true,
        stdio: ["ignore", "pipe", "pipe"]
      })
      let stdout = ""
      let stderr = ""
      const exit = new Promise<Exited>((resolve) =>
        child.once("close", (code, signal) => resolve({ code, signal, stdout, stderr }))
      )
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString("utf8")
      })
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString("utf8")
        if (args.includes("--json") ? stdout.includes("\n") : stdout.includes("psql ")) {
          resume(Effect.succeed({ child, exit, printed: stdout }))
        }
      })
      void exit.then(({ code }) => resume(Effect.fail(new Error(`the CLI exited (${code}) before serving: ${stderr}`))))
    }),
    ({ child }) =>
      Effect.sync(() => {
        if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, "SIGKILL")
      })
  )

interface Exited {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

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
      const result = yield* run("local/src/cli.ts", ["--port", String(port)], {})
      expect(result).toEqual({
        code: 1,
        stdout: "",
        stderr: `DsqlLocal could not start: cannot listen on 127.0.0.1:${port}: EADDRINUSE\n`
      })
    }).pipe(Effect.scoped), { timeout: 120_000 })

  for (
    const [how, stop] of [
      ["SIGTERM", (pid: number) => process.kill(pid, "SIGTERM")],
      // A terminal sends Ctrl-C's SIGINT to the whole foreground group: the CLI and the PostgreSQL it runs.
      ["Ctrl-C", (pid: number) => process.kill(-pid, "SIGINT")]
    ] as const
  ) {
    it.live(
      `the CLI stops on ${how}: exit code 0, its server, watchdog and directory gone`,
      () =>
        Effect.gen(function*() {
          const { child, exit } = yield* serveCli()
          const children = yield* childrenOf(child.pid!)
          const postmaster = children.find((entry) => / -D \S+\/data /.test(entry.args))
          const watchdog = children.find(isWatchdog)
          const directory = Path.dirname(/ -D (\S+) /.exec(postmaster?.args ?? "")?.[1] ?? "")
          expect(yield* stillThere({ postmaster: postmaster?.pid ?? 0, watchdog: watchdog?.pid ?? 0 }, directory))
            .toEqual({ postmaster: true, watchdog: true, directory: true })
          stop(child.pid!)
          const exited = yield* Effect.promise(() => exit)
          expect({ code: exited.code, signal: exited.signal, stderr: exited.stderr }).toEqual({
            code: 0,
            signal: null,
            stderr: ""
          })
          // Its scope closed before it exited: nothing waits for the watchdog.
          expect(yield* stillThere({ postmaster: postmaster!.pid, watchdog: watchdog!.pid }, directory)).toEqual({
            postmaster: false,
            watchdog: false,
            directory: false
          })
        }).pipe(Effect.scoped),
      { timeout: 120_000 }
    )
  }

  it.live(
    "--json prints one line a client in any language connects with, token included, then serves",
    () =>
      Effect.gen(function*() {
        const { child, exit, printed } = yield* serveCli(["--json"])
        const line = printed.slice(0, printed.indexOf("\n"))
        const given = JSON.parse(line)
        expect(given).toMatchObject({ user: "admin", database: "postgres", tokenExpiresInSeconds: 43_200 })
        expect(given.env).toMatchObject({ DSQL_HOST: given.hostname, AWS_SECRET_ACCESS_KEY: given.secretAccessKey })
        // What a client without an AWS SDK does: the printed token as the password, verify-full with the printed CA.
        const client = new pg.Client({
          host: given.address,
          port: given.port,
          user: given.user,
          database: given.database,
          password: given.token,
          ssl: { ca: readFileSync(given.caFile, "utf8"), servername: given.hostname }
        })
        const rows = yield* Effect.promise(async () => {
          await client.connect()
          const result = await client.query("SELECT current_user AS who")
          await client.end()
          return result.rows
        })
        expect(rows).toEqual([{ who: "admin" }])
        process.kill(child.pid!, "SIGTERM")
        expect((yield* Effect.promise(() => exit)).code).toBe(0)
      }).pipe(Effect.scoped),
    { timeout: 120_000 }
  )

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
