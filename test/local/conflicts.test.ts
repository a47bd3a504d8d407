/**
 * Which backend errors DsqlLocal reports as DSQL's OCC conflict: PostgreSQL's own conflict codes, and a query cancel
 * met while waiting on another transaction's row (the lock timeout racing the grant, seen under load).
 */
import { assert, describe, it } from "@effect/vitest"
import { isConflict } from "../../local/src/internal/policy.js"

describe("isConflict", () => {
  it("takes PostgreSQL's serialization, deadlock and lock-timeout errors for conflicts", () => {
    for (const code of ["40001", "40P01", "55P03"]) assert.isTrue(isConflict({ C: code }), code)
  })

  it("takes a cancel met while waiting on another transaction's row for a conflict, and no other cancel", () => {
    const cancel = { C: "57014", M: "canceling statement due to user request" }
    assert.isTrue(isConflict({ ...cancel, W: "while updating tuple (0,95) in relation \"accounts\"" }))
    assert.isTrue(isConflict({ ...cancel, W: "SQL statement \"…\"\nwhile locking tuple (1,2) in relation \"t\"" }))
    assert.isFalse(isConflict(cancel), "a cancel of a statement that waited on nothing")
    assert.isFalse(isConflict({ C: "23505", W: "while inserting index tuple (0,1) in relation \"t\"" }))
  })
})
