import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { program } from "../../examples/alternatives/single_connection.js"
import * as DsqlLocal from "../utils/dsqlLocal.js"
import { inEnv, logOf } from "./run.js"

describe("examples/alternatives/single_connection", () => {
  layer(DsqlLocal.layer(), { excludeTestServices: true })((it) => {
    it.effect("runs every query on one session and closes it with the scope", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const before = server.stats()
        const lines = yield* inEnv(server.env, logOf(program))
        const after = server.stats()
        assert.strictEqual(lines.length, 2)
        assert.strictEqual(lines[0], `single_connection: connected to ${server.hostname} as admin`)
        assert.match(lines[1], /^single_connection: 3 queries, 1 session \(backend pid (\d+), \1, \1\)$/)
        assert.strictEqual(after.connectionsAccepted - before.connectionsAccepted, 1)
      }))
  })
})
