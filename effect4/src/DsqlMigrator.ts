/**
 * Schema migrations that work on Aurora DSQL, fed by `effect/sql`'s loaders (`Migrator.fromRecord`,
 * `Migrator.fromGlob`, `Migrator.fromBabelGlob`) and recording applied migrations in the same table layout as
 * `PgMigrator`.
 *
 * `effect/sql`'s `Migrator` runs every pending migration in one transaction behind `LOCK TABLE`: DSQL refuses LOCK, a
 * second DDL in a transaction and DDL mixed with DML. Here, as in the Effect 3 line:
 *
 * - each migration runs without a wrapping transaction, so each statement is its own transaction; a statement that
 *   loses an OCC conflict (OC001 after a concurrent DDL) is retried with the `OccRetry` policy, and so is a
 *   migration's own outermost `withTransaction`, as a whole;
 * - every `CREATE INDEX ASYNC` (and `ALTER TABLE ASYNC`) a migration runs has finished (`CALL sys.wait_for_job`)
 *   before the migration is recorded; a failed build fails the migration;
 * - processes running the migrator at once take turns through a lease: a row claimed through optimistic
 *   concurrency (the first to commit wins), kept alive by its holder and taken over once it expires. The others
 *   wait and return with nothing left to do, so each migration is applied once;
 * - a failing migration stops the run with a `MigrationError` carrying DSQL's SQLSTATE and message. It is not
 *   recorded, earlier ones stay applied, and the next run starts again with it.
 *
 * @since 2.0.0
 */
import { Migration, SqlState } from "@effect-dsql/core"
import { PgClient } from "@effect/sql-pg"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Ref from "effect/Ref"
import type * as Migrator from "effect/sql/Migrator"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { randomUUID } from "node:crypto"
import { hostname } from "node:os"
import * as Internal from "./internal/migrator.js"
import * as MigratorClient from "./internal/migratorClient.js"
import type * as OccRetry from "./OccRetry.js"

/**
 * What to migrate and how. `loader` and `table` (default `effect_sql_migrations`) are `effect/sql`'s;
 * `schemaDirectory` is not used (there is no schema dump on DSQL).
 *
 * - `leaseDuration` (default 30 seconds): how long a claimed lease lasts. Its holder renews it every third of that
 *   while it runs; a holder that crashed blocks the others until it expires.
 * - `occRetry`: the policy for OCC conflicts (default `OccRetry.defaults`).
 *
 * The lease lives in a table named after `table` with a `_lease` suffix.
 *
 * @stability stable
 * @since 2.0.0
 * @category models
 */
export interface Options<R = never> extends Migrator.MigratorOptions<R> {
  readonly leaseDuration?: Duration.Input | undefined
  readonly occRetry?: OccRetry.Options | undefined
}

/**
 * Why a run stopped.
 *
 * - `failed`: a migration failed; `migration` names it, `code` and the message carry the server's SQLSTATE and
 *   message when the failure came from the server, `cause` is the migration's error.
 * - `index-build-failed`: an asynchronous job the migration started (an index build) did not succeed; `index` names
 *   the index.
 * - `import-error`, `duplicates`: the loader failed, or two migrations share an id.
 * - `lease-lost`: this process no longer holds the lease: another one took it over, or its renewals failed for a
 *   whole `leaseDuration`.
 * - `unsupported-client`: the `SqlClient` in context is not an `effect/sql` 4 client.
 *
 * @stability stable
 * @since 2.0.0
 * @category errors
 */
export class MigrationError extends Data.TaggedError("MigrationError")<{
  readonly reason: Migration.Reason
  readonly message: string
  readonly migration?: readonly [id: number, name: string] | undefined
  readonly code?: string | undefined
  readonly index?: string | undefined
  readonly cause?: unknown
}> {}

const migrationFailed = (id: number, name: string, cause: unknown) => {
  const server = SqlState.serverError(cause)
  const detail = server !== undefined
    ? `${server.code} ${server.message}`
    : Predicate.hasProperty(cause, "message")
    ? String(cause.message)
    : String(cause)
  return new MigrationError({
    reason: "failed",
    message: Migration.messages.failed(id, name, detail),
    migration: [id, name],
    code: server?.code,
    cause
  })
}

const indexBuildFailed = (id: number, name: string, failed: Internal.FailedJob) => {
  const index = failed.job.object ?? "(unknown)"
  return new MigrationError({
    reason: "index-build-failed",
    message: Migration.messages.indexBuildFailed(id, name, {
      index,
      jobId: failed.job.jobId,
      status: failed.status,
      details: failed.details
    }),
    migration: [id, name],
    index
  })
}

const leaseLost = () =>
  new MigrationError({
    reason: "lease-lost",
    message: Migration.messages.leaseLost
  })

/** Runs one migration on the migration client, waits for its jobs, records it. */
const applyMigration = (
  sql: SqlClient.SqlClient,
  settings: Internal.Settings,
  id: number,
  name: string,
  migration: Effect.Effect<unknown, unknown, SqlClient.SqlClient>
) =>
  Effect.gen(function*() {
    const jobs = yield* Ref.make<ReadonlyArray<Internal.AsyncJob>>([])
    const client = yield* Option.match(MigratorClient.make(sql, jobs, settings.occRetry), {
      onNone: () =>
        Effect.fail(
          new MigrationError({
            reason: "unsupported-client",
            message: "DsqlMigrator needs an effect/sql 4 SqlClient, such as DsqlClient's"
          })
        ),
      onSome: Effect.succeed
    })
    const onClient = Predicate.hasProperty(sql, PgClient.TypeId)
      ? migration.pipe(Effect.provideService(PgClient.PgClient, client as unknown as PgClient.PgClient))
      : migration
    yield* onClient.pipe(
      Effect.provideService(SqlClient.SqlClient, client),
      Effect.mapError((cause) => migrationFailed(id, name, cause))
    )
    const failedJob = yield* Internal.waitForJobs(sql, settings, yield* Ref.get(jobs)).pipe(
      Effect.mapError((cause) => migrationFailed(id, name, cause))
    )
    if (Option.isSome(failedJob)) return yield* indexBuildFailed(id, name, failedJob.value)
    yield* Internal.record(sql, settings, id, name)
    yield* Effect.logInfo(`DsqlMigrator: applied migration ${id}_${name}`)
  }).pipe(
    Effect.annotateLogs({ migration_id: id, migration_name: name }),
    Effect.withSpan("DsqlMigrator.migration", {
      attributes: { "dsql.migration.id": id, "dsql.migration.name": name }
    })
  )

/** With the lease held: applies what is still pending, renewing the lease alongside and giving it up at the end. */
const applyPending = (
  sql: SqlClient.SqlClient,
  settings: Internal.Settings,
  holder: string,
  migrations: ReadonlyArray<Migrator.ResolvedMigration>
) =>
  Effect.gen(function*() {
    const latest = yield* Internal.latestId(sql, settings)
    const applied: Array<readonly [id: number, name: string]> = []
    for (const resolved of migrations) {
      const [id, name] = resolved
      if (id <= latest) continue
      if (!(yield* Internal.renew(sql, settings, holder))) return yield* leaseLost()
      const migration = yield* Internal.loadMigration(resolved).pipe(
        Effect.mapError((failure) => new MigrationError({ reason: "import-error", migration: [id, name], ...failure }))
      )
      yield* applyMigration(sql, settings, id, name, migration)
      applied.push([id, name])
    }
    return applied
  }).pipe(
    (work) => Effect.raceFirst(work, Internal.keepLease(sql, settings, holder, leaseLost)),
    Effect.ensuring(
      Internal.release(sql, settings, holder).pipe(Effect.timeout(settings.leaseDuration), Effect.ignore)
    )
  )

/**
 * Applies the pending migrations (those with an id above the highest recorded) in id order and returns them.
 * Processes running it at once take turns: one applies, the others wait and return what they applied, usually
 * nothing. Each migration is one span (`DsqlMigrator.migration`) and one log line once applied.
 *
 * Inside a migration, `SqlClient` (and `PgClient`) is the migration client: each statement outside a transaction
 * commits alone and is retried on OCC conflicts, an outermost `withTransaction` is retried as a whole, and
 * `CREATE INDEX ASYNC` jobs are awaited before the migration is recorded. A statement DSQL refuses fails the
 * migration: make migrations idempotent (`IF NOT EXISTS`), since the statements before it stay committed.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Migrator, SqlClient } from "effect/sql"
 * import { DsqlMigrator } from "effect-dsql"
 *
 * const migrate = DsqlMigrator.run({
 *   loader: Migrator.fromRecord({
 *     "1_create_users": Effect.flatMap(SqlClient.SqlClient, (sql) =>
 *       sql`CREATE TABLE IF NOT EXISTS users (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), email text NOT NULL)`),
 *     "2_index_users_email": Effect.flatMap(SqlClient.SqlClient, (sql) =>
 *       sql`CREATE INDEX ASYNC IF NOT EXISTS users_email ON users (email)`)
 *   })
 * })
 * ```
 *
 * @stability stable
 * @since 2.0.0
 * @category constructors
 */
export const run: <R = never>(
  options: Options<R>
) => Effect.Effect<
  ReadonlyArray<readonly [id: number, name: string]>,
  MigrationError | SqlError,
  SqlClient.SqlClient | R
> = Effect.fn("DsqlMigrator.run")(function*<R>(options: Options<R>) {
  const sql = yield* SqlClient.SqlClient
  const table = options.table ?? "effect_sql_migrations"
  const settings: Internal.Settings = {
    table,
    statements: Migration.statements(table),
    leaseDuration: Duration.fromInputUnsafe(options.leaseDuration ?? Duration.millis(Migration.defaultLeaseMillis)),
    occRetry: options.occRetry
  }
  const migrations = yield* options.loader.pipe(
    Effect.mapError((error) => new MigrationError({ reason: "import-error", message: error.message, cause: error }))
  )
  const duplicates = Migration.duplicateIds(migrations.map(([id]) => id))
  if (duplicates.length > 0) {
    return yield* new MigrationError({ reason: "duplicates", message: Migration.messages.duplicates(duplicates) })
  }
  const ordered = [...migrations].sort(([a], [b]) => a - b)
  yield* Internal.ensureTables(sql, settings)
  const holder = `${hostname()}:${process.pid}:${randomUUID()}`
  for (let look = 0;; look++) {
    const latest = yield* Internal.latestId(sql, settings)
    if (ordered.every(([id]) => id <= latest)) {
      yield* Effect.logDebug("DsqlMigrator: nothing to apply")
      return []
    }
    if (yield* Internal.claim(sql, settings, holder)) return yield* applyPending(sql, settings, holder, ordered)
    yield* Effect.logDebug("DsqlMigrator: another process holds the migration lease, waiting")
    yield* Effect.sleep(yield* Internal.leaseWait(look))
  }
})

/**
 * Runs the migrations when the layer is built (typically at service start) and fails the layer when they fail.
 *
 * @stability stable
 * @since 2.0.0
 * @category layers
 */
export const layer = <R = never>(
  options: Options<R>
): Layer.Layer<never, MigrationError | SqlError, SqlClient.SqlClient | R> => Layer.effectDiscard(run(options))
