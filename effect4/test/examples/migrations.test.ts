import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { DsqlClient, DsqlMigrator } from "effect-dsql"
import { SqlClient } from "effect/sql"
import { options, program } from "../../examples/migrations.js"
import * as DsqlLocal from "../utils/dsqlLocal.js"
import { inEnv, logOf } from "./run.js"

const migrations = ["1_create_example_owner", "2_create_example_account", "3_index_example_owner_city"]

const upToDate = [
  "migrations: first run: nothing to apply, the schema is up to date",
  "migrations: second run: nothing to apply, the schema is up to date",
  "migrations: example_owner is ready for queries by city (0 rows found)"
]

describe("examples/migrations", () => {
  layer(Layer.provideMerge(DsqlLocal.pgClient, DsqlLocal.layer()), { excludeTestServices: true })((it) => {
    it.effect("applies two tables and an async index once; running it again is a no-op", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const check = yield* SqlClient.SqlClient
        // What the example printed, and apart from it the migrator's log lines (the default logger prints them too).
        const run = Effect.map(
          inEnv(server.env, logOf(program.pipe(Effect.provide(DsqlClient.layer)))),
          (lines) => ({
            printed: lines.filter((line) => line.startsWith("migrations: ")),
            logged: lines.flatMap((line) => /DsqlMigrator: applied migration \w+/.exec(line)?.[0] ?? [])
          })
        )
        const recorded = check`SELECT migration_id, name FROM example_migrations ORDER BY migration_id`

        assert.deepStrictEqual(yield* run, {
          printed: [`migrations: first run: applied ${migrations.join(", ")}`, ...upToDate.slice(1)],
          logged: migrations.map((migration) => `DsqlMigrator: applied migration ${migration}`)
        })
        const applied = yield* recorded
        assert.deepStrictEqual(applied, [
          { migration_id: 1, name: "create_example_owner" },
          { migration_id: 2, name: "create_example_account" },
          { migration_id: 3, name: "index_example_owner_city" }
        ])
        // The index build had finished when its migration was recorded.
        assert.deepStrictEqual(
          yield* check`SELECT status FROM sys.jobs WHERE object_name = 'example_owner_city'`,
          [{ status: "completed" }]
        )
        assert.deepStrictEqual(
          yield* check`SELECT table_name FROM information_schema.tables
            WHERE table_name IN ('example_owner', 'example_account') ORDER BY table_name`,
          [{ table_name: "example_account" }, { table_name: "example_owner" }]
        )

        // Run again, as a redeploy would: nothing applied or recorded again, no second index build started.
        assert.deepStrictEqual(yield* run, { printed: upToDate, logged: [] })
        const again = inEnv(server.env, DsqlMigrator.run(options).pipe(Effect.provide(DsqlClient.layer)))
        assert.deepStrictEqual(yield* again, [])
        assert.deepStrictEqual(yield* recorded, applied)
        assert.deepStrictEqual(
          yield* check`SELECT count(*)::int AS n FROM sys.jobs WHERE object_name = 'example_owner_city'`,
          [{ n: 1 }]
        )
      }), { timeout: 120_000 })
  })
})
