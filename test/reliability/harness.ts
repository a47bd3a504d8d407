/**
 * Shared pieces of the reliability suite: a watch that every log line, span, error and config printed during a file
 * passes through and that knows the secrets in play; a signer that tells the watch every token it signs; a load
 * runner that counts what the program saw; checks on the backend PostgreSQL; and the run report.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { assert } from "@effect/vitest"
import type { AwsCredentialIdentity } from "@smithy/types"
import type { Exit } from "effect"
import { Cause, Effect, Layer, Logger, LogLevel, Option, Redacted, Tracer } from "effect"
import { TokenSigner, withOccRetry } from "effect-dsql"
import type { DsqlLocal } from "effect-dsql/local"
import { randomBytes } from "node:crypto"
import { appendFileSync } from "node:fs"
import { inspect } from "node:util"
import { backendQuery, clientLayer, uniqueTable } from "../utils/client.js"

/** What must never be printed: the whole token (its query), the signature alone, the session token parameter. */
const tokenMarkers = ["X-Amz-Signature", "X-Amz-Security-Token", "X-Amz-Credential"]
const hex64 = /[0-9a-f]{64}/g

/**
 * Scans text as it is produced. Tokens are registered when they are signed, before anything can print them; fixed
 * secrets (secret keys, session tokens) are registered up front.
 */
export class SecretWatch {
  private readonly secrets = new Set<string>()
  private readonly signatures = new Set<string>()
  readonly leaks: Array<{ readonly source: string; readonly excerpt: string }> = []
  /** Texts scanned, by source (log, span, error, config). */
  readonly scanned: Record<string, number> = {}

  addSecret(secret: string): void {
    if (secret.length > 0) this.secrets.add(secret)
  }

  addToken(token: string): void {
    this.secrets.add(token)
    const signature = /X-Amz-Signature=([0-9a-f]{64})/.exec(token)?.[1]
    if (signature !== undefined) this.signatures.add(signature)
  }

  scan(source: string, text: string): void {
    this.scanned[source] = (this.scanned[source] ?? 0) + 1
    const found = tokenMarkers.find((marker) => text.includes(marker)) ??
      [...this.secrets].find((secret) => text.includes(secret)) ??
      text.match(hex64)?.find((candidate) => this.signatures.has(candidate))
    if (found !== undefined) {
      const at = text.indexOf(found)
      this.leaks.push({ source, excerpt: text.slice(Math.max(0, at - 80), at + 20) })
    }
  }

  /** Every way a program might print a failure: both `Cause.pretty` forms, `inspect`, `JSON.stringify`, `String`. */
  cause(cause: Cause.Cause<unknown>): void {
    this.scan("error", Cause.pretty(cause))
    this.scan("error", Cause.pretty(cause, { renderErrorCause: true }))
    for (const error of [...Cause.failures(cause), ...Cause.defects(cause)]) this.value("error", error)
  }

  value(source: string, value: unknown): void {
    this.scan(source, inspect(value, { depth: 8 }))
    this.scan(source, inspect(value, { depth: 8, showHidden: true }))
    this.scan(source, String(value))
    try {
      this.scan(source, JSON.stringify(value) ?? "")
    } catch (error) {
      // a cycle in the value: what JSON.stringify reports is scanned instead
      this.scan(source, String(error))
    }
  }

  /** Asserts nothing leaked and that each source was actually watched. */
  assertClean(sources: ReadonlyArray<string>): void {
    for (const source of sources) assert.isAbove(this.scanned[source] ?? 0, 0, `nothing was captured from ${source}`)
    assert.deepStrictEqual(this.leaks.slice(0, 3), [], "a secret reached printed output")
  }
}

/** A span that hands its name, attributes, events and exit to the watch. */
const recordingSpan = (
  watch: SecretWatch,
  name: string,
  parent: Option.Option<Tracer.AnySpan>,
  context: Tracer.Span["context"],
  links: ReadonlyArray<Tracer.SpanLink>,
  startTime: bigint,
  kind: Tracer.SpanKind
): Tracer.Span => {
  const attributes = new Map<string, unknown>()
  let status: Tracer.SpanStatus = { _tag: "Started", startTime }
  return {
    _tag: "Span",
    name,
    spanId: Math.random().toString(16).slice(2),
    traceId: Option.match(parent, { onNone: () => Math.random().toString(16).slice(2), onSome: (p) => p.traceId }),
    parent,
    context,
    get status() {
      return status
    },
    attributes,
    links: [...links],
    sampled: true,
    kind,
    end: (endTime, exit) => {
      status = { _tag: "Ended", startTime, endTime, exit }
      watch.scan("span", `${name} ${inspect(Object.fromEntries(attributes))} ${inspect(exit, { depth: 6 })}`)
    },
    attribute: (key, value) => {
      attributes.set(key, value)
    },
    event: (event, _time, eventAttributes) => watch.scan("span", `${name} event ${event} ${inspect(eventAttributes)}`),
    addLinks: () => undefined
  }
}

/**
 * Runs `effect` with every log line (all levels) and every span going through `watch`. Put it outside the client
 * layer: the pool keeps the runtime it was built in, logger and tracer included.
 */
export const watched = (watch: SecretWatch) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.withTracer(Tracer.make({
      span: (name, parent, context, links, startTime, kind) =>
        recordingSpan(watch, name, parent, context, links, startTime, kind),
      context: (f) => f()
    })),
    Effect.provide(Logger.replace(
      Logger.defaultLogger,
      Logger.make((options) => {
        watch.scan("log", Logger.logfmtLogger.log(options))
        watch.scan("log", inspect(options.message, { depth: 6 }))
        watch.scan("log", inspect(options.annotations, { depth: 6 }))
        if (!Cause.isEmpty(options.cause)) watch.cause(options.cause)
      })
    )),
    Logger.withMinimumLogLevel(LogLevel.All)
  )

/** A signer over `inner` that registers every token with the watch. */
export const recordingSigner = (
  watch: SecretWatch,
  inner: Layer.Layer<TokenSigner.TokenSigner>
): Layer.Layer<TokenSigner.TokenSigner> =>
  Layer.effect(
    TokenSigner.TokenSigner,
    Effect.map(TokenSigner.TokenSigner, (signer) =>
      TokenSigner.TokenSigner.of({
        sign: (request) => Effect.tap(signer.sign(request), (token) => watch.addToken(Redacted.value(token)))
      }))
  ).pipe(Layer.provide(inner))

/** The client for `server` with its static credentials, every token registered with the watch. */
export const watchedClient = (
  watch: SecretWatch,
  server: DsqlLocal.Server,
  overrides: Parameters<typeof clientLayer>[1] = {},
  signer: Layer.Layer<TokenSigner.TokenSigner> = TokenSigner.layerStatic(server.credentials)
) => {
  watch.addSecret(server.credentials.secretAccessKey)
  return clientLayer(server, overrides, recordingSigner(watch, signer))
}

/** Credentials handed out by a test provider, with when they were handed out. */
export interface Issued {
  readonly at: number
  readonly expiresAt: number
  readonly sessionToken: string
}

/**
 * A provider of the server's keys with a fresh session token each call, valid `lifetimeMillis`; it fails while
 * `failing()` says so. Every session token is registered with the watch as a secret.
 */
export const sessionProvider = (
  watch: SecretWatch,
  server: DsqlLocal.Server,
  lifetimeMillis: number,
  failing: () => boolean = () => false
) => {
  const issued: Array<Issued> = []
  let failures = 0
  const provider = (): Promise<AwsCredentialIdentity> => {
    if (failing()) {
      failures += 1
      return Promise.reject(new Error("the instance metadata service did not answer"))
    }
    const at = Date.now()
    const sessionToken = `IQoJb3JpZ2luX2VjE${randomBytes(300).toString("base64")}`
    watch.addSecret(sessionToken)
    issued.push({ at, expiresAt: at + lifetimeMillis, sessionToken })
    return Promise.resolve({ ...server.credentials, sessionToken, expiration: new Date(at + lifetimeMillis) })
  }
  return { provider, issued, failures: () => failures }
}

/** A signer over `inner` that notes when each token was signed and with which session token. */
export const timestampingSigner = (inner: Layer.Layer<TokenSigner.TokenSigner>) => {
  const signed: Array<{ readonly at: number; readonly sessionToken: string | undefined }> = []
  const layer = Layer.effect(
    TokenSigner.TokenSigner,
    Effect.map(TokenSigner.TokenSigner, (signer) =>
      TokenSigner.TokenSigner.of({
        sign: (request) =>
          Effect.tap(signer.sign(request), (token) =>
            Effect.sync(() => {
              const query = new URLSearchParams(Redacted.value(token).split("?")[1])
              signed.push({ at: Date.now(), sessionToken: query.get("X-Amz-Security-Token") ?? undefined })
            }))
      }))
  ).pipe(Layer.provide(inner))
  return { layer, signed }
}

/** Asserts every token was signed with session credentials that had not yet expired. */
export const assertSignedWhileValid = (
  signed: ReadonlyArray<{ readonly at: number; readonly sessionToken: string | undefined }>,
  issued: ReadonlyArray<Issued>
) => {
  const expiry = new Map(issued.map((credentials) => [credentials.sessionToken, credentials.expiresAt]))
  for (const token of signed) {
    assert.isDefined(token.sessionToken, "a token without the session token")
    assert.isBelow(token.at, expiry.get(token.sessionToken!)!, "a token signed with expired credentials")
  }
}

/** What a stretch of work saw. */
export interface Tally {
  ok: number
  /** Typed failures that reached the program. */
  failed: number
  /** Defects: never acceptable. */
  died: number
  maxMillis: number
  readonly firstFailures: Array<string>
}

export const emptyTally = (): Tally => ({ ok: 0, failed: 0, died: 0, maxMillis: 0, firstFailures: [] })

/**
 * Runs `operation` and adds its outcome to `tally` (or to the tally `tally()` names when it ends); failures go through
 * the watch.
 */
export const tallied = <A, E, R>(
  watch: SecretWatch,
  to: Tally | (() => Tally),
  operation: Effect.Effect<A, E, R>
) =>
  Effect.suspend(() => {
    const started = Date.now()
    return Effect.tap(Effect.exit(operation), (exit: Exit.Exit<A, E>) =>
      Effect.sync(() => {
        const tally = typeof to === "function" ? to() : to
        tally.maxMillis = Math.max(tally.maxMillis, Date.now() - started)
        if (exit._tag === "Success") {
          tally.ok += 1
          return
        }
        if (Cause.isInterruptedOnly(exit.cause)) return
        watch.cause(exit.cause)
        if (Cause.isDie(exit.cause)) tally.died += 1
        else tally.failed += 1
        if (tally.firstFailures.length < 5) tally.firstFailures.push(Cause.pretty(exit.cause).split("\n")[0]!)
      }))
  })

/**
 * `fibers` fibers, each running `operation(fiber, iteration)` until it has run `iterations` times or `until()` says
 * stop.
 */
export const runFibers = <E, R>(options: {
  readonly fibers: number
  readonly iterations?: number
  readonly until?: () => boolean
  readonly operation: (fiber: number, iteration: number) => Effect.Effect<unknown, E, R>
}) =>
  Effect.forEach(
    Array.from({ length: options.fibers }, (_, fiber) => fiber),
    (fiber) =>
      Effect.gen(function*() {
        for (let i = 0; i < (options.iterations ?? Infinity) && !(options.until?.() ?? false); i++) {
          yield* options.operation(fiber, i)
        }
      }),
    { concurrency: "unbounded", discard: true }
  )

/**
 * Steady mixed load: every `writeEvery`-th operation of each fiber writes a pair under `withOccRetry` (its id kept in
 * `committed` once it commits), the others run a 5 ms query; for `millis`.
 */
export const mixedLoad = (
  watch: SecretWatch,
  table: string,
  options: { readonly fibers: number; readonly millis: number; readonly writeEvery: number }
) =>
  Effect.gen(function*() {
    const tally = emptyTally()
    const committed: Array<string> = []
    yield* runFibers({
      fibers: options.fibers,
      until: after(options.millis),
      operation: (fiber, i) =>
        i % options.writeEvery === options.writeEvery - 1
          ? tallied(
            watch,
            tally,
            Effect.tap(withOccRetry(writePair(table, `${fiber}-${i}`)), () => committed.push(`${fiber}-${i}`))
          )
          : tallied(watch, tally, Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT pg_sleep(0.005)`))
    })
    return { tally, committed }
  })

/** A deadline `millis` from now, as an `until` for `runFibers`. */
export const after = (millis: number) => {
  const end = Date.now() + millis
  return () => Date.now() >= end
}

/**
 * The first failure of an exit, asserting it is a typed failure (not a defect, not an interruption); the watch, when
 * given, scans it.
 */
export const typedFailure = <A, E>(exit: Exit.Exit<A, E>, watch?: SecretWatch): E => {
  assert.isTrue(exit._tag === "Failure", "expected a failure")
  const cause = (exit as Exit.Failure<A, E>).cause
  watch?.cause(cause)
  assert.isFalse(Cause.isDie(cause), `expected a typed failure, got a defect: ${Cause.pretty(cause)}`)
  return Option.getOrThrow(Cause.failureOption(cause))
}

/** A SqlError's message with its cause chain, as `Cause.pretty` renders it for a reader. */
export const explain = (error: SqlError | unknown): string =>
  Cause.pretty(Cause.fail(error), { renderErrorCause: true })

/** Sessions of the backend PostgreSQL opened for `applicationName` (the prefix a test gave), by state. */
export const sessionsOf = (server: DsqlLocal.Server, applicationName: string) =>
  Effect.map(
    backendQuery<{ state: string | null; n: number }>(
      server,
      `SELECT state, count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE '${applicationName}:%' ` +
        `AND pid <> pg_backend_pid() GROUP BY state`
    ),
    (rows) => Object.fromEntries(rows.map((row) => [row.state ?? "null", row.n])) as Record<string, number>
  )

/** A table of transactions, each writing two rows: `(tx, 1)` and `(tx, 2)`. */
export const pairsTable = (server: DsqlLocal.Server, prefix: string) =>
  Effect.gen(function*() {
    const table = uniqueTable(prefix)
    // No key: a transaction committed twice would show as four rows.
    yield* backendQuery(server, `CREATE TABLE ${table} (tx text NOT NULL, part int NOT NULL)`)
    return table
  })

export const writePair = (table: string, tx: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.zipRight(
      sql`INSERT INTO ${sql(table)} VALUES (${tx}, 1)`,
      sql`INSERT INTO ${sql(table)} VALUES (${tx}, 2)`
    ))

/**
 * Checks every transaction left both rows or none, and that every one the program saw commit is there. Returns the
 * number of transactions lost (seen committed, not found) plus those half written.
 */
export const checkPairs = (server: DsqlLocal.Server, table: string, committed: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const rows = yield* backendQuery<{ tx: string; n: number }>(
      server,
      `SELECT tx, count(*)::int AS n FROM ${table} GROUP BY tx`
    )
    const found = new Map(rows.map((row) => [row.tx, row.n]))
    const halfWritten = rows.filter((row) => row.n !== 2).length
    const lost = committed.filter((tx) => found.get(tx) !== 2).length
    assert.strictEqual(halfWritten, 0, "a transaction left one row of two, or committed twice")
    assert.strictEqual(lost, 0, "a transaction the program saw commit is missing")
    return { lost: lost + halfWritten, stored: rows.length }
  })

/** A row of the suite's summary table. */
export interface CaseReport {
  readonly file: string
  readonly case: string
  readonly faults: string
  readonly operations: number
  readonly errorsSeen: number
  readonly dataLost: number
  readonly notes?: string
}

/**
 * Adds a row to the run report when `RELIABILITY_REPORT` names a file (JSON lines; test/reliability/README.md's
 * table is made from it). Without it the row is only checked, not kept.
 */
export const report = (row: CaseReport) =>
  Effect.sync(() => {
    assert.strictEqual(row.dataLost, 0, `${row.case}: data lost`)
    const path = process.env["RELIABILITY_REPORT"]
    if (path !== undefined && path !== "") appendFileSync(path, `${JSON.stringify(row)}\n`)
  })
