/**
 * Fixtures for tests that talk to DsqlLocal with plain `pg`: a shared layer, tokens (from @aws-sdk/dsql-signer, or
 * signed at a chosen date), and a scoped `pg.Client` connected the way a DSQL client connects.
 */
import { Sha256 } from "@aws-crypto/sha256-js"
import { DsqlSigner } from "@aws-sdk/dsql-signer"
import { SignatureV4 } from "@smithy/signature-v4"
import { Effect, Schedule } from "effect"
import pg from "pg"
import { DsqlLocal } from "../../src/local/index.js"

/** One DsqlLocal (embedded PostgreSQL) for a whole test file: `it.layer(dsqlLocalLayer)("…", (it) => …)`. */
export const dsqlLocalLayer = DsqlLocal.layer()

export type Action = "DbConnect" | "DbConnectAdmin"

export interface TokenOptions {
  /** Default: `DbConnectAdmin`. */
  readonly action?: Action
  /** The host the token is signed for (default: the server's hostname). */
  readonly hostname?: string
  readonly region?: string
  readonly accessKeyId?: string
  readonly secretAccessKey?: string
  /** Seconds (default 900). */
  readonly expiresIn?: number
  /** Sign as if at this date (default: now, through @aws-sdk/dsql-signer). */
  readonly signingDate?: Date
}

const rfc3986 = (value: string) =>
  encodeURIComponent(value).replace(/[!'()*]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`)

/** Signs at a chosen date with the same SigV4 presigner the DSQL signer uses, and formats it the same way. */
const signAt = async (
  options: {
    readonly hostname: string
    readonly region: string
    readonly accessKeyId: string
    readonly secretAccessKey: string
    readonly action: Action
    readonly expiresIn: number
  },
  signingDate: Date
) => {
  const signer = new SignatureV4({
    service: "dsql",
    region: options.region,
    credentials: { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey },
    sha256: Sha256
  })
  const presigned = await signer.presign(
    {
      method: "GET",
      protocol: "https:",
      hostname: options.hostname,
      path: "/",
      query: { Action: options.action },
      headers: { host: options.hostname }
    },
    { expiresIn: options.expiresIn, signingDate }
  )
  const query = Object.entries(presigned.query ?? {})
    .sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
    .map(([key, value]) => `${rfc3986(key)}=${rfc3986(String(value))}`)
    .join("&")
  return `${options.hostname}/?${query}`
}

/** A DSQL IAM token for the server (or for whatever `options` override). */
export const signToken = (server: DsqlLocal.Server, options: TokenOptions = {}) =>
  Effect.tryPromise(() => {
    const resolved = {
      hostname: options.hostname ?? server.hostname,
      region: options.region ?? server.region,
      accessKeyId: options.accessKeyId ?? server.credentials.accessKeyId,
      secretAccessKey: options.secretAccessKey ?? server.credentials.secretAccessKey,
      action: options.action ?? "DbConnectAdmin",
      expiresIn: options.expiresIn ?? 900
    }
    if (options.signingDate !== undefined) return signAt(resolved, options.signingDate)
    const signer = new DsqlSigner({
      hostname: resolved.hostname,
      region: resolved.region,
      credentials: { accessKeyId: resolved.accessKeyId, secretAccessKey: resolved.secretAccessKey },
      expiresIn: resolved.expiresIn
    })
    return resolved.action === "DbConnectAdmin" ? signer.getDbConnectAdminAuthToken() : signer.getDbConnectAuthToken()
  })

export interface ConnectOptions {
  readonly user?: string
  readonly database?: string
  /** Default: a fresh admin token from @aws-sdk/dsql-signer. */
  readonly password?: string
  /** `direct` (TLS first, default) or `postgres` (SSLRequest). */
  readonly sslnegotiation?: "direct" | "postgres"
  /** TLS settings; `false` connects in plaintext. Default: trust the server's CA, SNI = its hostname. */
  readonly ssl?: pg.ClientConfig["ssl"]
  readonly port?: number
  readonly applicationName?: string
  /** The `options` startup parameter, e.g. `-c search_path=myschema`. */
  readonly options?: string
}

/** The TLS settings of a DSQL client: verify the chain and the host name, send SNI. */
export const tlsFor = (server: DsqlLocal.Server) => ({
  ca: server.ca,
  servername: server.hostname,
  rejectUnauthorized: true
})

/** Opens a `pg.Client` (closed with the scope); fails with pg's error (a `DatabaseError` carries `code` and `hint`). */
export const connectPg = (server: DsqlLocal.Server, options: ConnectOptions = {}) =>
  Effect.gen(function*() {
    const password = options.password ?? (yield* Effect.orDie(signToken(server)))
    const ssl = options.ssl ?? tlsFor(server)
    return yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const client = new pg.Client({
            host: server.address,
            port: options.port ?? server.port,
            user: options.user ?? "admin",
            database: options.database ?? "postgres",
            password,
            ssl,
            ...(ssl === false ? {} : { sslnegotiation: options.sslnegotiation ?? "direct" }),
            connectionTimeoutMillis: 10_000,
            ...(options.applicationName === undefined ? {} : { application_name: options.applicationName }),
            ...(options.options === undefined ? {} : { options: options.options })
          })
          // A server that closes the connection makes pg emit 'error'; the failing query reports it instead.
          client.on("error", () => {})
          try {
            await client.connect()
          } catch (error) {
            await client.end().catch(() => {})
            throw error
          }
          return client
        },
        catch: (error) => error as Error & Partial<pg.DatabaseError>
      }),
      (client) => Effect.promise(() => client.end().catch(() => {}))
    )
  })

/** Runs one query; fails with pg's error. */
export const query = <Row extends pg.QueryResultRow = pg.QueryResultRow>(client: pg.Client, sql: string) =>
  Effect.tryPromise({
    try: () => client.query<Row>(sql),
    catch: (error) => error as Error & Partial<pg.DatabaseError>
  })

/**
 * Waits (real time, at most 10 s) until every connection to `server` has closed: connections of an earlier test,
 * whose clients have gone, may still be closing on the server's side, and would hold a slot a lowered
 * `maxConnections` counts.
 */
export const untilIdle = (server: DsqlLocal.Server) =>
  server.stats.pipe(
    Effect.repeat({ schedule: Schedule.spaced("5 millis"), until: (stats) => stats.connectionsOpen === 0 }),
    Effect.timeoutFail({
      duration: "10 seconds",
      onTimeout: () => new Error("connections to DsqlLocal were still open after 10 s")
    }),
    Effect.asVoid
  )
