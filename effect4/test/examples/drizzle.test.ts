/**
 * Drizzle's Effect integration on DsqlClient, on DsqlLocal: the example, and the DSQL rules it meets.
 */
import { assert, describe, layer } from "@effect/vitest"
import { sql } from "drizzle-orm"
import { EffectDrizzleQueryError } from "drizzle-orm/effect-core"
import * as PgDrizzle from "drizzle-orm/effect-postgres"
import { migrate } from "drizzle-orm/effect-postgres/migrator"
import { pgTable, text, uuid } from "drizzle-orm/pg-core"
import { Cause, ConfigProvider, Effect, Exit, Layer } from "effect"
import { DsqlClient, OccRetry, TokenSigner } from "effect-dsql"
import { SqlClient } from "effect/sql"
import { SqlError } from "effect/sql/SqlError"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { program } from "../../examples/drizzle.js"
import * as DsqlLocal from "../utils/dsqlLocal.js"
import { inEnv, logOf } from "./run.js"

/** DsqlClient for the running DsqlLocal, configured by its env, signing with its credentials. */
const client = Layer.unwrap(Effect.gen(function*() {
  const server = yield* DsqlLocal.DsqlLocal
  return DsqlClient.layer.pipe(
    Layer.provide(Layer.merge(
      TokenSigner.layerStatic(server.credentials),
      ConfigProvider.layer(ConfigProvider.fromEnv({ env: server.env }))
    ))
  )
}))

const note = pgTable("drizzle_test_note", { id: uuid().primaryKey(), body: text().notNull() })

/** A fresh `drizzle_test_note` table (DDL alone, outside any transaction) and a Drizzle database on the client. */
const setup = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`DROP TABLE IF EXISTS drizzle_test_note`
  yield* sql`CREATE TABLE drizzle_test_note (id uuid PRIMARY KEY, body text NOT NULL)`
  return yield* PgDrizzle.makeWithDefaults()
})

const failureOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.exit(effect), (exit) => {
    assert(Exit.isFailure(exit), "expected a failure")
    return Cause.squash(exit.cause)
  })

const sqlStateOf = (error: unknown) => {
  const inner = error instanceof EffectDrizzleQueryError ? Cause.squash(error.cause as Cause.Cause<unknown>) : error
  assert(inner instanceof SqlError, `expected a SqlError, got ${String(inner)}`)
  const cause = inner.reason.cause as { code?: string; message?: string }
  return { code: cause.code, message: cause.message }
}

describe("examples/drizzle", () => {
  layer(Layer.provideMerge(client, DsqlLocal.layer()), { excludeTestServices: true })((it) => {
    it.effect(
      "runs typed Drizzle queries and transactions under withOccRetry on DsqlClient, conflicts retried",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const check = yield* SqlClient.SqlClient
          server.faults.failCommitShare(0.2)
          const before = server.stats()
          const run = inEnv(server.env, logOf(program.pipe(Effect.provide(DsqlClient.layer))))
          // Twice: the example must be safe to run again against the same cluster.
          const runs = yield* Effect.all([run, run]).pipe(Effect.ensuring(Effect.sync(() => server.faults.reset())))
          const after = server.stats()
          for (const lines of runs) {
            assert.deepStrictEqual(lines, [
              "drizzle: 4 accounts of 1000 inserted (Ada, Grace, Edsger, Barbara)",
              "drizzle: 40 transfers from 8 fibers, each one Drizzle transaction under withOccRetry",
              "drizzle: total balance 4000 = 4 × 1000: invariant holds",
              "drizzle: deleted them again"
            ])
          }
          assert.isAbove(
            after.occErrors.OC000 - before.occErrors.OC000,
            0,
            "some commits met a conflict and were retried"
          )
          assert.deepStrictEqual(yield* check`SELECT count(*)::int AS n FROM example_drizzle_account`, [{ n: 0 }])
        }),
      { timeout: 120_000 }
    )

    it.effect("a statement's transient error inside Drizzle's query error is retried by withOccRetry", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const db = yield* setup
        const insert = (id: string) => db.transaction((tx) => tx.insert(note).values({ id, body: "hello" }))
        const id = crypto.randomUUID()
        server.faults.failNextStatements(1)
        let attempts = 0
        yield* Effect.suspend(() => {
          attempts++
          return insert(id)
        }).pipe(OccRetry.withOccRetry())
        assert.strictEqual(attempts, 2, "the failed attempt, then the one that committed")
        assert.deepStrictEqual(yield* db.select({ id: note.id }).from(note), [{ id }])

        // Unretried, the failure is Drizzle's own error, with DSQL's SQLSTATE inside.
        server.faults.failNextStatements(1)
        const wrapped = yield* failureOf(insert(crypto.randomUUID()))
        assert.instanceOf(wrapped, EffectDrizzleQueryError)
        assert.strictEqual(sqlStateOf(wrapped).code, "XX000")
      }))

    it.effect("a nested Drizzle transaction joins the outer one: no SAVEPOINT, and its rollback undoes both", () =>
      Effect.gen(function*() {
        const db = yield* setup
        const [outer, inner] = [crypto.randomUUID(), crypto.randomUUID()]
        yield* db.transaction((tx) =>
          Effect.gen(function*() {
            yield* tx.insert(note).values({ id: outer, body: "outer" })
            yield* tx.transaction((nested) => nested.insert(note).values({ id: inner, body: "inner" }))
          })
        )
        assert.strictEqual((yield* db.select().from(note)).length, 2, "both committed, with no SAVEPOINT refused")

        const error = yield* failureOf(db.transaction((tx) =>
          Effect.gen(function*() {
            yield* tx.insert(note).values({ id: crypto.randomUUID(), body: "outer" })
            yield* tx.transaction((nested) =>
              Effect.gen(function*() {
                yield* nested.insert(note).values({ id: crypto.randomUUID(), body: "inner" })
                return yield* nested.rollback()
              })
            )
          })
        ))
        assert.strictEqual((error as { _tag?: string })._tag, "EffectTransactionRollbackError")
        assert.strictEqual((yield* db.select().from(note)).length, 2, "the inner rollback undid the outer insert too")
      }))

    it.effect("DSQL refuses a second DDL statement in one Drizzle transaction, as a migrator would send it", () =>
      Effect.gen(function*() {
        const db = yield* setup
        const error = yield* failureOf(db.transaction((tx) =>
          Effect.gen(function*() {
            yield* tx.execute(sql`CREATE TABLE drizzle_test_a (id uuid PRIMARY KEY)`)
            yield* tx.execute(sql`CREATE TABLE drizzle_test_b (id uuid PRIMARY KEY)`)
          })
        ))
        assert.deepStrictEqual(sqlStateOf(error), {
          code: "0A000",
          message: "multiple ddl statements not supported in a transaction"
        })
        const serial = yield* failureOf(db.execute(sql`CREATE TABLE drizzle_test_c (id SERIAL PRIMARY KEY)`))
        assert.deepStrictEqual(sqlStateOf(serial), { code: "42704", message: "type \"serial\" does not exist" })
      }))

    it.effect("DSQL refuses Drizzle's migrator (serial journal) and SET TRANSACTION from a transaction config", () =>
      Effect.gen(function*() {
        const db = yield* setup
        const folder = yield* Effect.acquireRelease(
          Effect.sync(() => mkdtempSync(join(tmpdir(), "drizzle-migrations-"))),
          (folder) => Effect.sync(() => rmSync(folder, { recursive: true, force: true }))
        )
        mkdirSync(join(folder, "20260101000000_init"))
        writeFileSync(
          join(folder, "20260101000000_init", "migration.sql"),
          "CREATE TABLE drizzle_test_migrated (id uuid PRIMARY KEY)"
        )
        const migrating = yield* failureOf(migrate(db, { migrationsFolder: folder }))
        assert.deepStrictEqual(sqlStateOf(migrating), { code: "42704", message: "type \"serial\" does not exist" })

        const configured = yield* failureOf(
          db.transaction((tx) => tx.select().from(note), { isolationLevel: "repeatable read" })
        )
        assert.deepStrictEqual(sqlStateOf(configured), {
          code: "0A000",
          message: "setting configuration parameter \"TRANSACTION\" not supported"
        })
      }))
  })
})
