/**
 * `npm run bench [-- --quick] [-- --only=<scenarios>]`: every comparison in one run against one DsqlLocal (over an
 * embedded PostgreSQL), each client in its own process. Writes results.json, charts/*.svg and, after a full run, the
 * results section of README.md; `--quick` runs the same scenarios at smaller sizes and writes under quick/ instead.
 */
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import pg from "pg"
import { DsqlLocal } from "../src/local/index.js"
import { barChart } from "./charts.js"
import * as ColdStart from "./coldStart.js"
import { linkDelay } from "./linkDelay.js"
import type { Endpoint } from "./protocol.js"
import { describeError, INSERT_TABLE, KV_ROWS, KV_TABLE } from "./protocol.js"
import * as Report from "./report.js"
import * as Scenarios from "./scenarios.js"

const quick = process.argv.includes("--quick")

/** What `--only` selects, by name or by the scenario's number (4 is both OCC parts). */
const SCENARIOS = {
  tokens: ["1"],
  setup: ["2"],
  query: ["3"],
  occ: ["4"],
  "occ-sweep": ["4"],
  storm: ["5"],
  "cold-start": ["6"],
  local: ["7"]
} as const
type ScenarioName = keyof typeof SCENARIOS

/**
 * `--only=occ-sweep` (or `--only occ-sweep`, or `--only=1,3`) runs some scenarios at full size; their results then
 * go under quick/ like `--quick`, so that the committed results always come from one full run.
 */
const onlyArg = (() => {
  const index = process.argv.findIndex((arg) => arg === "--only" || arg.startsWith("--only="))
  if (index === -1) return undefined
  const arg = process.argv[index]!
  return (arg === "--only" ? process.argv[index + 1] ?? "" : arg.slice("--only=".length)).split(",")
})()
const unknown = onlyArg?.filter((item) =>
  !Object.entries(SCENARIOS).some(([name, ids]) => [name, ...ids].includes(item))
)
if (unknown !== undefined && unknown.length > 0) {
  console.error(`--only: no scenario ${unknown.join(", ")}; choose from ${Object.keys(SCENARIOS).join(", ")} or 1-7`)
  process.exit(2)
}
const only = onlyArg
const runs = (scenario: ScenarioName) =>
  only === undefined || only.includes(scenario) || SCENARIOS[scenario].some((id) => only.includes(id))

const sizes: Scenarios.Sizes = quick
  ? {
    tokenRounds: 5,
    tokenRoundMs: 40,
    setupConnections: 4,
    setupReps: 1,
    loadMs: 200,
    loadReps: 2,
    warmMs: 100,
    transferMs: 600,
    transferReps: 2,
    sweepMs: 200,
    sweepReps: 1,
    stormReps: 1,
    stormFibers: 200,
    stormPools: 10,
    coldStartReps: 3,
    localCostBatches: 3,
    localCostReps: 1
  }
  : {
    tokenRounds: 9,
    tokenRoundMs: 100,
    setupConnections: 16,
    setupReps: 4,
    loadMs: 800,
    loadReps: 3,
    warmMs: 300,
    transferMs: 3_000,
    transferReps: 3,
    sweepMs: 1_200,
    sweepReps: 2,
    stormReps: 3,
    stormFibers: 500,
    stormPools: 50,
    coldStartReps: 10,
    localCostBatches: 15,
    localCostReps: 4
  }

const benchDir = Path.dirname(fileURLToPath(import.meta.url))
const partial = quick || only !== undefined
const outDir = partial ? Path.join(benchDir, "quick") : benchDir
const PROFILE = "bench"

/**
 * Room for a thousand sessions in the backend, so that the connection storm meets DsqlLocal's DSQL limits (53400,
 * 53300) and not PostgreSQL's own max_connections (100).
 */
const MAX_BACKEND_CONNECTIONS = 1_200

/** Above this 1-minute load average at the start, a run is not called quiet and its figures are not results. */
const QUIET_LOAD = 0.5

const machine = async () => {
  const cpuinfo = await Fs.readFile("/proc/cpuinfo", "utf8").catch(() => "")
  const packageVersion = async (name: string, dir = Path.join(benchDir, "..", "node_modules", name)) =>
    JSON.parse(await Fs.readFile(Path.join(dir, "package.json"), "utf8")).version as string
  // The Effect 4 line's own packages, where npm keeps them: under effect4/, shadowed at the root by Effect 3's.
  const effect4Dir = Path.join(benchDir, "..", "effect4")
  return {
    nproc: Os.availableParallelism(),
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? Os.cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round(Os.totalmem() / 2 ** 30),
    node: process.version,
    packages: Object.fromEntries(
      await Promise.all(
        ["@aws/aurora-dsql-node-postgres-connector", "@effect-aws/dsql", "pg", "effect", "@effect/sql-pg"].map(
          async (name) => [name, await packageVersion(name)] as const
        )
      )
    ),
    effect4Packages: {
      "effect-dsql": await packageVersion("effect-dsql", effect4Dir),
      effect: await packageVersion("effect", Path.join(effect4Dir, "node_modules", "effect")),
      "@effect/sql-pg": await packageVersion(
        "@effect/sql-pg",
        Path.join(effect4Dir, "node_modules", "@effect", "sql-pg")
      )
    }
  }
}

/** Which library code was measured: the commit, and files of both lines' src/ changed since it. */
const sourceState = () => {
  const git = (...args: Array<string>) =>
    execFileSync("git", args, { cwd: Path.join(benchDir, ".."), encoding: "utf8" }).trim()
  try {
    return {
      commit: git("rev-parse", "--short", "HEAD"),
      uncommittedSrc: git("status", "--porcelain", "--", "src", "effect4/src", "core/src", "local/src").split("\n")
        .filter((line) => line.length > 0)
    }
  } catch {
    return { commit: "unknown", uncommittedSrc: [] }
  }
}

/** Every AWS, DSQL and CA variable left out: each client process gets exactly the credentials its scenario says. */
const baseEnv = (region: string): Record<string, string> => ({
  ...Object.fromEntries(
    Object.entries(process.env).filter(([key, value]) =>
      value !== undefined && !/^(AWS_|DSQL_|BENCH_|NODE_EXTRA_CA_CERTS$)/.test(key)
    ) as Array<[string, string]>
  ),
  AWS_REGION: region,
  AWS_EC2_METADATA_DISABLED: "true"
})

const createTables = async (backend: pg.Client) => {
  await backend.query(`DROP TABLE IF EXISTS ${KV_TABLE}, ${INSERT_TABLE}`)
  await backend.query(`CREATE TABLE ${KV_TABLE} (id int PRIMARY KEY, balance int NOT NULL)`)
  await backend.query(`INSERT INTO ${KV_TABLE} SELECT g, 1000 FROM generate_series(1, ${KV_ROWS}) g`)
  await backend.query(`CREATE TABLE ${INSERT_TABLE} (id uuid PRIMARY KEY, payload text NOT NULL)`)
}

const writeOutputs = async (results: Report.Results, targets: ReadonlyArray<Report.Target>, text: string) => {
  const chartsDir = Path.join(outDir, "charts")
  await Fs.mkdir(chartsDir, { recursive: true })
  await Fs.writeFile(Path.join(outDir, "results.json"), `${JSON.stringify({ ...results, targets }, null, 2)}\n`)
  const charts = Report.charts(results)
  for (const [name, chart] of Object.entries(charts)) {
    await Fs.writeFile(Path.join(chartsDir, `${name}.svg`), barChart(chart))
  }
  if (partial) return
  const readmePath = Path.join(benchDir, "README.md")
  const readme = await Fs.readFile(readmePath, "utf8")
  const start = "<!-- results:start -->"
  const end = "<!-- results:end -->"
  const meta = results.meta as {
    date: string
    durationSeconds: number
    machine: Awaited<ReturnType<typeof machine>>
    loadAverage: Record<string, ReadonlyArray<number>>
    source: ReturnType<typeof sourceState>
  }
  const section = [
    start,
    "",
    `Run of ${meta.date} (${meta.durationSeconds} s): ${meta.machine.nproc} cores (${meta.machine.cpu}), ` +
    `${meta.machine.memoryGiB} GiB, Node ${meta.machine.node}; load average (1 min) ${
      meta.loadAverage["start"]?.[0]?.toFixed(1)
    } at the start, ${
      Object.values(meta.loadAverage).map((load) => load[0]!.toFixed(1)).join(" → ")
    } through the scenarios; ` +
    Object.entries(meta.machine.packages).map(([name, version]) => `${name} ${version}`).join(", ") +
    "; Effect 4 line: " +
    Object.entries(meta.machine.effect4Packages).map(([name, version]) => `${name} ${version}`).join(", ") +
    `; effect-dsql at ${meta.source.commit}${
      meta.source.uncommittedSrc.length > 0
        ? ` with uncommitted changes in ${meta.source.uncommittedSrc.length} src files`
        : ""
    }.`,
    "",
    Object.keys(charts).map((name) => `![${name}](charts/${name}.svg)`).join("\n"),
    "",
    text,
    "",
    end
  ].join("\n")
  const from = readme.indexOf(start)
  const to = readme.indexOf(end)
  if (from === -1 || to === -1) throw new Error("README.md has no results markers")
  await Fs.writeFile(readmePath, readme.slice(0, from) + section + readme.slice(to + end.length))
}

const program = Effect.gen(function*() {
  const started = performance.now()
  const source = sourceState()
  const log = (line: string) => console.log(`[${((performance.now() - started) / 1000).toFixed(1)} s] ${line}`)
  // Other work on the machine shows up as noise: the load average is kept with the results, taken before the bench
  // itself adds to it.
  const loadAverage: Record<string, ReadonlyArray<number>> = { start: Os.loadavg() }
  const quiet = Report.quietness(loadAverage["start"]![0]!, QUIET_LOAD)
  log(Report.quietLine(quiet))
  log(`effect-dsql bench${quick ? " (quick)" : ""}: starting PostgreSQL (max_connections ${MAX_BACKEND_CONNECTIONS})`)
  const server = yield* DsqlLocal.start({ backendMaxConnections: MAX_BACKEND_CONNECTIONS })
  log(`DsqlLocal on ${server.address}:${server.port} as ${server.hostname}`)

  const tmp = yield* Effect.acquireRelease(
    Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "dsql-bench-"))),
    (dir) => Effect.promise(() => Fs.rm(dir, { recursive: true, force: true }))
  )
  const files = {
    credentials: Path.join(tmp, "credentials"),
    config: Path.join(tmp, "config"),
    ca: Path.join(tmp, "ca.pem")
  }
  yield* Effect.promise(async () => {
    await Fs.writeFile(
      files.credentials,
      `[${PROFILE}]\naws_access_key_id = ${server.credentials.accessKeyId}\n` +
        `aws_secret_access_key = ${server.credentials.secretAccessKey}\n`,
      { mode: 0o600 }
    )
    await Fs.writeFile(files.config, `[profile ${PROFILE}]\nregion = ${server.region}\n`)
    await Fs.writeFile(files.ca, server.ca)
  })
  const backend = yield* Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new pg.Client({ connectionString: server.backendUrl })
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.end())
  )
  yield* Effect.promise(() => createTables(backend))

  const endpoint: Endpoint = {
    hostname: server.hostname,
    region: server.region,
    address: server.address,
    port: server.port,
    ca: server.ca
  }
  const ctx: Scenarios.Context = {
    server,
    endpoint,
    sizes,
    env: {
      base: baseEnv(server.region),
      keys: {
        AWS_ACCESS_KEY_ID: server.credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: server.credentials.secretAccessKey
      },
      profile: { AWS_SHARED_CREDENTIALS_FILE: files.credentials, AWS_CONFIG_FILE: files.config, AWS_PROFILE: PROFILE },
      extraCa: { NODE_EXTRA_CA_CERTS: files.ca }
    },
    profileName: PROFILE,
    backend,
    withLinkDelay: (delays, use) =>
      Effect.runPromise(
        Effect.scoped(
          Effect.flatMap(
            linkDelay(endpoint, delays),
            (link) => Effect.tryPromise(() => use({ ...endpoint, address: link.address, port: link.port }))
          )
        )
      ),
    log
  }

  const errors: Array<string> = []
  const attempt = <A>(name: string, scenario: () => Promise<A>) =>
    Effect.promise(() =>
      scenario().finally(() => {
        loadAverage[name] = Os.loadavg()
      }).catch((error) => {
        errors.push(`${name}: ${describeError(error)}`)
        log(`${name} FAILED: ${describeError(error)}`)
        return undefined
      })
    )
  const tokens = runs("tokens") ? yield* attempt("1. token cost", () => Scenarios.tokenCost(ctx)) : undefined
  const setup = runs("setup")
    ? yield* attempt("2. connection setup", () => Scenarios.connectionSetup(ctx))
    : undefined
  const throughput = runs("query") ? yield* attempt("3. throughput", () => Scenarios.throughput(ctx)) : undefined
  const occ = runs("occ") ? yield* attempt("4. OCC", () => Scenarios.contention(ctx)) : undefined
  const occSweep = runs("occ-sweep") ? yield* attempt("4. OCC sweep", () => Scenarios.occSweep(ctx)) : undefined
  const storm = runs("storm") ? yield* attempt("5. storm", () => Scenarios.storm(ctx)) : undefined
  const coldStart = runs("cold-start")
    ? yield* attempt("6. cold start", () => {
      log("6. cold start: bundling the handlers, then one process per run")
      return ColdStart.coldStart(
        { ...endpoint, ca: undefined },
        { ...ctx.env.base, ...ctx.env.keys, ...ctx.env.extraCa },
        sizes.coldStartReps
      )
    })
    : undefined
  const local = runs("local")
    ? yield* attempt("7. DsqlLocal's cost", () => Scenarios.dsqlLocalCost(ctx))
    : undefined

  const results: Report.Results = {
    meta: {
      date: new Date().toISOString(),
      mode: quick ? "quick" : "full",
      durationSeconds: Math.round((performance.now() - started) / 1000),
      machine: yield* Effect.promise(machine),
      source,
      loadAverage,
      quiet,
      sizes,
      setup: {
        dsqlLocal: "DsqlLocal.start({ backendMaxConnections }) over its embedded PostgreSQL 16",
        backendMaxConnections: MAX_BACKEND_CONNECTIONS,
        latencyMs: Scenarios.LATENCY_MS,
        rtt1msDelays: Scenarios.RTT_DELAYS,
        loadPoolSize: Scenarios.LOAD_POOL_SIZE,
        occPoolSize: Scenarios.OCC_POOL_SIZE,
        stormLimits: Scenarios.STORM_LIMITS,
        stormPoolSize: Scenarios.STORM_POOL_SIZE
      }
    },
    ...(tokens === undefined ? {} : { tokens }),
    ...(setup === undefined ? {} : { setup }),
    ...(throughput === undefined ? {} : { throughput }),
    ...(occ === undefined ? {} : { occ }),
    ...(occSweep === undefined ? {} : { occSweep }),
    ...(storm === undefined ? {} : { storm }),
    ...(coldStart === undefined ? {} : { coldStart }),
    ...(local === undefined ? {} : { local }),
    errors
  }
  const targets = Report.targets(results)
  const text = Report.markdown(results, targets)
  console.log(`\n${text}\n`)
  yield* Effect.promise(() => writeOutputs(results, targets, text))
  log(`wrote ${Path.relative(process.cwd(), Path.join(outDir, "results.json"))} and charts`)
  return errors.length
})

Effect.runPromise(Effect.scoped(program)).then(
  (errors) => process.exit(errors > 0 ? 1 : 0),
  (error) => {
    console.error(describeError(error))
    process.exit(1)
  }
)
