import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { DsqlLocal } from "effect-dsql/local"
import { program } from "../../examples/connection_string.js"
import { withEnv } from "../utils/client.js"
import { logOf } from "./console.js"

describe("examples/connection_string", () => {
  layer(DsqlLocal.layer(), { excludeTestServices: true })((it) => {
    it.effect("says hello through a dsql:// and a postgres://…?region= connection string", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const before = yield* server.stats
        const lines = yield* withEnv(server.env, logOf(program))
        const after = yield* server.stats
        assert.deepStrictEqual(lines, [
          `connection_string: dsql://admin@${server.hostname}/postgres → Hello, DSQL! (as admin)`,
          `connection_string: postgres://admin@${server.hostname}:${server.port}/postgres?region=${server.region}` +
          `&tokenDurationSecs=900 → Hello, DSQL! (as admin)`
        ])
        assert.strictEqual(after.tokensVerified - before.tokensVerified, 2, "one IAM token per client")
      }))
  })
})
