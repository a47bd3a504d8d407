/**
 * A process that takes DsqlMigrator's lease and never gives it up: it applies `1_create_items`, then hangs in
 * `2_hang` until it is killed. Run with `node --import tsx` from effect4/; the server and names come in `HOLDER`
 * (JSON). Prints `migrating 2` once the first migration is recorded.
 */
import { Duration, Effect } from "effect"
import { Migrator, SqlClient } from "effect/sql"
import { DsqlMigrator } from "../../src/index.js"
import * as PgClient from "./pgClient.js"

/** What the test passes in `HOLDER`. */
export interface Holder extends PgClient.Server {
  readonly table: string
  readonly items: string
  readonly leaseMillis: number
}

const holder = JSON.parse(process.env.HOLDER ?? "{}") as Holder

const program = DsqlMigrator.run({
  loader: Migrator.fromRecord({
    "1_create_items": Effect.flatMap(
      SqlClient.SqlClient,
      (sql) => sql`CREATE TABLE IF NOT EXISTS ${sql(holder.items)} (id int PRIMARY KEY)`
    ),
    "2_hang": Effect.andThen(Effect.sync(() => process.stdout.write("migrating 2\n")), Effect.never)
  }),
  table: holder.table,
  leaseDuration: Duration.millis(holder.leaseMillis)
}).pipe(
  Effect.provide(PgClient.layer(holder))
)

Effect.runPromise(program).catch((error) => {
  process.stderr.write(`${String(error)}\n`)
  process.exit(1)
})
