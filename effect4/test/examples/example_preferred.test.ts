import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { DsqlClient } from "effect-dsql"
import { SqlClient } from "effect/sql"
import { program } from "../../examples/example_preferred.js"
import * as DsqlLocal from "../utils/dsqlLocal.js"
import { inEnv, logOf } from "./run.js"

describe("examples/example_preferred", () => {
  layer(Layer.provideMerge(DsqlLocal.pgClient, DsqlLocal.layer()), { excludeTestServices: true })((it) => {
    it.effect("configured by the environment alone: creates the table, writes 20 owners from fibers, reads them back", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const check = yield* SqlClient.SqlClient
        const run = inEnv(server.env, logOf(program.pipe(Effect.provide(DsqlClient.layer))))
        // Twice: the example must be safe to run again against the same cluster.
        for (const lines of [yield* run, yield* run]) {
          assert.strictEqual(lines.length, 4)
          assert.strictEqual(lines[0], "example_preferred: table example_owner ready")
          assert.match(lines[1], /^example_preferred: inserted 20 owners from 8 fibers in \d+ ms$/)
          assert.strictEqual(lines[2], "example_preferred: read back 20 owners: Owner 01 … Owner 20, all in Anytown")
          assert.strictEqual(lines[3], "example_preferred: deleted them again")
        }
        const id = yield* check`
          SELECT data_type, column_default FROM information_schema.columns
          WHERE table_name = 'example_owner' AND column_name = 'id'`
        assert.deepStrictEqual(id, [{ data_type: "uuid", column_default: "gen_random_uuid()" }])
        assert.deepStrictEqual(yield* check`SELECT count(*)::int AS n FROM example_owner`, [{ n: 0 }])
      }))
  })
})
