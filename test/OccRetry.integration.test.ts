import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { assert, describe, layer } from "@effect/vitest"
import { Cause, Context, Deferred, Effect, Exit, Option, Ref } from "effect"
import { OccConflict, OccRetry, withOccRetry } from "effect-dsql"
import { DsqlLocal } from "effect-dsql/local"
import { backendQuery, clientLayer, uniqueTable } from "./utils/client.js"

const accounts = 4
const initialBalance = 1_000

/** Creates the accounts and transfers tables on the backend and returns their names. */
const setupBank = (server: DsqlLocal.Server) =>
  Effect.gen(function*() {
    const bank = uniqueTable("accounts")
    const ledger = uniqueTable("transfers")
    yield* backendQuery(server, `CREATE TABLE ${bank} (id int PRIMARY KEY, balance int NOT NULL)`)
    yield* backendQuery(server, `CREATE TABLE ${ledger} (id text PRIMARY KEY, amount int NOT NULL)`)
    yield* backendQuery(
      server,
      `INSERT INTO ${bank} SELECT g, ${initialBalance} FROM generate_series(1, ${accounts}) g`
    )
    return { bank, ledger }
  })

/**
 * Moves money between hot accounts from `fibers` fibers for `millis`, each transfer recorded once in the ledger
 * under its own id. Returns the ids of the transfers the program saw commit and the attempts made.
 */
const runTransfers = (tables: { bank: string; ledger: string }, fibers: number, millis: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const attempts = yield* Ref.make(0)
    const committed = yield* Ref.make<Array<string>>([])
    const deadline = Date.now() + millis
    const transfer = (id: string, from: number, to: number, amount: number) =>
      Effect.gen(function*() {
        yield* Ref.update(attempts, (n) => n + 1)
        yield* sql`UPDATE ${sql(tables.bank)} SET balance = balance - ${amount} WHERE id = ${from}`
        yield* sql`UPDATE ${sql(tables.bank)} SET balance = balance + ${amount} WHERE id = ${to}`
        yield* sql`INSERT INTO ${sql(tables.ledger)} (id, amount) VALUES (${id}, ${amount})`
      }).pipe(
        // What is tested is that conflicts are retried until each transfer commits once, not a retry budget: on a
        // loaded machine a row lock held across a descheduled backend makes DsqlLocal report conflicts in runs
        // (its 10 ms lock timeout), and with 50 retries a run on a loaded machine failed here.
        withOccRetry({ maxRetries: 200, baseDelay: "2 millis", maxDelay: "100 millis" })
      )
    yield* Effect.forEach(Array.from({ length: fibers }, (_, f) => f), (f) =>
      Effect.gen(function*() {
        for (let i = 0; Date.now() < deadline; i++) {
          const from = 1 + Math.floor(Math.random() * accounts)
          const to = 1 + ((from + Math.floor(Math.random() * (accounts - 1))) % accounts)
          const id = `${f}-${i}`
          yield* transfer(id, from, to, 1 + Math.floor(Math.random() * 10))
          yield* Ref.update(committed, (ids) => [...ids, id])
        }
      }), { concurrency: "unbounded" })
    return { attempts: yield* Ref.get(attempts), committed: yield* Ref.get(committed) }
  })

/** The bank's invariant: money is neither created nor lost, and each committed transfer is in the ledger once. */
const checkInvariant = (server: DsqlLocal.Server, tables: { bank: string; ledger: string }, committed: Array<string>) =>
  Effect.gen(function*() {
    const [total] = yield* backendQuery<{ total: number }>(
      server,
      `SELECT sum(balance)::int AS total FROM ${tables.bank}`
    )
    assert.strictEqual(total!.total, accounts * initialBalance)
    const ledger = yield* backendQuery<{ id: string }>(server, `SELECT id FROM ${tables.ledger}`)
    assert.deepStrictEqual(ledger.map((row) => row.id).sort(), [...committed].sort())
  })

describe("OccRetry on DsqlLocal", () => {
  layer(DsqlLocal.layer(), { excludeTestServices: true })((it) => {
    it.effect(
      "32 fibers on 4 hot accounts: real OC000 conflicts retried, every transfer committed exactly once",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const tables = yield* setupBank(server)
          const before = yield* server.stats
          const { attempts, committed } = yield* runTransfers(tables, 32, 3_000).pipe(
            Effect.provide(clientLayer(server, { maxConnections: 32 }))
          )
          const after = yield* server.stats
          yield* checkInvariant(server, tables, committed)
          assert.isAbove(committed.length, 20)
          assert.isAbove(after.occErrors.OC000 - before.occErrors.OC000, 0, "the server reported real conflicts")
          assert.isAbove(attempts, committed.length, "conflicting transfers were retried")
        }),
      { timeout: 60_000 }
    )

    it.effect("the same with DsqlLocal failing a share of commits", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const tables = yield* setupBank(server)
        const before = yield* server.stats
        yield* server.faults.failCommitShare(0.3, "OC000")
        const { attempts, committed } = yield* runTransfers(tables, 8, 2_000).pipe(
          Effect.provide(clientLayer(server, { maxConnections: 8 })),
          Effect.ensuring(server.faults.reset)
        )
        const after = yield* server.stats
        yield* checkInvariant(server, tables, committed)
        assert.isAbove(after.commitsFailedByFault - before.commitsFailedByFault, 0)
        assert.isAtLeast(attempts, committed.length + after.commitsFailedByFault - before.commitsFailedByFault)
      }), { timeout: 60_000 })

    it.effect("retries a schema conflict (OC001) after a concurrent DDL to success", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const table = uniqueTable("schema_conflict")
        yield* backendQuery(server, `CREATE TABLE ${table} (id int PRIMARY KEY, note text)`)
        const result = yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const attempts = yield* Ref.make(0)
          const program = Effect.gen(function*() {
            const attempt = yield* Ref.updateAndGet(attempts, (n) => n + 1)
            if (attempt === 1) {
              // Another session changes the schema after this transaction began (it holds no lock on the table, so
              // the DDL commits at once); the transaction's next statement then loses with OC001.
              yield* Effect.flatMap(SqlClient.SqlClient, (other) =>
                other.unsafe(`ALTER TABLE ${table} ADD COLUMN added int`))
                .pipe(
                  Effect.provide(clientLayer(server, { maxConnections: 1 })),
                  Effect.mapInputContext((context: Context.Context<never>) =>
                    Context.omit(SqlClient.TransactionConnection)(context)
                  )
                )
            }
            yield* sql`INSERT INTO ${sql(table)} (id, note) VALUES (${attempt}, 'ok')`
            return attempt
          })
          const committedAt = yield* withOccRetry(program)
          return { committedAt, attempts: yield* Ref.get(attempts) }
        }).pipe(Effect.provide(clientLayer(server, { maxConnections: 2 })))
        assert.deepStrictEqual(result, { committedAt: 2, attempts: 2 })
        assert.deepStrictEqual(yield* backendQuery(server, `SELECT id FROM ${table}`), [{ id: 2 }])
      }))

    it.effect("a conflict at COMMIT inside a plain withTransaction is a typed failure classifiable as OccConflict", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const table = uniqueTable("plain_tx")
        yield* backendQuery(server, `CREATE TABLE ${table} (id int PRIMARY KEY)`)
        const exit = yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* server.faults.failNextCommits(1, "OC001")
          return yield* Effect.exit(sql.withTransaction(sql`INSERT INTO ${sql(table)} VALUES (1)`))
        }).pipe(Effect.provide(clientLayer(server)))
        assert.isTrue(Exit.isFailure(exit) && !Cause.isDie(exit.cause))
        const error = Option.getOrThrow(Cause.failureOption((exit as Exit.Failure<unknown, SqlError>).cause))
        assert.strictEqual(Option.getOrThrow(OccRetry.classify(error)).code, "OC001")
      }))

    it.effect("fails with the last OccConflict when retries run out, and execWithRetry retries a DDL", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const table = uniqueTable("exhausted")
        yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* server.faults.failNextCommits(2, "OC001")
          // execWithRetry: one DDL statement in autocommit; the injected failures hit explicit COMMITs only.
          yield* OccRetry.execWithRetry(sql.unsafe(`CREATE TABLE ${table} (id int PRIMARY KEY)`))
          const attempts = yield* Ref.make(0)
          const exit = yield* Effect.exit(
            Effect.zipRight(Ref.update(attempts, (n) => n + 1), sql`INSERT INTO ${sql(table)} VALUES (1)`).pipe(
              withOccRetry({ maxRetries: 1, baseDelay: "1 millis" })
            )
          )
          assert.strictEqual(yield* Ref.get(attempts), 2)
          const error = Option.getOrThrow(Cause.failureOption((exit as Exit.Failure<unknown, OccConflict>).cause))
          assert.instanceOf(error, OccConflict)
          assert.strictEqual(error.attempts, 2)
          assert.strictEqual(error.code, "OC001")
        }).pipe(Effect.provide(clientLayer(server)), Effect.ensuring(server.faults.reset))
        assert.deepStrictEqual(yield* backendQuery(server, `SELECT count(*)::int AS n FROM ${table}`), [{ n: 0 }])
      }))

    it.effect("SELECT … FOR UPDATE of a guard row prevents write skew: of two doctors going off call, one stays", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const shifts = uniqueTable("shifts")
        const doctors = uniqueTable("on_call")
        yield* backendQuery(server, `CREATE TABLE ${shifts} (id int PRIMARY KEY)`)
        yield* backendQuery(server, `CREATE TABLE ${doctors} (id int PRIMARY KEY, on_call boolean NOT NULL)`)
        yield* backendQuery(server, `INSERT INTO ${shifts} VALUES (1)`)
        yield* backendQuery(server, `INSERT INTO ${doctors} VALUES (1, true), (2, true)`)
        const attempts = yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const read = [yield* Deferred.make<void>(), yield* Deferred.make<void>()] as const
          const attempts = yield* Ref.make(0)
          // Each leaves only while another doctor stays on call, each writing only its own row: under snapshot
          // isolation alone both would leave. Locking the shift's row makes the two transactions conflict. On its
          // first attempt each reads before either writes.
          const goOffCall = (doctor: 1 | 2) =>
            Effect.gen(function*() {
              const attempt = yield* Ref.updateAndGet(attempts, (n) => n + 1)
              yield* sql`SELECT id FROM ${sql(shifts)} WHERE id = 1 FOR UPDATE`
              const onCall = yield* sql`SELECT id FROM ${sql(doctors)} WHERE on_call`
              yield* Deferred.succeed(read[doctor - 1], undefined)
              if (attempt <= 2) yield* Deferred.await(read[2 - doctor])
              if (onCall.length >= 2) yield* sql`UPDATE ${sql(doctors)} SET on_call = false WHERE id = ${doctor}`
            }).pipe(withOccRetry({ baseDelay: "5 millis" }))
          yield* Effect.all([goOffCall(1), goOffCall(2)], { concurrency: 2 })
          return yield* Ref.get(attempts)
        }).pipe(Effect.provide(clientLayer(server, { maxConnections: 2 })))
        const onCall = yield* backendQuery<{ n: number }>(
          server,
          `SELECT count(*)::int AS n FROM ${doctors} WHERE on_call`
        )
        assert.deepStrictEqual(onCall, [{ n: 1 }])
        assert.isAtLeast(attempts, 3, "the second to commit lost and tried again")
      }))

    it.effect("inside an outer transaction, withOccRetry opens nothing and lets the conflict reach the outer one", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const table = uniqueTable("nested_retry")
        yield* backendQuery(server, `CREATE TABLE ${table} (id int PRIMARY KEY)`)
        const { inner, outer } = yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const inner = yield* Ref.make(0)
          const outer = yield* Ref.make(0)
          yield* server.faults.failNextCommits(1, "OC000")
          yield* Effect.gen(function*() {
            yield* Ref.update(outer, (n) => n + 1)
            yield* Effect.zipRight(
              Ref.update(inner, (n) => n + 1),
              sql`INSERT INTO ${sql(table)} VALUES (${yield* Ref.get(outer)})`
            ).pipe(withOccRetry())
          }).pipe(withOccRetry({ baseDelay: "1 millis" }))
          return { inner: yield* Ref.get(inner), outer: yield* Ref.get(outer) }
        }).pipe(Effect.provide(clientLayer(server)), Effect.ensuring(server.faults.reset))
        assert.deepStrictEqual({ inner, outer }, { inner: 2, outer: 2 })
        assert.deepStrictEqual(yield* backendQuery(server, `SELECT id FROM ${table}`), [{ id: 2 }])
      }))
  })
})
