import { describe, expect, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs/promises"
import { fileURLToPath } from "node:url"

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

interface ProcessEntry {
  readonly pid: number
  readonly ppid: number
  readonly state: string
  readonly args: string
}

const processes = Effect.async<ReadonlyArray<ProcessEntry>>((resume) => {
  ChildProcess.execFile(
    "ps",
    ["-A", "-o", "pid=,ppid=,stat=,args="],
    { maxBuffer: 16 * 1024 * 1024 },
    (_, out) =>
      resume(Effect.succeed(
        out.split("\n").flatMap((line) => {
          const match = /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(line)
          return match === null
            ? []
            : [{ pid: Number(match[1]), ppid: Number(match[2]), state: match[3]!, args: match[4]! }]
        })
      ))
  )
})

/** The fixture's watchdog: its child running `node -e`. */
const watchdogOf = (child: Child) =>
  processes.pipe(
    Effect.map((all) =>
      all.filter((entry) => entry.ppid === child.process.pid && entry.args.startsWith(`${process.execPath} -e`))
    )
  )

/**
 * Which of the fixture's leftovers still exist. A process whose parent died stays a zombie until PID 1 reaps it, and
 * some PID 1s (in containers) never do: a zombie runs nothing and holds no port or memory, so it counts as gone.
 */
const leftovers = (started: Started, watchdog: number) =>
  Effect.all({
    running: processes.pipe(
      Effect.map((all) => {
        const live = new Set(all.filter((entry) => !entry.state.startsWith("Z")).map((entry) => entry.pid))
        return {
          postmaster: live.has(started.postmaster),
          backend: live.has(started.backend),
          watchdog: live.has(watchdog)
        }
      })
    ),
    directory: Effect.promise(() => Fs.access(started.directory).then(() => true, () => false))
  })

const nothingLeft = { running: { postmaster: false, backend: false, watchdog: false }, directory: false }

/** Polls until nothing is left or the deadline passes, then reports what is left. */
const leftoversAfter = (started: Started, watchdog: number, deadline: "10 seconds") =>
  leftovers(started, watchdog).pipe(
    Effect.repeat({
      schedule: Schedule.spaced("50 millis"),
      until: (left) => !left.directory && Object.values(left.running).every((running) => !running)
    }),
    Effect.timeout(deadline),
    Effect.ignore,
    Effect.zipRight(leftovers(started, watchdog))
  )

/** Starts the fixture and checks that what it reported runs, with one watchdog; returns the watchdog's pid. */
const startAndCheck = (ending: "wait" | "exit" | "throw" | "close") =>
  Effect.gen(function*() {
    const child = yield* startFixture(ending)
    const watchdogs = yield* watchdogOf(child)
    expect(watchdogs).toHaveLength(1)
    const watchdog = watchdogs[0]!.pid
    expect(yield* leftovers(child.started, watchdog)).toEqual({
      running: { postmaster: true, backend: true, watchdog: true },
      directory: true
    })
    return { child, watchdog }
  })

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
        expect(yield* leftoversAfter(child.started, watchdog, "10 seconds")).toEqual(nothingLeft)
      }).pipe(Effect.scoped), { timeout: 60_000 })
  }

  it.live("process.exit: server, backends and directory are gone within seconds", () =>
    Effect.gen(function*() {
      const { child, watchdog } = yield* startAndCheck("exit")
      expect(yield* endFixture(child)).toEqual({ code: 0, signal: null })
      expect(yield* leftoversAfter(child.started, watchdog, "10 seconds")).toEqual(nothingLeft)
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live(
    "an uncaught exception: server, backends and directory are gone within seconds",
    () =>
      Effect.gen(function*() {
        const { child, watchdog } = yield* startAndCheck("throw")
        expect(yield* endFixture(child)).toEqual({ code: 1, signal: null })
        expect(yield* leftoversAfter(child.started, watchdog, "10 seconds")).toEqual(nothingLeft)
      }).pipe(Effect.scoped),
    { timeout: 60_000 }
  )

  it.live("a normal close leaves nothing either, the watchdog included", () =>
    Effect.gen(function*() {
      const { child, watchdog } = yield* startAndCheck("close")
      expect(yield* endFixture(child)).toEqual({ code: 0, signal: null })
      // The scope's release stopped and removed everything before the process exited.
      expect(yield* leftovers(child.started, watchdog)).toEqual(nothingLeft)
    }).pipe(Effect.scoped), { timeout: 60_000 })
})
