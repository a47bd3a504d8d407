/**
 * What a migrator must know of DSQL's DDL: which statements start an asynchronous job (whose id the statement
 * answers with, and which must be awaited with `CALL sys.wait_for_job` before the migration counts as applied), and
 * the arithmetic of the lease that makes racing deploys take turns.
 *
 * @since 0.1.0
 */

/** Blanks and comments before a statement's first keyword. */
const lead = String.raw`^(?:\s|--[^\n]*(?:\n|$)|/\*[\s\S]*?\*/)*`
const asyncDdlPattern = new RegExp(String.raw`${lead}(?:CREATE\s+(?:UNIQUE\s+)?INDEX|ALTER\s+TABLE)\s+ASYNC\b`, "i")
const createIndexAsync = String.raw`CREATE\s+(?:UNIQUE\s+)?INDEX\s+ASYNC\s+(?:IF\s+NOT\s+EXISTS\s+)?`
const validateConstraint = String.raw`ALTER\s+TABLE\s+ASYNC\s+[\s\S]*?\bVALIDATE\s+CONSTRAINT\s+`
const identifier = String.raw`("(?:[^"]|"")+"|[^\s(;]+)`
const objectNamePattern = new RegExp(`${lead}(?:${createIndexAsync}|${validateConstraint})${identifier}`, "i")

/**
 * True for a statement that starts an asynchronous job: `CREATE [UNIQUE] INDEX ASYNC …` or `ALTER TABLE ASYNC …`.
 *
 * @since 0.1.0
 */
export const isAsyncDdl = (sql: string): boolean => asyncDdlPattern.test(sql)

/**
 * The index (or constraint) an asynchronous DDL names, without its quotes; `undefined` when it cannot be read.
 *
 * @since 0.1.0
 */
export const asyncDdlObject = (sql: string): string | undefined => {
  const name = objectNamePattern.exec(sql)?.[1]
  return name === undefined ? undefined : name.startsWith("\"") ? name.slice(1, -1).replace(/""/g, "\"") : name
}

/**
 * The job ids in an asynchronous DDL's answer (one `job_id` column): rows as objects (`job_id`, or the one column
 * after a name transform), rows as arrays, or a driver's raw result with `rows`.
 *
 * @since 0.1.0
 */
export const jobIdsOf = (result: unknown): ReadonlyArray<string> => {
  const rows: unknown = typeof result === "object" && result !== null && "rows" in result ? result.rows : result
  if (!Array.isArray(rows)) return []
  return rows.flatMap((row: unknown) => {
    const value = Array.isArray(row)
      ? row[0]
      : typeof row === "object" && row !== null
      ? ("job_id" in row ? row.job_id : Object.values(row)[0])
      : undefined
    return typeof value === "string" ? [value] : []
  })
}

/**
 * How long a claimed lease lasts by default.
 *
 * @since 0.1.0
 */
export const defaultLeaseMillis = 30_000

/**
 * The lease's holder renews it every third of its duration, so that two renewals can fail before it expires.
 *
 * @since 0.1.0
 */
export const leaseRenewalMillis = (leaseMillis: number): number => leaseMillis / 3

/**
 * True when the holder must consider the lease lost: a renewal found it taken over (`held` false), or no renewal
 * has succeeded for a whole lease duration (another process may have taken it over since it expired).
 *
 * @since 0.1.0
 */
export const leaseLost = (
  held: boolean | undefined,
  renewedAtMillis: number,
  nowMillis: number,
  leaseMillis: number
): boolean => held === false || (held === undefined && nowMillis - renewedAtMillis >= leaseMillis)

/**
 * The table holding the lease, named after the migrations table.
 *
 * @since 0.1.0
 */
export const leaseTableOf = (table: string): string => `${table}_lease`

/**
 * A table name as an SQL identifier, each dotted part double-quoted.
 *
 * @since 0.1.0
 */
export const quoteIdentifier = (name: string): string =>
  name.split(".").map((part) => `"${part.replace(/"/g, "\"\"")}"`).join(".")

/**
 * The statements of a migrator over `table` (migrations as `PgMigrator` lays them out) and its lease table, with
 * `$n` parameters. The lease is one row claimed through optimistic concurrency: written only when missing or expired,
 * so of two claims the first to commit wins and the other, retried after its conflict, finds it live.
 *
 * @since 0.1.0
 */
export const statements = (table: string) => {
  const migrations = quoteIdentifier(table)
  const lease = quoteIdentifier(leaseTableOf(table))
  /** `$2` milliseconds from now. */
  const expiry = "now() + $2::float8 * interval '1 millisecond'"
  return {
    /** `$1`: a quoted table name. */
    tableExists: "SELECT to_regclass($1) IS NOT NULL AS present",
    createMigrations: `CREATE TABLE IF NOT EXISTS ${migrations} (
      migration_id integer PRIMARY KEY,
      created_at timestamptz NOT NULL DEFAULT now(),
      name text NOT NULL
    )`,
    createLease: `CREATE TABLE IF NOT EXISTS ${lease} (
      id integer PRIMARY KEY,
      holder text NOT NULL,
      expires_at timestamptz NOT NULL
    )`,
    latestId: `SELECT coalesce(max(migration_id), 0)::int AS latest FROM ${migrations}`,
    /** `$1` id, `$2` name. */
    record: `INSERT INTO ${migrations} (migration_id, name) VALUES ($1, $2)`,
    liveLease: `SELECT holder FROM ${lease} WHERE id = 1 AND expires_at >= now()`,
    /** `$1` holder, `$2` lease duration in milliseconds; answers a row when taken. */
    claimLease: `INSERT INTO ${lease} (id, holder, expires_at) VALUES (1, $1, ${expiry})
      ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
      WHERE ${lease}.expires_at < now()
      RETURNING holder`,
    /** `$1` holder, `$2` lease duration in milliseconds; answers a row while `$1` holds it. */
    renewLease: `UPDATE ${lease} SET expires_at = ${expiry} WHERE id = 1 AND holder = $1 RETURNING holder`,
    /** `$1` holder. */
    releaseLease: `DELETE FROM ${lease} WHERE id = 1 AND holder = $1`,
    /** `$1` job id: blocks until the job ends, one boolean column `succeeded`; never inside a transaction. */
    waitForJob: "CALL sys.wait_for_job($1)",
    /** `$1` job id. */
    job: "SELECT status, details, object_name FROM sys.jobs WHERE job_id = $1"
  } as const
}

/**
 * See `statements`.
 *
 * @since 0.1.0
 */
export type Statements = ReturnType<typeof statements>

/**
 * Why a migrator's run stopped (see each line's `MigrationError`).
 *
 * @since 0.1.0
 */
export type Reason =
  | "failed"
  | "index-build-failed"
  | "import-error"
  | "duplicates"
  | "lease-lost"
  | "unsupported-client"

/** A message without its final full stop, so that a sentence can follow it. */
const withoutFullStop = (message: string) => message.replace(/\.$/, "")

/**
 * The ids used more than once, each once; empty when there are none.
 *
 * @since 0.1.0
 */
export const duplicateIds = (ids: ReadonlyArray<number>): ReadonlyArray<number> => [
  ...new Set(ids.filter((id, index) => ids.indexOf(id) !== index))
]

/**
 * The messages of a migrator's failures.
 *
 * @since 0.1.0
 */
export const messages = {
  failed: (id: number, name: string, detail: string): string =>
    `Migration ${id}_${name} failed: ${withoutFullStop(detail)}. It is not recorded as applied; fix it and run again.`,
  indexBuildFailed: (
    id: number,
    name: string,
    failed: {
      readonly index: string
      readonly jobId: string
      readonly status: string | undefined
      readonly details: string | undefined
    }
  ): string =>
    `Migration ${id}_${name} failed: the build of index ${failed.index} (job ${failed.jobId}) ended ` +
    `${failed.status ?? "without success"}${
      failed.details === undefined ? "" : `: ${withoutFullStop(failed.details)}`
    }. ` +
    "Drop the invalid index, fix the cause and run again.",
  leaseLost: "DsqlMigrator: another process took the migration lease over; run again to continue",
  duplicates: (ids: ReadonlyArray<number>): string => `Migration ids ${ids.join(", ")} are used more than once`
} as const
