import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it, layer } from "@effect/vitest"
import { Cause, Context, Effect, Exit, Layer, Option, Ref } from "effect"
import { DsqlClient, OccRetry, TokenSigner, withOccRetry } from "effect-dsql"
import { DsqlLocal } from "effect-dsql/local"
import * as ChildProcess from "node:child_process"
import { backendQuery, clientLayer, uniqueTable } from "./utils/client.js"
import { errorResponse, issued, pgServer } from "./utils/fakeServers.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  assert.isTrue(Exit.isFailure(exit), "expected a failure")
  const cause = (exit as Exit.Failure<A, E>).cause
  assert.isFalse(Cause.isDie(cause), `expected a typed failure, got a defect: ${Cause.pretty(cause)}`)
  return Option.getOrThrow(Cause.failureOption(cause))
}

/** A table with an int key, created on the backend. */
const makeTable = (server: DsqlLocal.Server, prefix: string) =>
  Effect.gen(function*() {
    const table = uniqueTable(prefix)
    yield* backendQuery(server, `CREATE TABLE ${table} (id int PRIMARY KEY)`)
    return table
  })

const idsIn = (server: DsqlLocal.Server, table: string) =>
  Effect.map(
    backendQuery<{ id: number }>(server, `SELECT id FROM ${table} ORDER BY id`),
    (rows) => rows.map((row) => row.id)
  )

/** A statement that fails inside a transaction and aborts it (a duplicate key). */
const failingInsert = (sql: SqlClient.SqlClient, table: string) => sql`INSERT INTO ${sql(table)} VALUES (1), (1)`

/** The `SqlClient` of a client layer, open for the current scope. */
const clientOf = (layer: Layer.Layer<SqlClient.SqlClient, unknown>) =>
  Effect.map(Layer.build(Layer.orDie(layer)), Context.get(SqlClient.SqlClient))

/** Two clients of the same server, open for the current scope: as far as transactions go, two clusters. */
const twoClients = (server: DsqlLocal.Server) =>
  Effect.all([
    clientOf(clientLayer(server, { maxConnections: 2 })),
    clientOf(clientLayer(server, { maxConnections: 2 }))
  ])

/** Runs `effect` outside the transaction the fiber is in. */
const outsideTransaction = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.mapInputContext(
    effect,
    (context: Context.Context<never>) => Context.omit(SqlClient.TransactionConnection)(context)
  )

/**
 * Ends every backend session of the clients configured with `applicationName`, from another process while this one
 * is blocked, and returns once they are gone: the pooled connections learn it only at their next use, as after a
 * failover or the 60-minute cut. Returns how many sessions it ended.
 */
const endSessionsUnnoticed = (server: DsqlLocal.Server, applicationName: string) =>
  Effect.sync(() => {
    const sessions = "FROM pg_stat_activity WHERE split_part(application_name, ':', 1) = $1"
    const script = `
      import pg from "pg"
      const client = new pg.Client({ connectionString: process.env.BACKEND_URL })
      const name = [process.env.APPLICATION_NAME]
      await client.connect()
      const { rows } = await client.query("SELECT pg_terminate_backend(pid) ${sessions}", name)
      while ((await client.query("SELECT count(*)::int AS n ${sessions}", name)).rows[0].n > 0) {
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      await client.end()
      process.stdout.write(String(rows.length))`
    const result = ChildProcess.spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      env: { ...process.env, BACKEND_URL: server.backendUrl, APPLICATION_NAME: applicationName },
      encoding: "utf8",
      timeout: 20_000
    })
    assert.strictEqual(result.status, 0, result.stderr)
    return Number(result.stdout)
  })

const backendPid = (sql: SqlClient.SqlClient) =>
  Effect.map(sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`, ([row]) => row!.pid)

describe("transactions on DsqlLocal", () => {
  layer(DsqlLocal.layer(), { excludeTestServices: true })((it) => {
    it.effect("COMMIT answered ROLLBACK after a caught failure is a typed SqlError, and nothing is written", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const table = yield* makeTable(server, "caught")
        const exit = yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          return yield* Effect.exit(sql.withTransaction(Effect.gen(function*() {
            yield* sql`INSERT INTO ${sql(table)} VALUES (10)`
            yield* Effect.ignore(failingInsert(sql, table))
          })))
        }).pipe(Effect.provide(clientLayer(server)))
        const error = failureOf(exit)
        assert.strictEqual(error._tag, "SqlError")
        assert.include(error.message, "rolled back")
        assert.deepStrictEqual(yield* idsIn(server, table), [])
      }))

    it.effect("a nested withTransaction whose failure is caught makes the outer COMMIT fail, not succeed", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const table = yield* makeTable(server, "nested_caught")
        const exit = yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          return yield* Effect.exit(sql.withTransaction(Effect.gen(function*() {
            yield* sql`INSERT INTO ${sql(table)} VALUES (10)`
            yield* sql.withTransaction(failingInsert(sql, table)).pipe(Effect.catchAll(() => Effect.void))
          })))
        }).pipe(Effect.provide(clientLayer(server)))
        assert.include(failureOf(exit).message, "rolled back")
        assert.deepStrictEqual(yield* idsIn(server, table), [])
      }))

    it.effect("withOccRetry whose program recovers from a failed statement fails with SqlError, run once", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const table = yield* makeTable(server, "occ_caught")
        const { attempts, exit } = yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const attempts = yield* Ref.make(0)
          const exit = yield* Effect.exit(withOccRetry(Effect.gen(function*() {
            yield* Ref.update(attempts, (n) => n + 1)
            yield* sql`INSERT INTO ${sql(table)} VALUES (10)`
            yield* failingInsert(sql, table).pipe(Effect.orElse(() => Effect.void))
          })))
          return { attempts: yield* Ref.get(attempts), exit }
        }).pipe(Effect.provide(clientLayer(server)))
        const error = failureOf(exit)
        assert.strictEqual(error._tag, "SqlError")
        assert.include(error.message, "rolled back")
        assert.strictEqual(attempts, 1)
        assert.deepStrictEqual(yield* idsIn(server, table), [])
      }))

    it.effect("execWithRetry inside a transaction does not retry: the outermost withOccRetry runs it all again", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const table = uniqueTable("exec_nested")
        yield* backendQuery(server, `CREATE TABLE ${table} (id int PRIMARY KEY, note text)`)
        const { inner, outer } = yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const other = yield* clientOf(clientLayer(server, { maxConnections: 1 }))
          const inner = yield* Ref.make(0)
          const outer = yield* Ref.make(0)
          yield* Effect.gen(function*() {
            const attempt = yield* Ref.updateAndGet(outer, (n) => n + 1)
            // Another session changes the schema after this transaction began: its next statement loses with OC001.
            if (attempt === 1) yield* outsideTransaction(other.unsafe(`ALTER TABLE ${table} ADD COLUMN added int`))
            yield* OccRetry.execWithRetry(
              Effect.zipRight(
                Ref.update(inner, (n) => n + 1),
                sql`INSERT INTO ${sql(table)} (id, note) VALUES (${attempt}, 'ok')`
              )
            )
          }).pipe(withOccRetry({ baseDelay: "1 millis" }))
          return { inner: yield* Ref.get(inner), outer: yield* Ref.get(outer) }
        }).pipe(Effect.provide(clientLayer(server)), Effect.scoped)
        assert.deepStrictEqual({ inner, outer }, { inner: 2, outer: 2 })
        assert.deepStrictEqual(yield* idsIn(server, table), [2])
      }))

    it.effect("a nested withTransaction of another client opens its own transaction on that client", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const table = yield* makeTable(server, "two_clients")
        const { exit, outerPid } = yield* Effect.gen(function*() {
          const [first, second] = yield* twoClients(server)
          const outerPid = yield* Ref.make(0)
          const exit = yield* Effect.exit(first.withTransaction(Effect.gen(function*() {
            yield* Ref.set(outerPid, yield* backendPid(first))
            yield* first`INSERT INTO ${first(table)} VALUES (1)`
            const innerPid = yield* second.withTransaction(
              Effect.zipRight(second`INSERT INTO ${second(table)} VALUES (2)`, backendPid(second))
            )
            return yield* Effect.fail({ innerPid } as const)
          })))
          return { exit, outerPid: yield* Ref.get(outerPid) }
        }).pipe(Effect.scoped)
        const failure = failureOf(exit)
        assert.isTrue("innerPid" in failure, "the outer transaction failed with the program's own failure")
        const { innerPid } = failure as { readonly innerPid: number }
        assert.notStrictEqual(innerPid, outerPid, "the inner statements ran on the second client's connection")
        // The inner transaction committed on its own; the outer one, which failed, rolled back.
        assert.deepStrictEqual(yield* idsIn(server, table), [2])
      }))

    it.effect("withOccRetry on another client inside a transaction opens and retries its own transaction", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const table = yield* makeTable(server, "two_clients_retry")
        const { inner, outer } = yield* Effect.gen(function*() {
          const [first, second] = yield* twoClients(server)
          const inner = yield* Ref.make(0)
          const outer = yield* Ref.make(0)
          yield* first.withTransaction(Effect.gen(function*() {
            yield* Ref.update(outer, (n) => n + 1)
            yield* first`INSERT INTO ${first(table)} VALUES (1)`
            yield* server.faults.failNextCommits(1, "OC000")
            yield* Effect.zipRight(
              Ref.update(inner, (n) => n + 1),
              second`INSERT INTO ${second(table)} VALUES (2)`
            ).pipe(withOccRetry({ baseDelay: "1 millis" }), Effect.provideService(SqlClient.SqlClient, second))
          }))
          return { inner: yield* Ref.get(inner), outer: yield* Ref.get(outer) }
        }).pipe(Effect.scoped, Effect.ensuring(server.faults.reset))
        assert.deepStrictEqual({ inner, outer }, { inner: 2, outer: 1 })
        assert.deepStrictEqual(yield* idsIn(server, table), [1, 2])
      }))

    it.effect(
      "a ROLLBACK that gets no answer discards its connection: later queries run on a fresh one",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const table = yield* makeTable(server, "rollback_lost")
          const result = yield* Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            const before = yield* backendPid(sql)
            const exit = yield* Effect.exit(sql.withTransaction(Effect.gen(function*() {
              yield* sql`INSERT INTO ${sql(table)} VALUES (1)`
              // From here the session's packets are held: the ROLLBACK never gets an answer.
              yield* server.faults.setLatency("1 hour")
              return yield* Effect.fail("program failed")
            })))
            yield* server.faults.setLatency(0)
            const after = yield* Effect.forEach([1, 2, 3], () => backendPid(sql))
            const count = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(table)}`
            return { exit, before, after, count: count[0]!.n }
          }).pipe(Effect.provide(clientLayer(server, { maxConnections: 1 })), Effect.ensuring(server.faults.reset))
          assert.strictEqual(failureOf(result.exit), "program failed")
          assert.notStrictEqual(result.after[0], result.before, "the connection whose ROLLBACK failed was discarded")
          assert.deepStrictEqual(result.after, [result.after[0], result.after[0], result.after[0]])
          assert.strictEqual(result.count, 0)
        }),
      { timeout: 30_000 }
    )

    it.effect("transactions on a pool whose sessions were all ended by the server run on fresh connections", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const table = yield* makeTable(server, "sessions_ended")
        const applicationName = uniqueTable("sessions_ended_client")
        const exits = yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* Effect.forEach(Array.from({ length: 8 }), () => sql`SELECT pg_sleep(0.05)`, { concurrency: 8 })
          assert.strictEqual(yield* endSessionsUnnoticed(server, applicationName), 8, "the warm pool's sessions ended")
          return yield* Effect.forEach(
            Array.from({ length: 40 }, (_, index) => index),
            (id) => Effect.exit(sql.withTransaction(sql`INSERT INTO ${sql(table)} VALUES (${id})`)),
            { concurrency: 8 }
          )
        }).pipe(Effect.provide(clientLayer(server, { maxConnections: 8, minConnections: 8, applicationName })))
        const failures = exits.filter(Exit.isFailure).map((exit) => Cause.pretty(exit.cause))
        assert.deepStrictEqual(failures, [])
        assert.strictEqual((yield* idsIn(server, table)).length, 40)
      }))

    it.effect("a transaction whose BEGIN meets an ended session on each of the pool's connections still commits", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const table = yield* makeTable(server, "sessions_ended_one")
        yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* Effect.forEach(Array.from({ length: 4 }), () => sql`SELECT pg_sleep(0.05)`, { concurrency: 4 })
          // The next four statements, the BEGINs on each pooled connection in turn, find their session gone: only
          // the fifth attempt, on a fresh connection, can open the transaction.
          yield* server.faults.dropNextQueries(4)
          yield* sql.withTransaction(sql`INSERT INTO ${sql(table)} VALUES (1)`)
        }).pipe(Effect.provide(clientLayer(server, { maxConnections: 4, minConnections: 4 })))
        assert.deepStrictEqual(yield* idsIn(server, table), [1])
      }).pipe(Effect.ensuring(Effect.flatMap(DsqlLocal.DsqlLocal, (server) => server.faults.reset))))

    it.effect("a session ended after BEGIN fails the transaction: the program is never run again", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const table = yield* makeTable(server, "ended_after_begin")
        const { attempts, exit } = yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const attempts = yield* Ref.make(0)
          const exit = yield* Effect.exit(sql.withTransaction(Effect.gen(function*() {
            yield* Ref.update(attempts, (n) => n + 1)
            yield* backendQuery(server, `SELECT pg_terminate_backend(${yield* backendPid(sql)})`)
            yield* sql`INSERT INTO ${sql(table)} VALUES (1)`
          })))
          return { attempts: yield* Ref.get(attempts), exit }
        }).pipe(Effect.provide(clientLayer(server)))
        assert.strictEqual(failureOf(exit)._tag, "SqlError")
        assert.strictEqual(attempts, 1)
        assert.deepStrictEqual(yield* idsIn(server, table), [])
      }))
  })
})

describe("transactions on a fake server", () => {
  it.scopedLive("a ROLLBACK answered with an error ends its connection: the next query opens a new one", () =>
    Effect.gen(function*() {
      const hostname = "abcdefghij0123456789klmnop.dsql.us-east-1.on.aws"
      const { ca, certificate } = yield* issued([hostname])
      const server = yield* pgServer(
        certificate,
        (query) => query === "ROLLBACK" ? errorResponse("the rollback failed", "XX000", "ERROR") : undefined
      )
      const exit = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const exit = yield* Effect.exit(sql.withTransaction(Effect.fail("program failed")))
        assert.strictEqual(server.connections(), 1)
        yield* sql`SELECT 1`
        return exit
      }).pipe(
        Effect.provide(
          DsqlClient.layerConfigWithSigner({
            host: hostname,
            port: server.port,
            hostAddress: "127.0.0.1",
            caPem: ca,
            maxConnections: 1
          }).pipe(Layer.provide(TokenSigner.layerStatic({ accessKeyId: "AKIDEXAMPLE", secretAccessKey: "unused" })))
        )
      )
      assert.strictEqual(failureOf(exit), "program failed", "the program's failure, whatever became of the ROLLBACK")
      assert.strictEqual(server.connections(), 2, "the session whose ROLLBACK failed was not used again")
    }))
})
