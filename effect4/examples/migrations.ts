/**
 * Schema migrations on DSQL with `DsqlMigrator`: two tables and an index built with `CREATE INDEX ASYNC`, from a
 * record of migrations. Each statement commits on its own and is retried on OCC conflicts, the index build is awaited
 * before its migration counts as applied, and a second run finds nothing to do. A service would run them at start
 * with `DsqlMigrator.layer(options)` beneath its other layers.
 *
 * Run: `npm run example -w effect4 -- migrations` (DsqlLocal when DSQL_HOST and DSQL_URL are unset).
 */
import { Console, Effect } from "effect"
import { DsqlClient, DsqlMigrator } from "effect-dsql"
import { Migrator, SqlClient } from "effect/sql"
import { runMainIfScript } from "./internal/runMain.js"

// Idempotent statements (IF NOT EXISTS): a migration whose second statement failed can simply run again, since the
// first one stays committed.
const migrations = Migrator.fromRecord({
  "1_create_example_owner": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE IF NOT EXISTS example_owner (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      name varchar(30) NOT NULL,
      city varchar(80) NOT NULL,
      telephone varchar(20)
    )`
  }),
  "2_create_example_account": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE IF NOT EXISTS example_account (id uuid PRIMARY KEY, balance int NOT NULL)`
  }),
  // DSQL builds indexes in the background only; DsqlMigrator waits for the job before recording the migration.
  "3_index_example_owner_city": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE INDEX ASYNC IF NOT EXISTS example_owner_city ON example_owner (city)`
  })
})

/** The options, recorded in a table of their own so the examples' migrations never mix with an application's. */
export const options: DsqlMigrator.Options = { loader: migrations, table: "example_migrations" }

const report = (run: string, applied: ReadonlyArray<readonly [id: number, name: string]>) =>
  Console.log(
    applied.length === 0
      ? `migrations: ${run}: nothing to apply, the schema is up to date`
      : `migrations: ${run}: applied ${applied.map(([id, name]) => `${id}_${name}`).join(", ")}`
  )

export const program = Effect.gen(function*() {
  yield* report("first run", yield* DsqlMigrator.run(options))
  yield* report("second run", yield* DsqlMigrator.run(options))
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ city: string }>`SELECT city FROM example_owner WHERE city = 'Anytown' LIMIT 1`
  yield* Console.log(`migrations: example_owner is ready for queries by city (${rows.length} rows found)`)
})

runMainIfScript(import.meta.url, program.pipe(Effect.provide(DsqlClient.layer)))
