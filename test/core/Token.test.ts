import { Token } from "@effect-dsql/core"
import { assert, describe, it } from "@effect/vitest"
import { FastCheck } from "effect"

const valid = { hostname: "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws", region: "us-east-1", user: "admin" }

describe("Token.actionFor", () => {
  it("gives DbConnectAdmin to exactly admin", () => {
    assert.strictEqual(Token.actionFor("admin"), "DbConnectAdmin")
    assert.strictEqual(Token.actionFor("Admin"), "DbConnect")
    assert.strictEqual(Token.actionFor("admin "), "DbConnect")
  })

  it.prop("gives DbConnect to every other name", [FastCheck.string().filter((user) => user !== "admin")], ([user]) => {
    assert.strictEqual(Token.actionFor(user), "DbConnect")
  })
})

describe("Token.problemWith", () => {
  it("accepts 1 second to 7 days", () => {
    assert.isUndefined(Token.problemWith({ ...valid, expiresInSeconds: 1 }))
    assert.isUndefined(Token.problemWith({ ...valid, expiresInSeconds: 604_800 }))
  })

  it("names what is wrong", () => {
    const cases: Array<[Partial<typeof valid> & { expiresInSeconds?: number }, string]> = [
      [{ expiresInSeconds: 0 }, "expiresIn must be between 1 second and 7 days"],
      [{ expiresInSeconds: 604_801 }, "expiresIn must be between 1 second and 7 days"],
      [{ expiresInSeconds: Number.NaN }, "expiresIn must be between 1 second and 7 days"],
      [{ hostname: "evil.example/path" }, "is not a host name"],
      [{ hostname: "" }, "is not a host name"],
      [{ region: "" }, "region is empty"],
      [{ user: "" }, "user is empty"]
    ]
    for (const [overrides, expected] of cases) {
      assert.include(Token.problemWith({ ...valid, expiresInSeconds: 900, ...overrides }), expected)
    }
  })
})
