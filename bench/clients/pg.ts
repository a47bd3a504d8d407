/**
 * Raw node-postgres: a `pg.Pool` whose `password` callback signs one token per new connection with
 * `@aws-sdk/dsql-signer` (credentials from the default chain, resolved once by the signer), SSLRequest negotiation
 * (pg's default). It has no OCC retry helper, so it sits out the contention scenario.
 */
import { DsqlSigner } from "@aws-sdk/dsql-signer"
import pg from "pg"
import type { BenchClient, Endpoint } from "../protocol.js"
import { loadLoop, pgOptions, runQuery, setupPool, stormPools } from "./common.js"

let tokensSigned = 0

export const makePool = (endpoint: Endpoint, poolSize: number): pg.Pool => {
  const signer = new DsqlSigner({ hostname: endpoint.hostname, region: endpoint.region, expiresIn: 900 })
  return new pg.Pool({
    ...pgOptions(endpoint, poolSize),
    password: () => {
      tokensSigned++
      return signer.getDbConnectAdminAuthToken()
    }
  } as pg.PoolConfig)
}

let pool: pg.Pool | undefined

export const client: BenchClient = {
  setup: (endpoint, connections, parallel) => setupPool(makePool(endpoint, connections), connections, parallel),
  open: async (endpoint, poolSize) => {
    pool = makePool(endpoint, poolSize)
    pool.on("error", () => undefined)
  },
  load: (query, concurrency, durationMs) => loadLoop(() => runQuery(pool!, query), concurrency, durationMs),
  transfers: () => Promise.reject(new Error("raw pg has no OCC retry helper")),
  close: async () => {
    await pool?.end()
    pool = undefined
  },
  storm: (endpoint, fibers, poolSize) => stormPools(() => makePool(endpoint, poolSize), 1, fibers, () => tokensSigned),
  coldStart: (endpoint, pools, poolSize) =>
    stormPools(() => makePool(endpoint, poolSize), pools, poolSize, () => tokensSigned)
}
