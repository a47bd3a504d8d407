/**
 * A client process: loads one client implementation (env BENCH_CLIENT) and runs the tasks the orchestrator sends
 * over IPC, one at a time. Each client gets its own process so that its peak RSS is its own.
 */
import type { BenchClient, ClientName, Reply, Task, Usage } from "./protocol.js"
import { describeError } from "./protocol.js"

const mib = (bytes: number) => Math.round((bytes / (1024 * 1024)) * 10) / 10

const name = process.env["BENCH_CLIENT"] as ClientName | "tokens"
const client: BenchClient | undefined = name === "tokens"
  ? undefined
  : (await import(`./clients/${name}.js`) as { client: BenchClient }).client
const tokens = name === "tokens" ? await import("./tokens.js") : undefined
const baselineRssMiB = mib(process.memoryUsage().rss)

const clientOrFail = (): BenchClient => {
  if (client === undefined) throw new Error(`process ${name} runs no client`)
  return client
}

const run = (task: Task): Promise<unknown> => {
  switch (task.kind) {
    case "tokens":
      if (tokens === undefined) throw new Error("not a tokens process")
      return tokens.measureTokens(task.endpoint, task.profile, task.rounds, task.roundMs)
    case "setup":
      return clientOrFail().setup(task.endpoint, task.connections, task.parallel)
    case "open":
      return clientOrFail().open(task.endpoint, task.poolSize)
    case "load":
      return clientOrFail().load(task.query, task.concurrency, task.durationMs)
    case "transfers":
      return clientOrFail().transfers(task.options)
    case "close":
      return clientOrFail().close()
    case "storm":
      return clientOrFail().storm(task.endpoint, task.fibers, task.poolSize)
    case "coldStart":
      return clientOrFail().coldStart(task.endpoint, task.pools, task.poolSize)
    case "usage":
      return Promise.resolve(
        {
          // maxRSS is in KiB
          maxRssMiB: mib(process.resourceUsage().maxRSS * 1024),
          rssMiB: mib(process.memoryUsage().rss),
          baselineRssMiB
        } satisfies Usage
      )
  }
}

process.on("message", (message: { readonly id: number; readonly task: Task }) => {
  Promise.resolve()
    .then(() => run(message.task))
    .then(
      (result): Reply => ({ id: message.id, ok: true, result: result ?? null }),
      (error): Reply => ({ id: message.id, ok: false, error: describeError(error) })
    )
    .then((reply) => process.send!(reply))
})
// Ends through process.exit, so that a `--cpu-prof` profile (BENCH_CPU_PROF) is written.
process.on("SIGTERM", () => process.exit(0))
process.send!({ id: 0, ok: true, result: "ready" } satisfies Reply)
