/**
 * `npm start`: creates the example tables with DsqlMigrator (examples/migrations.ts), then runs
 * examples/example_preferred.ts and examples/occ_retry.ts, on one `DsqlClient.layer`.
 *
 * With DSQL_HOST or DSQL_URL set they run against that cluster with your AWS credentials; with neither, against
 * DsqlLocal on an embedded PostgreSQL. Progress lines carry the time since the process started. A failure prints one
 * line naming the fix and exits with 1; `DEBUG=1` adds the full cause.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { SqlClient } from "@effect/sql"
import { Cause, ConfigError, Console, Duration, Effect, Layer, Predicate } from "effect"
import { DsqlClient, DsqlConfig } from "effect-dsql"
import { DsqlLocal } from "effect-dsql/local"
import { program as examplePreferred } from "../examples/example_preferred.js"
import { migrate } from "../examples/migrations.js"
import { program as occRetry } from "../examples/occ_retry.js"

/** Seconds since the process started (Node's time origin), so the figures include loading the code. */
const sinceStart = () => `${(performance.now() / 1000).toFixed(1)} s`

const step = (text: string) => Console.log(`[${sinceStart()}] ${text}`)

/** Runs `effect` and reports how long it took. */
const timed = <A, E, R>(effect: Effect.Effect<A, E, R>, done: (a: A, took: string) => string) =>
  Effect.timed(effect).pipe(
    Effect.tap(([took, a]) => step(done(a, Duration.format(Duration.millis(Math.round(Duration.toMillis(took))))))),
    Effect.map(([, a]) => a)
  )

const isSet = (name: string) => (process.env[name] ?? "") !== ""

/** With no cluster configured, starts DsqlLocal and points the environment (and so the AWS chain) at it. */
const chooseCluster = Effect.gen(function*() {
  if (isSet("DSQL_HOST") || isSet("DSQL_URL")) {
    yield* step("Using the cluster from DSQL_HOST / DSQL_URL with your AWS credentials")
    return
  }
  yield* step("DSQL_HOST and DSQL_URL are unset: starting DsqlLocal (embedded PostgreSQL); set DSQL_HOST to use AWS")
  const server = yield* timed(
    DsqlLocal.start(),
    (server, took) => `DsqlLocal ready at ${server.address}:${server.port} in ${took}`
  )
  Object.assign(process.env, server.env)
})

const main = Effect.gen(function*() {
  yield* chooseCluster
  const config = yield* DsqlConfig.config
  yield* step(`Connecting to ${config.host}:${config.port} as ${config.user} (IAM token, verify-full TLS)`)
  const client = yield* timed(Layer.build(DsqlClient.layer), (_, took) => `Connected in ${took}`)
  yield* Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [{ greeting }] = yield* sql<{ greeting: string }>`SELECT 'Hello, DSQL!' AS greeting`
    yield* step(`First query result: ${greeting} (${sinceStart()} after start)`)
    yield* step("Creating the example tables with DsqlMigrator")
    yield* timed(
      migrate,
      (applied, took) =>
        applied.length === 0
          ? `Example tables up to date (${took})`
          : `Applied ${applied.map(([id, name]) => `${id}_${name}`).join(", ")} in ${took}`
    )
    yield* step("Running example_preferred: a table, 20 rows inserted from 8 fibers, read back")
    yield* timed(examplePreferred, (_, took) => `example_preferred done in ${took}`)
    yield* step("Running occ_retry: 160 transfers between 4 hot accounts from 16 fibers, retried on OCC conflicts")
    yield* timed(occRetry, (_, took) => `occ_retry done in ${took}`)
  }).pipe(Effect.provide(client))
  yield* step("All done")
}).pipe(Effect.scoped)

const configMessages = (error: ConfigError.ConfigError): Array<string> =>
  ConfigError.reduceWithContext(error, undefined, {
    andCase: (_, left, right) => [...left, ...right],
    orCase: (_, left, right) => [...left, ...right],
    invalidDataCase: (_, __, message) => [message],
    missingDataCase: (_, __, message) => [message],
    sourceUnavailableCase: (_, __, message) => [message],
    unsupportedCase: (_, __, message) => [message]
  })

/** The codes and tags along an error's `cause` chain. */
const causeChain = (error: unknown): Array<{ readonly code?: unknown; readonly _tag?: unknown }> => {
  const chain = []
  for (let current = error, depth = 0; Predicate.isObject(current) && depth < 10; depth++) {
    chain.push(current as { readonly code?: unknown; readonly _tag?: unknown })
    current = (current as { readonly cause?: unknown }).cause
  }
  return chain
}

/** The error's message without a final full stop, so that a fix can follow it. */
const messageOf = (error: unknown): string =>
  (error instanceof Error ? error.message : String(error)).replace(/\.$/, "")

const networkCodes = new Set(["ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH"])

/** One line saying what went wrong and what to do about it. */
const explain = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  if (ConfigError.isConfigError(error)) {
    return `Configuration error: ${configMessages(error).join("; ")}`
  }
  if (Predicate.isTagged(error, "DsqlLocalError")) return `DsqlLocal could not start: ${messageOf(error)}`
  const message = messageOf(error).replace(/^DsqlClient: /, "")
  const chain = causeChain(error)
  if (chain.some((e) => e._tag === "TokenSignerError") || message.includes("AWS credentials")) {
    return `No usable AWS credentials: ${message}` +
      (message.includes("AWS_PROFILE") ? "" : "; set AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
  }
  if (message.includes("access denied")) {
    return `DSQL refused the IAM token: ${message}; check that your AWS identity is allowed dsql:DbConnectAdmin ` +
      "(user admin) or dsql:DbConnect on this cluster"
  }
  if (chain.some((e) => networkCodes.has(e.code as string)) || message.includes("no connection to")) {
    return `Cannot reach the cluster: ${message}` +
      (message.includes("DSQL_HOST") ? "" : "; check DSQL_HOST and DSQL_PORT, and that this machine can reach them")
  }
  return message
}

NodeRuntime.runMain(
  main.pipe(
    Effect.tapErrorCause((cause) =>
      Cause.isInterruptedOnly(cause) ? Effect.void : Effect.gen(function*() {
        yield* Console.error(explain(cause))
        if (isSet("DEBUG")) yield* Console.error(Cause.pretty(cause))
      })
    )
  ),
  { disableErrorReporting: true }
)
