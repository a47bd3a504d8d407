import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { DsqlClient } from "effect-dsql"
import { SqlClient } from "effect/sql"
import { program } from "../../examples/occ_retry.js"
import * as DsqlLocal from "../utils/dsqlLocal.js"
import { inEnv, logOf } from "./run.js"

describe("examples/occ_retry", () => {
  layer(Layer.provideMerge(DsqlLocal.pgClient, DsqlLocal.layer()), { excludeTestServices: true })((it) => {
    it.effect(
      "retries conflicting transfers, reports consistent counts and keeps the total balance",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const check = yield* SqlClient.SqlClient
          // Besides the real write conflicts on the hot accounts, fail a share of commits so conflicts are certain.
          yield* Effect.sync(() => server.faults.failCommitShare(0.1))
          const before = yield* Effect.sync(() => server.stats())
          const lines = yield* inEnv(server.env, logOf(program.pipe(Effect.provide(DsqlClient.layer)))).pipe(
            Effect.ensuring(Effect.sync(() => server.faults.reset()))
          )
          const after = yield* Effect.sync(() => server.stats())

          assert.strictEqual(lines.length, 3)
          assert.strictEqual(lines[0], "occ_retry: 4 accounts of 1000, 160 transfers from 16 fibers")
          const counts =
            /^occ_retry: (\d+) transfers committed in \d+ ms: (\d+) conflicts seen, (\d+) retries taken, (\d+) attempts, (\d+) gave up$/
              .exec(lines[1])
          assert.isNotNull(counts, lines[1])
          const [committed, conflicts, retries, attempts, gaveUp] = counts!.slice(1).map(Number)
          assert.strictEqual(committed + gaveUp, 160)
          assert.strictEqual(retries, attempts - 160)
          assert.strictEqual(conflicts, attempts - committed)
          assert.isAbove(conflicts, 0)
          const serverConflicts = after.occErrors.OC000 + after.occErrors.OC001 -
            (before.occErrors.OC000 + before.occErrors.OC001)
          assert.isAtLeast(serverConflicts, conflicts, "every conflict the example counted came from the server")
          assert.strictEqual(lines[2], "occ_retry: total balance 4000 = 4 × 1000: invariant holds")

          const accounts = yield* check`SELECT count(*)::int AS n, sum(balance)::int AS total FROM example_account`
          assert.deepStrictEqual(accounts, [{ n: 4, total: 4000 }])
        }),
      { timeout: 120_000 }
    )
  })
})
