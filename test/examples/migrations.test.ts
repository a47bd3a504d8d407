import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { DsqlClient } from "effect-dsql"
import { DsqlLocal } from "effect-dsql/local"
import { program } from "../../examples/migrations.js"
import { backendQuery, withEnv } from "../utils/client.js"
import { logOf } from "./console.js"

describe("examples/migrations", () => {
  layer(DsqlLocal.layer(), { excludeTestServices: true })((it) => {
    it.effect("configured by the environment alone: applies the migrations once, then finds nothing to do", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const run = withEnv(server.env, logOf(program.pipe(Effect.provide(DsqlClient.layer))))
        assert.deepStrictEqual(yield* run, [
          "migrations: first run: applied 1_create_example_owner, 2_create_example_account, 3_index_example_owner_city",
          "migrations: second run: nothing to apply, the schema is up to date",
          "migrations: example_owner is ready for queries by city (0 rows found)"
        ])
        assert.deepStrictEqual(yield* run, [
          "migrations: first run: nothing to apply, the schema is up to date",
          "migrations: second run: nothing to apply, the schema is up to date",
          "migrations: example_owner is ready for queries by city (0 rows found)"
        ])
        assert.deepStrictEqual(
          yield* backendQuery(server, "SELECT migration_id, name FROM example_migrations ORDER BY migration_id"),
          [
            { migration_id: 1, name: "create_example_owner" },
            { migration_id: 2, name: "create_example_account" },
            { migration_id: 3, name: "index_example_owner_city" }
          ]
        )
        assert.deepStrictEqual(
          yield* backendQuery(
            server,
            `SELECT c.relname AS index, i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE c.relname = 'example_owner_city'`
          ),
          [{ index: "example_owner_city", valid: true }]
        )
      }))
  })
})
