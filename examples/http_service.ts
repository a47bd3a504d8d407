/**
 * An HTTP service on DSQL, built the way Effect services are: an `HttpApi` (accounts and transfers) served by
 * `@effect/platform-node`, `DsqlClient.layer` provided once for the server's lifetime, every request in its own
 * fiber, transfers under `withOccRetry`, rows decoded with `Model` / `SqlSchema`, and typed errors mapped to
 * statuses: bad input 400, unknown account 404, insufficient funds 409, an OCC race still lost after the retry budget
 * 503 with `Retry-After`. Interrupting it (Ctrl-C, SIGTERM) shuts down gracefully: the server stops accepting
 * connections, in-flight requests finish, then the pool closes.
 *
 * Run: `npm run example -- http_service` serves on `PORT` (default 3000) until stopped;
 * `npm run example -- http_service --once` serves on a free port, sends itself concurrent transfers between hot
 * accounts through the typed `HttpApiClient`, checks the total balance, and shuts down.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Model, SqlClient, SqlSchema } from "@effect/sql"
import { Config, Console, Effect, Layer, Option, Random, Schema } from "effect"
import { DsqlClient, OccRetry, withOccRetry } from "effect-dsql"
import { randomUUID } from "node:crypto"
import { createServer } from "node:http"
import { pathToFileURL } from "node:url"

// ---- Models: one schema per table, with the variants @effect/sql derives (insert, select, json) ----

export class Account extends Model.Class<Account>("Account")({
  id: Model.GeneratedByApp(Schema.UUID),
  owner: Schema.NonEmptyTrimmedString.pipe(Schema.maxLength(80)),
  balance: Schema.Int.pipe(Schema.nonNegative())
}) {}

export class Transfer extends Model.Class<Transfer>("Transfer")({
  id: Model.GeneratedByApp(Schema.UUID),
  fromAccount: Schema.UUID,
  toAccount: Schema.UUID,
  amount: Schema.Int.pipe(Schema.positive())
}) {}

// ---- The API: endpoints, their payloads and the errors each may answer with ----

export class AccountNotFound extends Schema.TaggedError<AccountNotFound>()(
  "AccountNotFound",
  { id: Schema.UUID },
  HttpApiSchema.annotations({ status: 404 })
) {}

export class InsufficientFunds extends Schema.TaggedError<InsufficientFunds>()(
  "InsufficientFunds",
  { id: Schema.UUID, balance: Schema.Int, wanted: Schema.Int },
  HttpApiSchema.annotations({ status: 409 })
) {}

/** The transfer kept losing OCC races to concurrent writers of the same accounts: the client should try again. */
export class TransferContended extends Schema.TaggedError<TransferContended>()(
  "TransferContended",
  { attempts: Schema.Int, retryAfterSeconds: Schema.Int },
  HttpApiSchema.annotations({ status: 503 })
) {}

const TransferRequest = Transfer.jsonCreate.pipe(
  Schema.filter((transfer) => transfer.fromAccount !== transfer.toAccount || "an account cannot pay itself")
)

export class Api extends HttpApi.make("bank").add(
  HttpApiGroup.make("accounts")
    .add(
      HttpApiEndpoint.post("create", "/accounts").setPayload(Account.jsonCreate).addSuccess(Account.json, {
        status: 201
      })
    )
    .add(
      HttpApiEndpoint.get("find", "/accounts/:id")
        .setPath(Schema.Struct({ id: Schema.UUID }))
        .addSuccess(Account.json)
        .addError(AccountNotFound)
    )
).add(
  HttpApiGroup.make("transfers").add(
    HttpApiEndpoint.post("create", "/transfers")
      .setPayload(TransferRequest)
      .addSuccess(Transfer.json, { status: 201 })
      .addError(AccountNotFound)
      .addError(InsufficientFunds)
      .addError(TransferContended)
  )
) {}

// ---- Data access: statements with typed requests and decoded rows ----

/** Seconds a client should wait before retrying a contended transfer (the `Retry-After` header). */
const retryAfterSeconds = 1

/**
 * The tables, created when the server starts. One DDL statement per transaction on DSQL, each retried on a schema
 * conflict with a concurrent DDL.
 */
const TablesLive = Layer.effectDiscard(Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* OccRetry.execWithRetry(sql`
    CREATE TABLE IF NOT EXISTS http_account (id uuid PRIMARY KEY, owner varchar(80) NOT NULL, balance int NOT NULL)`)
  yield* OccRetry.execWithRetry(sql`
    CREATE TABLE IF NOT EXISTS http_transfer (
      id uuid PRIMARY KEY, from_account uuid NOT NULL, to_account uuid NOT NULL, amount int NOT NULL)`)
}))

const makeRepository = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  const insertAccount = SqlSchema.single({
    Request: Account.insert,
    Result: Account,
    execute: (account) => sql`INSERT INTO http_account ${sql.insert(account)} RETURNING *`
  })
  const findAccount = SqlSchema.findOne({
    Request: Schema.UUID,
    Result: Account,
    execute: (id) => sql`SELECT * FROM http_account WHERE id = ${id}`
  })
  const addToBalance = SqlSchema.findOne({
    Request: Schema.Struct({ id: Schema.UUID, amount: Schema.Int }),
    // A debit may go below zero inside the transaction; the check below rolls it back.
    Result: Schema.Struct({ balance: Schema.Int }),
    execute: ({ amount, id }) =>
      sql`UPDATE http_account SET balance = balance + ${amount} WHERE id = ${id} RETURNING balance`
  })
  const insertTransfer = SqlSchema.single({
    Request: Transfer.insert,
    Result: Transfer,
    execute: (transfer) =>
      sql`INSERT INTO http_transfer ${
        sql.insert({
          id: transfer.id,
          from_account: transfer.fromAccount,
          to_account: transfer.toAccount,
          amount: transfer.amount
        })
      } RETURNING id, from_account AS "fromAccount", to_account AS "toAccount", amount`
  })

  const moveMoney = (request: typeof Transfer.jsonCreate.Type) =>
    Effect.gen(function*() {
      const debited = yield* addToBalance({ id: request.fromAccount, amount: -request.amount })
      if (Option.isNone(debited)) return yield* new AccountNotFound({ id: request.fromAccount })
      if (debited.value.balance < 0) {
        return yield* new InsufficientFunds({
          id: request.fromAccount,
          balance: debited.value.balance + request.amount,
          wanted: request.amount
        })
      }
      const credited = yield* addToBalance({ id: request.toAccount, amount: request.amount })
      if (Option.isNone(credited)) return yield* new AccountNotFound({ id: request.toAccount })
      return yield* insertTransfer(Transfer.insert.make({ ...request, id: randomUUID() }))
    })

  return {
    createAccount: (account: typeof Account.jsonCreate.Type) =>
      insertAccount(Account.insert.make({ ...account, id: randomUUID() })),
    findAccount,
    /**
     * One transaction, run again from the top when it loses an OCC race (everything in it is database work). A
     * typed failure (not found, insufficient funds) rolls it back; so does a conflict (or a transient error) still
     * met after the budget. A COMMIT whose outcome is unknown is a 500: the client reads the balances back.
     */
    transfer: (request: typeof Transfer.jsonCreate.Type) =>
      moveMoney(request).pipe(
        withOccRetry({ maxRetries: 8, maxElapsed: "5 seconds" }),
        Effect.catchTags({
          OccConflict: (conflict) =>
            Effect.fail(new TransferContended({ attempts: conflict.attempts, retryAfterSeconds })),
          TransientError: (error) => Effect.fail(new TransferContended({ attempts: error.attempts, retryAfterSeconds }))
        })
      )
  }
})

// ---- Handlers: typed errors pass through to the API, anything else (SqlError, undecodable rows) is a 500 ----

const AccountsLive = HttpApiBuilder.group(Api, "accounts", (handlers) =>
  Effect.gen(function*() {
    const repository = yield* makeRepository
    return handlers
      .handle("create", ({ payload }) => Effect.orDie(repository.createAccount(payload)))
      .handle("find", ({ path }) =>
        repository.findAccount(path.id).pipe(
          Effect.orDie,
          Effect.flatten,
          Effect.catchTag("NoSuchElementException", () => Effect.fail(new AccountNotFound({ id: path.id })))
        ))
  }))

const TransfersLive = HttpApiBuilder.group(Api, "transfers", (handlers) =>
  Effect.gen(function*() {
    const repository = yield* makeRepository
    return handlers.handle("create", ({ payload }) =>
      repository.transfer(payload).pipe(
        Effect.catchTags({
          SqlError: Effect.die,
          ParseError: Effect.die,
          NoSuchElementException: Effect.die,
          CommitOutcomeUnknown: Effect.die
        }),
        // A 503 tells the client when to come back; the header goes on whatever response the error becomes.
        Effect.tapErrorTag("TransferContended", (error) =>
          HttpApp.appendPreResponseHandler((_request, response) =>
            Effect.succeed(HttpServerResponse.setHeader(response, "retry-after", String(error.retryAfterSeconds)))
          ))
      ))
  }))

/**
 * The whole service listening on `port` (0: any free port) of `host` (default: every interface): HTTP server, API,
 * tables and one `DsqlClient` pool for its lifetime. Layers release in reverse order of acquisition, and the pool
 * is acquired first: on shutdown the server stops accepting, waits for its in-flight requests, and only then is the
 * pool closed.
 */
export const layer = (listen: { readonly port: number; readonly host?: string }) =>
  HttpApiBuilder.serve().pipe(
    Layer.provide(HttpApiBuilder.api(Api).pipe(Layer.provide([AccountsLive, TransfersLive]))),
    HttpServer.withLogAddress,
    Layer.provideMerge(NodeHttpServer.layer(createServer, listen)),
    Layer.provide(TablesLive),
    Layer.provideMerge(DsqlClient.layer)
  )

// ---- --once: the service driven by its own typed client ----

const hotAccounts = 4
const initialBalance = 1_000
const transfers = 60
const clients = 16

/** Starts the service on a free port, sends it concurrent transfers between hot accounts, and shuts it down. */
export const once = Effect.gen(function*() {
  const results = yield* Effect.gen(function*() {
    const server = yield* HttpServer.HttpServer
    const baseUrl = HttpServer.formatAddress(server.address)
    yield* Console.log(`http_service: listening on ${baseUrl}`)
    const client = yield* HttpApiClient.make(Api, { baseUrl })

    const accounts = yield* Effect.forEach(
      Array.from({ length: hotAccounts }, (_, i) => `owner ${i + 1}`),
      (owner) => client.accounts.create({ payload: { owner, balance: initialBalance } })
    )
    yield* Console.log(`http_service: ${hotAccounts} accounts of ${initialBalance} created`)

    const randomTransfer = Effect.gen(function*() {
      const from = yield* Random.nextIntBetween(0, hotAccounts)
      const to = (from + (yield* Random.nextIntBetween(1, hotAccounts))) % hotAccounts
      const amount = yield* Random.nextIntBetween(1, 100)
      return yield* client.transfers.create({
        payload: { fromAccount: accounts[from].id, toAccount: accounts[to].id, amount }
      }).pipe(
        Effect.as("201 created"),
        Effect.catchTags({
          InsufficientFunds: () => Effect.succeed("409 insufficient funds"),
          TransferContended: () => Effect.succeed("503 contended")
        })
      )
    })
    const outcomes = yield* Effect.forEach(Array.from({ length: transfers }), () => randomTransfer, {
      concurrency: clients
    })
    const counts = new Map<string, number>()
    for (const outcome of outcomes) counts.set(outcome, (counts.get(outcome) ?? 0) + 1)
    yield* Console.log(
      `http_service: ${transfers} transfers from ${clients} clients: ` +
        [...counts].sort().map(([outcome, n]) => `${n} × ${outcome}`).join(", ")
    )

    const balances = yield* Effect.forEach(accounts, (account) => client.accounts.find({ path: { id: account.id } }))
    return balances.reduce((sum, account) => sum + account.balance, 0)
  }).pipe(Effect.provide(Layer.merge(layer({ port: 0, host: "127.0.0.1" }), FetchHttpClient.layer)), Effect.scoped)

  yield* Console.log(`http_service: shut down, pool closed`)
  if (results !== hotAccounts * initialBalance) {
    return yield* Effect.dieMessage(`http_service: total balance ${results}, expected ${hotAccounts * initialBalance}`)
  }
  yield* Console.log(
    `http_service: total balance ${results} = ${hotAccounts} × ${initialBalance}: invariant holds`
  )
})

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  NodeRuntime.runMain(
    process.argv.includes("--once")
      ? once
      : Effect.flatMap(Config.port("PORT").pipe(Config.withDefault(3000)), (port) => Layer.launch(layer({ port })))
  )
}
