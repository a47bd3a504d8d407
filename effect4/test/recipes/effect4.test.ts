import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { OccRetry, withOccRetry } from "effect-dsql"
import { DsqlLocal } from "effect-dsql/local"
import { SqlClient } from "effect/sql"

// One server and a DsqlClient on it (verify-full direct TLS, IAM tokens), with the table the tests share.
const Database = Layer.effectDiscard(Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL)`
})).pipe(Layer.provideMerge(DsqlLocal.layerClient()))

describe("orders (Effect 4 on DsqlLocal)", () => {
  // The real clock: connections and retries need real time.
  layer(Database, { excludeTestServices: true })((it) => {
    it.effect("writes and reads back", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`INSERT INTO orders ${sql.insert({ id: 1, item: "book" })}`
        assert.deepStrictEqual(yield* sql`SELECT id, item FROM orders WHERE id = 1`, [{ id: 1, item: "book" }])
      }))

    it.effect("loses a transaction to a conflict at COMMIT, and withOccRetry runs it again", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const sql = yield* SqlClient.SqlClient
        const insert = sql.withTransaction(sql`INSERT INTO orders ${sql.insert({ id: 2, item: "pen" })}`)
        server.faults.failNextCommits(1) // the next COMMIT fails as DSQL's does when another writer won
        const error = yield* insert.pipe(withOccRetry({ maxRetries: 0 }), Effect.flip) // 40001 (OC000) at COMMIT
        assert.isTrue(OccRetry.isOccConflict(error) && error.code === "OC000")
        assert.deepStrictEqual(yield* sql`SELECT id FROM orders WHERE id = 2`, []) // rolled back
        server.faults.failNextCommits(1)
        yield* insert.pipe(withOccRetry()) // fails once, commits on the second attempt
        assert.deepStrictEqual(yield* sql`SELECT id FROM orders WHERE id = 2`, [{ id: 2 }])
      }))
  })
})
