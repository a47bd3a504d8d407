/**
 * The Effect 4 line's per-statement cost, alone: client CPU µs per `SELECT 1` (process.cpuUsage, user + system) for
 * effect-dsql 2's `DsqlClient` and plain @effect/sql-pg 4's `PgClient`, each on its own pool of `concurrency`
 * connections, at most 16 (as in scenario 3, so that checkouts at concurrency 64 wait for one), to one DsqlLocal,
 * which runs in a child process so that its proxy's CPU is not counted. Loads effect-dsql 2's build, as the bench
 * does. Not part of `npm run bench`.
 *
 *   (cd effect4 && npm run build) && npx tsx bench/queryPath4.ts [queries=20000] [runs=3] [client name filter]
 */
import { DsqlSigner } from "@aws-sdk/dsql-signer"
import { fork } from "node:child_process"
import * as Os from "node:os"
import { fileURLToPath } from "node:url"
import type { PgPoolConfig } from "../effect4/node_modules/@effect/sql-pg/dist/PgClient.js"
import { effect4, effectDsql4, PgClient, SqlClient } from "./library4.js"

const { Effect, Layer, Redacted } = effect4
const { DsqlClient, TokenSigner } = effectDsql4

interface Endpoint {
  readonly hostname: string
  readonly address: string
  readonly port: number
  readonly region: string
  readonly ca: string
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string }
}

if (process.argv[2] === "--server") {
  const { LocalServer } = await import("../src/local/index.js")
  const server = await LocalServer.start()
  const { accessKeyId, secretAccessKey } = server.credentials
  process.send!(
    {
      hostname: server.hostname,
      address: server.address,
      port: server.port,
      region: server.region,
      ca: server.ca,
      credentials: { accessKeyId, secretAccessKey }
    } satisfies Endpoint
  )
  process.on("disconnect", () => void server.stop().then(() => process.exit(0)))
} else {
  const queries = Number(process.argv[2] ?? 20_000)
  const runs = Number(process.argv[3] ?? 3)
  const only = process.argv[4] ?? ""
  // as scenario 3: at concurrency 64 the pool's 16 connections are shared, and checkouts wait for them
  const poolCap = 16
  const child = fork(fileURLToPath(import.meta.url), ["--server"], { execArgv: process.execArgv })
  const endpoint = await new Promise<Endpoint>((resolve) => child.once("message", (m) => resolve(m as Endpoint)))

  const plain = (size: number, extra?: Partial<PgPoolConfig>) => {
    const { credentials, hostname, region } = endpoint
    const signer = new DsqlSigner({ hostname, region, credentials })
    return PgClient.layer({
      host: endpoint.address,
      port: endpoint.port,
      username: "admin",
      database: "postgres",
      password: Effect.map(Effect.promise(() => signer.getDbConnectAdminAuthToken()), Redacted.make),
      ssl: { ca: endpoint.ca, servername: hostname },
      maxConnections: size,
      ...extra
    })
  }
  const clients = {
    "effect-dsql 2": (size: number) =>
      DsqlClient.layerConfig({
        host: endpoint.hostname,
        port: endpoint.port,
        region: endpoint.region,
        hostAddress: endpoint.address,
        caPem: endpoint.ca,
        maxConnections: size
      }).pipe(Layer.provide(TokenSigner.layerStatic(endpoint.credentials))),
    "@effect/sql-pg 4": (size: number) => plain(size),
    // the pool as DsqlClient configures it: a bounded checkout and a lifetime take sql-pg off its `Pool.use` path
    "@effect/sql-pg 4 +acquireTimeout +TTL": (size: number) =>
      plain(size, { acquireTimeout: "10 seconds", connectionTTL: "55 minutes" })
  }

  /** CPU µs per statement over `queries` statements at `concurrency`, after a warm-up. */
  const measure = (concurrency: number) =>
    Effect.gen(function*() {
      const sql = yield* SqlClient
      const batch = (n: number) =>
        Effect.forEach(Array.from({ length: concurrency }), () => Effect.repeat(sql`SELECT 1`, { times: n - 1 }), {
          concurrency: "unbounded",
          discard: true
        })
      yield* batch(Math.ceil(2_000 / concurrency))
      const before = process.cpuUsage()
      yield* batch(Math.ceil(queries / concurrency))
      const used = process.cpuUsage(before)
      return (used.user + used.system) / queries
    })

  const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
  for (const concurrency of [1, 16, 64]) {
    const samples: Record<string, Array<number>> = {}
    for (let run = 0; run < runs; run++) {
      for (const [name, layer] of Object.entries(clients)) {
        if (!name.includes(only)) continue
        const perOp = await Effect.runPromise(
          Effect.provide(measure(concurrency), layer(Math.min(concurrency, poolCap)))
        )
        ;(samples[name] ??= []).push(perOp)
      }
    }
    for (const [name, xs] of Object.entries(samples)) {
      console.log(
        `concurrency ${concurrency} ${name}: median ${median(xs)!.toFixed(0)} µs/op (${
          xs.map((x) => x.toFixed(0)).join(", ")
        }), load ${Os.loadavg().map((l) => l.toFixed(2)).join(" ")}`
      )
    }
  }
  child.disconnect()
}
