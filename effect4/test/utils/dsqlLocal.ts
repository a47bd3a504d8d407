/**
 * DsqlLocal for the Effect 4 line's tests: the promise API's server as an Effect 4 service, for a layer's lifetime.
 */
import { LocalServer } from "@effect-dsql/local"
import { Context, Effect, Layer } from "effect"
import * as PgClientFor from "./pgClient.js"

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

/** `@effect/sql-pg` 4's client for the running DsqlLocal (see `pgClient.ts`). */
export const pgClient = Layer.unwrap(Effect.gen(function*() {
  return PgClientFor.layer(yield* DsqlLocal)
}))
