#!/usr/bin/env node
/**
 * `npx dsql-local [--port <n>] [--region <name>] [--json]` (in this repository `npm run local -- …`): starts
 * DsqlLocal, prints the `export` lines a shell needs and a ready `psql` command (or, with `--json`, one line of JSON
 * for a test suite in any language), and serves until SIGINT or SIGTERM. Flags win over the env variables `DSQL_LOCAL_PORT` and `DSQL_LOCAL_REGION`;
 * `DSQL_LOCAL_BACKEND_URL` selects an existing PostgreSQL instead of the embedded one.
 *
 * The printed token and secret are the local server's own test credentials.
 *
 * @since 0.1.0
 */
import { DsqlSigner } from "@aws-sdk/dsql-signer"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"
import * as DsqlLocal from "./DsqlLocal.js"

/** Long enough for a working session at the terminal, well under DSQL's 7-day maximum. */
const tokenLifetimeSeconds = 12 * 60 * 60

const optionsError = (message: string, cause?: unknown) =>
  new DsqlLocal.DsqlLocalError({ reason: "Options", message, cause })

const flags = Effect.try({
  try: () =>
    parseArgs({
      args: process.argv.slice(2),
      options: { port: { type: "string" }, region: { type: "string" }, json: { type: "boolean" } },
      strict: true
    }).values,
  catch: (cause) =>
    optionsError(`usage: npm run local -- [--port <n>] [--region <name>] [--json] (${String(cause)})`, cause)
})

const envOptions = Config.all({
  port: Config.option(Config.integer("DSQL_LOCAL_PORT")),
  region: Config.option(Config.string("DSQL_LOCAL_REGION"))
})

const options = Effect.gen(function*() {
  const given = yield* flags
  const env = yield* Effect.mapError(envOptions, (cause) => optionsError(String(cause), cause))
  const port = given.port === undefined ? Option.getOrUndefined(env.port) : Number(given.port)
  const region = given.region ?? Option.getOrUndefined(env.region)
  const server = {
    ...(port === undefined ? {} : { port }),
    ...(region === undefined ? {} : { region })
  } satisfies DsqlLocal.Options
  return { server, json: given.json === true }
})

/** Single quotes keep `$`, `&` and `%` literal; a single quote inside becomes `'\''`. */
const shellQuote = (value: string): string => `'${value.replaceAll("'", "'\\''")}'`

const caFile = Effect.acquireRelease(
  Effect.tryPromise({
    try: () => mkdtemp(join(tmpdir(), "dsql-local-")),
    catch: (cause) => optionsError("cannot create a temporary directory for the CA certificate", cause)
  }),
  (directory) => Effect.ignore(Effect.tryPromise(() => rm(directory, { recursive: true, force: true })))
).pipe(Effect.map((directory) => join(directory, "ca.pem")))

/**
 * What a client in any language needs, with the secrets in clear: they are this server's own test credentials, and
 * `token` saves a client without an AWS SDK from signing (admin, valid `tokenLifetimeSeconds`).
 */
const json = (server: DsqlLocal.Server, caFile: string, token: string) =>
  JSON.stringify({
    hostname: server.hostname,
    address: server.address,
    port: server.port,
    region: server.region,
    clusterId: server.clusterId,
    user: "admin",
    database: "postgres",
    ca: server.ca,
    caFile,
    accessKeyId: server.credentials.accessKeyId,
    secretAccessKey: server.credentials.secretAccessKey,
    token,
    tokenExpiresInSeconds: tokenLifetimeSeconds,
    env: { ...server.env }
  })

const program = Effect.gen(function*() {
  const given = yield* options
  const server = yield* DsqlLocal.start(given.server)
  const caPath = yield* caFile
  yield* Effect.tryPromise({
    try: () => writeFile(caPath, server.ca),
    catch: (cause) => optionsError(`cannot write ${caPath}`, cause)
  })
  const signer = new DsqlSigner({
    hostname: server.hostname,
    region: server.region,
    credentials: server.credentials,
    expiresIn: tokenLifetimeSeconds
  })
  const token = yield* Effect.tryPromise({
    try: () => signer.getDbConnectAdminAuthToken(),
    catch: (cause) => optionsError("cannot sign a token for psql", cause)
  })
  if (given.json) {
    yield* Console.log(json(server, caPath, token))
    return yield* Effect.never
  }
  const exports = Object.entries(server.env).map(([name, value]) =>
    name === "DSQL_CA_PEM"
      ? `export DSQL_CA_PEM="$(cat ${shellQuote(caPath)})"`
      : `export ${name}=${shellQuote(value)}`
  )
  const connection = [
    `host=${server.hostname}`,
    `hostaddr=${server.address}`,
    `port=${server.port}`,
    "user=admin",
    "dbname=postgres",
    "sslmode=verify-full",
    `sslrootcert=${caPath}`
  ].join(" ")
  yield* Console.log(
    [
      `# DsqlLocal: cluster ${server.clusterId} in ${server.region}, listening on ${server.address}:${server.port}.`,
      "# Ctrl-C stops it. Environment for clients:",
      ...exports,
      "",
      `# psql as admin (token valid ${tokenLifetimeSeconds / 3600} hours):`,
      `PGPASSWORD=${shellQuote(token)} psql ${shellQuote(connection)}`
    ].join("\n")
  )
  return yield* Effect.never
})

/** A failure is one line (`DsqlLocalError` messages are); only a defect, a bug, shows its trace. */
const report = (cause: Cause.Cause<DsqlLocal.DsqlLocalError>) =>
  Option.match(Cause.failureOption(cause), {
    onNone: () => Cause.isInterruptedOnly(cause) ? Effect.void : Console.error(`DsqlLocal: ${Cause.pretty(cause)}`),
    onSome: (error) => Console.error(`DsqlLocal could not start: ${error.message}`)
  })

/** Runs until SIGINT or SIGTERM, which interrupt the program so that every scope closes in order. */
const fiber = Effect.runFork(Effect.scoped(program).pipe(Effect.tapErrorCause(report)))
const stop = () => Effect.runFork(Fiber.interrupt(fiber))
process.once("SIGINT", stop)
process.once("SIGTERM", stop)
fiber.addObserver((exit) => {
  process.exitCode = Exit.isSuccess(exit) || Exit.isInterrupted(exit) ? 0 : 1
})
