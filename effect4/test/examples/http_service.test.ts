/**
 * The HttpApi service over real HTTP on DsqlLocal: statuses of every typed failure, concurrent conflicting
 * transfers, the balances and transfers left in the database, and the `--once` run.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { HttpServer } from "effect/http"
import { SqlClient } from "effect/sql"
import { randomUUID } from "node:crypto"
import * as HttpService from "../../examples/http_service.js"
import * as DsqlLocal from "../utils/dsqlLocal.js"
import { inEnv, logOf } from "./run.js"

interface Reply {
  readonly status: number
  readonly retryAfter: string | null
  readonly body: any
}

/** One real HTTP request to the running service. */
const request = (baseUrl: string, method: "GET" | "POST", path: string, body?: unknown) =>
  Effect.promise(async (): Promise<Reply> => {
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      ...(body === undefined ? {} : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
    })
    const text = await response.text()
    return {
      status: response.status,
      retryAfter: response.headers.get("retry-after"),
      body: text === "" ? undefined : JSON.parse(text)
    }
  })

/**
 * The service on a free port, configured by the environment as in production, in a scope of its own that closes
 * with the test (closing it is the shutdown).
 */
const startService = Effect.gen(function*() {
  const server = yield* DsqlLocal.DsqlLocal
  const scope = yield* Scope.make()
  yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
  const context = yield* inEnv(
    server.env,
    Layer.buildWithScope(HttpService.layer({ port: 0, host: "127.0.0.1" }), scope)
  )
  return HttpServer.formatAddress(Context.get(context, HttpServer.HttpServer).address)
})

const createAccount = (baseUrl: string, balance: number) =>
  Effect.map(request(baseUrl, "POST", "/accounts", { owner: "test owner", balance }), (reply) => {
    assert.strictEqual(reply.status, 201, JSON.stringify(reply.body))
    return reply.body.id as string
  })

/** The balances in the database, by account id. */
const balancesOf = (ids: ReadonlyArray<string>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ id: string; balance: number }>`SELECT id, balance FROM http_account WHERE id IN ${sql.in(ids)}`,
      (rows) => new Map(rows.map((row) => [row.id, row.balance]))
    ))

describe("examples/http_service", () => {
  layer(Layer.provideMerge(DsqlLocal.pgClient, DsqlLocal.layer()), { excludeTestServices: true })((it) => {
    it.effect(
      "answers 400, 404, 422 and, on a conflict that outlasts the retries, 409 with Retry-After",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const baseUrl = yield* startService
          const [a, b] = yield* Effect.forEach([100, 100], (balance) => createAccount(baseUrl, balance))
          const transfer = (body: unknown) => request(baseUrl, "POST", "/transfers", body)

          const badInputs = [
            { fromAccount: a, toAccount: b, amount: -5 },
            { fromAccount: a, toAccount: b, amount: 1.5 },
            { fromAccount: a, toAccount: a, amount: 5 },
            { fromAccount: "not-a-uuid", toAccount: b, amount: 5 },
            { fromAccount: a, toAccount: b }
          ]
          for (const body of badInputs) {
            const reply = yield* transfer(body)
            assert.strictEqual(reply.status, 400, JSON.stringify(body))
          }
          assert.strictEqual((yield* request(baseUrl, "POST", "/accounts", { owner: " ", balance: 1 })).status, 400)
          assert.strictEqual((yield* request(baseUrl, "POST", "/accounts", { owner: "x", balance: -1 })).status, 400)
          assert.strictEqual((yield* request(baseUrl, "GET", "/accounts/not-a-uuid")).status, 400)

          const unknown = randomUUID()
          const notFound = yield* request(baseUrl, "GET", `/accounts/${unknown}`)
          assert.deepStrictEqual([notFound.status, notFound.body], [404, { _tag: "AccountNotFound", id: unknown }])
          const toUnknown = yield* transfer({ fromAccount: a, toAccount: unknown, amount: 5 })
          assert.deepStrictEqual([toUnknown.status, toUnknown.body], [404, { _tag: "AccountNotFound", id: unknown }])

          const overdraft = yield* transfer({ fromAccount: a, toAccount: b, amount: 101 })
          assert.deepStrictEqual([overdraft.status, overdraft.body], [422, {
            _tag: "InsufficientFunds",
            id: a,
            balance: 100,
            wanted: 101
          }])

          // Every COMMIT loses an OCC conflict (OC000) until the budget is spent: 5 retries, or 5 seconds if a loaded
          // machine runs out of time first; then a 409.
          server.faults.failCommitShare(1)
          const conflict = yield* transfer({ fromAccount: a, toAccount: b, amount: 5 }).pipe(
            Effect.ensuring(Effect.sync(() => server.faults.reset()))
          )
          assert.deepStrictEqual([conflict.status, conflict.retryAfter, conflict.body._tag], [
            409,
            "1",
            "TransferConflict"
          ])
          assert.isAtLeast(conflict.body.attempts, 2)
          assert.isAtMost(conflict.body.attempts, 6)

          // None of the failed transfers wrote anything: each rolled back its debit.
          const balances = yield* balancesOf([a, b])
          assert.deepStrictEqual([balances.get(a), balances.get(b)], [100, 100])
          const done = yield* transfer({ fromAccount: a, toAccount: b, amount: 5 })
          assert.strictEqual(done.status, 201, JSON.stringify(done.body))
          assert.deepStrictEqual(done.body, { id: done.body.id, fromAccount: a, toAccount: b, amount: 5 })
          const found = yield* request(baseUrl, "GET", `/accounts/${a}`)
          assert.deepStrictEqual([found.status, found.body], [200, { id: a, owner: "test owner", balance: 95 }])
        }),
      { timeout: 120_000 }
    )

    it.effect(
      "concurrent transfers on hot accounts: each 201 applied once, each 409 not at all, the total kept",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const sql = yield* SqlClient.SqlClient
          const baseUrl = yield* startService
          const accounts = yield* Effect.forEach([1, 2, 3], () => createAccount(baseUrl, 1_000))

          // Real write conflicts between 48 transfers on 3 accounts at once, and a share of failed COMMITs on top, so
          // that conflicts are certain.
          server.faults.failCommitShare(0.2)
          const before = server.stats()
          const sent = Array.from({ length: 48 }, (_, i) => ({
            fromAccount: accounts[i % 3],
            toAccount: accounts[(i + 1 + (i % 2)) % 3],
            amount: 10
          }))
          const replies = yield* Effect.forEach(sent, (body) => request(baseUrl, "POST", "/transfers", body), {
            concurrency: "unbounded"
          }).pipe(Effect.ensuring(Effect.sync(() => server.faults.reset())))
          const after = server.stats()
          assert.isAbove(after.occErrors.OC000 - before.occErrors.OC000, 0, "conflicts happened")

          for (const reply of replies) {
            if (reply.status === 409) {
              assert.strictEqual(reply.retryAfter, "1")
              assert.strictEqual(reply.body._tag, "TransferConflict")
            } else {
              assert.strictEqual(reply.status, 201, JSON.stringify(reply.body))
              assert.isNull(reply.retryAfter)
            }
          }
          const committed = replies.filter((reply) => reply.status === 201).map((reply) => reply.body)
          assert.isAbove(committed.length, 0)

          // In the database: each balance moved by exactly the transfers answered 201, each recorded once.
          const balances = yield* balancesOf(accounts)
          assert.strictEqual([...balances.values()].reduce((sum, balance) => sum + balance, 0), 3_000)
          for (const id of accounts) {
            const moved = committed.reduce(
              (sum, transfer) =>
                sum + (transfer.toAccount === id ? transfer.amount : 0) -
                (transfer.fromAccount === id ? transfer.amount : 0),
              0
            )
            assert.strictEqual(balances.get(id), 1_000 + moved)
          }
          const recorded = yield* sql<{ id: string }>`SELECT id FROM http_transfer WHERE from_account IN ${
            sql.in(accounts)
          }`
          assert.sameMembers(recorded.map((row) => row.id), committed.map((transfer) => transfer.id))
        }),
      { timeout: 120_000 }
    )

    it.effect(
      "--once: drives itself through its typed client, keeps the total balance and shuts down",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const lines = (yield* inEnv(server.env, logOf(HttpService.once))).filter((line) =>
            line.startsWith("http_service: ")
          )
          assert.strictEqual(lines.length, 5, lines.join("\n"))
          assert.match(lines[0], /^http_service: listening on http:\/\/127\.0\.0\.1:\d+$/)
          assert.strictEqual(lines[1], "http_service: 4 accounts of 1000 created")
          const outcomes = /^http_service: 60 transfers from 16 clients: (.+)$/.exec(lines[2])
          assert.isNotNull(outcomes, lines[2])
          const counted = outcomes![1].split(", ").map((part) =>
            /^(\d+) × (201 created|409 conflict|422 insufficient funds)$/.exec(part)
          )
          assert.isTrue(counted.every((match) => match !== null), lines[2])
          assert.strictEqual(counted.reduce((sum, match) => sum + Number(match![1]), 0), 60)
          assert.strictEqual(lines[3], "http_service: shut down, pool closed")
          assert.strictEqual(lines[4], "http_service: total balance 4000 = 4 × 1000: invariant holds")
        }),
      { timeout: 120_000 }
    )
  })
})
