/**
 * Scenario 6's Lambda handler for effect-dsql 2 (the Effect 4 line), as a user writes one: the client built once at
 * module load from a `ManagedRuntime`, each invocation one query. The relative paths stand for the imports a user
 * writes (`effect-dsql`, `effect/Effect`, …): from bench/ the bare names would find the Effect 3 line's packages.
 */
import * as Effect from "../../effect4/node_modules/effect/dist/Effect.js"
import * as ManagedRuntime from "../../effect4/node_modules/effect/dist/ManagedRuntime.js"
import * as SqlClient from "../../effect4/node_modules/effect/dist/sql/SqlClient.js"
import { DsqlClient } from "../../effect4/src/index.js"

const runtime = ManagedRuntime.make(
  DsqlClient.layerConfig({
    host: process.env["BENCH_DSQL_HOST"]!,
    port: Number(process.env["BENCH_DSQL_PORT"]),
    region: process.env["AWS_REGION"]!,
    hostAddress: process.env["BENCH_DSQL_ADDRESS"]!,
    maxConnections: 1
  })
)

export const handler = () =>
  runtime.runPromise(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return yield* sql<{ readonly one: number }>`SELECT 1 AS one`
  }))
