import { Migration } from "@effect-dsql/core"
import { assert, describe, it } from "@effect/vitest"

describe("Migration", () => {
  it("recognises the statements that start an asynchronous job, after blanks and comments", () => {
    for (
      const sql of [
        "CREATE INDEX ASYNC i ON t (c)",
        "create unique index async i on t (c)",
        "-- build it\n  /* now */ CREATE INDEX ASYNC IF NOT EXISTS i ON t (c)",
        "ALTER TABLE ASYNC t VALIDATE CONSTRAINT c"
      ]
    ) assert.isTrue(Migration.isAsyncDdl(sql), sql)
    for (
      const sql of ["CREATE INDEX i ON t (c)", "SELECT 'CREATE INDEX ASYNC'", "CREATE TABLE async (id int)"]
    ) assert.isFalse(Migration.isAsyncDdl(sql), sql)
  })

  it("reads the index or constraint an asynchronous DDL names, unquoted", () => {
    assert.strictEqual(
      Migration.asyncDdlObject("CREATE INDEX ASYNC IF NOT EXISTS users_email ON users (email)"),
      "users_email"
    )
    assert.strictEqual(Migration.asyncDdlObject("CREATE UNIQUE INDEX ASYNC \"a \"\"b\" ON t (c)"), "a \"b")
    assert.strictEqual(Migration.asyncDdlObject("ALTER TABLE ASYNC t VALIDATE CONSTRAINT t_fk"), "t_fk")
    assert.isUndefined(Migration.asyncDdlObject("SELECT 1"))
  })

  it("finds the job ids in rows as objects, as arrays, or in a driver's raw result", () => {
    assert.deepStrictEqual(Migration.jobIdsOf([{ job_id: "a" }]), ["a"])
    assert.deepStrictEqual(Migration.jobIdsOf([{ jobId: "b" }]), ["b"])
    assert.deepStrictEqual(Migration.jobIdsOf([["c"]]), ["c"])
    assert.deepStrictEqual(Migration.jobIdsOf({ rows: [{ job_id: "d" }] }), ["d"])
    assert.deepStrictEqual(Migration.jobIdsOf({ command: "CREATE" }), [])
  })

  it("renews every third of the lease; lost when taken over or when no renewal held for a whole lease", () => {
    assert.strictEqual(Migration.leaseRenewalMillis(30_000), 10_000)
    assert.isTrue(Migration.leaseLost(false, 0, 1, 30_000), "taken over")
    assert.isFalse(Migration.leaseLost(undefined, 0, 29_999, 30_000), "a failed renewal, still within the lease")
    assert.isTrue(Migration.leaseLost(undefined, 0, 30_000, 30_000), "failed renewals for a whole lease")
    assert.isFalse(Migration.leaseLost(true, 0, 60_000, 30_000))
  })

  it("claims the lease only when it is missing or expired, in quoted tables named after the migrations table", () => {
    const statements = Migration.statements("app.migrations")
    assert.include(statements.claimLease, "INSERT INTO \"app\".\"migrations_lease\"")
    assert.include(statements.claimLease, "WHERE \"app\".\"migrations_lease\".expires_at < now()")
    assert.include(statements.liveLease, "expires_at >= now()")
  })

  it("names each duplicated id once", () => {
    assert.deepStrictEqual(Migration.duplicateIds([1, 2, 2, 3, 2, 1]), [2, 1])
    assert.deepStrictEqual(Migration.duplicateIds([1, 2, 3]), [])
  })
})
