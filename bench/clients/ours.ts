/**
 * effect-dsql: `DsqlClient.layerConfig` (credentials from the default AWS chain through `TokenSigner`, direct TLS by
 * default, a token per new connection) used through `SqlClient`, and `withOccRetry` for OCC retries. Driven from
 * Effect fibers, as an Effect program would use it.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Cause, Context, Duration, Effect, Exit, Layer, ManagedRuntime, Metric } from "effect"
import type { OccRetry as OccRetryTypes } from "../../src/index.js"
import { effectDsql } from "../library.js"
import type { BenchClient, Endpoint, RetryPolicy, StormResult, TransferOptions } from "../protocol.js"
import { makeErrorLog, makeTransferTally } from "./common.js"
import { loadEffect } from "./effectLoad.js"

const { DsqlClient, DsqlMetrics, OccRetry, withOccRetry } = effectDsql

/** `postgres` only for the control run that shows what direct TLS saves. */
const sslNegotiation = process.env["BENCH_SSL_NEGOTIATION"] === "postgres" ? "postgres" : "direct"

const layerFor = (endpoint: Endpoint, poolSize: number) =>
  DsqlClient.layerConfig({
    host: endpoint.hostname,
    port: endpoint.port,
    region: endpoint.region,
    hostAddress: endpoint.address,
    ...(endpoint.ca === undefined ? {} : { caPem: endpoint.ca }),
    maxConnections: poolSize,
    sslNegotiation
  })

const retryOptions = (policy: RetryPolicy | undefined): OccRetryTypes.Options | undefined =>
  policy === undefined ? undefined : {
    maxRetries: policy.maxRetries,
    baseDelay: Duration.millis(policy.baseDelayMs),
    maxDelay: Duration.millis(policy.maxDelayMs),
    jitter: policy.jitter
  }

const transfers = (options: TransferOptions) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const retry = retryOptions(options.policy)
    const tally = makeTransferTally(options)
    const transfer = ({ amount, from, id, to }: ReturnType<typeof tally.pick>) =>
      Effect.gen(function*() {
        tally.attempted()
        yield* sql`UPDATE ${sql(options.bank)} SET balance = balance - ${amount} WHERE id = ${from}`
        yield* sql`UPDATE ${sql(options.bank)} SET balance = balance + ${amount} WHERE id = ${to}`
        yield* sql`INSERT INTO ${sql(options.ledger)} (id, src, dst, amount) VALUES (${id}, ${from}, ${to}, ${amount})`
      }).pipe(withOccRetry(retry))
    const worker = Effect.gen(function*() {
      while (tally.running()) {
        const picked = tally.pick()
        const begin = performance.now()
        const exit = yield* Effect.exit(transfer(picked))
        if (Exit.isSuccess(exit)) {
          tally.committed(begin)
        } else {
          const error = Cause.squash(exit.cause)
          if (OccRetry.isOccConflict(error)) tally.gaveUp()
          else tally.failed(error)
        }
      }
    })
    yield* Effect.all(Array.from({ length: options.workers }, () => worker), {
      concurrency: "unbounded",
      discard: true
    })
    return tally.result()
  })

const tokensSigned = Effect.map(Metric.value(DsqlMetrics.tokensSigned), (state) => state.count)

/** Opens each pool (its layer) and starts `queriesPerPool` queries on it at once; pools close after the count. */
const storm = (endpoint: Endpoint, pools: number, poolSize: number, queriesPerPool: number) =>
  Effect.gen(function*() {
    const errors = makeErrorLog()
    const signedBefore = yield* tokensSigned
    const started = performance.now()
    const runPool = Effect.gen(function*() {
      const built = yield* Effect.exit(Layer.build(layerFor(endpoint, poolSize)))
      if (Exit.isFailure(built)) {
        for (let index = 0; index < queriesPerPool; index++) errors.add(Cause.squash(built.cause))
        return
      }
      const sql = Context.get(built.value, SqlClient.SqlClient)
      yield* Effect.all(
        Array.from({ length: queriesPerPool }, () =>
          Effect.catchAllCause(sql`SELECT 1`, (cause) => Effect.sync(() => errors.add(Cause.squash(cause))))),
        { concurrency: "unbounded", discard: true }
      )
    })
    yield* Effect.all(
      Array.from({ length: pools }, () =>
        runPool),
      { concurrency: "unbounded", discard: true }
    )
    const elapsedMs = performance.now() - started
    return {
      elapsedMs,
      queries: pools * queriesPerPool,
      errors: errors.count(),
      errorSamples: errors.samples(),
      tokensSigned: (yield* tokensSigned) - signedBefore
    } satisfies StormResult
  }).pipe(Effect.scoped)

let runtime: ManagedRuntime.ManagedRuntime<SqlClient.SqlClient, unknown> | undefined

const opened = () => {
  if (runtime === undefined) throw new Error("no pool open")
  return runtime
}

export const client: BenchClient = {
  setup: (endpoint, connections, parallel) =>
    Effect.runPromise(
      Effect.gen(function*() {
        const started = performance.now()
        const context = yield* Layer.build(layerFor(endpoint, connections))
        const sql = Context.get(context, SqlClient.SqlClient)
        if (parallel) {
          yield* Effect.all(Array.from({ length: connections }, () => sql.reserve), {
            concurrency: "unbounded",
            discard: true
          })
        } else {
          for (let index = 0; index < connections; index++) yield* sql.reserve
        }
        return { elapsedMs: performance.now() - started }
      }).pipe(Effect.scoped)
    ),
  open: async (endpoint, poolSize) => {
    runtime = ManagedRuntime.make(layerFor(endpoint, poolSize))
    await runtime.runtime()
  },
  load: (query, concurrency, durationMs) => opened().runPromise(loadEffect(query, concurrency, durationMs)),
  transfers: (options) => opened().runPromise(transfers(options)),
  close: async () => {
    await runtime?.dispose()
    runtime = undefined
  },
  storm: (endpoint, fibers, poolSize) => Effect.runPromise(storm(endpoint, 1, poolSize, fibers)),
  coldStart: (endpoint, pools, poolSize) => Effect.runPromise(storm(endpoint, pools, poolSize, poolSize))
}
