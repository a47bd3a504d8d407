/**
 * The Effect 4 line reaches DsqlLocal without Effect 3 in its own code: `effect-dsql/local`'s service and layers over
 * `@effect-dsql/local`'s promise API, with plain `@effect/sql-pg` 4 and with `DsqlClient`.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { DsqlLocal } from "effect-dsql/local"
import { SqlClient } from "effect/sql"
import * as Local from "./utils/dsqlLocal.js"

describe("DsqlLocal under Effect 4", () => {
  layer(Layer.provideMerge(Local.pgClient, Local.layer()), { timeout: "120 seconds" })(
    "with @effect/sql-pg 4",
    (it) => {
      it.effect("answers a query over verify-full TLS with a signed token per connection", () =>
        Effect.gen(function*() {
          const server = yield* Local.DsqlLocal
          const sql = yield* SqlClient.SqlClient
          const rows = yield* sql<{ greeting: string }>`SELECT 'Hello, DSQL!' AS greeting`
          assert.deepStrictEqual(rows, [{ greeting: "Hello, DSQL!" }])
          assert.isAtLeast(server.stats().tokensVerified, 1)
        }))
    }
  )

  layer(DsqlLocal.layerClient(undefined, { maxConnections: 2 }), { timeout: "120 seconds", excludeTestServices: true })(
    "layerClient: a server and a DsqlClient on it",
    (it) => {
      it.effect("runs a DSQL-correct transaction and sees the server's faults", () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const sql = yield* SqlClient.SqlClient
          yield* sql`CREATE TABLE greeting (id int PRIMARY KEY, text text NOT NULL)`
          yield* sql.withTransaction(sql`INSERT INTO greeting VALUES (1, 'Hello')`)
          server.faults.failNextCommits(1)
          const conflict = yield* Effect.flip(sql.withTransaction(sql`UPDATE greeting SET text = 'Bye' WHERE id = 1`))
          assert.include(conflict.message, "OC000")
          assert.deepStrictEqual(yield* sql`SELECT id, text FROM greeting`, [{ id: 1, text: "Hello" }])
          assert.strictEqual(server.stats().commitsFailedByFault, 1)
        }))
    }
  )

  it.effect("a server that cannot start fails with a typed DsqlLocalError naming the reason", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Layer.build(DsqlLocal.layer({ clusterId: "not a cluster id" })).pipe(Effect.scoped)
      )
      assert.strictEqual(error._tag, "DsqlLocalError")
      assert.strictEqual(error.reason, "Options")
      assert.include(error.message, "clusterId")
    }))
})
