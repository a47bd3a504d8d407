/**
 * Scenario 6, cold start: each client's Lambda handler (bench/handlers/) bundled as `npm run check:bundle` bundles
 * the Lambda example (CDK's `NodejsFunction` for Node 20, the AWS SDK bundled too), then run in fresh Node processes
 * against DsqlLocal; the time from process start to the first query's answer, and the bundles' sizes.
 */
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { bundleLikeCdk } from "../scripts/check-bundle.js"
import type { Endpoint } from "./protocol.js"
import { median, round } from "./stats.js"

/**
 * `ours4` is effect-dsql 2 (the Effect 4 line). `sqlpg` and `sqlpg4` are references, not contenders: plain
 * @effect/sql-pg 0.53 and 4, to tell each Effect line's share from effect-dsql's.
 */
export type ColdStartClient = "ours" | "connector" | "sqlpg" | "ours4" | "sqlpg4"

export const COLD_START_CLIENTS: ReadonlyArray<ColdStartClient> = ["ours", "connector", "sqlpg", "ours4", "sqlpg4"]

export interface ColdStartRow {
  readonly client: ColdStartClient
  /** The bundle's size in bytes. */
  readonly bundleBytes: number
  /** Milliseconds from the process's start to the first query answered: the median, and each run's. */
  readonly medianMs: number
  readonly runsMs: ReadonlyArray<number>
  /** Median milliseconds from the process's start until `require` returned the loaded bundle. */
  readonly medianLoadedMs: number
  /** Median CPU milliseconds (user + system) the process had spent when the first answer came. */
  readonly medianCpuMs: number
}

interface Run {
  readonly loadedMs: number
  readonly answeredMs: number
  readonly cpuMs: number
}

/**
 * Loads the bundle, invokes its handler once and prints, as JSON, the milliseconds since the process started when
 * the bundle was loaded and when the answer came, and the CPU the process had spent by then.
 */
const RUNNER = `const { handler } = require(process.argv[2])
const loadedMs = performance.now()
handler({}).then(
  () => {
    const answeredMs = performance.now()
    const cpu = process.cpuUsage()
    process.stdout.write(JSON.stringify({ loadedMs, answeredMs, cpuMs: (cpu.user + cpu.system) / 1000 }))
    process.exit(0)
  },
  (error) => { process.stderr.write(String(error && error.stack || error)); process.exit(1) }
)
`

const parseRun = (stdout: string): Run | undefined => {
  try {
    const run = JSON.parse(stdout) as Run
    return [run.loadedMs, run.answeredMs, run.cpuMs].every(Number.isFinite) ? run : undefined
  } catch {
    return undefined
  }
}

const runOnce = (runner: string, file: string, env: Readonly<Record<string, string>>) =>
  new Promise<Run>((resolve, reject) => {
    execFile(process.execPath, [runner, file], { env, timeout: 60_000 }, (error, stdout, stderr) => {
      const run = error === null ? parseRun(stdout) : undefined
      if (run !== undefined) resolve(run)
      else reject(new Error(`cold start of ${Path.basename(file)} failed: ${stderr || error?.message}`))
    })
  })

/**
 * Bundles the handlers, then runs each `reps` times (after one unmeasured run each), the clients' order alternating.
 * `env` holds the credentials and the CA (NODE_EXTRA_CA_CERTS), as a Lambda function's environment would.
 */
export const coldStart = async (
  endpoint: Endpoint,
  env: Readonly<Record<string, string>>,
  reps: number
): Promise<ReadonlyArray<ColdStartRow>> => {
  const dir = await Fs.mkdtemp(Path.join(Os.tmpdir(), "dsql-bench-cold-"))
  try {
    const runner = Path.join(dir, "runner.cjs")
    await Fs.writeFile(runner, RUNNER)
    const files = new Map<ColdStartClient, string>()
    for (const client of COLD_START_CLIENTS) {
      const file = Path.join(dir, `${client}.cjs`)
      await Effect.runPromise(bundleLikeCdk(`bench/handlers/${client}.ts`, file))
      files.set(client, file)
    }
    const childEnv = {
      ...env,
      BENCH_DSQL_HOST: endpoint.hostname,
      BENCH_DSQL_PORT: String(endpoint.port),
      BENCH_DSQL_ADDRESS: endpoint.address
    }
    const runs = new Map<ColdStartClient, Array<Run>>(COLD_START_CLIENTS.map((client) => [client, []]))
    for (let rep = -1; rep < reps; rep++) {
      const order = rep % 2 === 0 ? COLD_START_CLIENTS : [...COLD_START_CLIENTS].reverse()
      for (const client of order) {
        const run = await runOnce(runner, files.get(client)!, childEnv)
        if (rep >= 0) runs.get(client)!.push(run)
      }
    }
    return await Promise.all(COLD_START_CLIENTS.map(async (client) => {
      const clientRuns = runs.get(client)!
      return {
        client,
        bundleBytes: (await Fs.stat(files.get(client)!)).size,
        medianMs: round(median(clientRuns.map((run) => run.answeredMs))),
        runsMs: clientRuns.map((run) => round(run.answeredMs)),
        medianLoadedMs: round(median(clientRuns.map((run) => run.loadedMs))),
        medianCpuMs: round(median(clientRuns.map((run) => run.cpuMs)))
      }
    }))
  } finally {
    await Fs.rm(dir, { recursive: true, force: true })
  }
}
