/**
 * Scenario 6's reference handler, not a contender: plain `@effect/sql-pg` (`PgClient.layerFromPool`) over a pg pool
 * whose `password` callback signs with one `@aws-sdk/dsql-signer` (as the raw pg client does), used through
 * `SqlClient` from a `ManagedRuntime` like effect-dsql's handler. Its gap to the connector is what Effect, @effect/sql
 * and @effect/sql-pg cost at a cold start; its gap to effect-dsql is what effect-dsql adds.
 */
import { DsqlSigner } from "@aws-sdk/dsql-signer"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import pg from "pg"
import { dialing } from "../clients/common.js"

const host = process.env["BENCH_DSQL_HOST"]!
const signer = new DsqlSigner({ hostname: host, region: process.env["AWS_REGION"]! })

const runtime = ManagedRuntime.make(
  PgClient.layerFromPool({
    acquire: Effect.sync(() =>
      new pg.Pool({
        host,
        port: Number(process.env["BENCH_DSQL_PORT"]),
        user: "admin",
        database: "postgres",
        max: 1,
        ssl: { servername: host, rejectUnauthorized: true },
        stream: dialing(process.env["BENCH_DSQL_ADDRESS"]!),
        password: () => signer.getDbConnectAdminAuthToken()
      } as pg.PoolConfig)
    )
  }).pipe(Layer.provide(Reactivity.layer))
)

export const handler = () =>
  runtime.runPromise(Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ readonly one: number }>`SELECT 1 AS one`))
