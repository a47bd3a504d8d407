import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { DsqlClient } from "effect-dsql"
import { SqlClient } from "effect/sql"
import { program } from "../../examples/transaction.js"
import * as DsqlLocal from "../utils/dsqlLocal.js"
import { inEnv, logOf } from "./run.js"

const uuid = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

describe("examples/transaction", () => {
  layer(Layer.provideMerge(DsqlLocal.pgClient, DsqlLocal.layer()), { excludeTestServices: true })((it) => {
    it.effect("commits the first order and rolls back every write of the failing second one", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const check = yield* SqlClient.SqlClient
        const lines = yield* inEnv(server.env, logOf(program.pipe(Effect.provide(DsqlClient.layer))))
        assert.strictEqual(lines.length, 3)
        const committed = new RegExp(`^transaction: order (${uuid}) committed: 1 order row, stock now 0$`).exec(
          lines[0]
        )
        const failed = new RegExp(
          `^transaction: order (${uuid}) failed \\(1 widget wanted, 0 in stock\\) and was rolled back:$`
        ).exec(lines[1])
        assert.isNotNull(committed)
        assert.isNotNull(failed)
        assert.strictEqual(lines[2], "transaction:   0 order rows for it, stock still 0")

        const orders = yield* check<{ id: string }>`SELECT id FROM example_order`
        assert.deepStrictEqual(orders.map((row) => row.id), [committed![1]])
        assert.deepStrictEqual(yield* check`SELECT stock FROM example_product`, [{ stock: 0 }])
      }))
  })
})
