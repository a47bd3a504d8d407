import * as HttpServer from "@effect/platform/HttpServer"
import { assert, describe, layer } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Schedule, Scope } from "effect"
import { DsqlLocal } from "effect-dsql/local"
import { randomUUID } from "node:crypto"
import * as HttpService from "../../examples/http_service.js"
import { backendQuery, uniqueTable, withEnv } from "../utils/client.js"
import { logOf } from "./console.js"
import { sessionsLeft, sessionsOf } from "./sessions.js"

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
 * Starts the service on a free port in a scope of its own (closing it is the shutdown), configured by the
 * environment as in production, its connections named after `prefix` so the backend's sessions can be counted.
 */
const startService = (prefix: string) =>
  Effect.gen(function*() {
    const server = yield* DsqlLocal.DsqlLocal
    const applicationName = uniqueTable(prefix)
    const scope = yield* Scope.make()
    // Shut down with the test, if it did not get that far itself (closing twice is a no-op).
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const context = yield* withEnv(
      { ...server.env, DSQL_APPLICATION_NAME: applicationName },
      Layer.buildWithScope(HttpService.layer({ port: 0, host: "127.0.0.1" }), scope)
    )
    const baseUrl = HttpServer.formatAddress(Context.get(context, HttpServer.HttpServer).address)
    return { server, applicationName, scope, baseUrl }
  })

const createAccount = (baseUrl: string, balance: number) =>
  Effect.map(request(baseUrl, "POST", "/accounts", { owner: "test owner", balance }), (reply) => {
    assert.strictEqual(reply.status, 201, JSON.stringify(reply.body))
    return reply.body.id as string
  })

const balancesOf = (server: DsqlLocal.Server, ids: ReadonlyArray<string>) =>
  backendQuery<{ id: string; balance: number }>(
    server,
    `SELECT id, balance FROM http_account WHERE id IN (${ids.map((id) => `'${id}'`).join(", ")})`
  ).pipe(Effect.map((rows) => new Map(rows.map((row) => [row.id, row.balance]))))

describe("examples/http_service", () => {
  layer(DsqlLocal.layer(), { excludeTestServices: true })((it) => {
    it.effect(
      "--once: drives itself through its typed client, keeps the total balance and shuts down",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const lines = yield* withEnv(server.env, logOf(HttpService.once))
          assert.strictEqual(lines.length, 5, lines.join("\n"))
          assert.match(lines[0], /^http_service: listening on http:\/\/127\.0\.0\.1:\d+$/)
          assert.strictEqual(lines[1], "http_service: 4 accounts of 1000 created")
          const outcomes = /^http_service: 60 transfers from 16 clients: (.+)$/.exec(lines[2])
          assert.isNotNull(outcomes, lines[2])
          const counted = outcomes![1].split(", ").map((part) =>
            /^(\d+) × (201 created|409 insufficient funds|503 contended)$/.exec(part)
          )
          assert.isTrue(counted.every((match) => match !== null), lines[2])
          assert.strictEqual(counted.reduce((sum, match) => sum + Number(match![1]), 0), 60)
          assert.strictEqual(lines[3], "http_service: shut down, pool closed")
          assert.strictEqual(lines[4], "http_service: total balance 4000 = 4 × 1000: invariant holds")
        }),
      { timeout: 120_000 }
    )

    it.scoped(
      "concurrent transfers on hot accounts: 201 or 503 with Retry-After, every committed transfer applied once, no session left after shutdown",
      () =>
        Effect.gen(function*() {
          const { applicationName, baseUrl, scope, server } = yield* startService("http_hot")
          const accounts = yield* Effect.forEach([1, 2, 3], () => createAccount(baseUrl, 1_000))

          // Real write conflicts on three hot accounts, plus a share of failed commits so conflicts are certain.
          yield* server.faults.failCommitShare(0.2)
          const before = yield* server.stats
          const sent = Array.from({ length: 48 }, (_, i) => ({
            fromAccount: accounts[i % 3],
            toAccount: accounts[(i + 1 + (i % 2)) % 3],
            amount: 10
          }))
          const replies = yield* Effect.forEach(sent, (transfer) => request(baseUrl, "POST", "/transfers", transfer), {
            concurrency: "unbounded"
          }).pipe(Effect.ensuring(server.faults.reset))
          const after = yield* server.stats
          assert.isAbove(after.occErrors.OC000 - before.occErrors.OC000, 0, "conflicts happened")

          for (const reply of replies) {
            assert.include([201, 503], reply.status, JSON.stringify(reply.body))
            if (reply.status === 503) {
              assert.strictEqual(reply.retryAfter, "1")
              assert.strictEqual(reply.body._tag, "TransferContended")
            } else {
              assert.isNull(reply.retryAfter)
            }
          }
          const committed = replies.filter((reply) => reply.status === 201).map((reply) => reply.body)
          assert.isAbove(committed.length, 0)

          // The invariant, in the database: the total is unchanged and each balance moved by exactly the transfers
          // answered 201, each recorded once (a retried attempt left nothing behind).
          const balances = yield* balancesOf(server, accounts)
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
          const recorded = yield* backendQuery<{ id: string }>(
            server,
            `SELECT id FROM http_transfer WHERE from_account IN (${accounts.map((id) => `'${id}'`).join(", ")})`
          )
          assert.sameMembers(recorded.map((row) => row.id), committed.map((transfer) => transfer.id))

          assert.isAbove(yield* sessionsOf(server, applicationName), 0)
          yield* Scope.close(scope, Exit.void)
          assert.strictEqual(yield* sessionsLeft(server, applicationName), 0)
        }),
      { timeout: 120_000 }
    )

    it.scoped(
      "maps bad input to 400, unknown accounts to 404, overdrafts to 409 and a lost OCC race to 503",
      () =>
        Effect.gen(function*() {
          const { applicationName, baseUrl, scope, server } = yield* startService("http_status")
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
            assert.strictEqual(reply.body._tag, "HttpApiDecodeError")
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
          assert.deepStrictEqual([overdraft.status, overdraft.body], [409, {
            _tag: "InsufficientFunds",
            id: a,
            balance: 100,
            wanted: 101
          }])

          // Every commit fails with OC000 until the retry budget (9 attempts) or the 5 s bound is spent.
          yield* server.faults.failCommitShare(1)
          const contended = yield* transfer({ fromAccount: a, toAccount: b, amount: 5 }).pipe(
            Effect.ensuring(server.faults.reset)
          )
          assert.strictEqual(contended.status, 503)
          assert.strictEqual(contended.retryAfter, "1")
          assert.strictEqual(contended.body._tag, "TransferContended")
          assert.isAtLeast(contended.body.attempts, 2)
          assert.isAtMost(contended.body.attempts, 9)

          // Nothing of the failed requests was written: the debit of the failed transfers was rolled back.
          const balances = yield* balancesOf(server, [a, b])
          assert.deepStrictEqual([balances.get(a), balances.get(b)], [100, 100])
          const found = yield* request(baseUrl, "GET", `/accounts/${a}`)
          assert.deepStrictEqual([found.status, found.body], [200, { id: a, owner: "test owner", balance: 100 }])
          yield* Scope.close(scope, Exit.void)
          assert.strictEqual(yield* sessionsLeft(server, applicationName), 0)
        }),
      { timeout: 120_000 }
    )

    it.scoped(
      "on shutdown, finishes the requests in flight, retries included, before closing the pool",
      () =>
        Effect.gen(function*() {
          const { applicationName, baseUrl, scope, server } = yield* startService("http_shutdown")
          const accounts = yield* Effect.forEach(Array.from({ length: 8 }), () => createAccount(baseUrl, 100))
          // Four transfers between disjoint pairs of accounts: no conflicts between them.
          const pairs = [0, 2, 4, 6].map((i) => [accounts[i], accounts[i + 1]] as const)

          // Slow statements keep the transfers in flight long enough to shut down in the middle of them, and each
          // transfer's first COMMIT fails: its retry needs the pool again after the shutdown began.
          yield* server.faults.setLatency("100 millis")
          yield* server.faults.failNextCommits(pairs.length)
          const inFlight = yield* Effect.fork(
            Effect.forEach(
              pairs,
              ([fromAccount, toAccount]) =>
                request(baseUrl, "POST", "/transfers", { fromAccount, toAccount, amount: 1 }),
              { concurrency: "unbounded" }
            )
          )
          // Shut down once a transfer holds an open transaction on the backend.
          yield* backendQuery<{ n: number }>(
            server,
            `SELECT count(*)::int AS n FROM pg_stat_activity
           WHERE application_name LIKE '${applicationName}:%' AND state = 'idle in transaction'`
          ).pipe(
            Effect.repeat({ until: ([row]) => row.n > 0, schedule: Schedule.spaced("20 millis") }),
            Effect.timeout("30 seconds")
          )
          yield* Scope.close(scope, Exit.void).pipe(Effect.ensuring(server.faults.reset))
          const replies = yield* Fiber.join(inFlight)
          assert.deepStrictEqual(replies.map((reply) => reply.status), [201, 201, 201, 201])

          assert.strictEqual(yield* sessionsLeft(server, applicationName), 0)
          const balances = yield* balancesOf(server, accounts)
          assert.deepStrictEqual(accounts.map((id) => balances.get(id)), [99, 101, 99, 101, 99, 101, 99, 101])
          const recorded = yield* backendQuery<{ n: number }>(
            server,
            `SELECT count(*)::int AS n FROM http_transfer WHERE from_account IN (${
              accounts.map((id) => `'${id}'`).join(", ")
            })`
          )
          assert.deepStrictEqual(recorded, [{ n: 4 }])
          const refused = yield* Effect.either(Effect.tryPromise(() => fetch(`${baseUrl}/accounts/${accounts[0]}`)))
          assert.isTrue(refused._tag === "Left", "the server no longer accepts connections")
        }),
      { timeout: 120_000 }
    )
  })
})
