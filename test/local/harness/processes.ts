/**
 * What a process left behind: which of the processes it started still run, and whether a directory still exists.
 */
import { Effect, Schedule } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs/promises"

/** One line of `ps`. */
export interface ProcessEntry {
  readonly pid: number
  readonly ppid: number
  readonly state: string
  readonly args: string
}

/** Every process on the machine. */
export const processes: Effect.Effect<ReadonlyArray<ProcessEntry>> = Effect.async((resume) => {
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

/** The processes whose parent is `pid`. */
export const childrenOf = (pid: number) => Effect.map(processes, (all) => all.filter((entry) => entry.ppid === pid))

/** DsqlLocal's watchdog: `node -e …` until it has renamed itself. */
export const isWatchdog = (entry: ProcessEntry) =>
  entry.args === "dsql-local-watchdog" || entry.args.startsWith(`${process.execPath} -e `)

/**
 * For each named pid, whether it still runs, and whether `directory` still exists. A process whose parent died stays
 * a zombie until PID 1 reaps it, and some PID 1s (in containers) never do: a zombie runs nothing and holds no port or
 * memory, so it counts as gone.
 */
export const stillThere = <Name extends string>(pids: Record<Name, number>, directory: string) =>
  Effect.all([
    processes,
    Effect.promise(() => Fs.access(directory).then(() => true, () => false))
  ]).pipe(Effect.map(([all, exists]) => {
    const live = new Set(all.filter((entry) => !entry.state.startsWith("Z")).map((entry) => entry.pid))
    const running = Object.fromEntries(
      Object.entries<number>(pids).map(([name, pid]) => [name, live.has(pid)])
    ) as Record<Name, boolean>
    return { ...running, directory: exists }
  }))

/** Polls `stillThere` until nothing is left or `deadline` has passed, then answers it once more. */
export const stillThereAfter = <Name extends string>(
  pids: Record<Name, number>,
  directory: string,
  deadline: "10 seconds"
) =>
  stillThere(pids, directory).pipe(
    Effect.repeat({
      schedule: Schedule.spaced("50 millis"),
      until: (left) => Object.values(left).every((there) => !there)
    }),
    Effect.timeout(deadline),
    Effect.ignore,
    Effect.zipRight(stillThere(pids, directory))
  )
