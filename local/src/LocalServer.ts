/**
 * DsqlLocal for code that is not an Effect 3 program: node-postgres, postgres.js, Drizzle, Effect 4, any test runner.
 * Promises in, plain values out; no Effect type in any signature.
 *
 * @example
 * ```ts
 * import { DsqlSigner } from "@aws-sdk/dsql-signer"
 * import { LocalServer } from "@effect-dsql/local"
 * import pg from "pg"
 *
 * await using server = await LocalServer.start()
 * const signer = new DsqlSigner({ hostname: server.hostname, region: server.region, credentials: server.credentials })
 * const client = new pg.Client({
 *   host: server.address,
 *   port: server.port,
 *   user: "admin",
 *   database: "postgres",
 *   password: await signer.getDbConnectAdminAuthToken(),
 *   ssl: { ca: server.ca, servername: server.hostname }
 * })
 * ```
 *
 * @since 0.2.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as DsqlLocal from "./DsqlLocal.js"
import { hideSecrets, withoutPassword } from "./internal/secrets.js"

/**
 * How to start the server: see `DsqlLocal.Options` (a plain object, no Effect type in it).
 *
 * @since 0.1.0
 * @category models
 */
export type Options = DsqlLocal.Options

/**
 * Why a server could not start, the `reason` of the `DsqlLocalError` that `start` rejects with.
 *
 * @since 0.1.0
 * @category models
 */
export type FailureReason = DsqlLocal.DsqlLocalError["reason"]

/**
 * Faults injected into the running server, applied at once; durations in milliseconds. Same meanings as
 * `DsqlLocal.Faults`.
 *
 * @since 0.2.0
 * @category models
 */
export interface Faults {
  /** The next `count` commits fail with `code` (default `OC000`), their transactions rolled back. */
  readonly failNextCommits: (count: number, code?: DsqlLocal.CommitFault) => void
  /** The next `count` statements inside transaction blocks fail with `XX000` server unavailable. */
  readonly failNextStatements: (count: number) => void
  /** That share (0..1, clamped) of later commits fails with `code` (default `OC000`); 0 turns it off. */
  readonly failCommitShare: (share: number, code?: DsqlLocal.OccCode) => void
  /** The next `count` asynchronous jobs (`CREATE INDEX ASYNC`, …) end `failed` with `details`. */
  readonly failNextAsyncJobs: (count: number, details?: string) => void
  /** The next `count` queries are answered by dropping their connection. */
  readonly dropNextQueries: (count: number) => void
  /** New connections are closed at once, before any answer, for this long. */
  readonly refuseConnectionsFor: (millis: number) => void
  /** Every packet of every established session is delayed this long, each way (0 turns it off). */
  readonly setLatency: (millis: number) => void
  /** Connections accepted from now on are closed after this long (DSQL: 60 minutes). */
  readonly setMaxConnectionAge: (millis: number) => void
  /** Tokens signed longer ago than this are refused (`undefined`: only their own expiry applies). */
  readonly setMaxTokenAge: (millis: number | undefined) => void
  /** Overrides some limits; throws on a value that is not a positive number. */
  readonly setLimits: (limits: Partial<DsqlLocal.Limits>) => void
  /** Clears every fault and restores the limits the server started with. */
  readonly reset: () => void
}

/**
 * A running DsqlLocal and its embedded PostgreSQL, until `stop` (or `await using`). Inspecting or JSON-encoding it
 * shows the secret access key as `<redacted>`.
 *
 * @since 0.2.0
 * @category models
 */
export interface LocalServer extends
  Pick<
    DsqlLocal.Server,
    "hostname" | "clusterId" | "port" | "address" | "region" | "ca" | "credentials" | "backendUrl" | "env"
  >
{
  /** A snapshot of the counters. */
  readonly stats: () => DsqlLocal.Stats
  readonly resetStats: () => void
  readonly faults: Faults
  /** Closes every session, the listener and the backend it started; later calls wait for the first. */
  readonly stop: () => Promise<void>
  readonly [Symbol.asyncDispose]: () => Promise<void>
}

/** The failure itself (a `DsqlLocalError` for every expected one), not a `FiberFailure` wrapping it. */
const settle = <A>(exit: Exit.Exit<A, DsqlLocal.DsqlLocalError>): A => {
  if (Exit.isSuccess(exit)) return exit.value
  throw Cause.squash(exit.cause)
}

const run = <A>(effect: Effect.Effect<A, DsqlLocal.DsqlLocalError>): A => settle(Effect.runSyncExit(effect))

/**
 * Starts DsqlLocal with `options` (see `DsqlLocal.Options`). Rejects with a `DsqlLocalError` when it cannot start,
 * having released whatever it had started.
 *
 * @since 0.2.0
 * @category constructors
 */
export const start = async (options?: Options): Promise<LocalServer> => {
  const scope = Effect.runSync(Scope.make())
  const exit = await Effect.runPromiseExit(Scope.extend(DsqlLocal.start(options), scope))
  if (Exit.isFailure(exit)) await Effect.runPromise(Scope.close(scope, exit))
  const server = settle(exit)
  let stopping: Promise<void> | undefined
  const stop = () => (stopping ??= Effect.runPromise(Scope.close(scope, Exit.void)))
  const faults = server.faults
  const fields = {
    hostname: server.hostname,
    clusterId: server.clusterId,
    port: server.port,
    address: server.address,
    region: server.region,
    ca: server.ca,
    credentials: server.credentials,
    backendUrl: server.backendUrl,
    env: server.env
  }
  const local: LocalServer = {
    ...fields,
    stats: () => run(server.stats),
    resetStats: () => run(server.resetStats),
    faults: {
      failNextCommits: (count, code) => run(faults.failNextCommits(count, code)),
      failCommitShare: (share, code) => run(faults.failCommitShare(share, code)),
      failNextAsyncJobs: (count, details) => run(faults.failNextAsyncJobs(count, details)),
      failNextStatements: (count) => run(faults.failNextStatements(count)),
      dropNextQueries: (count) => run(faults.dropNextQueries(count)),
      refuseConnectionsFor: (millis) => run(faults.refuseConnectionsFor(millis)),
      setLatency: (millis) => run(faults.setLatency(millis)),
      setMaxConnectionAge: (millis) => run(faults.setMaxConnectionAge(millis)),
      setMaxTokenAge: (millis) => run(faults.setMaxTokenAge(millis)),
      setLimits: (limits) => run(faults.setLimits(limits)),
      reset: () => run(faults.reset)
      // Both APIs offer the same faults: one added to `DsqlLocal.Faults` alone does not compile here.
    } satisfies { readonly [K in keyof DsqlLocal.Faults]: Faults[K] },
    stop,
    [Symbol.asyncDispose]: stop
  }
  // `credentials` and `env` hide their own secrets; the backend URL may carry a password.
  return hideSecrets(local, () => ({ ...fields, backendUrl: withoutPassword(server.backendUrl) }))
}
