/**
 * Scenario 6's Lambda handler for the node-postgres connector, as its README writes one: an `AuroraDSQLPool` made at
 * module load, each invocation one query. pg dials DsqlLocal's address through `stream` (the DSQL host name does not
 * resolve here) and keeps the host name for SNI and the certificate check.
 */
import { AuroraDSQLPool } from "@aws/aurora-dsql-node-postgres-connector"
import { dialing } from "../clients/common.js"

const pool = new AuroraDSQLPool({
  host: process.env["BENCH_DSQL_HOST"]!,
  port: Number(process.env["BENCH_DSQL_PORT"]),
  user: "admin",
  region: process.env["AWS_REGION"]!,
  max: 1,
  ssl: { servername: process.env["BENCH_DSQL_HOST"]!, rejectUnauthorized: true },
  stream: dialing(process.env["BENCH_DSQL_ADDRESS"]!)
} as never)

export const handler = async () => (await pool.query("SELECT 1 AS one")).rows
