/**
 * The load loop of the Effect 4 clients (effect-dsql 2 and the plain @effect/sql-pg 4 reference), the same as
 * effectLoad.ts on Effect 4: `concurrency` fibers running one kind of query through the `SqlClient` in context.
 */
import { randomUUID } from "node:crypto"
import { effect4, SqlClient } from "../library4.js"
import type { QueryKind } from "../protocol.js"
import { INSERT_TABLE, KV_TABLE } from "../protocol.js"
import { makeLoadMeter, randomKey } from "./common.js"

const { Effect, Exit } = effect4

const queryFor = (sql: SqlClient, query: QueryKind) =>
  Effect.suspend(() => {
    switch (query) {
      case "select1":
        return sql`SELECT 1`
      case "pkRead":
        return sql`SELECT id, balance FROM ${sql(KV_TABLE)} WHERE id = ${randomKey()}`
      case "insert":
        return sql`INSERT INTO ${sql(INSERT_TABLE)} (id, payload) VALUES (${randomUUID()}, ${"bench"})`
    }
  })

/** `concurrency` fibers running `query` for `durationMs` on the `SqlClient` in context. */
export const loadEffect4 = (query: QueryKind, concurrency: number, durationMs: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const op = queryFor(sql, query)
    const meter = makeLoadMeter(durationMs)
    const worker = Effect.gen(function*() {
      while (meter.running()) {
        const begin = performance.now()
        const exit = yield* Effect.exit(op)
        if (Exit.isSuccess(exit)) meter.succeeded(begin)
        else meter.failed()
      }
    })
    yield* Effect.all(Array.from({ length: concurrency }, () => worker), { concurrency: "unbounded", discard: true })
    return meter.result()
  })
