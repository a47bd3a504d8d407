/**
 * Schema migrations on DSQL with `DsqlMigrator`: the tables of the other examples created from a record of
 * migrations, each DDL in its own transaction and retried on OCC conflicts, an index built with `CREATE INDEX ASYNC`
 * and awaited before its migration counts as applied, then a second run that finds nothing to do. `npm start` creates
 * its example tables with `migrate`.
 *
 * Run: `npm run example -- migrations` (DsqlLocal when DSQL_HOST and DSQL_URL are unset).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Migrator, SqlClient } from "@effect/sql"
import { Console, Effect } from "effect"
import { DsqlClient, DsqlMigrator } from "effect-dsql"
import { pathToFileURL } from "node:url"

/** A migration is an Effect that needs a `SqlClient`; its id and name come from the key, `<id>_<name>`. */
const migration = (run: (sql: SqlClient.SqlClient) => Effect.Effect<unknown, unknown>) =>
  Effect.asVoid(Effect.flatMap(SqlClient.SqlClient, run))

// Idempotent statements (IF NOT EXISTS): a migration that failed halfway can simply run again.
export const migrations = {
  "1_create_example_owner": migration((sql) =>
    sql`CREATE TABLE IF NOT EXISTS example_owner (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      name varchar(30) NOT NULL,
      city varchar(80) NOT NULL,
      telephone varchar(20)
    )`
  ),
  "2_create_example_account": migration((sql) =>
    sql`CREATE TABLE IF NOT EXISTS example_account (id uuid PRIMARY KEY, balance int NOT NULL)`
  ),
  "3_index_example_owner_city": migration((sql) =>
    sql`CREATE INDEX ASYNC IF NOT EXISTS example_owner_city ON example_owner (city)`
  )
}

/** The examples' migrations, recorded in their own table so they never mix with an application's. */
export const migrate = DsqlMigrator.run({ loader: Migrator.fromRecord(migrations), table: "example_migrations" })

const report = (run: string, applied: ReadonlyArray<readonly [id: number, name: string]>) =>
  Console.log(
    applied.length === 0
      ? `migrations: ${run}: nothing to apply, the schema is up to date`
      : `migrations: ${run}: applied ${applied.map(([id, name]) => `${id}_${name}`).join(", ")}`
  )

export const program = Effect.gen(function*() {
  yield* report("first run", yield* migrate)
  yield* report("second run", yield* migrate)
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ city: string }>`SELECT city FROM example_owner WHERE city = 'Anytown' LIMIT 1`
  yield* Console.log(`migrations: example_owner is ready for queries by city (${rows.length} rows found)`)
})

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  NodeRuntime.runMain(program.pipe(Effect.provide(DsqlClient.layer)))
}
