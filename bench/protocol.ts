/**
 * What the orchestrator (main.ts) and the client processes (worker.ts) say to each other over IPC.
 */
import type { Latency } from "./stats.js"

/** Where a client connects: `address`:`port`, with `hostname` as SNI, certificate identity and token host. */
export interface Endpoint {
  readonly hostname: string
  readonly region: string
  readonly address: string
  readonly port: number
  /** DsqlLocal's CA, passed in the client's own TLS option; undefined when the process trusts it through NODE_EXTRA_CA_CERTS. */
  readonly ca: string | undefined
}

/** The implementations under test, as loaded in a client process (`bench/clients/<name>.ts`). */
export type ClientName = "ours" | "connector" | "pg" | "sqlpg" | "ours4" | "sqlpg4" | "backend"

export type QueryKind = "select1" | "pkRead" | "insert"

export interface LoadResult {
  readonly ops: number
  readonly errors: number
  readonly elapsedMs: number
  readonly latency: Latency
  /** CPU time (user + system) the client process used during the run, in µs. */
  readonly cpuUs: number
}

/** OCC retry options for our `withOccRetry` (milliseconds); undefined means the library defaults. */
export interface RetryPolicy {
  readonly maxRetries: number
  readonly baseDelayMs: number
  readonly maxDelayMs: number
  readonly jitter: number
}

export interface TransferOptions {
  readonly bank: string
  readonly ledger: string
  readonly accounts: number
  readonly workers: number
  readonly durationMs: number
  readonly policy: RetryPolicy | undefined
}

export interface TransferResult {
  readonly commits: number
  /** Commits that finished before the deadline: the throughput over the fixed window. */
  readonly commitsInWindow: number
  /** How long the transfers still running at the deadline took to finish (retries included). */
  readonly drainMs: number
  readonly attempts: number
  readonly gaveUp: number
  readonly otherErrors: number
  readonly errorSamples: ReadonlyArray<string>
  readonly latency: Latency
}

export interface StormResult {
  readonly elapsedMs: number
  readonly queries: number
  readonly errors: number
  readonly errorSamples: ReadonlyArray<string>
  readonly tokensSigned: number
}

/** One client implementation: each method opens what it needs and runs the client's own idiomatic code. */
export interface BenchClient {
  /** Opens a pool and checks out `connections` connections, one after another or all at once; closes it after. */
  readonly setup: (
    endpoint: Endpoint,
    connections: number,
    parallel: boolean
  ) => Promise<{ readonly elapsedMs: number }>
  /** Opens a pool of `poolSize` kept for `load` and `transfers` until `close`. */
  readonly open: (endpoint: Endpoint, poolSize: number) => Promise<void>
  readonly load: (query: QueryKind, concurrency: number, durationMs: number) => Promise<LoadResult>
  readonly transfers: (options: TransferOptions) => Promise<TransferResult>
  readonly close: () => Promise<void>
  /** `fibers` queries started at once on a cold pool of `poolSize`. */
  readonly storm: (endpoint: Endpoint, fibers: number, poolSize: number) => Promise<StormResult>
  /** `pools` cold pools of `poolSize` started at once, each running `poolSize` queries at once. */
  readonly coldStart: (endpoint: Endpoint, pools: number, poolSize: number) => Promise<StormResult>
}

/** Rows of the primary-key table read by `pkRead`. */
export const KV_ROWS = 10_000
export const KV_TABLE = "bench_kv"
export const INSERT_TABLE = "bench_ins"

export type Task =
  | {
    readonly kind: "tokens"
    readonly endpoint: Endpoint
    readonly profile: string | undefined
    readonly rounds: number
    readonly roundMs: number
  }
  | { readonly kind: "setup"; readonly endpoint: Endpoint; readonly connections: number; readonly parallel: boolean }
  | { readonly kind: "open"; readonly endpoint: Endpoint; readonly poolSize: number }
  | { readonly kind: "load"; readonly query: QueryKind; readonly concurrency: number; readonly durationMs: number }
  | { readonly kind: "transfers"; readonly options: TransferOptions }
  | { readonly kind: "close" }
  | { readonly kind: "storm"; readonly endpoint: Endpoint; readonly fibers: number; readonly poolSize: number }
  | { readonly kind: "coldStart"; readonly endpoint: Endpoint; readonly pools: number; readonly poolSize: number }
  | { readonly kind: "usage" }

export type Reply =
  | { readonly id: number; readonly ok: true; readonly result: unknown }
  | { readonly id: number; readonly ok: false; readonly error: string }

/** Peak and current resident set size of a client process, in MiB. */
export interface Usage {
  readonly maxRssMiB: number
  readonly rssMiB: number
  /** RSS right after the client's modules were loaded, before any work. */
  readonly baselineRssMiB: number
}

/** A short, secret-free description of an error for the report. */
export const describeError = (error: unknown): string => {
  if (typeof error !== "object" || error === null) return String(error)
  const { code, message, _tag } = error as { code?: unknown; message?: unknown; _tag?: unknown }
  const cause = (error as { cause?: unknown }).cause
  const own = [typeof _tag === "string" ? _tag : undefined, typeof code === "string" ? code : undefined]
    .filter((part) => part !== undefined)
    .join(" ")
  const text = `${own.length > 0 ? `${own}: ` : ""}${typeof message === "string" ? message : String(error)}`
  return cause !== undefined && cause !== error && typeof cause === "object"
    ? `${text} <- ${describeError(cause)}`
    : text
}
