/**
 * DsqlLocal for Effect 4 programs and tests: the server of `@effect-dsql/local` (an optional peer: install it as a dev
 * dependency) as a service for a layer's lifetime, and the layers that put a `DsqlClient` on it.
 *
 * @example
 * ```ts
 * import { assert, layer } from "@effect/vitest"
 * import { Effect } from "effect"
 * import { SqlClient } from "effect/sql"
 * import { DsqlLocal } from "effect-dsql/local"
 *
 * layer(DsqlLocal.layerClient())("my repository", (it) => {
 *   it.effect("reads back what it wrote", () =>
 *     Effect.gen(function*() {
 *       const sql = yield* SqlClient.SqlClient
 *       const rows = yield* sql<{ greeting: string }>`SELECT 'Hello, DSQL!' AS greeting`
 *       assert.deepStrictEqual(rows, [{ greeting: "Hello, DSQL!" }])
 *     }))
 * })
 * ```
 *
 * @since 2.0.0
 */
import { LocalServer } from "@effect-dsql/local"
import type * as PgClient from "@effect/sql-pg/PgClient"
import type * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import * as DsqlClient from "../DsqlClient.js"
import * as TokenSigner from "../TokenSigner.js"

/**
 * DsqlLocal could not start: its `reason` and one-line `message` are those of `@effect-dsql/local`'s own error (the
 * backend PostgreSQL, certificates, the listener, missing packages or bad options), kept as `cause`.
 *
 * @since 2.0.0
 * @category errors
 */
export class DsqlLocalError extends Data.TaggedError("DsqlLocalError")<{
  readonly reason: LocalServer.FailureReason
  readonly message: string
  readonly cause: unknown
}> {}

/**
 * The running server: `LocalServer` of `@effect-dsql/local` (endpoint, CA, credentials, `env`, `stats()`, synchronous
 * `faults`).
 *
 * @since 2.0.0
 * @category services
 */
export class DsqlLocal extends Context.Service<DsqlLocal, LocalServer.LocalServer>()("effect-dsql/DsqlLocal") {}

const startFailed = (cause: unknown) =>
  new DsqlLocalError({
    reason: (cause as { readonly reason?: LocalServer.FailureReason } | undefined)?.reason ?? "Backend",
    message: cause instanceof Error ? cause.message : String(cause),
    cause
  })

/**
 * One DsqlLocal (and its embedded PostgreSQL) for the layer's lifetime; share it across a test file with `layer(…)`.
 *
 * @since 2.0.0
 * @category layers
 */
export const layer = (options?: LocalServer.Options): Layer.Layer<DsqlLocal, DsqlLocalError> =>
  Layer.effect(
    DsqlLocal,
    Effect.acquireRelease(
      Effect.tryPromise({ try: () => LocalServer.start(options), catch: startFailed }),
      (server) => Effect.promise(() => server.stop())
    )
  )

/**
 * The `DsqlClient` options that point a client at `server`: its endpoint name, port and region, the address to dial
 * and its CA. Credentials are not part of it: sign with `TokenSigner.layerStatic(server.credentials)`.
 *
 * @since 2.0.0
 * @category constructors
 */
export const clientConfig = (server: LocalServer.LocalServer): DsqlClient.ConfigInput => ({
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
 * @since 2.0.0
 * @category layers
 */
export const clientLayer = (
  server: LocalServer.LocalServer,
  overrides: DsqlClient.ConfigInput = {}
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, Config.ConfigError | SqlError> =>
  DsqlClient.layerConfig({ ...clientConfig(server), ...overrides }).pipe(
    Layer.provide(TokenSigner.layerStatic(server.credentials))
  )

/**
 * A DsqlLocal server and a `DsqlClient` on it, both for the layer's lifetime: `SqlClient` and `PgClient` for the code
 * under test, `DsqlLocal` for faults and stats.
 *
 * @since 2.0.0
 * @category layers
 */
export const layerClient = (
  options?: LocalServer.Options,
  overrides?: DsqlClient.ConfigInput
): Layer.Layer<
  DsqlLocal | PgClient.PgClient | SqlClient.SqlClient,
  DsqlLocalError | Config.ConfigError | SqlError
> =>
  Layer.unwrap(Effect.gen(function*() {
    return clientLayer(yield* DsqlLocal, overrides)
  })).pipe(Layer.provideMerge(layer(options)))
