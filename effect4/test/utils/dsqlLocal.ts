/**
 * DsqlLocal for the Effect 4 line's tests: the public `effect-dsql/local` service and layer, and a plain
 * `@effect/sql-pg` 4 client on it (no effect-dsql code between the test and the server).
 */
import { DsqlSigner } from "@aws-sdk/dsql-signer"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import { DsqlLocal } from "../../src/local/DsqlLocal.js"

export { DsqlLocal, layer } from "../../src/local/DsqlLocal.js"

/**
 * `@effect/sql-pg` 4's client for the running DsqlLocal, over verify-full TLS (SSLRequest), signing a token with
 * `@aws-sdk/dsql-signer` for each connection.
 */
export const pgClient = Layer.unwrap(Effect.gen(function*() {
  const server = yield* DsqlLocal
  const signer = new DsqlSigner({ hostname: server.hostname, region: server.region, credentials: server.credentials })
  return PgClient.layer({
    host: server.address,
    port: server.port,
    username: "admin",
    database: "postgres",
    password: Effect.promise(() => signer.getDbConnectAdminAuthToken()).pipe(Effect.map(Redacted.make)),
    ssl: { ca: server.ca, servername: server.hostname }
  })
}))
