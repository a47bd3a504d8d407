/**
 * DsqlLocal for effect-dsql's users: the server of `@effect-dsql/local` (everything its `DsqlLocal` module exports)
 * plus the layers that put a `DsqlClient` on it.
 *
 * @example
 * ```ts
 * import { SqlClient } from "@effect/sql"
 * import { Effect } from "effect"
 * import { DsqlLocal } from "effect-dsql/local"
 *
 * const program = Effect.gen(function*() {
 *   const sql = yield* SqlClient.SqlClient
 *   const server = yield* DsqlLocal.DsqlLocal
 *   yield* server.faults.failNextCommits(1)
 *   return yield* sql`SELECT 1 AS one`
 * }).pipe(Effect.provide(DsqlLocal.layerClient()))
 * ```
 *
 * @since 0.1.0
 */
import { DsqlLocal as Local } from "@effect-dsql/local"
import type * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as DsqlClient from "../DsqlClient.js"
import * as TokenSigner from "../TokenSigner.js"

export * from "@effect-dsql/local/DsqlLocal"

/**
 * The `DsqlClient` options that point a client at `server`: its endpoint name, port and region, the address to dial
 * and its CA. Credentials are not part of it: sign with `TokenSigner.layerStatic(server.credentials)`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const clientConfig = (server: Local.Server): DsqlClient.ConfigInput => ({
  host: server.hostname,
  port: server.port,
  region: server.region,
  hostAddress: server.address,
  caPem: server.ca
})

/**
 * A `DsqlClient` layer for `server`, signing with its credentials; `overrides` adjust the client (pool size,
 * lifetime, timeouts, TLS negotiation).
 *
 * @since 0.1.0
 * @category layers
 */
export const clientLayer = (
  server: Local.Server,
  overrides: DsqlClient.ConfigInput = {}
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, ConfigError.ConfigError | SqlError> =>
  DsqlClient.layerConfig({ ...clientConfig(server), ...overrides }).pipe(
    Layer.provide(TokenSigner.layerStatic(server.credentials))
  )

/**
 * A DsqlLocal server and a `DsqlClient` on it, both for the layer's lifetime: `SqlClient` and `PgClient` for the
 * code under test, `DsqlLocal` for faults and stats.
 *
 * @example
 * ```ts
 * import { SqlClient } from "@effect/sql"
 * import { assert, layer } from "@effect/vitest"
 * import { Effect } from "effect"
 * import { DsqlLocal } from "effect-dsql/local"
 *
 * layer(DsqlLocal.layerClient(), { excludeTestServices: true })("my repository", (it) => {
 *   it.effect("reads back what it wrote", () =>
 *     Effect.gen(function*() {
 *       const sql = yield* SqlClient.SqlClient
 *       const rows = yield* sql<{ greeting: string }>`SELECT 'Hello, DSQL!' AS greeting`
 *       assert.deepStrictEqual(rows, [{ greeting: "Hello, DSQL!" }])
 *     }))
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerClient = (
  options?: Local.Options,
  overrides?: DsqlClient.ConfigInput
): Layer.Layer<
  Local.DsqlLocal | PgClient.PgClient | SqlClient.SqlClient,
  Local.DsqlLocalError | ConfigError.ConfigError | SqlError
> =>
  Layer.unwrapEffect(Effect.map(Local.DsqlLocal, (server) => clientLayer(server, overrides))).pipe(
    Layer.provideMerge(Local.layer(options))
  )
