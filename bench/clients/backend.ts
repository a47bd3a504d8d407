/**
 * The floor of scenario 7, not a contender: raw pg straight to DsqlLocal's backend PostgreSQL (env
 * BENCH_BACKEND_URL: loopback, no TLS, no token, PostgreSQL's trust authentication). The gap between it and raw pg
 * through DsqlLocal is what DsqlLocal's endpoint (TLS, IAM check, backend login, policy) adds to a connection.
 */
import pg from "pg"
import type { BenchClient } from "../protocol.js"
import { setupPool } from "./common.js"

const backendUrl = process.env["BENCH_BACKEND_URL"]

const setupOnly = () => Promise.reject(new Error("the backend floor runs in scenario 7 only"))

export const client: BenchClient = {
  setup: (_endpoint, connections, parallel) =>
    setupPool(new pg.Pool({ connectionString: backendUrl, max: connections }), connections, parallel),
  open: setupOnly,
  load: setupOnly,
  transfers: setupOnly,
  close: () => Promise.resolve(),
  storm: setupOnly,
  coldStart: setupOnly
}
