/**
 * The watchdog that keeps the embedded PostgreSQL from outliving the process that started it. However that process
 * ends (SIGKILL, a signal without a handler, `process.exit`, a crash, a test worker stopped), the operating system
 * closes its end of the watchdog's stdin pipe; the watchdog, a small Node.js program in its own session, reads that
 * end of file (or sees its parent change), stops the servers and programs it was told of and removes the directory.
 * A normal close says `close` first, and the watchdog exits without touching anything. PostgreSQL's own safeguard is
 * the last resort: a postmaster whose data directory was removed shuts itself down within about a minute.
 *
 * The program is a string run with `node -e`, not a file beside this module: it then runs the same from the sources
 * (tsx), from `dist/esm`, `dist/cjs` and from a bundle, with no path to resolve.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import { LocalFailure } from "./failure.js"

/**
 * What the watchdog cleans up if this process dies first.
 *
 * @since 0.1.0
 * @category models
 */
export interface Watchdog {
  /** A directory to remove, after everything it watches has stopped. */
  readonly watchDirectory: (path: string) => void
  /** A PostgreSQL server (its postmaster) to stop: immediate shutdown, then SIGKILL after 5 seconds. */
  readonly watchServer: (pid: number) => void
  /** A process group to kill (initdb and the bootstrap backend it runs). */
  readonly watchGroup: (pid: number) => void
  /** A process that has exited: its pid may be reused, so it must not be signalled any more. */
  readonly forget: (pid: number) => void
}

/**
 * The watchdog's program: `node -e watchdogProgram -- <parent pid>`, fed JSON lines on stdin, shown by `ps` as
 * `dsql-local-watchdog`. The postmaster stops
 * its backends itself on SIGQUIT (immediate shutdown: the data is thrown away). A process whose parent died becomes
 * a zombie until PID 1 reaps it, and some PID 1s never do: a zombie counts as stopped.
 */
const watchdogProgram = `"use strict"
process.title = "dsql-local-watchdog"
const fs = require("node:fs")
const parent = Number(process.argv[1])
const servers = new Set()
const groups = new Set()
let directory
let pending = ""
let cleaning = false
const signal = (pid, name) => {
  try {
    process.kill(pid, name)
  } catch {}
}
const running = (pid) => {
  try {
    process.kill(pid, 0)
  } catch (error) {
    return error.code === "EPERM"
  }
  try {
    return fs.readFileSync("/proc/" + pid + "/stat", "utf8").replace(/^[^]*\\) /, "")[0] !== "Z"
  } catch {
    return true
  }
}
const settle = async (pids, ms) => {
  const deadline = Date.now() + ms
  while (Date.now() < deadline && pids.some(running)) await new Promise((resolve) => setTimeout(resolve, 20))
}
const cleanUp = async () => {
  if (cleaning) return
  cleaning = true
  for (const pid of groups) signal(-pid, "SIGKILL")
  for (const pid of servers) signal(pid, "SIGQUIT")
  await settle([...servers, ...groups], 5000)
  for (const pid of servers) if (running(pid)) signal(pid, "SIGKILL")
  await settle([...servers], 1000)
  if (directory !== undefined) {
    try {
      fs.rmSync(directory, { recursive: true, force: true, maxRetries: 10 })
    } catch {}
  }
  process.exit(0)
}
process.stdin.setEncoding("utf8")
process.stdin.on("data", (chunk) => {
  const lines = (pending + chunk).split("\\n")
  pending = lines.pop()
  for (const line of lines) {
    const [command, value] = JSON.parse(line)
    if (command === "close") process.exit(0)
    else if (command === "directory") directory = value
    else if (command === "server") servers.add(value)
    else if (command === "group") groups.add(value)
    else if (command === "forget") {
      servers.delete(value)
      groups.delete(value)
    }
  }
})
process.stdin.on("end", cleanUp)
process.stdin.on("error", cleanUp)
setInterval(() => {
  if (process.ppid !== parent) cleanUp()
}, 500)
`

const closeTimeout = "5 seconds"

const watchdogError = (cause: NodeJS.ErrnoException) =>
  new LocalFailure({
    reason: "Backend",
    message: `cannot start the watchdog that stops the embedded PostgreSQL if this process dies: ${
      cause.code ?? cause.message
    }`,
    cause
  })

const spawnWatchdog = Effect.async<ChildProcess.ChildProcess, LocalFailure>((resume) => {
  // NODE_OPTIONS may load a loader (tsx) the program does not need, or a debugger that waits.
  const { NODE_OPTIONS: _, ...env } = process.env
  const child = ChildProcess.spawn(process.execPath, ["-e", watchdogProgram, "--", String(process.pid)], {
    // Its own session: a Ctrl-C or hang-up that reaches this process group does not stop it before it cleaned up.
    detached: true,
    stdio: ["pipe", "ignore", "ignore"],
    env,
    // Detached on Windows would otherwise open a console window.
    windowsHide: true
  })
  // A watchdog that died leaves its stdin closed: writing to it is EPIPE, and the server runs on unwatched.
  child.stdin!.on("error", () => undefined)
  child.once("error", (cause) => resume(Effect.fail(watchdogError(cause))))
  child.once("spawn", () => {
    // The watchdog never keeps this process alive.
    child.unref()
    ;(child.stdin as unknown as { unref: () => void }).unref()
    resume(Effect.succeed(child))
  })
  return Effect.sync(() => child.kill("SIGKILL"))
})

/** Tells the watchdog to exit without cleaning up, and waits (boundedly) until it has. */
const dismiss = (child: ChildProcess.ChildProcess) =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    // Held again until it exits, so that a process whose last work is this release does not end before it.
    child.ref()
    child.once("exit", () => resume(Effect.void))
    child.stdin!.end(`${JSON.stringify(["close"])}\n`)
  }).pipe(
    Effect.timeout(closeTimeout),
    Effect.orElse(() => Effect.sync(() => child.kill("SIGKILL")))
  )

/**
 * Starts a watchdog for the scope's lifetime. Acquire it before what it watches, so that it is released last: the
 * release closes it after everything else was cleaned up normally.
 *
 * @since 0.1.0
 * @category constructors
 */
export const startWatchdog: Effect.Effect<Watchdog, LocalFailure, Scope.Scope> = Effect.map(
  Effect.acquireRelease(spawnWatchdog, dismiss),
  (child): Watchdog => {
    const send = (...message: ReadonlyArray<string | number>) => child.stdin!.write(`${JSON.stringify(message)}\n`)
    return {
      watchDirectory: (path) => send("directory", path),
      watchServer: (pid) => send("server", pid),
      watchGroup: (pid) => send("group", pid),
      forget: (pid) => send("forget", pid)
    }
  }
)
