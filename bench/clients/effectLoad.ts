/**
 * The load loop of the Effect-based clients (effect-dsql and the plain @effect/sql-pg reference): `concurrency` fibers
 * running one kind of query through the `SqlClient` in context, as an Effect program would.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Exit } from "effect"
import { randomUUID } from "node:crypto"
import type { QueryKind } from "../protocol.js"
import { INSERT_TABLE, KV_TABLE } from "../protocol.js"
import { makeLoadMeter, randomKey } from "./common.js"

const queryFor = (sql: SqlClient.SqlClient, query: QueryKind) =>
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
export const loadEffect = (query: QueryKind, concurrency: number, durationMs: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
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
