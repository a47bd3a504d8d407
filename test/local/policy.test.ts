import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type pg from "pg"
import type { ClusterState } from "../../local/src/internal/state.js"
import { makeClusterState } from "../../local/src/internal/state.js"
import { query as queryMessage } from "../../local/src/internal/wire.js"
import * as Backend from "./harness/backend.js"
import { connect, extended, failure, query, rawSession, sync, tableName } from "./harness/client.js"
import { relay } from "./harness/relay.js"

/** A relay with its own cluster state in front of the file's PostgreSQL. */
const cluster = (state: ClusterState = makeClusterState()) =>
  Effect.gen(function*() {
    const { port } = yield* Backend.TestBackend
    return { state, port: yield* relay(port, state) }
  })

const expectError = (error: pg.DatabaseError, code: string, message: string) => {
  expect({ code: error.code, message: error.message }).toEqual({ code, message })
  // The raising helper's PL/pgSQL context never reaches the client.
  expect({ where: error.where, file: error.file, line: error.line, routine: error.routine }).toEqual({
    where: undefined,
    file: undefined,
    line: undefined,
    routine: undefined
  })
}

const count = (client: pg.Client, table: string) =>
  query(client, `SELECT count(*)::int AS n FROM ${table}`).pipe(Effect.map((result) => result.rows[0].n as number))

const REFUSED: ReadonlyArray<readonly [sql: string, code: string, message: string]> = [
  ["SAVEPOINT x", "0A000", "unsupported transaction statement: SAVEPOINT"],
  ["ROLLBACK TO SAVEPOINT x", "0A000", "unsupported transaction statement: ROLLBACK TO"],
  ["RELEASE SAVEPOINT x", "0A000", "unsupported transaction statement: RELEASE"],
  ["LISTEN c", "0A000", "unsupported statement: Listen"],
  ["NOTIFY c", "0A000", "unsupported statement: Notify"],
  ["UNLISTEN c", "0A000", "unsupported statement: Unlisten"],
  ["TRUNCATE some_table", "0A000", "unsupported statement: Truncate"],
  ["CREATE TEMP TABLE tmp (a int)", "0A000", "TEMPORARY or TEMP table not supported for CREATE TABLE"],
  ["CREATE UNLOGGED TABLE unl (a int)", "0A000", "UNLOGGED table not supported for CREATE TABLE"],
  ["CREATE TABLE ser (id serial PRIMARY KEY)", "42704", "type \"serial\" does not exist"],
  ["CREATE TABLE ser (id bigserial)", "42704", "type \"bigserial\" does not exist"],
  ["ALTER TABLE some_table ADD COLUMN n smallserial", "42704", "type \"smallserial\" does not exist"],
  [
    "CREATE TRIGGER trg BEFORE INSERT ON some_table FOR EACH ROW EXECUTE FUNCTION f()",
    "0A000",
    "CREATE TRIGGER not supported"
  ],
  ["CREATE EXTENSION pgcrypto", "0A000", "unsupported statement: CreateExtension"],
  ["CREATE DATABASE other", "0A000", "unsupported statement: Createdb"],
  [
    "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    "0A000",
    "setting configuration parameter \"TRANSACTION\" not supported"
  ],
  ["BEGIN ISOLATION LEVEL SERIALIZABLE", "0A000", "Unsupported isolation level: SERIALIZABLE"],
  [
    "SET default_transaction_isolation = 'serializable'",
    "0A000",
    "setting configuration parameter \"default_transaction_isolation\" not supported"
  ],
  ["CREATE INDEX idx ON some_table (a)", "0A000", "unsupported mode. please use CREATE INDEX ASYNC."],
  ["SELECT pg_advisory_lock(1)", "0A000", "unsupported function: pg_advisory_lock"],
  [
    "SELECT 1 FROM (SELECT pg_try_advisory_xact_lock(7)) AS x",
    "0A000",
    "unsupported function: pg_try_advisory_xact_lock"
  ],
  ["LOCK TABLE some_table", "0A000", "unsupported statement: Lock"]
]

describe("policy", () => {
  it.layer(Backend.layer, { timeout: 60_000 })((it) => {
    it.scoped("passes plain and parameterised queries through", () =>
      Effect.gen(function*() {
        const { port, state } = yield* cluster()
        const client = yield* connect(port)
        const plain = yield* query(client, "SELECT 1 AS one, current_setting('transaction_isolation') AS iso")
        expect(plain.rows).toEqual([{ one: 1, iso: "repeatable read" }])
        const parameterised = yield* query(client, "SELECT $1::int + $2::int AS sum", [2, 3])
        expect(parameterised.rows).toEqual([{ sum: 5 }])
        const zone = yield* query(client, "SHOW TimeZone")
        expect(zone.rows).toEqual([{ TimeZone: "UTC" }])
        const syntax = yield* failure(query(client, "SELEC 1"))
        expect(syntax.code).toBe("42601")
        expect(state.stats.queries).toBe(4)
      }))

    it.scoped("refuses what DSQL refuses, with no effect outside a transaction block", () =>
      Effect.gen(function*() {
        const { port, state } = yield* cluster()
        const client = yield* connect(port)
        for (const [sql, code, message] of REFUSED) {
          expectError(yield* failure(query(client, sql)), code, message)
          const after = yield* query(client, "SELECT 1 AS ok")
          expect(after.rows).toEqual([{ ok: 1 }])
        }
        expect(state.stats.statementsRefused).toBe(REFUSED.length)
      }))

    it.scoped("a refusal inside a block aborts the transaction", () =>
      Effect.gen(function*() {
        const { port } = yield* cluster()
        const client = yield* connect(port)
        const table = tableName("refusal_block")
        yield* query(client, `CREATE TABLE ${table} (a int)`)
        yield* query(client, "BEGIN")
        yield* query(client, `INSERT INTO ${table} VALUES (1)`)
        expectError(
          yield* failure(query(client, "SAVEPOINT x")),
          "0A000",
          "unsupported transaction statement: SAVEPOINT"
        )
        const aborted = yield* failure(query(client, "SELECT 1"))
        expect(aborted.code).toBe("25P02")
        const commit = yield* query(client, "COMMIT")
        expect(commit.command).toBe("ROLLBACK")
        expect(yield* count(client, table)).toBe(0)
      }))

    it.scoped("refuses over the extended protocol, in and out of a block", () =>
      Effect.gen(function*() {
        const { port } = yield* cluster()
        const client = yield* connect(port)
        const message = "unsupported function: pg_advisory_lock"
        expectError(yield* failure(query(client, "SELECT pg_advisory_lock($1)", [1])), "0A000", message)
        const after = yield* query(client, "SELECT $1::text AS v", ["next"])
        expect(after.rows).toEqual([{ v: "next" }])
        yield* query(client, "BEGIN")
        expectError(yield* failure(query(client, "SELECT pg_advisory_lock($1)", [2])), "0A000", message)
        expect((yield* failure(query(client, "SELECT $1::int", [1]))).code).toBe("25P02")
        expect((yield* query(client, "COMMIT")).command).toBe("ROLLBACK")
      }))

    it.scoped("a refused statement in a multi-statement query rolls back the whole query", () =>
      Effect.gen(function*() {
        const { port } = yield* cluster()
        const client = yield* connect(port)
        const table = tableName("multi")
        yield* query(client, `CREATE TABLE ${table} (a int)`)
        const error = yield* failure(
          query(client, `INSERT INTO ${table} VALUES (1); LISTEN x; INSERT INTO ${table} VALUES (2)`)
        )
        expectError(error, "0A000", "unsupported statement: Listen")
        expect(yield* count(client, table)).toBe(0)
      }))

    it.scoped("one DDL per transaction, never with DML", () =>
      Effect.gen(function*() {
        const { port } = yield* cluster()
        const client = yield* connect(port)
        const table = tableName("ddl_rules")
        const multiple = "multiple ddl statements not supported in a transaction"
        const mixed = "ddl and dml are not supported in the same transaction"
        yield* query(client, `CREATE TABLE ${table} (a int)`)

        yield* query(client, "BEGIN")
        yield* query(client, `CREATE TABLE ${table}_b (a int)`)
        expectError(yield* failure(query(client, `CREATE TABLE ${table}_c (a int)`)), "0A000", multiple)
        expect((yield* query(client, "COMMIT")).command).toBe("ROLLBACK")

        yield* query(client, "BEGIN")
        yield* query(client, `CREATE TABLE ${table}_b (a int)`)
        expectError(yield* failure(query(client, `GRANT SELECT ON ${table} TO PUBLIC`)), "0A000", multiple)
        yield* query(client, "ROLLBACK")

        yield* query(client, "BEGIN")
        yield* query(client, `INSERT INTO ${table} VALUES (1)`)
        expectError(yield* failure(query(client, `CREATE TABLE ${table}_b (a int)`)), "0A000", mixed)
        yield* query(client, "ROLLBACK")

        yield* query(client, "BEGIN")
        yield* query(client, `CREATE TABLE ${table}_b (a int)`)
        expectError(yield* failure(query(client, `INSERT INTO ${table} VALUES ($1)`, [1])), "0A000", mixed)
        expect((yield* query(client, "COMMIT")).command).toBe("ROLLBACK")

        // A multi-statement simple query is one implicit transaction: nothing of it stays.
        expectError(
          yield* failure(query(client, `CREATE TABLE ${table}_b (a int); INSERT INTO ${table} VALUES (1)`)),
          "0A000",
          mixed
        )
        const exists = yield* query(client, `SELECT to_regclass('${table}_b') AS t`)
        expect(exists.rows).toEqual([{ t: null }])
        expect(yield* count(client, table)).toBe(0)
      }))

    it.scoped("3,000 modified rows per transaction; the crossing statement aborts it", () =>
      Effect.gen(function*() {
        const { port } = yield* cluster()
        const client = yield* connect(port)
        const table = tableName("rows")
        yield* query(client, `CREATE TABLE ${table} (a int)`)
        yield* query(client, "BEGIN")
        expect((yield* query(client, `INSERT INTO ${table} SELECT generate_series(1, 3000)`)).rowCount).toBe(3000)
        expectError(
          yield* failure(query(client, `INSERT INTO ${table} VALUES (0)`)),
          "54000",
          "transaction row limit exceeded"
        )
        expect((yield* failure(query(client, "SELECT 1"))).code).toBe("25P02")
        expect((yield* query(client, "COMMIT")).command).toBe("ROLLBACK")

        yield* query(client, "BEGIN")
        expectError(
          yield* failure(query(client, `INSERT INTO ${table} SELECT generate_series(1, $1::int)`, [3001])),
          "54000",
          "transaction row limit exceeded"
        )
        expect((yield* query(client, "COMMIT")).command).toBe("ROLLBACK")

        yield* query(client, "BEGIN")
        yield* query(client, `INSERT INTO ${table} SELECT generate_series(1, 3000)`)
        expect((yield* query(client, "COMMIT")).command).toBe("COMMIT")
        expect(yield* count(client, table)).toBe(3000)
      }))

    it.scoped("write conflicts are decided at COMMIT: both writes succeed, the first COMMIT wins", () =>
      Effect.gen(function*() {
        const { port, state } = yield* cluster()
        const first = yield* connect(port)
        const second = yield* connect(port)
        const table = tableName("occ")
        const conflict = "change conflicts with another transaction (OC000)"
        yield* query(first, `CREATE TABLE ${table} (id int PRIMARY KEY, v int)`)
        yield* query(first, `INSERT INTO ${table} VALUES (1, 0)`)
        const value = Effect.map(query(first, `SELECT v FROM ${table} WHERE id = 1`), (result) => result.rows[0].v)

        // Simple protocol: the first writer commits first and wins.
        yield* query(first, "BEGIN")
        yield* query(second, "BEGIN")
        expect((yield* query(first, `UPDATE ${table} SET v = 1 WHERE id = 1`)).rowCount).toBe(1)
        expect((yield* query(second, `UPDATE ${table} SET v = 2 WHERE id = 1`)).rowCount).toBe(1)
        // Each transaction still reads its own write.
        expect((yield* query(first, `SELECT v FROM ${table} WHERE id = 1`)).rows).toEqual([{ v: 1 }])
        expect((yield* query(second, `SELECT v FROM ${table} WHERE id = 1`)).rows).toEqual([{ v: 2 }])
        expect((yield* query(first, "COMMIT")).command).toBe("COMMIT")
        expectError(yield* failure(query(second, "COMMIT")), "40001", conflict)
        expect(yield* value).toBe(1)

        // Extended protocol: the second writer commits first and wins; the order of the COMMITs decides.
        yield* query(first, "BEGIN")
        yield* query(second, "BEGIN")
        expect((yield* query(first, `UPDATE ${table} SET v = $1 WHERE id = $2`, [3, 1])).rowCount).toBe(1)
        expect((yield* query(second, `UPDATE ${table} SET v = $1 WHERE id = $2`, [4, 1])).rowCount).toBe(1)
        expect((yield* query(second, "COMMIT")).command).toBe("COMMIT")
        expectError(yield* failure(query(first, "COMMIT")), "40001", conflict)
        expect(yield* value).toBe(4)

        // Two inserts of one key both succeed; the second COMMIT fails with OC000, not 23505.
        yield* query(first, "BEGIN")
        yield* query(second, "BEGIN")
        expect((yield* query(first, `INSERT INTO ${table} VALUES (2, 1)`)).rowCount).toBe(1)
        expect((yield* query(second, `INSERT INTO ${table} VALUES ($1, $2)`, [2, 2])).rowCount).toBe(1)
        expect((yield* query(first, "COMMIT")).command).toBe("COMMIT")
        expectError(yield* failure(query(second, "COMMIT")), "40001", conflict)
        expect((yield* query(first, `SELECT v FROM ${table} WHERE id = 2`)).rows).toEqual([{ v: 1 }])

        // SELECT … FOR UPDATE against a write: the later COMMIT loses.
        yield* query(first, "BEGIN")
        yield* query(second, "BEGIN")
        expect((yield* query(first, `SELECT v FROM ${table} WHERE id = 1 FOR UPDATE`)).rows).toEqual([{ v: 4 }])
        expect((yield* query(second, `UPDATE ${table} SET v = 5 WHERE id = 1`)).rowCount).toBe(1)
        expect((yield* query(second, "COMMIT")).command).toBe("COMMIT")
        expectError(yield* failure(query(first, "COMMIT")), "40001", conflict)

        // An autocommit write against an open transaction's write commits at once: the open one loses at COMMIT.
        yield* query(first, "BEGIN")
        expect((yield* query(first, `UPDATE ${table} SET v = 6 WHERE id = 1`)).rowCount).toBe(1)
        expect((yield* query(second, `UPDATE ${table} SET v = 7 WHERE id = 1`)).rowCount).toBe(1)
        expectError(yield* failure(query(first, "COMMIT")), "40001", conflict)
        expect(yield* value).toBe(7)

        // A write to a row changed and committed after BEGIN: PostgreSQL refuses the statement itself.
        yield* query(first, "BEGIN")
        yield* query(second, `UPDATE ${table} SET v = 8 WHERE id = 1`)
        expectError(yield* failure(query(first, `UPDATE ${table} SET v = 9 WHERE id = 1`)), "40001", conflict)
        yield* query(first, "ROLLBACK")
        expect(yield* value).toBe(8)
        expect(state.stats.occErrors).toEqual({ OC000: 6, OC001: 0 })
      }))

    it.scoped("a committed DDL fails older transactions with OC001", () =>
      Effect.gen(function*() {
        const { port, state } = yield* cluster()
        const first = yield* connect(port)
        const second = yield* connect(port)
        const table = tableName("schema")
        yield* query(first, `CREATE TABLE ${table} (a int)`)
        expect(state.schemaVersion).toBe(1)

        yield* query(first, "BEGIN")
        yield* query(second, `ALTER TABLE ${table} ADD COLUMN b int`)
        expect(state.schemaVersion).toBe(2)
        expectError(
          yield* failure(query(first, `SELECT * FROM ${table}`)),
          "40001",
          "schema has been updated by another transaction (OC001)"
        )
        expect((yield* query(first, "COMMIT")).command).toBe("ROLLBACK")

        // At COMMIT, the transaction is rolled back and the session is outside a block again.
        yield* query(first, "BEGIN")
        yield* query(first, `INSERT INTO ${table} VALUES (1)`)
        yield* query(second, "BEGIN")
        yield* query(second, `CREATE TABLE ${table}_b (a int)`)
        yield* query(second, "COMMIT")
        expect(state.schemaVersion).toBe(3)
        expectError(
          yield* failure(query(first, "COMMIT")),
          "40001",
          "schema has been updated by another transaction (OC001)"
        )
        expect(yield* count(first, table)).toBe(0)

        // A DDL that fails does not move the schema version.
        yield* failure(query(first, `CREATE TABLE ${table} (a int)`))
        expect(state.schemaVersion).toBe(3)
        expect(state.stats.occErrors.OC001).toBe(2)
      }))

    it.scoped("a COMMIT answered ROLLBACK after a failed DDL leaves the schema version: no false OC001", () =>
      Effect.gen(function*() {
        const { port, state } = yield* cluster()
        const reader = yield* connect(port)
        const raw = yield* rawSession(port)
        const table = tableName("failed_ddl")
        yield* query(reader, `CREATE TABLE ${table} (a int)`)
        const version = state.schemaVersion
        yield* query(reader, "BEGIN")
        yield* query(reader, `SELECT * FROM ${table}`)

        // Pipelined: the COMMIT leaves before the DDL's error is back, so the policy still sees an open block.
        const seen = yield* raw.exchange([
          queryMessage("BEGIN"),
          queryMessage(`CREATE TABLE ${table} (a int)`),
          queryMessage("COMMIT")
        ], 3)
        expect(seen).toEqual(["C:BEGIN", "Z:T", "E:42P07", "Z:E", "C:ROLLBACK", "Z:I"])
        expect(state.schemaVersion).toBe(version)
        expect((yield* query(reader, `SELECT * FROM ${table}`)).rows).toEqual([])
        expect((yield* query(reader, "COMMIT")).command).toBe("COMMIT")
        expect(state.stats.occErrors.OC001).toBe(0)
      }))

    it.scoped("a DDL never waits for an open transaction: it commits, and the open one fails with OC001", () =>
      Effect.gen(function*() {
        const { port } = yield* cluster()
        const first = yield* connect(port)
        const second = yield* connect(port)
        const table = tableName("ddl_wait")
        yield* query(first, `CREATE TABLE ${table} (a int)`)
        yield* query(first, "BEGIN")
        yield* query(first, `INSERT INTO ${table} VALUES (1)`)
        yield* query(second, `ALTER TABLE ${table} ADD COLUMN b int`)
        expectError(
          yield* failure(query(first, "COMMIT")),
          "40001",
          "schema has been updated by another transaction (OC001)"
        )
        expect(yield* count(first, table)).toBe(0)
      }))

    it.scoped("transactions older than the age limit fail", () =>
      Effect.gen(function*() {
        let now = 0
        const { port } = yield* cluster({ ...makeClusterState(), now: () => now })
        const client = yield* connect(port)
        const message = "transaction age limit of 300s exceeded"
        yield* query(client, "BEGIN")
        now = 300_001
        expectError(yield* failure(query(client, "SELECT 1")), "54000", message)
        yield* query(client, "ROLLBACK")
        now = 0
        yield* query(client, "BEGIN")
        now = 365_000
        const aged = yield* failure(query(client, "SELECT 1"))
        expect({ message: aged.message, detail: aged.detail }).toEqual({
          message,
          detail: "Current transaction age 365s exceeds 300s"
        })
        expect((yield* query(client, "COMMIT")).command).toBe("ROLLBACK")
        yield* query(client, "BEGIN")
        now = 700_000
        expectError(yield* failure(query(client, "COMMIT")), "54000", message)
        expect((yield* query(client, "SELECT 1 AS ok")).rows).toEqual([{ ok: 1 }])
      }))

    it.scoped("injected commit failures roll the transaction back", () =>
      Effect.gen(function*() {
        const { port, state } = yield* cluster()
        const client = yield* connect(port)
        const table = tableName("faults")
        yield* query(client, `CREATE TABLE ${table} (a int)`)
        state.faults.commitFailures.push("OC000")
        yield* query(client, "BEGIN")
        yield* query(client, `INSERT INTO ${table} VALUES (1)`)
        expectError(
          yield* failure(query(client, "COMMIT")),
          "40001",
          "change conflicts with another transaction (OC000)"
        )

        state.faults.commitFailureShare = { share: 1, code: "OC001" }
        yield* query(client, "BEGIN")
        yield* query(client, `INSERT INTO ${table} VALUES (2)`)
        expectError(
          yield* failure(query(client, "COMMIT")),
          "40001",
          "schema has been updated by another transaction (OC001)"
        )
        state.faults.commitFailureShare = { share: 0, code: "OC000" }
        expect(yield* count(client, table)).toBe(0)
        expect(state.stats.commitsFailedByFault).toBe(2)
        expect(state.stats.occErrors).toEqual({ OC000: 1, OC001: 1 })

        // Over the extended protocol too.
        const raw = yield* rawSession(port)
        state.faults.commitFailures.push("OC000")
        yield* raw.exchange([queryMessage("BEGIN"), queryMessage(`INSERT INTO ${table} VALUES (3)`)], 2)
        const seen = yield* raw.exchange([...extended("COMMIT"), sync], 1)
        expect(seen).toEqual(["1", "2", "n", "E:40001", "Z:I"])
        expect(yield* count(client, table)).toBe(0)
      }))

    it.scoped("dropQueries closes the connection", () =>
      Effect.gen(function*() {
        const { port, state } = yield* cluster()
        const client = yield* connect(port)
        state.faults.dropQueries = 1
        const error = yield* failure(query(client, "SELECT 1"))
        expect(error.message).toMatch(/Connection terminated/)
        expect(state.faults.dropQueries).toBe(0)
      }))

    it.scoped("CREATE INDEX ASYNC answers a job id recorded in sys.jobs", () =>
      Effect.gen(function*() {
        const { port } = yield* cluster()
        const client = yield* connect(port)
        const table = tableName("async_index")
        yield* query(client, `CREATE TABLE ${table} (a int, b text)`)
        const created = yield* query(client, `CREATE INDEX ASYNC ${table}_a ON ${table} (a)`)
        expect(created.fields.map((field) => field.name)).toEqual(["job_id"])
        const jobId = created.rows[0].job_id as string
        expect(jobId).toMatch(/^[a-z0-9]{26}$/)

        const job = yield* query(
          client,
          "SELECT status, job_type, object_name, details FROM sys.jobs WHERE job_id = $1",
          [jobId]
        )
        expect(job.rows).toEqual([{
          status: "completed",
          job_type: "INDEX_BUILD",
          object_name: `${table}_a`,
          details: null
        }])
        const waited = yield* query(client, `CALL sys.wait_for_job('${jobId}')`)
        expect(waited.rows).toEqual([{ succeeded: true }])
        expectError(
          yield* failure(query(client, "CALL sys.wait_for_job('no-such-job')")),
          "22P02",
          "Unable to convert text to UUID"
        )
        const indexes = yield* query(client, "SELECT indexname FROM pg_indexes WHERE tablename = $1", [table])
        expect(indexes.rows).toEqual([{ indexname: `${table}_a` }])

        const raw = yield* rawSession(port)
        const seen = yield* raw.exchange([queryMessage(`CREATE UNIQUE INDEX ASYNC ON ${table} (b)`)], 1)
        expect(seen).toEqual(["T", "D", "C:CREATE INDEX", "Z:I"])

        yield* query(client, "BEGIN")
        expectError(
          yield* failure(query(client, `CALL sys.wait_for_job('${jobId}')`)),
          "0A000",
          "CALL sys.wait_for_job cannot run inside a transaction block"
        )
        yield* query(client, "ROLLBACK")
      }))

    it.scoped("an injected job failure marks the next async job failed, its index invalid, then jobs succeed again", () =>
      Effect.gen(function*() {
        const { port, state } = yield* cluster()
        const client = yield* connect(port)
        const table = tableName("failed_job")
        yield* query(client, `CREATE TABLE ${table} (a int, b text)`)
        state.faults.asyncJobFailures.push("out of disk")
        const jobOf = (result: pg.QueryResult) => result.rows[0].job_id as string
        const failed = jobOf(yield* query(client, `CREATE UNIQUE INDEX ASYNC ${table}_a ON ${table} (a)`))
        const next = jobOf(yield* query(client, `CREATE INDEX ASYNC ${table}_b ON ${table} (b)`))

        const jobs = yield* query(
          client,
          `SELECT j.job_id, j.status, j.details, i.indisvalid AS valid FROM sys.jobs j
           JOIN pg_index i ON i.indexrelid = j.object_id WHERE j.job_id = ANY ($1) ORDER BY j.object_name`,
          [[failed, next]]
        )
        expect(jobs.rows).toEqual([
          { job_id: failed, status: "failed", details: "out of disk", valid: false },
          { job_id: next, status: "completed", details: null, valid: true }
        ])
        expect((yield* query(client, `CALL sys.wait_for_job('${failed}')`)).rows).toEqual([{ succeeded: false }])
        expect(state.faults.asyncJobFailures).toEqual([])

        // Over the extended protocol, the answer is the one a job that succeeds gets.
        const raw = yield* rawSession(port)
        state.faults.asyncJobFailures.push("cancelled")
        const seen = yield* raw.exchange([...extended(`CREATE INDEX ASYNC ${table}_ab ON ${table} (a, b)`), sync], 1)
        expect(seen).toEqual(["1", "2", "T", "D", "C:CREATE INDEX", "Z:I"])
        const extendedJob = yield* query(client, "SELECT status, details FROM sys.jobs WHERE object_name = $1", [
          `${table}_ab`
        ])
        expect(extendedJob.rows).toEqual([{ status: "failed", details: "cancelled" }])
      }))

    it.scoped("ALTER TABLE ASYNC … VALIDATE CONSTRAINT validates and answers a job id recorded in sys.jobs", () =>
      Effect.gen(function*() {
        const { port } = yield* cluster()
        const client = yield* connect(port)
        const table = tableName("async_validate")
        yield* query(client, `CREATE TABLE ${table} (id uuid PRIMARY KEY, v int)`)
        yield* query(client, `INSERT INTO ${table} VALUES (gen_random_uuid(), 1)`)
        yield* query(client, `ALTER TABLE ${table} ADD CONSTRAINT ${table}_positive CHECK (v > 0) NOT VALID`)
        const validated = yield* query(client, `ALTER TABLE ASYNC ${table} VALIDATE CONSTRAINT ${table}_positive`)
        expect(validated.command).toBe("ALTER")
        const jobId = validated.rows[0].job_id as string
        expect(jobId).toMatch(/^[a-z0-9]{26}$/)
        const job = yield* query(client, "SELECT status, object_name FROM sys.jobs WHERE job_id = $1", [jobId])
        expect(job.rows).toEqual([{ status: "completed", object_name: table }])
        expect((yield* query(client, `CALL sys.wait_for_job('${jobId}')`)).rows).toEqual([{ succeeded: true }])
        const constraint = yield* query(client, "SELECT convalidated FROM pg_constraint WHERE conname = $1", [
          `${table}_positive`
        ])
        expect(constraint.rows).toEqual([{ convalidated: true }])
      }))

    it.scoped("extended-protocol transactions follow the same rules", () =>
      Effect.gen(function*() {
        const { port } = yield* cluster()
        const raw = yield* rawSession(port)
        const table = tableName("extended_rules")
        const seen = yield* raw.exchange([
          ...extended("BEGIN"),
          sync,
          ...extended(`CREATE TABLE ${table} (a int)`),
          sync,
          ...extended(`INSERT INTO ${table} VALUES ($1)`, ["1"]),
          sync,
          ...extended("COMMIT"),
          sync
        ], 4)
        expect(seen).toEqual([
          "1",
          "2",
          "n",
          "C:BEGIN",
          "Z:T",
          "1",
          "2",
          "n",
          "C:CREATE TABLE",
          "Z:T",
          "1",
          "2",
          "n",
          "E:0A000",
          "Z:E",
          "1",
          "2",
          "n",
          "C:ROLLBACK",
          "Z:I"
        ])
      }))

    it.scoped("named prepared statements are judged at every execution", () =>
      Effect.gen(function*() {
        const { port, state } = yield* cluster()
        const client = yield* connect(port)
        const table = tableName("named")
        yield* query(client, `CREATE TABLE ${table} (a int)`)
        const insert = { name: `${table}_insert`, text: `INSERT INTO ${table} VALUES ($1)` }
        const advisory = { name: `${table}_lock`, text: "SELECT pg_advisory_lock($1)" }
        for (const value of [1, 2]) {
          yield* Effect.tryPromise(() => client.query({ ...insert, values: [value] }))
          const refused = yield* failure(Effect.tryPromise({
            try: () => client.query({ ...advisory, values: [value] }),
            catch: (error) => error as pg.DatabaseError
          }))
          expectError(refused, "0A000", "unsupported function: pg_advisory_lock")
        }
        yield* query(client, "BEGIN")
        yield* query(client, `CREATE TABLE ${table}_b (a int)`)
        const mixed = yield* failure(Effect.tryPromise({
          try: () => client.query({ ...insert, values: [3] }),
          catch: (error) => error as pg.DatabaseError
        }))
        expectError(mixed, "0A000", "ddl and dml are not supported in the same transaction")
        yield* query(client, "ROLLBACK")
        expect(yield* count(client, table)).toBe(2)
        expect(state.stats.statementsRefused).toBe(2)
      }))

    it.scoped("pipelined messages keep their order and rules", () =>
      Effect.gen(function*() {
        const { port } = yield* cluster()
        const raw = yield* rawSession(port)
        const table = tableName("pipeline")
        yield* raw.exchange([queryMessage(`CREATE TABLE ${table} (a int)`)], 1)
        const simple = yield* raw.exchange([
          queryMessage("BEGIN"),
          queryMessage(`INSERT INTO ${table} VALUES (1)`),
          queryMessage("SAVEPOINT s"),
          queryMessage("SELECT 1"),
          queryMessage("COMMIT")
        ], 5)
        expect(simple).toEqual([
          "C:BEGIN",
          "Z:T",
          "C:INSERT 0 1",
          "Z:T",
          "E:0A000",
          "Z:E",
          "E:25P02",
          "Z:E",
          "C:ROLLBACK",
          "Z:I"
        ])
        const extendedSeen = yield* raw.exchange([
          ...extended(`INSERT INTO ${table} VALUES ($1)`, ["7"]),
          sync,
          ...extended("SELECT pg_advisory_lock($1)", ["1"]),
          sync,
          ...extended(`SELECT a FROM ${table} WHERE a = $1`, ["7"]),
          sync
        ], 3)
        expect(extendedSeen).toEqual([
          "1",
          "2",
          "n",
          "C:INSERT 0 1",
          "Z:I",
          "1",
          "2",
          "n",
          "E:0A000",
          "Z:I",
          "1",
          "2",
          "T",
          "D",
          "C:SELECT 1",
          "Z:I"
        ])
      }))
  })
})
