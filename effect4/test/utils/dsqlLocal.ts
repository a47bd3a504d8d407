/**
 * DsqlLocal for the Effect 4 line's tests: the promise API's server as an Effect 4 service, for a layer's lifetime.
 */
import { DsqlSigner } from "@aws-sdk/dsql-signer"
import { LocalServer } from "@effect-dsql/local"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Layer, Redacted } from "effect"

/** The running DsqlLocal. */
export class DsqlLocal extends Context.Service<DsqlLocal, LocalServer.LocalServer>()("effect-dsql/test/DsqlLocal") {}

/** One DsqlLocal (and its embedded PostgreSQL) for the layer's lifetime; share it across a file with `layer(…)`. */
export const layer = (options?: Parameters<typeof LocalServer.start>[0]): Layer.Layer<DsqlLocal> =>
  Layer.effect(
    DsqlLocal,
    Effect.acquireRelease(
      Effect.promise(() => LocalServer.start(options)),
      (server) => Effect.promise(() => server.stop())
    )
  )

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
