import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { program } from "../../examples/connection_string.js"
import * as DsqlLocal from "../utils/dsqlLocal.js"
import { inEnv, logOf } from "./run.js"

describe("examples/connection_string", () => {
  layer(DsqlLocal.layer(), { excludeTestServices: true })((it) => {
    it.effect("says hello through a dsql:// and a postgres://…?region= connection string", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const before = server.stats()
        const lines = yield* inEnv(server.env, logOf(program))
        const after = server.stats()
        assert.deepStrictEqual(lines, [
          `connection_string: dsql://admin@${server.hostname}/postgres → Hello, DSQL! (as admin)`,
          `connection_string: postgres://admin@${server.hostname}:${server.port}/postgres?region=${server.region}` +
          `&tokenDurationSecs=900 → Hello, DSQL! (as admin)`
        ])
        assert.strictEqual(after.tokensVerified - before.tokensVerified, 2, "one IAM token per client")
      }))
  })
})
