/**
 * An HTTP service on DSQL with Effect 4's `HttpApi`: accounts and transfers served by `@effect/platform-node`, one
 * `DsqlClient` pool for the server's lifetime, tables made by `DsqlMigrator` at start, rows decoded with `Model` and
 * `SqlSchema`, each transfer one transaction under `withOccRetry`. Failures are typed and declare their status: bad
 * input 400, unknown account 404, insufficient funds 422, and a transfer that kept losing OCC races after the retry
 * budget 409 with a `Retry-After` header, declared in the error's schema. Interrupting it (Ctrl-C, SIGTERM) stops the
 * server, then closes the pool.
 *
 * Run: `npm run example -w effect4 -- http_service` serves on `PORT` (default 3000) until stopped;
 * `npm run example -w effect4 -- http_service --once` serves on a free port, sends itself concurrent transfers
 * between hot accounts through the typed `HttpApiClient`, checks the total balance, and shuts down.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Config, Console, Context, Effect, Layer, Option, Random, Schema } from "effect"
import { DsqlClient, DsqlMigrator, withOccRetry } from "effect-dsql"
import { FetchHttpClient, HttpRouter, HttpServer } from "effect/http"
import { HttpApi, HttpApiBuilder, HttpApiClient, HttpApiEndpoint, HttpApiGroup, HttpApiSchema } from "effect/http-api"
import { Model } from "effect/schema"
import { Migrator, SqlClient, SqlSchema } from "effect/sql"
import { createServer } from "node:http"
import { runMainIfScript } from "./internal/runMain.js"

// ---- Domain: one model per table, with the variants it derives (select, insert, json, jsonCreate) ----

export const AccountId = Schema.String.check(Schema.isUUID()).pipe(Schema.brand("AccountId"))
export type AccountId = typeof AccountId.Type

export const TransferId = Schema.String.check(Schema.isUUID()).pipe(Schema.brand("TransferId"))

export class Account extends Model.Class<Account>("Account")({
  id: Model.UuidV4Insert(AccountId),
  owner: Schema.Trimmed.check(Schema.isNonEmpty(), Schema.isMaxLength(80)),
  balance: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
}) {}

export class Transfer extends Model.Class<Transfer>("Transfer")({
  id: Model.UuidV4Insert(TransferId),
  fromAccount: AccountId,
  toAccount: AccountId,
  amount: Schema.Int.check(Schema.isGreaterThan(0))
}) {}

const TransferRequest = Transfer.jsonCreate.check(
  Schema.makeFilter((transfer) => transfer.fromAccount !== transfer.toAccount || "an account cannot pay itself")
)

// ---- Errors, each with the status it answers ----

export class AccountNotFound extends Schema.TaggedError<AccountNotFound>()("AccountNotFound", {
  id: AccountId
}, { httpApiStatus: 404 }) {}

export class InsufficientFunds extends Schema.TaggedError<InsufficientFunds>()("InsufficientFunds", {
  id: AccountId,
  balance: Schema.Int,
  wanted: Schema.Int
}, { httpApiStatus: 422 }) {}

/** The transfer kept losing OCC races to concurrent writers of the same accounts: the client should try again. */
export class TransferConflict extends Schema.TaggedError<TransferConflict>()("TransferConflict", {
  attempts: Schema.Int,
  retryAfterSeconds: Schema.Int
}) {}

/** On the wire: 409, the attempts in the body, the wait in `Retry-After`. */
const TransferConflictResponse = TransferConflict.pipe(HttpApiSchema.encodeToWithHeaders({
  body: Schema.Struct({ _tag: Schema.tag("TransferConflict"), attempts: Schema.Int }).pipe(HttpApiSchema.status(409)),
  headers: { "retry-after": Schema.FiniteFromString.check(Schema.isInt()) }
}, {
  decode: ({ body, headers }) =>
    new TransferConflict({ attempts: body.attempts, retryAfterSeconds: headers["retry-after"] }),
  encode: (error) => ({
    body: { _tag: "TransferConflict" as const, attempts: error.attempts },
    headers: { "retry-after": error.retryAfterSeconds }
  })
}))

// ---- The API ----

export class Api extends HttpApi.make("bank").add(
  HttpApiGroup.make("accounts").add(
    HttpApiEndpoint.post("create", "/accounts", {
      payload: Account.jsonCreate,
      success: Account.json.pipe(HttpApiSchema.status(201))
    }),
    HttpApiEndpoint.get("find", "/accounts/:id", {
      params: { id: AccountId },
      success: Account.json,
      error: AccountNotFound
    })
  ),
  HttpApiGroup.make("transfers").add(
    HttpApiEndpoint.post("create", "/transfers", {
      payload: TransferRequest,
      success: Transfer.json.pipe(HttpApiSchema.status(201)),
      error: [AccountNotFound, InsufficientFunds, TransferConflictResponse]
    })
  )
) {}

// ---- Data access: typed statements, decoded rows, one transaction per transfer ----

/** The tables, made when the service starts; a redeploy finds nothing to do. */
const MigrationsLive = DsqlMigrator.layer({
  table: "http_service_migrations",
  loader: Migrator.fromRecord({
    "1_create_http_account": Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE IF NOT EXISTS http_account (
        id uuid PRIMARY KEY, owner varchar(80) NOT NULL, balance int NOT NULL)`
    }),
    "2_create_http_transfer": Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE IF NOT EXISTS http_transfer (
        id uuid PRIMARY KEY, from_account uuid NOT NULL, to_account uuid NOT NULL, amount int NOT NULL)`
    })
  })
})

/** Seconds a client should wait before sending a conflicting transfer again. */
const retryAfterSeconds = 1

/** The bank's operations, with only its domain errors typed; anything else is a defect (a 500). */
export class Bank extends Context.Service<Bank, {
  readonly createAccount: (account: typeof Account.jsonCreate.Type) => Effect.Effect<Account>
  readonly findAccount: (id: AccountId) => Effect.Effect<Account, AccountNotFound>
  readonly transfer: (
    request: typeof Transfer.jsonCreate.Type
  ) => Effect.Effect<Transfer, AccountNotFound | InsufficientFunds | TransferConflict>
}>()("examples/http_service/Bank") {}

const makeBank = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient

  const insertAccount = SqlSchema.findOne({
    Request: Account.insert,
    Result: Account,
    execute: (account) => sql`INSERT INTO http_account ${sql.insert(account)} RETURNING *`
  })
  const selectAccount = SqlSchema.findOneOption({
    Request: AccountId,
    Result: Account,
    execute: (id) => sql`SELECT * FROM http_account WHERE id = ${id}`
  })
  // A debit may go below zero inside the transaction: the check that follows fails it, which rolls it back.
  const addToBalance = SqlSchema.findOneOption({
    Request: Schema.Struct({ id: AccountId, amount: Schema.Int }),
    Result: Schema.Struct({ balance: Schema.Int }),
    execute: ({ amount, id }) =>
      sql`UPDATE http_account SET balance = balance + ${amount} WHERE id = ${id} RETURNING balance`
  })
  const insertTransfer = SqlSchema.findOne({
    Request: Transfer.insert,
    Result: Transfer,
    execute: ({ amount, fromAccount, id, toAccount }) =>
      sql`INSERT INTO http_transfer ${
        sql.insert({ id, from_account: fromAccount, to_account: toAccount, amount })
      } RETURNING id, from_account AS "fromAccount", to_account AS "toAccount", amount`
  })

  const moveMoney = Effect.fn(function*(request: typeof Transfer.jsonCreate.Type) {
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
    return yield* insertTransfer(yield* Effect.orDie(Transfer.insert.makeEffect(request)))
  })

  return Bank.of({
    createAccount: Effect.fn("Bank.createAccount")(function*(account) {
      return yield* insertAccount(yield* Account.insert.makeEffect(account))
    }, Effect.orDie),
    findAccount: Effect.fn("Bank.findAccount")(function*(id) {
      const found = yield* Effect.orDie(selectAccount(id))
      if (Option.isNone(found)) return yield* new AccountNotFound({ id })
      return found.value
    }),
    // Everything in the transaction is database work, so running it again after a lost race is safe. A conflict or
    // transient error still met after the budget is a 409; a COMMIT of unknown outcome, a 500 (read back, then retry).
    transfer: Effect.fn("Bank.transfer")(
      function*(request) {
        return yield* moveMoney(request).pipe(
          withOccRetry({ maxRetries: 5, maxElapsed: "5 seconds" }),
          Effect.provideService(SqlClient.SqlClient, sql)
        )
      },
      Effect.catchTags({
        OccConflict: ({ attempts }) => new TransferConflict({ attempts, retryAfterSeconds }),
        TransientError: ({ attempts }) => new TransferConflict({ attempts, retryAfterSeconds })
      }),
      Effect.catchTags({
        CommitOutcomeUnknown: Effect.die,
        SqlError: Effect.die,
        SchemaError: Effect.die,
        NoSuchElementError: Effect.die
      })
    )
  })
})

const BankLive = Layer.effect(Bank, makeBank)

// ---- Handlers: the API's endpoints on the bank ----

const AccountsLive = HttpApiBuilder.group(Api, "accounts", (handlers) =>
  Effect.gen(function*() {
    const bank = yield* Bank
    return handlers.handleAll({
      create: ({ payload }) => bank.createAccount(payload),
      find: ({ params }) => bank.findAccount(params.id)
    })
  }))

const TransfersLive = HttpApiBuilder.group(Api, "transfers", (handlers) =>
  Effect.gen(function*() {
    const bank = yield* Bank
    return handlers.handle("create", ({ payload }) => bank.transfer(payload))
  }))

/**
 * The whole service listening on `port` (0: any free port) of `host` (default: every interface). Layers are
 * released in reverse order of acquisition and the pool is acquired first: on shutdown the server stops, then the
 * pool closes.
 */
export const layer = (listen: { readonly port: number; readonly host?: string }) =>
  HttpRouter.serve(HttpApiBuilder.layer(Api), { disableLogger: true }).pipe(
    Layer.provide([AccountsLive, TransfersLive]),
    Layer.provide(BankLive),
    Layer.provideMerge(NodeHttpServer.layer(createServer, listen)),
    Layer.provide(MigrationsLive),
    Layer.provideMerge(DsqlClient.layer)
  )

// ---- --once: the service driven by its own typed client ----

const hotAccounts = 4
const initialBalance = 1_000
const transfers = 60
const clients = 16

/** Starts the service on a free port, sends it concurrent transfers between hot accounts, and shuts it down. */
export const once = Effect.gen(function*() {
  const total = yield* Effect.gen(function*() {
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
      const from = yield* Random.nextIntBetween(0, hotAccounts, { halfOpen: true })
      const to = (from + (yield* Random.nextIntBetween(1, hotAccounts, { halfOpen: true }))) % hotAccounts
      const amount = yield* Random.nextIntBetween(1, 100, { halfOpen: true })
      return yield* client.transfers.create({
        payload: { fromAccount: accounts[from].id, toAccount: accounts[to].id, amount }
      }).pipe(
        Effect.as("201 created"),
        Effect.catchTags({
          InsufficientFunds: () => Effect.succeed("422 insufficient funds"),
          TransferConflict: () => Effect.succeed("409 conflict")
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

    const balances = yield* Effect.forEach(accounts, (account) => client.accounts.find({ params: { id: account.id } }))
    return balances.reduce((sum, account) => sum + account.balance, 0)
  }).pipe(Effect.provide(Layer.merge(layer({ port: 0, host: "127.0.0.1" }), FetchHttpClient.layer)))

  yield* Console.log(`http_service: shut down, pool closed`)
  if (total !== hotAccounts * initialBalance) {
    return yield* Effect.die(
      new Error(`http_service: total balance ${total}, expected ${hotAccounts * initialBalance}`)
    )
  }
  yield* Console.log(`http_service: total balance ${total} = ${hotAccounts} × ${initialBalance}: invariant holds`)
})

const serve = Effect.flatMap(
  Config.Port("PORT").pipe(Config.withDefault(3000)),
  (port) => Layer.launch(layer({ port }))
)

runMainIfScript(import.meta.url, process.argv.includes("--once") ? once : serve)
