/**
 * What the node-postgres based clients (raw pg and the official connector) share: dialing DsqlLocal's address while
 * pg uses the DSQL host name, their TLS options, and the load loops written the way a pg user writes them.
 */
import { randomUUID } from "node:crypto"
import * as Net from "node:net"
import type pg from "pg"
import type {
  BenchClient,
  Endpoint,
  LoadResult,
  QueryKind,
  StormResult,
  TransferOptions,
  TransferResult
} from "../protocol.js"
import { describeError, INSERT_TABLE, KV_ROWS, KV_TABLE } from "../protocol.js"
import { makeRecorder } from "../stats.js"

/** A pg `stream` factory dialing `address` whatever host pg asks for: pg keeps the host name for SNI and the check. */
export const dialing = (address: string) => (): Net.Socket => {
  const socket = new Net.Socket()
  const connect = socket.connect.bind(socket) as (port: number, host: string) => Net.Socket
  return Object.assign(socket, { connect: (port: number) => connect(port, address) })
}

/** verify-full TLS against the DSQL host name, trusting DsqlLocal's CA through the option when one is given. */
export const sslFor = (endpoint: Endpoint) => ({
  servername: endpoint.hostname,
  rejectUnauthorized: true,
  ...(endpoint.ca === undefined ? {} : { ca: endpoint.ca })
})

/** The pg options every pg-based client gets: same endpoint, pool size, user and timeouts. */
export const pgOptions = (endpoint: Endpoint, poolSize: number) => ({
  host: endpoint.hostname,
  port: endpoint.port,
  user: "admin",
  database: "postgres",
  ssl: sslFor(endpoint),
  stream: dialing(endpoint.address),
  max: poolSize,
  connectionTimeoutMillis: 10_000
})

export const randomKey = () => 1 + Math.floor(Math.random() * KV_ROWS)

/** One query of the given kind through `pool.query`, the way node-postgres users run single statements. */
export const runQuery = (pool: pg.Pool, query: QueryKind): Promise<unknown> => {
  switch (query) {
    case "select1":
      return pool.query("SELECT 1")
    case "pkRead":
      return pool.query(`SELECT id, balance FROM ${KV_TABLE} WHERE id = $1`, [randomKey()])
    case "insert":
      return pool.query(`INSERT INTO ${INSERT_TABLE} (id, payload) VALUES ($1, $2)`, [randomUUID(), "bench"])
  }
}

/**
 * The bookkeeping of a load run, whatever runs the queries (promises, Effect 3 or Effect 4 fibers): the deadline,
 * each query's latency or error, and at the end the counts with the CPU the process spent since it started.
 */
export const makeLoadMeter = (durationMs: number) => {
  const recorder = makeRecorder()
  let errors = 0
  const cpu = process.cpuUsage()
  const started = performance.now()
  const deadline = started + durationMs
  return {
    running: () => performance.now() < deadline,
    succeeded: (begin: number) => recorder.add(performance.now() - begin),
    failed: () => {
      errors++
    },
    result: (): LoadResult => {
      const elapsedMs = performance.now() - started
      const { system, user } = process.cpuUsage(cpu)
      const latency = recorder.summary()
      return { ops: latency.count, errors, elapsedMs, latency, cpuUs: user + system }
    }
  }
}

/** `concurrency` async loops running `op` until `durationMs` has passed. */
export const loadLoop = async (
  op: () => Promise<unknown>,
  concurrency: number,
  durationMs: number
): Promise<LoadResult> => {
  const meter = makeLoadMeter(durationMs)
  const worker = async () => {
    while (meter.running()) {
      const begin = performance.now()
      try {
        await op()
        meter.succeeded(begin)
      } catch {
        meter.failed()
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return meter.result()
}

/**
 * The bookkeeping of a transfer run (scenario 4), whatever retries the transfers: the deadline, a random transfer
 * between two distinct accounts, attempts, commits (and those within the window), give-ups and other errors, and
 * the result.
 */
export const makeTransferTally = (options: TransferOptions) => {
  const recorder = makeRecorder()
  const errors = makeErrorLog()
  let commits = 0
  let commitsInWindow = 0
  let attempts = 0
  let gaveUp = 0
  const deadline = performance.now() + options.durationMs
  return {
    running: () => performance.now() < deadline,
    /** Two distinct accounts and an amount, at random. */
    pick: () => {
      const from = 1 + Math.floor(Math.random() * options.accounts)
      const to = 1 + ((from + Math.floor(Math.random() * (options.accounts - 1))) % options.accounts)
      return { id: randomUUID(), from, to, amount: 1 + Math.floor(Math.random() * 10) }
    },
    attempted: () => {
      attempts++
    },
    committed: (begin: number) => {
      const now = performance.now()
      commits++
      if (now <= deadline) commitsInWindow++
      recorder.add(now - begin)
    },
    gaveUp: () => {
      gaveUp++
    },
    failed: errors.add,
    result: (): TransferResult => ({
      commits,
      commitsInWindow,
      drainMs: performance.now() - deadline,
      attempts,
      gaveUp,
      otherErrors: errors.count(),
      errorSamples: errors.samples(),
      latency: recorder.summary()
    })
  }
}

/** Collects a few distinct error descriptions. */
export const makeErrorLog = () => {
  const samples = new Set<string>()
  let count = 0
  return {
    add: (error: unknown) => {
      count++
      if (samples.size < 5) samples.add(describeError(error).slice(0, 300))
    },
    count: () => count,
    samples: () => [...samples]
  }
}

/** Starts every query at once on pools made by `makePool` and waits for all, closing the pools after. */
export const stormPools = async (
  makePool: () => pg.Pool,
  pools: number,
  queriesPerPool: number,
  tokensSigned: () => number
): Promise<StormResult> => {
  const errors = makeErrorLog()
  const signedBefore = tokensSigned()
  const started = performance.now()
  const created = Array.from({ length: pools }, () => {
    const pool = makePool()
    pool.on("error", () => undefined)
    return pool
  })
  await Promise.all(
    created.flatMap((pool) =>
      Array.from({ length: queriesPerPool }, () => pool.query("SELECT 1").then(() => undefined, errors.add))
    )
  )
  const elapsedMs = performance.now() - started
  const signed = tokensSigned() - signedBefore
  await Promise.all(created.map((pool) => pool.end().catch(() => undefined)))
  return {
    elapsedMs,
    queries: pools * queriesPerPool,
    errors: errors.count(),
    errorSamples: errors.samples(),
    tokensSigned: signed
  }
}

/** Checks out `connections` connections from a fresh pool, serially or at once, then releases them and ends it. */
export const setupPool = async (pool: pg.Pool, connections: number, parallel: boolean) => {
  pool.on("error", () => undefined)
  const started = performance.now()
  const clients: Array<pg.PoolClient> = []
  try {
    if (parallel) {
      // every client that did connect is released below, even when another failed
      const settled = await Promise.allSettled(Array.from({ length: connections }, () => pool.connect()))
      for (const outcome of settled) if (outcome.status === "fulfilled") clients.push(outcome.value)
      const failure = settled.find((outcome) => outcome.status === "rejected")
      if (failure !== undefined) throw failure.reason
    } else {
      for (let index = 0; index < connections; index++) clients.push(await pool.connect())
    }
    return { elapsedMs: performance.now() - started }
  } finally {
    for (const client of clients) client.release()
    await pool.end()
  }
}

/**
 * A `BenchClient` over node-postgres-style pools: one pool kept for `load` and `transfers` between `open` and `close`,
 * fresh ones for setup and storms. `tokensSigned` reads the client's own count of signed tokens.
 */
export const pooledClient = <P extends pg.Pool>(options: {
  readonly makePool: (endpoint: Endpoint, poolSize: number) => P
  readonly tokensSigned: () => number
  readonly transfers: (pool: P, transfer: TransferOptions) => Promise<TransferResult>
}): BenchClient => {
  let pool: P | undefined
  return {
    setup: (endpoint, connections, parallel) =>
      setupPool(options.makePool(endpoint, connections), connections, parallel),
    open: async (endpoint, poolSize) => {
      pool = options.makePool(endpoint, poolSize)
      pool.on("error", () => undefined)
    },
    load: (query, concurrency, durationMs) => loadLoop(() => runQuery(pool!, query), concurrency, durationMs),
    transfers: (transfer) => options.transfers(pool!, transfer),
    close: async () => {
      await pool?.end()
      pool = undefined
    },
    storm: (endpoint, fibers, poolSize) =>
      stormPools(() => options.makePool(endpoint, poolSize), 1, fibers, options.tokensSigned),
    coldStart: (endpoint, pools, poolSize) =>
      stormPools(() => options.makePool(endpoint, poolSize), pools, poolSize, options.tokensSigned)
  }
}
