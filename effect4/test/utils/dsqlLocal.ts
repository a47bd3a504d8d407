/**
 * DsqlLocal for the Effect 4 line's tests: the public `effect-dsql/local` service and layer, and a plain
 * `@effect/sql-pg` 4 client on it (no effect-dsql code between the test and the server).
 */
import { Effect, Layer } from "effect"
import { DsqlLocal } from "../../src/local/DsqlLocal.js"
import * as PgClientFor from "./pgClient.js"

export { DsqlLocal, layer } from "../../src/local/DsqlLocal.js"

/** `@effect/sql-pg` 4's client for the running DsqlLocal (see `pgClient.ts`). */
export const pgClient = Layer.unwrap(Effect.gen(function*() {
  return PgClientFor.layer(yield* DsqlLocal)
}))
