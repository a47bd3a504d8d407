/**
 * The comparisons. Each drives client processes (children.ts) against one DsqlLocal and returns plain data for
 * results.json; DsqlLocal's counters and faults are read and set here, between runs, never during one.
 */
import { Duration, Effect } from "effect"
import { spawn } from "node:child_process"
import type pg from "pg"
import { OccRetry } from "../src/index.js"
import type { DsqlLocal } from "../src/local/index.js"
import type { Child } from "./children.js"
import { startChild } from "./children.js"
import type { Delays } from "./linkDelay.js"
import type {
  ClientName,
  Endpoint,
  LoadResult,
  QueryKind,
  RetryPolicy,
  StormResult,
  TransferResult,
  Usage
} from "./protocol.js"
import { median, round } from "./stats.js"
import { startTlsRelay } from "./tlsRelay.js"
import type { SignerResult } from "./tokens.js"

export interface Sizes {
  readonly tokenRounds: number
  readonly tokenRoundMs: number
  readonly setupConnections: number
  readonly setupReps: number
  readonly loadMs: number
  readonly loadReps: number
  readonly warmMs: number
  readonly transferMs: number
  readonly transferReps: number
  readonly sweepMs: number
  readonly sweepReps: number
  readonly stormReps: number
  readonly stormFibers: number
  readonly stormPools: number
  readonly coldStartReps: number
  readonly localCostBatches: number
  readonly localCostReps: number
}

export interface Context {
  readonly server: DsqlLocal.Server
  /** DsqlLocal itself, the CA passed in the clients' TLS options. */
  readonly endpoint: Endpoint
  readonly sizes: Sizes
  readonly env: {
    /** No AWS or CA variables: what every client process starts from. */
    readonly base: Readonly<Record<string, string>>
    readonly keys: Readonly<Record<string, string>>
    readonly profile: Readonly<Record<string, string>>
    readonly extraCa: Readonly<Record<string, string>>
  }
  readonly profileName: string
  readonly backend: pg.Client
  /** A link to DsqlLocal holding every packet for the given delays, for the lifetime of `use`. */
  readonly withLinkDelay: <A>(delays: Delays, use: (endpoint: Endpoint) => Promise<A>) => Promise<A>
  readonly log: (line: string) => void
}

const run = <A>(effect: Effect.Effect<A>) => Effect.runPromise(effect)
const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))
/** Client sessions on the backend besides the bench's own connection. */
const backendSessions = async (ctx: Context): Promise<number> => {
  const { rows } = await ctx.backend.query<{ readonly sessions: string }>(
    "SELECT count(*) AS sessions FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
  )
  return Number(rows[0]!.sessions)
}

/**
 * Waits until the backend is back to `idle` client sessions (DsqlLocal's own), then a little longer: a cold-pool
 * measurement must not start while the previous one's sessions are still ending (their PostgreSQL backends exit
 * and are reaped on the same 2 cores), or whichever client runs next pays for the one before it.
 */
const settle = async (ctx: Context, idle: number) => {
  for (let polls = 0; polls < 100 && await backendSessions(ctx) > idle; polls++) await sleep(20)
  await sleep(100)
}
const rotate = <A>(items: ReadonlyArray<A>, by: number): Array<A> =>
  items.map((_, index) => items[(index + by) % items.length]!)

/** A client as a scenario runs it: which implementation, in which process environment, how it trusts the CA. */
interface Variant {
  readonly id: string
  readonly label: string
  readonly client: ClientName
  readonly env: Readonly<Record<string, string>>
  /** true: the CA goes in the client's TLS option; false: the process trusts it through NODE_EXTRA_CA_CERTS. */
  readonly caOption: boolean
}

const variant = (
  ctx: Context,
  id: string,
  label: string,
  client: ClientName,
  options: { readonly extraCa?: boolean; readonly env?: Readonly<Record<string, string>> } = {}
): Variant => ({
  id,
  label,
  client,
  env: { ...ctx.env.base, ...ctx.env.keys, ...(options.extraCa ? ctx.env.extraCa : {}), ...options.env },
  caOption: !options.extraCa
})

const endpointFor = (endpoint: Endpoint, v: Variant): Endpoint => v.caOption ? endpoint : { ...endpoint, ca: undefined }

const startVariant = (v: Variant) => startChild(v.id, { ...v.env, BENCH_CLIENT: v.client })

// ---------------------------------------------------------------------------------------------------------------
// 1. Token cost

export interface TokenCost {
  readonly credentials: "env" | "profile"
  readonly signers: ReadonlyArray<SignerResult>
}

export const tokenCost = async (ctx: Context): Promise<ReadonlyArray<TokenCost>> => {
  const modes = [
    { credentials: "env" as const, env: ctx.env.keys, profile: undefined },
    { credentials: "profile" as const, env: ctx.env.profile, profile: ctx.profileName }
  ]
  const results: Array<TokenCost> = []
  for (const mode of modes) {
    ctx.log(`1. token cost, credentials from ${mode.credentials}`)
    const child = await startChild(`tokens-${mode.credentials}`, {
      ...ctx.env.base,
      ...mode.env,
      BENCH_CLIENT: "tokens"
    })
    try {
      const signers = await child.call<ReadonlyArray<SignerResult>>({
        kind: "tokens",
        endpoint: ctx.endpoint,
        profile: mode.profile,
        rounds: ctx.sizes.tokenRounds,
        roundMs: ctx.sizes.tokenRoundMs
      })
      results.push({ credentials: mode.credentials, signers })
    } finally {
      await child.stop()
    }
  }
  return results
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Connection setup

export interface SetupRow {
  readonly latency: "setLatency" | "linkDelay"
  readonly parallel: boolean
  readonly variant: string
  readonly label: string
  readonly connections: number
  readonly medianMs: number
  readonly runsMs: ReadonlyArray<number>
  /** Client→server handshake round trips per connection, counted by DsqlLocal. */
  readonly roundTripsPerConnection: number
  readonly connectionsOpened: number
  readonly tlsModes: DsqlLocal.Stats["tlsModes"]
}

export const LATENCY_MS = 5

export const connectionSetup = async (ctx: Context): Promise<ReadonlyArray<SetupRow>> => {
  const variants = [
    variant(ctx, "ours", "effect-dsql (direct TLS, caPem)", "ours"),
    variant(ctx, "ours-extra-ca", "effect-dsql (direct TLS, NODE_EXTRA_CA_CERTS)", "ours", { extraCa: true }),
    variant(ctx, "ours-sslrequest", "effect-dsql (SSLRequest, caPem) [control]", "ours", {
      env: { BENCH_SSL_NEGOTIATION: "postgres" }
    }),
    variant(ctx, "ours4", "effect-dsql 2 (Effect 4; direct TLS, caPem)", "ours4"),
    variant(ctx, "ours4-extra-ca", "effect-dsql 2 (Effect 4; direct TLS, NODE_EXTRA_CA_CERTS)", "ours4", {
      extraCa: true
    }),
    variant(ctx, "connector", "node-postgres connector (ssl.ca)", "connector"),
    variant(ctx, "connector-extra-ca", "node-postgres connector (NODE_EXTRA_CA_CERTS)", "connector", { extraCa: true }),
    variant(ctx, "pg", "raw pg (ssl.ca)", "pg")
  ]
  const children = await Promise.all(variants.map(startVariant))
  const idleSessions = await backendSessions(ctx)
  const rows: Array<SetupRow> = []
  const connections = ctx.sizes.setupConnections
  const measure = async (latency: SetupRow["latency"], endpoint: Endpoint) => {
    for (const parallel of [false, true]) {
      ctx.log(`2. connection setup, ${latency} ${LATENCY_MS} ms, ${parallel ? "all at once" : "one after another"}`)
      const runs = new Map<string, Array<{ ms: number; stats: DsqlLocal.Stats }>>(variants.map((v) => [v.id, []]))
      for (let rep = -1; rep < ctx.sizes.setupReps; rep++) {
        for (const index of rotate(variants.map((_, i) => i), Math.max(rep, 0))) {
          const v = variants[index]!
          await settle(ctx, idleSessions)
          await run(ctx.server.resetStats)
          const { elapsedMs } = await children[index]!.call<{ elapsedMs: number }>({
            kind: "setup",
            endpoint: endpointFor(endpoint, v),
            connections,
            parallel
          })
          await sleep(50)
          const stats = await run(ctx.server.stats)
          if (rep >= 0) runs.get(v.id)!.push({ ms: elapsedMs, stats })
        }
      }
      for (const v of variants) {
        const measured = runs.get(v.id)!
        const accepted = measured.reduce((sum, r) => sum + r.stats.connectionsAccepted, 0)
        const trips = measured.reduce((sum, r) => sum + r.stats.handshakeRoundTrips, 0)
        const last = measured[measured.length - 1]!.stats
        rows.push({
          latency,
          parallel,
          variant: v.id,
          label: v.label,
          connections,
          medianMs: round(median(measured.map((r) => r.ms))),
          runsMs: measured.map((r) => round(r.ms)),
          roundTripsPerConnection: round(trips / accepted),
          connectionsOpened: round(accepted / measured.length),
          tlsModes: last.tlsModes
        })
      }
    }
  }
  try {
    await run(ctx.server.faults.setLatency(`${LATENCY_MS} millis`))
    await measure("setLatency", ctx.endpoint)
    await run(ctx.server.faults.setLatency(0))
    await ctx.withLinkDelay(
      { requestMs: LATENCY_MS, replyMs: LATENCY_MS },
      (endpoint) => measure("linkDelay", endpoint)
    )
  } finally {
    await run(ctx.server.faults.reset)
    await Promise.all(children.map((child) => child.stop()))
  }
  return rows
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Query throughput and latency

export interface LoadRow {
  readonly network: Network
  readonly query: QueryKind
  readonly concurrency: number
  readonly client: ClientName
  readonly opsPerSecond: number
  readonly p50Ms: number
  readonly p99Ms: number
  /** CPU the client process spent per operation (µs): what the client itself costs, apart from the server. */
  readonly clientCpuUsPerOp: number
  readonly errors: number
  /** Per run, in the order the runs were made (run i of every client in the same repetition). */
  readonly runsOpsPerSecond: ReadonlyArray<number>
  readonly runsP99Ms: ReadonlyArray<number>
  readonly runsCpuUsPerOp: ReadonlyArray<number>
}

export interface ClientUsage extends Usage {
  readonly variant: string
}

/**
 * Where the clients meet DsqlLocal in scenario 3: `loopback` directly, `rtt1ms` through the link relay holding every
 * request 1 ms (replies pass at once): a 1 ms round trip, as to DSQL in the same region, for every client alike.
 */
export type Network = "loopback" | "rtt1ms"

export const NETWORKS: ReadonlyArray<Network> = ["loopback", "rtt1ms"]
export const RTT_DELAYS: Delays = { requestMs: 1, replyMs: 0 }

export const QUERIES: ReadonlyArray<QueryKind> = ["select1", "pkRead", "insert"]
export const CONCURRENCIES = [1, 16, 64]
export const LOAD_POOL_SIZE = 16

export const throughput = async (
  ctx: Context
): Promise<{ readonly rows: ReadonlyArray<LoadRow>; readonly usage: ReadonlyArray<ClientUsage> }> => {
  const variants = [
    variant(ctx, "ours", "effect-dsql", "ours"),
    variant(ctx, "connector", "node-postgres connector", "connector"),
    variant(ctx, "pg", "raw pg", "pg"),
    variant(ctx, "sqlpg", "@effect/sql-pg reference", "sqlpg"),
    variant(ctx, "ours4", "effect-dsql 2 (Effect 4)", "ours4"),
    variant(ctx, "sqlpg4", "@effect/sql-pg 4 reference", "sqlpg4")
  ]
  const children = await Promise.all(variants.map(startVariant))
  const runs = new Map<string, Array<LoadResult>>()
  const key = (network: Network, query: QueryKind, concurrency: number, client: string) =>
    `${network}/${query}/${concurrency}/${client}`
  const usage: Array<ClientUsage> = []
  const measure = async (network: Network, endpoint: Endpoint) => {
    for (const child of children) {
      await child.call({ kind: "open", endpoint, poolSize: LOAD_POOL_SIZE })
      for (const query of QUERIES) {
        await child.call({ kind: "load", query, concurrency: LOAD_POOL_SIZE, durationMs: ctx.sizes.warmMs })
      }
    }
    for (let rep = 0; rep < ctx.sizes.loadReps; rep++) {
      ctx.log(`3. query throughput, ${network}, run ${rep + 1} of ${ctx.sizes.loadReps}`)
      for (const query of QUERIES) {
        for (const concurrency of CONCURRENCIES) {
          for (const index of rotate(variants.map((_, i) => i), rep)) {
            const result = await children[index]!.call<LoadResult>({
              kind: "load",
              query,
              concurrency,
              durationMs: ctx.sizes.loadMs
            })
            const k = key(network, query, concurrency, variants[index]!.client)
            runs.set(k, [...(runs.get(k) ?? []), result])
          }
        }
      }
    }
    for (const child of children) await child.call({ kind: "close" })
  }
  try {
    await measure("loopback", ctx.endpoint)
    await ctx.withLinkDelay(RTT_DELAYS, (endpoint) => measure("rtt1ms", endpoint))
  } finally {
    for (const [index, child] of children.entries()) usage.push({ variant: variants[index]!.id, ...await child.stop() })
  }
  const rows: Array<LoadRow> = []
  for (const network of NETWORKS) {
    for (const query of QUERIES) {
      for (const concurrency of CONCURRENCIES) {
        for (const v of variants) {
          const measured = runs.get(key(network, query, concurrency, v.client))!
          const opsPerSecond = measured.map((r) => (r.ops * 1000) / r.elapsedMs)
          const p99Ms = measured.map((r) => r.latency.p99)
          const cpuUsPerOp = measured.map((r) => r.cpuUs / Math.max(1, r.ops))
          rows.push({
            network,
            query,
            concurrency,
            client: v.client,
            opsPerSecond: round(median(opsPerSecond)),
            p50Ms: round(median(measured.map((r) => r.latency.p50))),
            p99Ms: round(median(p99Ms)),
            clientCpuUsPerOp: round(median(cpuUsPerOp)),
            errors: measured.reduce((sum, r) => sum + r.errors, 0),
            runsOpsPerSecond: opsPerSecond.map((value) => round(value)),
            runsP99Ms: p99Ms.map((value) => round(value)),
            runsCpuUsPerOp: cpuUsPerOp.map((value) => round(value))
          })
        }
      }
    }
  }
  return { rows, usage }
}

// ---------------------------------------------------------------------------------------------------------------
// 4. OCC under contention

export interface OccRow {
  readonly client: ClientName
  readonly workers: number
  readonly accounts: number
  readonly policy: RetryPolicy | "defaults"
  /** Commits finished within the fixed window, per second of it: the median over runs, and each run's. */
  readonly committedPerSecond: number
  readonly runsCommittedPerSecond: ReadonlyArray<number>
  readonly attemptsPerCommit: number
  /** Share of finished transfers that gave up on OCC conflicts after the retries, all runs together. */
  readonly gaveUpShare: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly otherErrors: number
  readonly errorSamples: ReadonlyArray<string>
  readonly invariantViolations: number
  /** Median time the transfers in flight at the deadline took to finish. */
  readonly drainMs: number
  readonly runs: number
}

const INITIAL_BALANCE = 1_000_000
let tableCounter = 0

interface Invariant {
  readonly total: string
  readonly ledgerRows: string
  readonly mismatched: string
}

/** Runs one transfer run on fresh tables and checks the bank's invariant on the backend afterwards. */
const transferRun = async (
  ctx: Context,
  child: Child,
  workers: number,
  accounts: number,
  durationMs: number,
  policy: RetryPolicy | undefined
) => {
  const suffix = `${process.pid}_${++tableCounter}`
  const bank = `bench_bank_${suffix}`
  const ledger = `bench_ledger_${suffix}`
  await ctx.backend.query(`CREATE TABLE ${bank} (id int PRIMARY KEY, balance bigint NOT NULL)`)
  await ctx.backend.query(
    `CREATE TABLE ${ledger} (id uuid PRIMARY KEY, src int NOT NULL, dst int NOT NULL, amount int NOT NULL)`
  )
  await ctx.backend.query(`INSERT INTO ${bank} SELECT g, ${INITIAL_BALANCE} FROM generate_series(1, ${accounts}) g`)
  try {
    const result = await child.call<TransferResult>({
      kind: "transfers",
      options: { bank, ledger, accounts, workers, durationMs, policy }
    })
    const { rows } = await ctx.backend.query<Invariant>(`
      SELECT (SELECT sum(balance) FROM ${bank}) AS total,
             (SELECT count(*) FROM ${ledger}) AS "ledgerRows",
             (SELECT count(*) FROM ${bank} b
               WHERE b.balance <> ${INITIAL_BALANCE}
                 - coalesce((SELECT sum(amount) FROM ${ledger} WHERE src = b.id), 0)
                 + coalesce((SELECT sum(amount) FROM ${ledger} WHERE dst = b.id), 0)) AS mismatched`)
    const invariant = rows[0]!
    const violations = (Number(invariant.total) === accounts * INITIAL_BALANCE ? 0 : 1) +
      (Number(invariant.ledgerRows) === result.commits ? 0 : 1) +
      Number(invariant.mismatched)
    return { result, violations }
  } finally {
    await ctx.backend.query(`DROP TABLE ${bank}, ${ledger}`)
  }
}

const summariseOcc = (
  client: ClientName,
  workers: number,
  accounts: number,
  durationMs: number,
  policy: RetryPolicy | "defaults",
  measured: ReadonlyArray<{ readonly result: TransferResult; readonly violations: number }>
): OccRow => {
  const commits = measured.reduce((sum, r) => sum + r.result.commits, 0)
  const gaveUp = measured.reduce((sum, r) => sum + r.result.gaveUp, 0)
  const committedPerSecond = measured.map((r) => (r.result.commitsInWindow * 1000) / durationMs)
  return {
    client,
    workers,
    accounts,
    policy,
    committedPerSecond: round(median(committedPerSecond)),
    runsCommittedPerSecond: committedPerSecond.map((value) => round(value)),
    attemptsPerCommit: round(median(measured.map((r) => r.result.attempts / Math.max(1, r.result.commits)))),
    gaveUpShare: round(gaveUp / Math.max(1, commits + gaveUp)),
    p50Ms: round(median(measured.map((r) => r.result.latency.p50))),
    p99Ms: round(median(measured.map((r) => r.result.latency.p99))),
    otherErrors: measured.reduce((sum, r) => sum + r.result.otherErrors, 0),
    errorSamples: [...new Set(measured.flatMap((r) => r.result.errorSamples))].slice(0, 5),
    invariantViolations: measured.reduce((sum, r) => sum + r.violations, 0),
    drainMs: round(median(measured.map((r) => r.result.drainMs))),
    runs: measured.length
  }
}

export const OCC_CONFIGS = [{ workers: 32, accounts: 4 }, { workers: 32, accounts: 64 }]
export const OCC_POOL_SIZE = 32

export const SWEEP: ReadonlyArray<RetryPolicy> = [10, 20].flatMap((maxRetries) =>
  [10, 20, 40, 60].flatMap((baseDelayMs) =>
    [250, 500, 1000].flatMap((maxDelayMs) =>
      [0.5, 1].map((jitter) => ({ maxRetries, baseDelayMs, maxDelayMs, jitter }))
    )
  )
)

/** `OccRetry.defaults` as a sweep point (its factor 2 and 30 s budget are what every sweep point keeps). */
export const CURRENT_DEFAULTS: RetryPolicy = {
  maxRetries: OccRetry.defaults.maxRetries,
  baseDelayMs: Duration.toMillis(OccRetry.defaults.baseDelay),
  maxDelayMs: Duration.toMillis(OccRetry.defaults.maxDelay),
  jitter: OccRetry.defaults.jitter
}

const samePolicy = (a: RetryPolicy, b: RetryPolicy) =>
  a.maxRetries === b.maxRetries && a.baseDelayMs === b.baseDelayMs && a.maxDelayMs === b.maxDelayMs &&
  a.jitter === b.jitter

/** The sweep's best policies that (almost) never give up, by committed tx/s, and the current defaults. */
const candidatesFrom = (sweep: ReadonlyArray<OccRow>): Array<RetryPolicy> => {
  const best = [...sweep]
    .filter((row) => row.gaveUpShare <= 0.01)
    .sort((a, b) => b.committedPerSecond - a.committedPerSecond)
    .slice(0, 6)
    .map((row) => row.policy as RetryPolicy)
  return best.some((policy) => samePolicy(policy, CURRENT_DEFAULTS)) ? best : [...best, CURRENT_DEFAULTS]
}

/**
 * One unmeasured run at high contention: the pool's connections opened and the code paths compiled, so that the
 * first measured run (in the sweep, the first policy) is not also the process's first transfer.
 */
const warmUp = (ctx: Context, child: Child) =>
  transferRun(ctx, child, OCC_CONFIGS[0]!.workers, OCC_CONFIGS[0]!.accounts, ctx.sizes.sweepMs, undefined)

/** Each client with its own retry defaults, at every contention level. */
export const contention = async (ctx: Context): Promise<ReadonlyArray<OccRow>> => {
  const variants = [
    variant(ctx, "ours", "effect-dsql withOccRetry (defaults)", "ours"),
    variant(ctx, "ours4", "effect-dsql 2 (Effect 4) withOccRetry (defaults)", "ours4"),
    variant(ctx, "connector", "connector pool.transaction (defaults)", "connector")
  ]
  const children = await Promise.all(variants.map(startVariant))
  const rows: Array<OccRow> = []
  try {
    for (const child of children) {
      await child.call({ kind: "open", endpoint: ctx.endpoint, poolSize: OCC_POOL_SIZE })
      await warmUp(ctx, child)
    }
    for (const { accounts, workers } of OCC_CONFIGS) {
      ctx.log(`4. OCC, ${workers} workers on ${accounts} accounts`)
      const measured = variants.map(() => [] as Array<{ result: TransferResult; violations: number }>)
      for (let rep = 0; rep < ctx.sizes.transferReps; rep++) {
        for (const index of rotate(variants.map((_, i) => i), rep)) {
          measured[index]!.push(
            await transferRun(ctx, children[index]!, workers, accounts, ctx.sizes.transferMs, undefined)
          )
        }
      }
      variants.forEach((v, index) =>
        rows.push(summariseOcc(v.client, workers, accounts, ctx.sizes.transferMs, "defaults", measured[index]!))
      )
    }
    for (const child of children) await child.call({ kind: "close" })
  } finally {
    await Promise.all(children.map((child) => child.stop()))
  }
  return rows
}

export interface Sweep {
  /** Every sweep policy at high contention (32 × 4). */
  readonly sweep: ReadonlyArray<OccRow>
  /** The sweep's best policies and the current defaults again, at low contention (32 × 64). */
  readonly confirm: ReadonlyArray<OccRow>
}

/**
 * `withOccRetry` over the SWEEP grid at 32 × 4, then the best policies that (almost) never gave up and the current
 * defaults at 32 × 64: what `OccRetry.defaults` is chosen from (`npm run bench -- --only=occ-sweep`).
 */
export const occSweep = async (ctx: Context): Promise<Sweep> => {
  const ours = await startVariant(variant(ctx, "ours", "effect-dsql withOccRetry", "ours"))
  const sweep: Array<OccRow> = []
  const confirm: Array<OccRow> = []
  const runPolicy = async (workers: number, accounts: number, policy: RetryPolicy) => {
    const measured: Array<{ result: TransferResult; violations: number }> = []
    for (let rep = 0; rep < ctx.sizes.sweepReps; rep++) {
      measured.push(await transferRun(ctx, ours, workers, accounts, ctx.sizes.sweepMs, policy))
    }
    return summariseOcc("ours", workers, accounts, ctx.sizes.sweepMs, policy, measured)
  }
  try {
    await ours.call({ kind: "open", endpoint: ctx.endpoint, poolSize: OCC_POOL_SIZE })
    const high = OCC_CONFIGS[0]!
    await warmUp(ctx, ours)
    for (const [index, policy] of SWEEP.entries()) {
      if (index % 12 === 0) ctx.log(`4. OCC policy sweep, ${index + 1}-${index + 12} of ${SWEEP.length}`)
      sweep.push(await runPolicy(high.workers, high.accounts, policy))
    }
    const low = OCC_CONFIGS[1]!
    ctx.log(`4. OCC, best policies again at ${low.workers} workers × ${low.accounts} accounts`)
    for (const policy of candidatesFrom(sweep)) confirm.push(await runPolicy(low.workers, low.accounts, policy))
    await ours.call({ kind: "close" })
  } finally {
    await ours.stop()
  }
  return { sweep, confirm }
}

// ---------------------------------------------------------------------------------------------------------------
// 5. Connection storm

export interface StormRow {
  readonly storm: "fibers" | "pools"
  readonly variant: string
  readonly label: string
  /** What was started at once: fibers on one pool, or pools of STORM_POOL_SIZE each running as many queries. */
  readonly size: number
  readonly medianMs: number
  readonly runsMs: ReadonlyArray<number>
  readonly queries: number
  /** Per run, medians over runs. */
  readonly connectionsOpened: number
  readonly connectionsRefused: number
  readonly tokensSigned: number
  /** All runs together, and per run. */
  readonly errors: number
  readonly runsErrors: ReadonlyArray<number>
  readonly errorSamples: ReadonlyArray<string>
  readonly runs: number
  /** The client process's, over both storms (one process per client for the scenario). */
  readonly usage: Usage
}

export const STORM_LIMITS = { connectionRatePerSecond: 100, connectionBurst: 100 }
/** Busy processes competing for the 2 cores in the loaded storm variant: the client gets at most a share of a core. */
export const STORM_BUSY_PROCESSES = 2

/** Runs `use` while `count` processes spin on the CPU. */
const withBusyCores = async <A>(count: number, use: () => Promise<A>): Promise<A> => {
  const busy = Array.from({ length: count }, () => spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" }))
  try {
    return await use()
  } finally {
    busy.forEach((process) => process.kill("SIGKILL"))
  }
}
export const STORM_POOL_SIZE = 20

export const storm = async (ctx: Context): Promise<ReadonlyArray<StormRow>> => {
  const variants = [
    variant(ctx, "ours", "effect-dsql (caPem)", "ours"),
    variant(ctx, "ours-extra-ca", "effect-dsql (NODE_EXTRA_CA_CERTS)", "ours", { extraCa: true }),
    variant(ctx, "connector", "node-postgres connector", "connector"),
    variant(ctx, "pg", "raw pg", "pg"),
    variant(ctx, "ours-loaded", `effect-dsql (caPem, ${STORM_BUSY_PROCESSES} busy processes competing)`, "ours"),
    variant(ctx, "ours4", "effect-dsql 2, Effect 4 (caPem)", "ours4"),
    variant(ctx, "ours4-extra-ca", "effect-dsql 2, Effect 4 (NODE_EXTRA_CA_CERTS)", "ours4", { extraCa: true }),
    variant(
      ctx,
      "ours4-loaded",
      `effect-dsql 2, Effect 4 (caPem, ${STORM_BUSY_PROCESSES} busy processes competing)`,
      "ours4"
    )
  ]
  const { stormFibers, stormPools, stormReps } = ctx.sizes
  const rows: Array<StormRow> = []
  for (const v of variants) {
    const child = await startVariant(v)
    const endpoint = endpointFor(ctx.endpoint, v)
    const measured: Record<StormRow["storm"], Array<{ result: StormResult; stats: DsqlLocal.Stats }>> = {
      fibers: [],
      pools: []
    }
    let usage: Usage | undefined
    try {
      for (const kind of ["fibers", "pools"] as const) {
        ctx.log(
          `5. storm: ${
            kind === "fibers"
              ? `${stormFibers} fibers on a cold pool of ${STORM_POOL_SIZE}`
              : `${stormPools} cold pools of ${STORM_POOL_SIZE}`
          }, ${v.label}`
        )
        for (let rep = 0; rep < stormReps; rep++) {
          await run(ctx.server.faults.reset)
          await run(ctx.server.faults.setLimits(STORM_LIMITS))
          await run(ctx.server.resetStats)
          const result = await withBusyCores(
            v.id.endsWith("-loaded") ? STORM_BUSY_PROCESSES : 0,
            () =>
              kind === "fibers"
                ? child.call<StormResult>({ kind: "storm", endpoint, fibers: stormFibers, poolSize: STORM_POOL_SIZE })
                : child.call<StormResult>({ kind: "coldStart", endpoint, pools: stormPools, poolSize: STORM_POOL_SIZE })
          )
          await sleep(300)
          measured[kind].push({ result, stats: await run(ctx.server.stats) })
        }
      }
    } finally {
      usage = await child.stop()
      await run(ctx.server.faults.reset)
    }
    for (const kind of ["fibers", "pools"] as const) {
      const runs = measured[kind]
      rows.push({
        storm: kind,
        variant: v.id,
        label: v.label,
        size: kind === "fibers" ? stormFibers : stormPools,
        medianMs: round(median(runs.map((m) => m.result.elapsedMs))),
        runsMs: runs.map((m) => round(m.result.elapsedMs)),
        queries: runs[0]!.result.queries,
        connectionsOpened: median(runs.map((m) => m.stats.connectionsAccepted)),
        connectionsRefused: median(runs.map((m) => m.stats.connectionsRefused)),
        tokensSigned: median(runs.map((m) => m.result.tokensSigned)),
        errors: runs.reduce((sum, m) => sum + m.result.errors, 0),
        runsErrors: runs.map((m) => m.result.errors),
        errorSamples: [...new Set(runs.flatMap((m) => m.result.errorSamples))].slice(0, 5),
        runs: runs.length,
        usage
      })
    }
  }
  return rows
}

// ---------------------------------------------------------------------------------------------------------------
// 7. What DsqlLocal adds to a connection

export interface LocalCostRow {
  /** Connections opened at once; 1: one after another, the time per connection. */
  readonly atOnce: number
  readonly variant: "backend" | "tlsRelay" | "pg"
  readonly label: string
  readonly medianMs: number
  /** Per repetition: the median over its batches. */
  readonly runsMs: ReadonlyArray<number>
}

/** How many connections are opened at once in the parallel case: three, as a small pool warming up. */
export const LOCAL_COST_AT_ONCE = 3

/**
 * Raw pg opening connections to DsqlLocal's backend PostgreSQL three ways, at loopback without injected latency, one
 * after another and three at once: straight (no TLS), through a bare TLS relay (tlsRelay.ts), and through DsqlLocal
 * (SSLRequest, verify-full TLS, a signed token checked, the DSQL checks, its backend login and session policy). Each
 * batch starts on a settled backend.
 */
export const dsqlLocalCost = async (ctx: Context): Promise<ReadonlyArray<LocalCostRow>> => {
  const backend = new URL(ctx.server.backendUrl)
  const relay = await startTlsRelay({ host: backend.hostname, port: Number(backend.port) })
  const relayUrl = new URL(ctx.server.backendUrl)
  relayUrl.hostname = "127.0.0.1"
  relayUrl.port = String(relay.port)
  const variants = [
    variant(ctx, "backend", "raw pg straight to the backend PostgreSQL (no TLS, no token)", "backend", {
      env: { BENCH_BACKEND_URL: ctx.server.backendUrl }
    }),
    variant(ctx, "tlsRelay", "raw pg through a bare TLS relay to the backend (TLS, no token)", "backend", {
      env: {
        BENCH_BACKEND_URL: relayUrl.toString(),
        BENCH_BACKEND_CA: relay.ca,
        BENCH_BACKEND_SERVERNAME: relay.hostname
      }
    }),
    variant(ctx, "pg", "raw pg through DsqlLocal (TLS, token)", "pg")
  ] as const
  const children = await Promise.all(variants.map(startVariant))
  const idleSessions = await backendSessions(ctx)
  const { localCostBatches: batches, localCostReps: reps } = ctx.sizes
  const rows: Array<LocalCostRow> = []
  try {
    for (const atOnce of [1, LOCAL_COST_AT_ONCE]) {
      ctx.log(`7. DsqlLocal's cost per connection, ${atOnce === 1 ? "one after another" : `${atOnce} at once`}`)
      const runs = variants.map((): Array<number> => [])
      for (let rep = -1; rep < reps; rep++) {
        for (const index of rotate(variants.map((_, i) => i), Math.max(rep, 0))) {
          const v = variants[index]!
          const batchMs: Array<number> = []
          for (let batch = 0; batch < batches; batch++) {
            await settle(ctx, idleSessions)
            const { elapsedMs } = await children[index]!.call<{ elapsedMs: number }>({
              kind: "setup",
              endpoint: endpointFor(ctx.endpoint, v),
              connections: atOnce,
              parallel: atOnce > 1
            })
            batchMs.push(elapsedMs)
          }
          if (rep >= 0) runs[index]!.push(round(median(batchMs)))
        }
      }
      variants.forEach((v, index) =>
        rows.push({
          atOnce,
          variant: v.id as LocalCostRow["variant"],
          label: v.label,
          medianMs: round(median(runs[index]!)),
          runsMs: runs[index]!
        })
      )
    }
  } finally {
    await Promise.all(children.map((child) => child.stop()))
    await relay.close()
  }
  return rows
}
