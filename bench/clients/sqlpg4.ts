/**
 * A reference, not a contender: plain `@effect/sql-pg` 4 (`PgClient.layer`, its own driver and pool), its `password`
 * an Effect signing a token per new connection with one `@aws-sdk/dsql-signer` (as the raw pg client does), with the
 * same TLS as the pg clients (SSLRequest, `ssl: { ca, servername }`, dialing DsqlLocal's address), used through
 * `SqlClient` like effect-dsql 2. Its gap to raw pg is what @effect/sql-pg 4 and Effect 4 cost or save; its gap to
 * effect-dsql 2 is what effect-dsql adds. Only the throughput scenario runs it.
 */
import { DsqlSigner } from "@aws-sdk/dsql-signer"
import * as Net from "node:net"
import { effect4, PgClient } from "../library4.js"
import type { BenchClient, Endpoint } from "../protocol.js"
import { sslFor } from "./common.js"
import { loadEffect4 } from "./effectLoad4.js"

const { Effect, ManagedRuntime, Redacted } = effect4

const layerFor = (endpoint: Endpoint, poolSize: number) => {
  const signer = new DsqlSigner({ hostname: endpoint.hostname, region: endpoint.region, expiresIn: 900 })
  return PgClient.layer({
    host: endpoint.hostname,
    port: endpoint.port,
    username: "admin",
    database: "postgres",
    password: Effect.map(Effect.promise(() => signer.getDbConnectAdminAuthToken()), (token) => Redacted.make(token)),
    ssl: sslFor(endpoint),
    stream: () => Net.connect(endpoint.port, endpoint.address),
    maxConnections: poolSize,
    connectTimeout: "10 seconds"
  })
}

const makeRuntime = (endpoint: Endpoint, poolSize: number) => ManagedRuntime.make(layerFor(endpoint, poolSize))

let runtime: ReturnType<typeof makeRuntime> | undefined

const unsupported = () => Promise.reject(new Error("the @effect/sql-pg 4 reference runs only the throughput scenario"))

export const client: BenchClient = {
  open: async (endpoint, poolSize) => {
    runtime = makeRuntime(endpoint, poolSize)
    await runtime.context()
  },
  load: (query, concurrency, durationMs) => runtime!.runPromise(loadEffect4(query, concurrency, durationMs)),
  close: async () => {
    await runtime?.dispose()
    runtime = undefined
  },
  setup: unsupported,
  transfers: unsupported,
  storm: unsupported,
  coldStart: unsupported
}
