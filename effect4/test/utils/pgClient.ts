/**
 * `@effect/sql-pg` 4's client for a running DsqlLocal, over verify-full TLS (SSLRequest), signing a token with
 * `@aws-sdk/dsql-signer` for each connection. No DsqlLocal import: a child process can use it too.
 */
import { DsqlSigner } from "@aws-sdk/dsql-signer"
import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted } from "effect"

/** Where a DsqlLocal listens and what it accepts (the fields of its `LocalServer`). */
export interface Server {
  readonly hostname: string
  readonly region: string
  readonly address: string
  readonly port: number
  readonly ca: string
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string }
}

export const layer = (server: Server) => {
  const signer = new DsqlSigner({ hostname: server.hostname, region: server.region, credentials: server.credentials })
  return PgClient.layer({
    host: server.address,
    port: server.port,
    username: "admin",
    database: "postgres",
    password: Effect.promise(() => signer.getDbConnectAdminAuthToken()).pipe(Effect.map(Redacted.make)),
    ssl: { ca: server.ca, servername: server.hostname }
  })
}
