import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as ChildProcess from "node:child_process"
import { fileURLToPath } from "node:url"
import { childrenOf, isWatchdog, stillThere, stillThereAfter } from "./harness/processes.js"

const root = fileURLToPath(new URL("../..", import.meta.url))

/** What the fixture started: the embedded server's postmaster, one backend, and the temporary directory. */
interface Started {
  readonly postmaster: number
  readonly backend: number
  readonly directory: string
}

interface Child {
  readonly process: ChildProcess.ChildProcess
  readonly started: Started
  readonly exit: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
}

/**
 * Runs fixtures/startThenEnd.ts with tsx until it has printed what it started. The scope kills it if it still runs
 * (a failed test); its watchdog then cleans up.
 */
const startFixture = (ending: "wait" | "exit" | "throw" | "close") =>
  Effect.acquireRelease(
    Effect.async<Child, Error>((resume) => {
      const { DSQL_LOCAL_BACKEND_URL: _, ...env } = process.env
      const child = ChildProcess.spawn(
        process.execPath,
        ["--import", "tsx", "test/local/fixtures/startThenEnd.ts", ending],
        { cwd: root, env, stdio: ["pipe", "pipe", "pipe"] }
      )
      const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.once("exit", (code, signal) => resolve({ code, signal }))
      )
      let stdout = ""
      let stderr = ""
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString("utf8")
      })
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString("utf8")
        const line = stdout.split("\n").find((line) => line.startsWith("{"))
        if (line !== undefined) resume(Effect.succeed({ process: child, started: JSON.parse(line), exit }))
      })
      void exit.then(({ code, signal }) =>
        resume(Effect.fail(new Error(`the fixture ended (${signal ?? code}) before it started: ${stderr}`)))
      )
    }),
    (child) => Effect.sync(() => child.process.kill("SIGKILL"))
  )

/** The fixture's leftovers: its server's postmaster and one backend, its watchdog, the server's directory. */
const leftovers = (child: Child, watchdog: number) => ({
  postmaster: child.started.postmaster,
  backend: child.started.backend,
  watchdog
})

const nothingLeft = { postmaster: false, backend: false, watchdog: false, directory: false }

/** Starts the fixture and checks that what it reported runs, with one watchdog; returns the watchdog's pid. */
const startAndCheck = (ending: "wait" | "exit" | "throw" | "close") =>
  Effect.gen(function*() {
    const child = yield* startFixture(ending)
    const watchdogs = (yield* childrenOf(child.process.pid!)).filter(isWatchdog)
    expect(watchdogs).toHaveLength(1)
    const watchdog = watchdogs[0]!.pid
    expect(yield* stillThere(leftovers(child, watchdog), child.started.directory)).toEqual({
      postmaster: true,
      backend: true,
      watchdog: true,
      directory: true
    })
    return { child, watchdog }
  })

/** Nothing the fixture left is there any more, at the latest 10 seconds from now. */
const expectNothingLeft = (child: Child, watchdog: number) =>
  Effect.map(
    stillThereAfter(leftovers(child, watchdog), child.started.directory, "10 seconds"),
    (left) => expect(left).toEqual(nothingLeft)
  )

/** Lets the fixture end as it was told to, and returns how it exited. */
const endFixture = (child: Child) =>
  Effect.promise(() => {
    child.process.stdin!.end()
    return child.exit
  })

describe("the embedded PostgreSQL never outlives the process that started it", () => {
  const signals = [
    ["SIGKILL", "SIGKILL"],
    ["SIGTERM", "SIGTERM without a handler"],
    ["SIGINT", "SIGINT without a handler"]
  ] as const
  for (const [signal, ending] of signals) {
    it.live(`${ending}: server, backends and directory are gone within seconds`, () =>
      Effect.gen(function*() {
        const { child, watchdog } = yield* startAndCheck("wait")
        child.process.kill(signal)
        expect(yield* Effect.promise(() => child.exit)).toEqual({ code: null, signal })
        yield* expectNothingLeft(child, watchdog)
      }).pipe(Effect.scoped), { timeout: 120_000 })
  }

  it.live("process.exit: server, backends and directory are gone within seconds", () =>
    Effect.gen(function*() {
      const { child, watchdog } = yield* startAndCheck("exit")
      expect(yield* endFixture(child)).toEqual({ code: 0, signal: null })
      yield* expectNothingLeft(child, watchdog)
    }).pipe(Effect.scoped), { timeout: 120_000 })

  it.live(
    "an uncaught exception: server, backends and directory are gone within seconds",
    () =>
      Effect.gen(function*() {
        const { child, watchdog } = yield* startAndCheck("throw")
        expect(yield* endFixture(child)).toEqual({ code: 1, signal: null })
        yield* expectNothingLeft(child, watchdog)
      }).pipe(Effect.scoped),
    { timeout: 120_000 }
  )

  it.live("a normal close leaves nothing either, the watchdog included", () =>
    Effect.gen(function*() {
      const { child, watchdog } = yield* startAndCheck("close")
      expect(yield* endFixture(child)).toEqual({ code: 0, signal: null })
      // The scope's release stopped and removed everything before the process exited.
      expect(yield* stillThere(leftovers(child, watchdog), child.started.directory)).toEqual(nothingLeft)
    }).pipe(Effect.scoped), { timeout: 120_000 })
})
