import { Causes, Diagnostics, SqlState } from "@effect-dsql/core"
import { assert, describe, it } from "@effect/vitest"

/** Two errors that are each other's cause. */
const loop = () => {
  const a: { message: string; cause?: unknown } = { message: "outer" }
  const b = { message: "inner", cause: a }
  a.cause = b
  return a
}

describe("Causes.causeChain", () => {
  it("stops at a link already met, so a cyclic chain ends", () => {
    assert.deepStrictEqual(Causes.causeChain(loop()).map((link) => (link as { message: string }).message), [
      "outer",
      "inner"
    ])
  })

  it("stops after maxCauseDepth links", () => {
    let error: unknown = { message: "root" }
    for (let depth = 0; depth < 50; depth++) error = { message: `level ${depth}`, cause: error }
    assert.strictEqual(Causes.causeChain(error).length, Causes.maxCauseDepth)
  })
})

describe("Diagnostics.describeError", () => {
  it("describes a cyclic chain instead of overflowing the stack", () => {
    assert.strictEqual(Diagnostics.describeError(loop()), "outer: inner")
  })

  it("names the input the host came from when it is not found", () => {
    const error = { message: "connect failed", cause: { code: "ENOTFOUND", message: "getaddrinfo ENOTFOUND x" } }
    assert.strictEqual(
      Diagnostics.describeError(error, "the host in DSQL_URL"),
      "connect failed: host name not found: check the host in DSQL_URL"
    )
  })

  it("says which TLS check failed, and quotes the server's message, SQLSTATE and hint", () => {
    assert.strictEqual(
      Diagnostics.describeError({ code: "ERR_TLS_CERT_ALTNAME_INVALID", message: "Hostname/IP does not match" }),
      "TLS verification failed: the server certificate does not match the host name (ERR_TLS_CERT_ALTNAME_INVALID)"
    )
    assert.strictEqual(
      Diagnostics.describeError({
        message: "Failed to connect",
        cause: { code: "08006", message: "unable to accept connection, access denied", hint: "check the token" }
      }),
      "Failed to connect: unable to accept connection, access denied (SQLSTATE 08006) — check the token"
    )
  })

  it("clips what a server sends at length", () => {
    const described = Diagnostics.describeError({ code: "XX000", message: "x".repeat(5_000) })
    assert.isBelow(described.length, 1_100)
    assert.include(described, "(5000 characters in all)")
  })
})

describe("Diagnostics.checkoutTimedOut", () => {
  it("names the timeout and the pool's size, and what to change", () => {
    const one = Diagnostics.checkoutTimedOut("250ms", 1)
    assert.match(one, /^no connection within connectTimeout \(250ms\): the pool's 1 connection stayed in use/)
    assert.include(Diagnostics.checkoutTimedOut("10s", 20), "the pool's 20 connections stayed in use")
    assert.include(one, "raise maxConnections or connectTimeout")
  })
})

describe("SqlState.serverError", () => {
  it("finds the server's error along a cyclic chain, and ends when there is none", () => {
    const error = { message: "wrapped", cause: { code: "40001", message: "conflict (OC000)" } }
    assert.deepStrictEqual(SqlState.serverError(error), { code: "40001", message: "conflict (OC000)" })
    assert.strictEqual(SqlState.serverError(loop()), undefined)
  })
})
