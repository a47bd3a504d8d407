/**
 * Optimistic concurrency on DSQL: 16 fibers move money between 4 hot accounts. Conflicting transactions fail at
 * COMMIT (SQLSTATE 40001, OC000) and `withOccRetry` runs them again with jittered exponential back-off. The total
 * balance must come out unchanged.
 *
 * Run: `npm run example -w effect4 -- occ_retry`.
 */
import { Array as Arr, Console, Effect, Random, Ref } from "effect"
import { DsqlClient, OccRetry, withOccRetry } from "effect-dsql"
import { SqlClient } from "effect/sql"
import { randomUUID } from "node:crypto"
import { runMainIfScript } from "./internal/runMain.js"

const accounts = 4
const initialBalance = 1_000
const fibers = 16
const transfers = 160

export const program = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* OccRetry.execWithRetry(
    sql`CREATE TABLE IF NOT EXISTS example_account (id uuid PRIMARY KEY, balance int NOT NULL)`
  )
  // Non-empty arrays (`Arr.makeBy`, `Arr.map`): a multi-row `sql.insert` wants at least one row.
  const ids = Arr.makeBy(accounts, () => randomUUID())
  yield* sql`INSERT INTO example_account ${sql.insert(Arr.map(ids, (id) => ({ id, balance: initialBalance })))}`.pipe(
    withOccRetry()
  )
  yield* Console.log(
    `occ_retry: ${accounts} accounts of ${initialBalance}, ${transfers} transfers from ${fibers} fibers`
  )

  const attempts = yield* Ref.make(0)
  const gaveUp = yield* Ref.make(0)
  // A retried program runs again from the top, so it must not act outside the database before it commits.
  // Counting attempts is the exception, and the point: it shows how often conflicts sent it back.
  const transfer = (from: string, to: string, amount: number) =>
    Effect.gen(function*() {
      yield* Ref.update(attempts, (n) => n + 1)
      yield* sql`UPDATE example_account SET balance = balance - ${amount} WHERE id = ${from}`
      yield* sql`UPDATE example_account SET balance = balance + ${amount} WHERE id = ${to}`
    }).pipe(withOccRetry({ maxRetries: 20 }))

  const randomTransfer = Effect.gen(function*() {
    const from = yield* Random.nextIntBetween(0, accounts, { halfOpen: true })
    const step = yield* Random.nextIntBetween(1, accounts, { halfOpen: true })
    const to = (from + step) % accounts
    const amount = yield* Random.nextIntBetween(1, 100, { halfOpen: true })
    yield* transfer(ids[from], ids[to], amount).pipe(
      Effect.catchTag("OccConflict", () => Ref.update(gaveUp, (n) => n + 1))
    )
  })

  const started = Date.now()
  yield* Effect.forEach(Array.from({ length: transfers }), () => randomTransfer, { concurrency: fibers, discard: true })
  const elapsed = Date.now() - started
  const made = yield* Ref.get(attempts)
  const failed = yield* Ref.get(gaveUp)
  // Every attempt but the last of each transfer lost a conflict; so did the last one of a transfer that gave up.
  yield* Console.log(
    `occ_retry: ${transfers - failed} transfers committed in ${elapsed} ms: ${made - transfers + failed} conflicts ` +
      `seen, ${made - transfers} retries taken, ${made} attempts, ${failed} gave up`
  )

  const [{ total }] = yield* sql<{ total: number }>`
    SELECT sum(balance)::int AS total FROM example_account WHERE id IN ${sql.in(ids)}`
  if (total !== accounts * initialBalance) {
    return yield* Effect.die(new Error(`occ_retry: total balance ${total}, expected ${accounts * initialBalance}`))
  }
  yield* Console.log(`occ_retry: total balance ${total} = ${accounts} × ${initialBalance}: invariant holds`)
})

runMainIfScript(import.meta.url, program.pipe(Effect.provide(DsqlClient.layer)))
