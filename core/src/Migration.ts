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
