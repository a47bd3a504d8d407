import { SqlState } from "@effect-dsql/core"
import { assert, describe, it } from "@effect/vitest"
import { FastCheck } from "effect"

describe("SqlState.occConflict", () => {
  it("reads the marker of a 40001 from its message, in DSQL's current and older wordings", () => {
    assert.strictEqual(SqlState.occConflict("40001", "change conflicts with another transaction (OC000)"), "OC000")
    assert.strictEqual(
      SqlState.occConflict("40001", "mutation conflicts with another transaction, retry as needed (OC000)"),
      "OC000"
    )
    assert.strictEqual(
      SqlState.occConflict("40001", "schema has been updated by another transaction, please retry: (OC001)"),
      "OC001"
    )
    assert.strictEqual(SqlState.occConflict("40001", "could not serialize access"), "40001")
  })

  it("takes the code field over the message: a code saying OC001 is OC001 whatever the message names", () => {
    assert.strictEqual(SqlState.occConflict("OC001", "change conflicts with another transaction (OC000)"), "OC001")
    assert.strictEqual(SqlState.occConflict("OC000", "schema has been updated (OC001)"), "OC000")
  })

  it("is no conflict for other codes, even when the message names a marker", () => {
    assert.isUndefined(SqlState.occConflict("XX000", "server unavailable (OC000)"))
    assert.isUndefined(SqlState.occConflict(undefined, "(OC000)"))
    assert.isUndefined(SqlState.occConflict("40P01", "deadlock detected"))
    // A marker must stand alone: OC0001 is not OC000.
    assert.strictEqual(SqlState.occConflict("40001", "code OC0001"), "40001")
  })

  it.prop(
    "never throws, and answers only for 40001 or a literal marker",
    [FastCheck.anything(), FastCheck.anything()],
    ([code, message]) => {
      const conflict = SqlState.occConflict(code, message)
      assert.isTrue(conflict === undefined || code === "40001" || code === "OC000" || code === "OC001")
    }
  )
})

describe("SqlState classes", () => {
  it("transient: XX000 (server unavailable); not a conflict, a limit or a refusal", () => {
    assert.isTrue(SqlState.isTransient("XX000"))
    for (const code of ["40001", "53300", "0A000", "25P02", "08006", undefined, 42]) {
      assert.isFalse(SqlState.isTransient(code), String(code))
    }
  })

  it("connection limits: 53300 and 53400 only", () => {
    assert.isTrue(SqlState.isConnectionLimit("53300"))
    assert.isTrue(SqlState.isConnectionLimit("53400"))
    assert.isFalse(SqlState.isConnectionLimit("53200"))
    assert.isFalse(SqlState.isConnectionLimit(53300))
  })

  it("session ended: 57P01..57P03", () => {
    assert.deepStrictEqual(["57P01", "57P02", "57P03", "57P04"].map(SqlState.isSessionEnded), [true, true, true, false])
  })

  it("SQLSTATE shape: five digits or capitals, not Node's socket codes", () => {
    assert.isTrue(SqlState.isSqlState("40001"))
    assert.isTrue(SqlState.isSqlState("XX000"))
    assert.isFalse(SqlState.isSqlState("ECONNRESET"))
    assert.isFalse(SqlState.isSqlState("4000"))
    assert.isFalse(SqlState.isSqlState("xx000"))
  })
})

describe("SqlState.serverError", () => {
  it("finds the server's fields along the cause chain, as each driver nests them", () => {
    const fields = Object.assign(new Error("change conflicts with another transaction (OC000)"), { code: "40001" })
    assert.deepStrictEqual(
      SqlState.serverError({ message: "Failed", cause: { message: "Query failed", cause: fields } }),
      {
        code: "40001",
        message: "change conflicts with another transaction (OC000)"
      }
    )
    assert.isUndefined(SqlState.serverError({ code: "ECONNRESET", message: "socket hang up" }))
    assert.isUndefined(SqlState.serverError("40001"))
  })

  it("stops on a cyclic cause", () => {
    const a: { message: string; cause?: unknown } = { message: "a" }
    a.cause = { message: "b", cause: a }
    assert.isUndefined(SqlState.serverError(a))
  })
})
