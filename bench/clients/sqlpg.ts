/**
 * A reference, not a contender: plain `@effect/sql-pg` (`PgClient.layerFromPool`) over the same raw pg pool as the
 * raw pg client, used through `SqlClient` like effect-dsql. Its gap to raw pg is what @effect/sql itself costs; its
 * gap to effect-dsql is what effect-dsql adds. Only the throughput scenario runs it.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer, ManagedRuntime } from "effect"
import type { BenchClient } from "../protocol.js"
import { loadEffect } from "./effectLoad.js"
import { client as rawPg, makePool } from "./pg.js"

let runtime: ManagedRuntime.ManagedRuntime<SqlClient.SqlClient, unknown> | undefined

const unsupported = () => Promise.reject(new Error("the @effect/sql-pg reference runs only the throughput scenario"))

export const client: BenchClient = {
  ...rawPg,
  open: async (endpoint, poolSize) => {
    runtime = ManagedRuntime.make(
      PgClient.layerFromPool({
        acquire: Effect.acquireRelease(
          Effect.sync(() => makePool(endpoint, poolSize)),
          (pool) => Effect.promise(() => pool.end())
        )
      }).pipe(Layer.provide(Reactivity.layer))
    )
    await runtime.runtime()
  },
  load: (query, concurrency, durationMs) => runtime!.runPromise(loadEffect(query, concurrency, durationMs)),
  close: async () => {
    await runtime?.dispose()
    runtime = undefined
  },
  setup: unsupported,
  transfers: unsupported,
  storm: unsupported,
  coldStart: unsupported
}
