/**
 * Scenario 6's Lambda handler for effect-dsql, as a user writes one: the client built once at module load from a
 * `ManagedRuntime`, each invocation one query. Bundled by coldStart.ts the way CDK's `NodejsFunction` bundles it.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { DsqlClient } from "effect-dsql"
import * as Effect from "effect/Effect"
import * as ManagedRuntime from "effect/ManagedRuntime"

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
  runtime.runPromise(Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ readonly one: number }>`SELECT 1 AS one`))
