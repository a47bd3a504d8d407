/**
 * The Effect 4 line reaches DsqlLocal without Effect 3 in its own code: the promise API's server, and
 * `@effect/sql-pg` 4 signing each connection with `@aws-sdk/dsql-signer`.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import * as DsqlLocal from "./utils/dsqlLocal.js"

describe("DsqlLocal under Effect 4", () => {
  layer(Layer.provideMerge(DsqlLocal.pgClient, DsqlLocal.layer()), { timeout: "120 seconds" })(
    "with @effect/sql-pg 4",
    (it) => {
      it.effect("answers a query over verify-full TLS with a signed token per connection", () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const sql = yield* SqlClient.SqlClient
          const rows = yield* sql<{ greeting: string }>`SELECT 'Hello, DSQL!' AS greeting`
          assert.deepStrictEqual(rows, [{ greeting: "Hello, DSQL!" }])
          assert.isAtLeast(server.stats().tokensVerified, 1)
        }))
    }
  )
})
