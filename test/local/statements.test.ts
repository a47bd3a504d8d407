import { beforeAll, describe, expect, it } from "@effect/vitest"
import { FastCheck } from "effect"
import type { Classification, Statement } from "../../local/src/internal/statements.js"
import { classify, loadParser, touchLockedSql } from "../../local/src/internal/statements.js"

beforeAll(() => loadParser())

const only = (sql: string): Statement => {
  const classification = classify(sql)
  if (classification._tag !== "Parsed" || classification.statements.length !== 1) {
    throw new Error(`expected one statement in ${sql}`)
  }
  return classification.statements[0]!
}

const refusalOf = (sql: string) => only(sql).refusal

type Row = readonly [sql: string, kind: Statement["kind"], control?: Statement["control"]]

const KINDS: ReadonlyArray<Row> = [
  ["SELECT * FROM t WHERE a = $1", "read"],
  ["SELECT * FROM t FOR UPDATE", "read"],
  ["EXPLAIN DELETE FROM t", "read"],
  ["COPY t TO STDOUT", "read"],
  ["INSERT INTO t VALUES (1)", "dml"],
  ["UPDATE t SET a = 1", "dml"],
  ["DELETE FROM t", "dml"],
  ["MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE", "dml"],
  ["COPY t FROM STDIN", "dml"],
  ["WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "dml"],
  ["EXPLAIN ANALYZE INSERT INTO t VALUES (1)", "dml"],
  ["CREATE TABLE t (a int)", "ddl"],
  ["ALTER TABLE t ADD COLUMN b int", "ddl"],
  ["DROP TABLE t", "ddl"],
  ["CREATE VIEW v AS SELECT 1", "ddl"],
  ["CREATE SEQUENCE s CACHE 65536", "ddl"],
  ["COMMENT ON TABLE t IS 'x'", "ddl"],
  ["GRANT SELECT ON t TO PUBLIC", "ddl"],
  ["REVOKE SELECT ON t FROM PUBLIC", "ddl"],
  ["CREATE ROLE r", "ddl"],
  ["BEGIN", "transaction", "begin"],
  ["START TRANSACTION ISOLATION LEVEL REPEATABLE READ", "transaction", "begin"],
  ["BEGIN READ ONLY", "transaction", "begin"],
  ["COMMIT", "transaction", "commit"],
  ["END", "transaction", "commit"],
  ["ROLLBACK", "transaction", "rollback"],
  ["ABORT", "transaction", "rollback"],
  ["SET search_path = public", "other"],
  ["SHOW transaction_isolation", "other"],
  ["CALL p()", "other"]
]

const REFUSALS: ReadonlyArray<readonly [sql: string, code: string, message: string]> = [
  ["SAVEPOINT x", "0A000", "unsupported transaction statement: SAVEPOINT"],
  ["ROLLBACK TO SAVEPOINT x", "0A000", "unsupported transaction statement: ROLLBACK TO"],
  ["ROLLBACK TO x", "0A000", "unsupported transaction statement: ROLLBACK TO"],
  ["RELEASE x", "0A000", "unsupported transaction statement: RELEASE"],
  ["LISTEN c", "0A000", "unsupported statement: Listen"],
  ["NOTIFY c, 'x'", "0A000", "unsupported statement: Notify"],
  ["UNLISTEN *", "0A000", "unsupported statement: Unlisten"],
  ["TRUNCATE t", "0A000", "unsupported statement: Truncate"],
  ["CREATE TEMP TABLE t (a int)", "0A000", "TEMPORARY or TEMP table not supported for CREATE TABLE"],
  ["CREATE TEMPORARY TABLE t AS SELECT 1", "0A000", "TEMPORARY or TEMP table not supported for CREATE TABLE"],
  ["CREATE UNLOGGED TABLE t (a int)", "0A000", "UNLOGGED table not supported for CREATE TABLE"],
  ["CREATE TABLE t (id serial)", "42704", "type \"serial\" does not exist"],
  ["CREATE TABLE t (id SERIAL4)", "42704", "type \"serial4\" does not exist"],
  ["CREATE TABLE t (a int, id bigserial PRIMARY KEY)", "42704", "type \"bigserial\" does not exist"],
  ["CREATE TABLE t (id serial8)", "42704", "type \"serial8\" does not exist"],
  ["CREATE TABLE t (id smallserial)", "42704", "type \"smallserial\" does not exist"],
  ["ALTER TABLE t ADD COLUMN id serial2", "42704", "type \"serial2\" does not exist"],
  ["CREATE TRIGGER g AFTER INSERT ON t EXECUTE FUNCTION f()", "0A000", "CREATE TRIGGER not supported"],
  ["CREATE EXTENSION IF NOT EXISTS pgcrypto", "0A000", "unsupported statement: CreateExtension"],
  ["CREATE DATABASE d", "0A000", "unsupported statement: Createdb"],
  ["SET TRANSACTION READ ONLY", "0A000", "setting configuration parameter \"TRANSACTION\" not supported"],
  ["BEGIN ISOLATION LEVEL SERIALIZABLE", "0A000", "Unsupported isolation level: SERIALIZABLE"],
  ["START TRANSACTION ISOLATION LEVEL READ COMMITTED", "0A000", "Unsupported isolation level: READ COMMITTED"],
  [
    "SET default_transaction_isolation TO 'read committed'",
    "0A000",
    "setting configuration parameter \"default_transaction_isolation\" not supported"
  ],
  [
    "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    "0A000",
    "setting configuration parameter \"SESSION CHARACTERISTICS\" not supported"
  ],
  ["CREATE INDEX i ON t (a)", "0A000", "unsupported mode. please use CREATE INDEX ASYNC."],
  ["CREATE UNIQUE INDEX i ON t (a)", "0A000", "unsupported mode. please use CREATE INDEX ASYNC."],
  ["SELECT pg_advisory_lock(1)", "0A000", "unsupported function: pg_advisory_lock"],
  ["SELECT pg_catalog.pg_advisory_unlock_all()", "0A000", "unsupported function: pg_advisory_unlock_all"],
  [
    "UPDATE t SET a = 1 WHERE pg_try_advisory_xact_lock(a)",
    "0A000",
    "unsupported function: pg_try_advisory_xact_lock"
  ],
  ["LOCK TABLE t IN ACCESS EXCLUSIVE MODE", "0A000", "unsupported statement: Lock"],
  ["SET ROLE app", "0A000", "setting configuration parameter \"role\" not supported"],
  ["PREPARE p AS SELECT 1", "0A000", "unsupported statement: Prepare"],
  ["EXECUTE p", "0A000", "unsupported statement: Execute"],
  ["DISCARD ALL", "0A000", "unsupported statement: Discard"],
  ["DECLARE c CURSOR FOR SELECT 1", "0A000", "unsupported statement: DeclareCursor"],
  ["PREPARE TRANSACTION 'x'", "0A000", "unsupported transaction statement: PREPARE TRANSACTION"],
  ["CREATE TABLESPACE ts LOCATION '/tmp'", "0A000", "unsupported statement: CreateTableSpace"],
  ["CREATE FOREIGN TABLE f (a int) SERVER s", "0A000", "unsupported statement: CreateForeignTable"],
  ["ALTER SYSTEM SET work_mem = '1MB'", "0A000", "unsupported statement: AlterSystem"],
  ["VACUUM t", "0A000", "unsupported VACUUM statement"],
  ["VACUUM FULL", "0A000", "unsupported VACUUM statement"],
  ["CREATE TYPE mood AS ENUM ('sad', 'ok')", "0A000", "CREATE TYPE not supported"],
  ["CREATE TYPE pair AS (a int, b int)", "0A000", "unsupported statement: CompositeType"],
  ["CREATE TYPE span AS RANGE (subtype = int8)", "0A000", "unsupported statement: CreateRange"],
  ["CREATE TYPE shell", "0A000", "CREATE TYPE not supported"],
  [
    "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$BEGIN RETURN 1; END$$",
    "0A000",
    "CREATE FUNCTION with language plpgsql not supported"
  ],
  [
    "CREATE OR REPLACE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE PLPGSQL",
    "0A000",
    "CREATE FUNCTION with language plpgsql not supported"
  ],
  ["CREATE PROCEDURE p() LANGUAGE sql AS 'SELECT 1'", "0A000", "PROCEDURE is not supported"],
  ["CREATE TABLE t2 AS SELECT * FROM t", "0A000", "unsupported statement: CreateTableAs"],
  ["SELECT * INTO t2 FROM t", "0A000", "unsupported statement: CreateTableAs"],
  ["CREATE MATERIALIZED VIEW m AS SELECT 1", "0A000", "unsupported statement: CreateTableAs"],
  ["CREATE TABLE c (b int) INHERITS (t)", "0A000", "INHERITS not supported for CREATE TABLE"],
  ["CREATE TABLE p (a int) PARTITION BY RANGE (a)", "0A000", "PARTITION BY not supported for CREATE TABLE"],
  [
    "CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (1) TO (2)",
    "0A000",
    "PARTITION BY not supported for CREATE TABLE"
  ],
  ["CREATE TABLE t (a text COLLATE \"C\")", "0A000", "COLLATE not supported"],
  [
    "CREATE SEQUENCE s",
    "0A000",
    "CREATE SEQUENCE is not supported without an explicit cache size. please define CACHE greater than or equal to 65536 or equal to 1"
  ],
  [
    "CREATE SEQUENCE s CACHE 100",
    "0A000",
    "CREATE SEQUENCE is not supported without an explicit cache size. please define CACHE greater than or equal to 65536 or equal to 1"
  ],
  [
    "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY)",
    "0A000",
    "identity column is not supported without an explicit cache size. please define CACHE greater than or equal to 65536 or equal to 1"
  ],
  [
    "CREATE TABLE t (id bigint GENERATED BY DEFAULT AS IDENTITY (CACHE 2))",
    "0A000",
    "identity column is not supported without an explicit cache size. please define CACHE greater than or equal to 65536 or equal to 1"
  ],
  [
    "SELECT * FROM t FOR SHARE",
    "0A000",
    "locking clauses other than FOR UPDATE/FOR KEY SHARE are not supported"
  ],
  [
    "SELECT * FROM (SELECT * FROM t FOR NO KEY UPDATE) s",
    "0A000",
    "locking clauses other than FOR UPDATE/FOR KEY SHARE are not supported"
  ],
  ["CREATE INDEX CONCURRENTLY i ON t (a)", "0A000", "CONCURRENTLY not supported for CREATE INDEX"],
  ["CREATE INDEX ASYNC i ON t (a DESC)", "0A000", "specifying sort order not supported for index keys"],
  ["DO $$BEGIN END$$", "0A000", "unsupported statement: Do"],
  ["CREATE INDEX ASYNC i ON t (b text_pattern_ops)", "0A000", "opclass not supported for index keys"],
  [
    "ALTER TABLE t ADD COLUMN c int NOT NULL",
    "0A000",
    "ALTER TABLE ADD COLUMN with constraint not supported"
  ],
  ["ALTER TABLE t ADD COLUMN c int DEFAULT 1", "0A000", "ALTER TABLE ADD COLUMN with constraint not supported"],
  ["ALTER TABLE t ADD c int UNIQUE", "0A000", "ALTER TABLE ADD COLUMN with constraint not supported"],
  [
    "ALTER TABLE t ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY (CACHE 1)",
    "0A000",
    "ALTER TABLE ADD COLUMN with constraint not supported"
  ],
  [
    "ALTER TABLE t ALTER COLUMN a TYPE bigint",
    "0A000",
    "unsupported ALTER TABLE ALTER COLUMN ... SET DATA TYPE statement"
  ],
  ["ALTER TABLE t ADD PRIMARY KEY (a)", "0A000", "unsupported ALTER TABLE ADD CONSTRAINT statement"],
  ["ALTER TABLE t ADD CONSTRAINT u UNIQUE (a)", "0A000", "unsupported ALTER TABLE ADD CONSTRAINT statement"],
  [
    "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (a)",
    "0A000",
    "unsupported ALTER TABLE ADD CONSTRAINT statement"
  ],
  ["ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0)", "0A000", "unsupported ALTER TABLE ADD CONSTRAINT statement"],
  ["GRANT USAGE ON SCHEMA public TO app", "0A000", "feature not supported on system entity"]
]

describe("statements", () => {
  it.each(KINDS.map(([sql, kind, control]) => ({ sql, kind, control })))("$sql is $kind", ({ control, kind, sql }) => {
    const statement = only(sql)
    expect({ kind: statement.kind, control: statement.control, refusal: statement.refusal }).toEqual({
      kind,
      control,
      refusal: undefined
    })
  })

  it.each(REFUSALS)("refuses %s", (sql, code, message) => {
    expect(refusalOf(sql)).toEqual({ code, message })
  })

  it("keeps what DSQL allows", () => {
    for (
      const sql of [
        "BEGIN ISOLATION LEVEL REPEATABLE READ",
        "RESET default_transaction_isolation",
        "CREATE TABLE t (id bigint GENERATED BY DEFAULT AS IDENTITY (CACHE 1), \"serial\" int)",
        "CREATE TABLE t (id uuid PRIMARY KEY DEFAULT gen_random_uuid())",
        "SELECT 'pg_advisory_lock(1)'",
        "SELECT * FROM t FOR UPDATE",
        "CALL sys.wait_for_job('abc')",
        "CREATE DOMAIN positive AS int CHECK (VALUE > 0)",
        "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql AS 'SELECT a + 1'",
        "CREATE FUNCTION f(a int) RETURNS int RETURN a + 1",
        "CREATE TABLE c (id uuid PRIMARY KEY, p uuid REFERENCES t (id) ON DELETE CASCADE DEFERRABLE)",
        "CREATE SEQUENCE s CACHE 1",
        "CREATE SEQUENCE s CACHE 65536",
        "CREATE SEQUENCE s CACHE 10000000000",
        "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY (CACHE 65536) PRIMARY KEY)",
        "CREATE INDEX ASYNC i ON t (a) INCLUDE (b)",
        "CREATE INDEX ASYNC i ON t (a NULLS FIRST, b NULLS LAST)",
        "CREATE UNIQUE INDEX ASYNC i ON t (a, b) NULLS NOT DISTINCT",
        "CREATE INDEX ASYNC i ON t (lower(b)) WHERE a > 0",
        "ALTER TABLE t ADD COLUMN c text",
        "ALTER TABLE t DROP COLUMN c",
        "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (a) NOT VALID",
        "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID",
        "CREATE VIEW v AS SELECT a FROM t",
        "SELECT * FROM t FOR KEY SHARE",
        "INSERT INTO t VALUES (1) ON CONFLICT (a) DO NOTHING",
        "ANALYZE t",
        "RESET ROLE",
        "GRANT SELECT ON t TO app",
        "COPY t FROM STDIN"
      ]
    ) {
      expect(refusalOf(sql)).toBeUndefined()
    }
  })

  it("recognises CREATE INDEX ASYNC and removes the keyword", () => {
    expect(only("CREATE INDEX ASYNC idx ON s.t (a, b)")).toMatchObject({
      kind: "ddl",
      refusal: undefined,
      asyncIndex: { schema: "s", table: "t" },
      sql: "CREATE INDEX       idx ON s.t (a, b)"
    })
    expect(only("create unique index async if not exists t_a on t (a)")).toMatchObject({
      asyncIndex: { schema: undefined, table: "t" },
      sql: "create unique index       if not exists t_a on t (a)"
    })
    // A quoted "async" is an index name, so this is a plain CREATE INDEX.
    expect(refusalOf("CREATE INDEX \"async\" ON t (a)")?.message).toBe(
      "unsupported mode. please use CREATE INDEX ASYNC."
    )
  })

  it("recognises DSQL's AWS IAM GRANT / REVOKE before parsing", () => {
    expect(only("AWS IAM GRANT app TO 'arn:aws:iam::123456789012:role/app'")).toMatchObject({
      kind: "ddl",
      refusal: undefined,
      iamMapping: { action: "GRANT", role: "app", arn: "arn:aws:iam::123456789012:role/app" }
    })
    expect(only("  aws iam revoke \"My\"\"Role\" from 'arn:it''s';").iamMapping).toEqual({
      action: "REVOKE",
      role: "My\"Role",
      arn: "arn:it's"
    })
    expect(only("AWS IAM GRANT App TO 'x'").iamMapping?.role).toBe("app")
    // The wrong preposition is not DSQL syntax: the backend reports the syntax error.
    expect(classify("AWS IAM GRANT app FROM 'x'")._tag).toBe("Unparseable")
  })

  it("notes what the policy checks around a statement: dropped columns, COPY FROM STDIN", () => {
    expect(only("ALTER TABLE s.t DROP COLUMN a, ADD COLUMN c text, DROP COLUMN b").droppedColumns).toEqual({
      schema: "s",
      table: "t",
      columns: ["a", "b"]
    })
    expect(only("ALTER TABLE t ADD COLUMN c text").droppedColumns).toBeUndefined()
    expect(only("COPY t FROM STDIN").copiesFromClient).toBe(true)
    expect(only("COPY t FROM '/tmp/rows'").copiesFromClient).toBe(false)
    expect(only("COPY t TO STDOUT").copiesFromClient).toBe(false)
  })

  it("recognises CALL sys.wait_for_job", () => {
    expect(only("CALL sys.wait_for_job('abc')").waitForJob).toBe(true)
    expect(only("CALL other.wait_for_job('abc')").waitForJob).toBe(false)
  })

  it("names the tables a FOR UPDATE locks, by the name the statement uses", () => {
    expect(only("SELECT v FROM s.t WHERE id = 1 FOR UPDATE").lockedForUpdate).toEqual([
      { schema: "s", table: "t", ref: "t" }
    ])
    expect(only("SELECT * FROM a AS x JOIN b ON b.id = x.id, c FOR UPDATE").lockedForUpdate).toEqual([
      { schema: undefined, table: "a", ref: "x" },
      { schema: undefined, table: "b", ref: "b" },
      { schema: undefined, table: "c", ref: "c" }
    ])
    expect(only("SELECT * FROM a x JOIN b y ON y.id = x.id FOR UPDATE OF y").lockedForUpdate).toEqual([
      { schema: undefined, table: "b", ref: "y" }
    ])
    // FOR KEY SHARE locks without writing; a subquery's tables are not the FROM's.
    expect(only("SELECT * FROM a FOR KEY SHARE").lockedForUpdate).toEqual([])
    expect(only("SELECT * FROM (SELECT * FROM a) q FOR UPDATE").lockedForUpdate).toEqual([])
    expect(only("SELECT * FROM a").lockedForUpdate).toEqual([])
  })

  it("writes the rows a FOR UPDATE locks with the statement's own FROM, WHERE and locking clause", () => {
    const table = { schema: undefined, table: "t", ref: "x" }
    expect(touchLockedSql("SELECT v, extract(year from d) FROM t x WHERE id = 1 FOR UPDATE;", [table])).toBe(
      "SELECT dsql_local.touch_locked(NULL, $dsql$t$dsql$, $dsql$SELECT \"x\".ctid FROM t x WHERE id = 1 FOR UPDATE$dsql$)"
    )
    expect(
      touchLockedSql("WITH k AS (SELECT 1 FROM y) SELECT * FROM s.t WHERE id IN (SELECT * FROM k) FOR UPDATE", [
        { schema: "s", table: "t", ref: "t" },
        { schema: "s", table: "t", ref: "t" }
      ])
    ).toBe(
      "SELECT " + Array(2).fill(
        "dsql_local.touch_locked($dsql$s$dsql$, $dsql$t$dsql$, $dsql$WITH k AS (SELECT 1 FROM y) SELECT \"t\".ctid " +
          "FROM s.t WHERE id IN (SELECT * FROM k) FOR UPDATE$dsql$)"
      ).join(", ")
    )
    expect(touchLockedSql("SELECT 1 FOR UPDATE", [table])).toBeUndefined()
    expect(touchLockedSql("SELECT * FROM t FOR KEY SHARE", [])).toBeUndefined()
    expect(touchLockedSql("SELECT 'unterminated", [table])).toBeUndefined()
  })

  it("splits a multi-statement query at the parser's offsets", () => {
    const classification = classify("SELECT 'é€'; CREATE INDEX ASYNC i ON t (a) ;INSERT INTO t VALUES (1) -- end")
    expect(classification._tag).toBe("Parsed")
    const statements = (classification as Extract<Classification, { _tag: "Parsed" }>).statements
    expect(statements.map((statement) => [statement.sql, statement.kind, statement.asyncIndex !== undefined])).toEqual([
      ["SELECT 'é€'", "read", false],
      ["CREATE INDEX       i ON t (a)", "ddl", true],
      ["INSERT INTO t VALUES (1) -- end", "dml", false]
    ])
  })

  it("leaves unparseable SQL to the backend", () => {
    expect(classify("SELEC 1")).toEqual({ _tag: "Unparseable", sql: "SELEC 1" })
    expect(classify("SELECT 'unterminated")).toEqual({ _tag: "Unparseable", sql: "SELECT 'unterminated" })
    expect(classify("CREATE INDEX ASYNC")).toEqual({ _tag: "Unparseable", sql: "CREATE INDEX      " })
    expect(classify("")).toEqual({ _tag: "Unparseable", sql: "" })
    // DSQL's ASYNC is removed, so the backend's syntax error is DSQL's: at the ".".
    expect(classify("CREATE INDEX ASYNC s.i ON t (a)")).toEqual({
      _tag: "Unparseable",
      sql: "CREATE INDEX       s.i ON t (a)"
    })
    expect(classify(" ; -- nothing")).toEqual({ _tag: "Parsed", statements: [] })
  })

  const fragment = FastCheck.oneof(
    FastCheck.string(),
    FastCheck.fullUnicodeString({ maxLength: 8 }),
    FastCheck.constantFrom(
      "CREATE ",
      "UNIQUE ",
      "INDEX ",
      "ASYNC ",
      "ON t (a)",
      "SELECT ",
      "pg_advisory_lock(1)",
      "serial",
      ";",
      "'",
      "\"",
      "$$",
      "--",
      "/*",
      "\n",
      "BEGIN ",
      "SAVEPOINT ",
      "TABLE ",
      "TEMP ",
      "(",
      ")"
    )
  )

  it.prop("classify never throws", [FastCheck.array(fragment, { maxLength: 12 })], ([parts]) => {
    const classification = classify(parts.join(""))
    expect(["Parsed", "Unparseable"]).toContain(classification._tag)
  })
})
