/**
 * The floors of scenario 7, not contenders: raw pg to DsqlLocal's backend PostgreSQL (env BENCH_BACKEND_URL:
 * loopback, trust authentication, no token), either straight (no TLS) or through the bare TLS relay (env
 * BENCH_BACKEND_CA and BENCH_BACKEND_SERVERNAME: SSLRequest, verify-full TLS). What raw pg through DsqlLocal costs
 * beyond the TLS relay is DsqlLocal's own: the token check, the DSQL checks, its backend login and session policy.
 */
import pg from "pg"
import type { BenchClient } from "../protocol.js"
import { setupPool } from "./common.js"

const backendUrl = process.env["BENCH_BACKEND_URL"]
const ca = process.env["BENCH_BACKEND_CA"]
const ssl = ca === undefined ? undefined : { ca, servername: process.env["BENCH_BACKEND_SERVERNAME"] }

const setupOnly = () => Promise.reject(new Error("the backend floors run in scenario 7 only"))

export const client: BenchClient = {
  setup: (_endpoint, connections, parallel) =>
    setupPool(
      new pg.Pool({ connectionString: backendUrl, max: connections, ...(ssl === undefined ? {} : { ssl }) }),
      connections,
      parallel
    ),
  open: setupOnly,
  load: setupOnly,
  transfers: setupOnly,
  close: () => Promise.resolve(),
  storm: setupOnly,
  coldStart: setupOnly
}
