/**
 * DsqlMigrator's machinery: the migrations and lease tables, the lease (a row claimed through optimistic
 * concurrency, with an expiry the holder keeps renewing), loading a migration, waiting for asynchronous DDL jobs.
 *
 * @internal
 */
import { Backoff, Migration, SqlState } from "@effect-dsql/core"
import type * as Migrator from "@effect/sql/Migrator"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import type * as OccRetry from "../OccRetry.js"
import { backoff, curve } from "./backoff.js"
import { findCause } from "./causes.js"
import * as Occ from "./occ.js"

export interface Settings {
  readonly table: string
  readonly statements: Migration.Statements
  readonly leaseDuration: Duration.Duration
  readonly occRetry: OccRetry.Options | undefined
}

/** A server error found along a cause chain: pg's `DatabaseError` carries the SQLSTATE as `code`. */
export interface ServerError {
  readonly code: string
  readonly message: string
}

/** The first error along `error`'s cause chain that carries a SQLSTATE. */
export const serverErrorOf = (error: unknown): Option.Option<ServerError> =>
  Option.fromNullable(
    findCause(error, ({ code, message }) =>
      SqlState.isSqlState(code) && typeof message === "string" ? { code, message } : undefined)
  )

/** `effect` retried on OCC conflicts (see `Occ.retryConflicts`); one that outlasts the policy fails with its `SqlError`. */
export const retryingOcc: <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  options: OccRetry.Options | undefined
) => Effect.Effect<A, E, R> = Occ.retryConflicts

const retried = <A, E, R>(statement: Effect.Effect<A, E, R>, settings: Settings) =>
  retryingOcc(statement, settings.occRetry)

/**
 * Creates a table unless it exists, with one DDL in its own transaction. The existence check is a read, so services
 * starting against an up-to-date database run no DDL (a DDL makes concurrent transactions fail with OC001). Two
 * processes creating it at once: the loser's error means nothing when the table is there afterwards.
 */
const ensureTable = (sql: SqlClient.SqlClient, name: string, create: string, settings: Settings) => {
  const present = Effect.map(
    retried(
      sql.unsafe<{ present: boolean }>(settings.statements.tableExists, [Migration.quoteIdentifier(name)]),
      settings
    ),
    ([row]) => row?.present === true
  )
  return Effect.flatMap(present, (exists) =>
    exists ? Effect.void : retried(sql.unsafe(create), settings).pipe(
      // The loser of two concurrent creations fails (42P07, 42710, 23505, or a conflict on DSQL): the table being
      // there now is what counts.
      Effect.catchAll((error) => Effect.flatMap(present, (created) => created ? Effect.void : Effect.fail(error))),
      Effect.asVoid
    ))
}

/** The migrations table (as `PgMigrator` lays it out) and the lease table. */
export const ensureTables = (sql: SqlClient.SqlClient, settings: Settings) =>
  Effect.zipRight(
    ensureTable(sql, settings.table, settings.statements.createMigrations, settings),
    ensureTable(sql, Migration.leaseTableOf(settings.table), settings.statements.createLease, settings)
  )

/** The highest migration id recorded, 0 when none is. Reads too can meet OC001 after a concurrent DDL: retried. */
export const latestId = (sql: SqlClient.SqlClient, settings: Settings) =>
  Effect.map(
    retried(sql.unsafe<{ latest: number }>(settings.statements.latestId).withoutTransform, settings),
    ([row]) => row?.latest ?? 0
  )

/** Records a migration as applied. */
export const record = (sql: SqlClient.SqlClient, settings: Settings, id: number, name: string) =>
  retried(sql.unsafe(settings.statements.record, [id, name]).withoutTransform, settings)

const leaseMillis = (settings: Settings) => Duration.toMillis(settings.leaseDuration)

/**
 * Tries to take the lease for `holder`: true when it did (see core's `Migration.statements`). A conflict that
 * outlasts the retry policy means somebody else is claiming: not taken.
 */
export const claim = (sql: SqlClient.SqlClient, settings: Settings, holder: string) =>
  Effect.gen(function*() {
    const live = yield* retried(sql.unsafe(settings.statements.liveLease).withoutTransform, settings)
    if (live.length > 0) return false
    const taken = yield* retryingOcc(
      sql.unsafe(settings.statements.claimLease, [holder, leaseMillis(settings)]).withoutTransform,
      settings.occRetry
    ).pipe(
      Effect.catchIf(Occ.isConflict, () => Effect.succeed([]))
    )
    return taken.length > 0
  })

/** Extends `holder`'s lease by its duration from now: false when `holder` no longer holds it. */
export const renew = (sql: SqlClient.SqlClient, settings: Settings, holder: string) =>
  Effect.map(
    retried(sql.unsafe(settings.statements.renewLease, [holder, leaseMillis(settings)]).withoutTransform, settings),
    (rows) => rows.length > 0
  )

/** Gives the lease up, if `holder` still has it. */
export const release = (sql: SqlClient.SqlClient, settings: Settings, holder: string) =>
  retried(sql.unsafe(settings.statements.releaseLease, [holder]).withoutTransform, settings)

/**
 * Renews the lease every third of its duration, forever. Fails with `lost` when the lease was taken over, or when
 * no renewal has succeeded for a whole duration (failed renewals are retried at the next beat).
 */
export const keepLease = <E>(sql: SqlClient.SqlClient, settings: Settings, holder: string, lost: () => E) =>
  Effect.gen(function*() {
    const leaseMillis = Duration.toMillis(settings.leaseDuration)
    let renewedAt = yield* Clock.currentTimeMillis
    for (;;) {
      yield* Effect.sleep(Duration.millis(Migration.leaseRenewalMillis(leaseMillis)))
      const held = yield* Effect.either(renew(sql, settings, holder))
      const now = yield* Clock.currentTimeMillis
      if (held._tag === "Right" && held.right) {
        renewedAt = now
      } else if (Migration.leaseLost(held._tag === "Right" ? held.right : undefined, renewedAt, now, leaseMillis)) {
        return yield* Effect.fail(lost())
      } else if (held._tag === "Left") {
        yield* Effect.logWarning("DsqlMigrator: could not renew the lease, retrying").pipe(
          Effect.annotateLogs("error", held.left.message)
        )
      }
    }
  })

/** How long a process that found the lease taken waits before each new look: 50 ms doubling to 1 s, jittered down to half. */
export const leaseWait = backoff({ ...curve(Backoff.leaseWait), maxElapsed: Duration.infinity })

/** Why a migration could not be loaded. */
export interface LoadFailure {
  readonly message: string
  readonly cause?: unknown
}

/** The migration's effect: what `load` gives, or the default export of the module it imports. */
export const loadMigration = ([id, name, load]: Migrator.ResolvedMigration) =>
  Effect.gen(function*() {
    const loaded: unknown = yield* load.pipe(
      Effect.catchAllDefect((defect) => Effect.fail(defect)),
      Effect.mapError((cause): LoadFailure => ({ message: `Could not import migration "${id}_${name}"`, cause }))
    )
    if (Effect.isEffect(loaded)) return loaded as Effect.Effect<unknown, unknown, SqlClient.SqlClient>
    const exported: unknown = Predicate.hasProperty(loaded, "default") ? loaded.default : undefined
    const effect = Predicate.hasProperty(exported, "default") ? exported.default : exported
    if (Effect.isEffect(effect)) return effect as Effect.Effect<unknown, unknown, SqlClient.SqlClient>
    return yield* Effect.fail<LoadFailure>({
      message: exported === undefined
        ? `Default export not found for migration "${id}_${name}"`
        : `Default export was not an Effect for migration "${id}_${name}"`
    })
  })

/** A job started by one of a migration's statements (collected by the migration client, see `migratorClient.ts`). */
export interface AsyncJob {
  readonly jobId: string
  /** The index (or constraint) the statement names, when it could be read from the SQL. */
  readonly object: string | undefined
}

/** A job that did not succeed, with what `sys.jobs` says about it. */
export interface FailedJob {
  readonly job: AsyncJob
  readonly status: string | undefined
  readonly details: string | undefined
}

/** Waits for each job with `CALL sys.wait_for_job` (outside any transaction); the first that did not succeed, if any. */
export const waitForJobs = (sql: SqlClient.SqlClient, settings: Settings, jobs: ReadonlyArray<AsyncJob>) =>
  Effect.gen(function*() {
    for (const job of jobs) {
      const [result] = yield* retried(
        sql.unsafe<{ succeeded: boolean }>(settings.statements.waitForJob, [job.jobId]).withoutTransform,
        settings
      )
      if (result?.succeeded !== true) {
        const [row] = yield* sql.unsafe<{ status: string; details: string | null; object_name: string | null }>(
          settings.statements.job,
          [job.jobId]
        ).withoutTransform
        return Option.some<FailedJob>({
          job: { ...job, object: job.object ?? row?.object_name ?? undefined },
          status: row?.status,
          details: row?.details ?? undefined
        })
      }
    }
    return Option.none<FailedJob>()
  })
