/**
 * Client processes: one `worker.ts` per client under test, talked to over IPC. A process that dies fails every call
 * still waiting on it.
 */
import { fork } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import { fileURLToPath } from "node:url"
import type { Reply, Task, Usage } from "./protocol.js"

const workerPath = fileURLToPath(new URL("./worker.ts", import.meta.url))

/**
 * `BENCH_CPU_PROF=<dir>`: every client process writes a V8 CPU profile (`--cpu-prof`) there when it ends, named by
 * pid; open it in Chrome DevTools or summarise its self time. CPU profiles stay meaningful on a loaded machine, where
 * wall times do not.
 */
const cpuProfDir = process.env["BENCH_CPU_PROF"]
const profiling = cpuProfDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${cpuProfDir}`]

export interface Child {
  readonly label: string
  readonly call: <A>(task: Task) => Promise<A>
  /** Reads the process's peak RSS, then ends it. */
  readonly stop: () => Promise<Usage>
}

export const startChild = (label: string, env: Readonly<Record<string, string>>): Promise<Child> =>
  new Promise((resolve, reject) => {
    const worker: ChildProcess = fork(workerPath, [], {
      execArgv: ["--import", "tsx", ...profiling],
      env,
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>()
    let nextId = 1
    let exited: Error | undefined
    worker.on("message", (reply: Reply) => {
      if (reply.id === 0) return resolve(child)
      const waiter = pending.get(reply.id)
      pending.delete(reply.id)
      if (reply.ok) waiter?.resolve(reply.result)
      else waiter?.reject(new Error(`${label}: ${reply.error}`))
    })
    worker.on("exit", (code, signal) => {
      exited = new Error(`${label}: client process exited (${signal ?? code})`)
      for (const waiter of pending.values()) waiter.reject(exited)
      pending.clear()
      reject(exited)
    })
    const call = <A>(task: Task) =>
      new Promise<A>((resolveCall, rejectCall) => {
        if (exited !== undefined) return rejectCall(exited)
        const id = nextId++
        pending.set(id, { resolve: resolveCall as (value: unknown) => void, reject: rejectCall })
        worker.send({ id, task })
      })
    const child: Child = {
      label,
      call,
      stop: async () => {
        const usage = await call<Usage>({ kind: "usage" })
        await new Promise<void>((done) => {
          worker.once("exit", () => done())
          worker.kill()
        })
        return usage
      }
    }
  })
