/**
 * Raw node-postgres: a `pg.Pool` whose `password` callback signs one token per new connection with
 * `@aws-sdk/dsql-signer` (credentials from the default chain, resolved once by the signer), SSLRequest negotiation
 * (pg's default). It has no OCC retry helper, so it sits out the contention scenario.
 */
import { DsqlSigner } from "@aws-sdk/dsql-signer"
import pg from "pg"
import type { Endpoint } from "../protocol.js"
import { pgOptions, pooledClient } from "./common.js"

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

export const client = pooledClient({
  makePool,
  tokensSigned: () => tokensSigned,
  transfers: () => Promise.reject(new Error("raw pg has no OCC retry helper"))
})
