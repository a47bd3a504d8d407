/**
 * Scenario 6's reference handler for the Effect 4 line, not a contender: plain `@effect/sql-pg` 4 (`PgClient.layer`,
 * its own driver), its `password` an Effect signing with one `@aws-sdk/dsql-signer`, used through `SqlClient` from a
 * `ManagedRuntime` like effect-dsql 2's handler. Its gap to the connector is what Effect 4 and @effect/sql-pg 4 cost
 * at a cold start; its gap to effect-dsql 2 is what effect-dsql adds. Relative paths as in ours4.ts.
 */
import { DsqlSigner } from "@aws-sdk/dsql-signer"
import * as Net from "node:net"
import * as PgClient from "../../effect4/node_modules/@effect/sql-pg/dist/PgClient.js"
import * as Effect from "../../effect4/node_modules/effect/dist/Effect.js"
import * as ManagedRuntime from "../../effect4/node_modules/effect/dist/ManagedRuntime.js"
import * as Redacted from "../../effect4/node_modules/effect/dist/Redacted.js"
import * as SqlClient from "../../effect4/node_modules/effect/dist/sql/SqlClient.js"

const host = process.env["BENCH_DSQL_HOST"]!
const port = Number(process.env["BENCH_DSQL_PORT"])
const signer = new DsqlSigner({ hostname: host, region: process.env["AWS_REGION"]! })

const runtime = ManagedRuntime.make(
  PgClient.layer({
    host,
    port,
    username: "admin",
    database: "postgres",
    maxConnections: 1,
    password: Effect.map(Effect.promise(() => signer.getDbConnectAdminAuthToken()), (token) => Redacted.make(token)),
    ssl: { servername: host, rejectUnauthorized: true },
    stream: () => Net.connect(port, process.env["BENCH_DSQL_ADDRESS"]!)
  })
)

export const handler = () =>
  runtime.runPromise(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return yield* sql<{ readonly one: number }>`SELECT 1 AS one`
  }))
