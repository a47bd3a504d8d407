/**
 * The preferred way to use effect-dsql on Effect 4: `DsqlClient.layer` configured from the environment (`DSQL_HOST`,
 * or `DSQL_URL`, and the AWS credential chain), a table created with OCC retry, rows written concurrently from fibers
 * and read back.
 *
 * Run: `npm run example -w effect4 -- example_preferred` (DsqlLocal when DSQL_HOST and DSQL_URL are unset).
 */
import { Console, Effect } from "effect"
import { DsqlClient, OccRetry } from "effect-dsql"
import { SqlClient } from "effect/sql"
import { runMainIfScript } from "./internal/runMain.js"

const owners = Array.from({ length: 20 }, (_, i) => ({
  name: `Owner ${String(i + 1).padStart(2, "0")}`,
  city: "Anytown",
  telephone: `555-01${String(i).padStart(2, "0")}`
}))

export const program = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  // DSQL has no `serial`: the server generates uuid keys. DDL runs alone, outside any transaction, and may meet a
  // schema conflict (OC001) from a concurrent DDL: execWithRetry retries it.
  yield* OccRetry.execWithRetry(sql`
    CREATE TABLE IF NOT EXISTS example_owner (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      name varchar(30) NOT NULL,
      city varchar(80) NOT NULL,
      telephone varchar(20)
    )`)
  yield* Console.log("example_preferred: table example_owner ready")

  // Each INSERT commits on its own and is retried on conflict (a first write after the CREATE may see OC001).
  const started = Date.now()
  const ids = yield* Effect.forEach(
    owners,
    (owner) =>
      OccRetry.execWithRetry(sql<{ id: string }>`INSERT INTO example_owner ${sql.insert(owner)} RETURNING id`).pipe(
        Effect.map(([row]) => row.id)
      ),
    { concurrency: 8 }
  )
  yield* Console.log(`example_preferred: inserted ${ids.length} owners from 8 fibers in ${Date.now() - started} ms`)

  const rows = yield* sql<{ name: string; city: string }>`
    SELECT name, city FROM example_owner WHERE id IN ${sql.in(ids)} ORDER BY name`
  yield* Console.log(
    `example_preferred: read back ${rows.length} owners: ${rows[0].name} … ${rows[rows.length - 1].name}, all in ` +
      `${[...new Set(rows.map((row) => row.city))].join(", ")}`
  )

  yield* OccRetry.execWithRetry(sql`DELETE FROM example_owner WHERE id IN ${sql.in(ids)}`)
  yield* Console.log(`example_preferred: deleted them again`)
})

runMainIfScript(import.meta.url, program.pipe(Effect.provide(DsqlClient.layer)))
