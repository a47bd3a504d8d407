/**
 * Backend objects DsqlLocal installs once at start: DSQL's `sys` schema (jobs of asynchronous DDL) and the private
 * `dsql_local` helpers the session policy rewrites statements into, plus the SQL text of those rewrites.
 *
 * @internal
 */
import type { Refusal } from "./rules.js"
import type { AsyncIndexTarget } from "./statements.js"

/**
 * Idempotent setup run as superuser on the backend at start.
 *
 * - `sys.jobs`: DSQL's job table. Index builds run synchronously, so every job is recorded as `completed`.
 * - `sys.wait_for_job(job_id)`: answers `succeeded` at once (jobs are already done); an unknown id raises `42704`.
 * - `dsql_local.raise(code, message)`: raises an error with DSQL's SQLSTATE and message, so a refusal aborts the
 *   backend transaction exactly like a failed statement.
 * - `dsql_local.take_snapshot()`: a no-op whose CALL takes the repeatable-read snapshot, run right after BEGIN
 *   because DSQL's snapshot is taken at BEGIN while PostgreSQL's is taken at the first statement.
 * - `dsql_local.create_index_async(index_sql, schema, table)`: builds the index, records the job, returns its id.
 *
 * @since 0.1.0
 * @category constructors
 */
export const backendSetupSql = `
CREATE SCHEMA IF NOT EXISTS sys;
CREATE SCHEMA IF NOT EXISTS dsql_local;
GRANT USAGE ON SCHEMA sys, dsql_local TO PUBLIC;

CREATE TABLE IF NOT EXISTS sys.jobs (
  job_id text PRIMARY KEY,
  status text NOT NULL,
  details text,
  job_type text NOT NULL,
  class_id oid,
  object_id oid,
  object_name text,
  start_time timestamptz NOT NULL,
  update_time timestamptz NOT NULL
);
GRANT SELECT ON sys.jobs TO PUBLIC;

CREATE OR REPLACE PROCEDURE dsql_local.raise(code text, message text)
LANGUAGE plpgsql AS $body$
BEGIN
  RAISE EXCEPTION USING ERRCODE = code, MESSAGE = message;
END
$body$;

CREATE OR REPLACE PROCEDURE dsql_local.take_snapshot()
BEGIN ATOMIC
END;

CREATE OR REPLACE FUNCTION dsql_local.new_job_id() RETURNS text
LANGUAGE plpgsql AS $body$
DECLARE
  bytes bytea := uuid_send(gen_random_uuid());
  alphabet constant text := 'abcdefghijklmnopqrstuvwxyz234567';
  result text := '';
  buffer int := 0;
  bits int := 0;
BEGIN
  FOR i IN 0..15 LOOP
    buffer := (buffer << 8) | get_byte(bytes, i);
    bits := bits + 8;
    WHILE bits >= 5 LOOP
      bits := bits - 5;
      result := result || substr(alphabet, ((buffer >> bits) & 31) + 1, 1);
      buffer := buffer & ((1 << bits) - 1);
    END LOOP;
  END LOOP;
  RETURN result || substr(alphabet, ((buffer << (5 - bits)) & 31) + 1, 1);
END
$body$;

CREATE OR REPLACE FUNCTION dsql_local.record_job(
  job_id text, job_type text, class_id oid, object_id oid, object_name text, started timestamptz
) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $body$
  INSERT INTO sys.jobs (job_id, status, details, job_type, class_id, object_id, object_name, start_time, update_time)
  VALUES (job_id, 'completed', NULL, job_type, class_id, object_id, object_name, started, clock_timestamp())
$body$;

CREATE OR REPLACE FUNCTION dsql_local.create_index_async(index_sql text, table_schema text, table_name text)
RETURNS text
LANGUAGE plpgsql AS $body$
DECLARE
  target regclass := (CASE WHEN table_schema IS NULL THEN quote_ident(table_name)
    ELSE quote_ident(table_schema) || '.' || quote_ident(table_name) END)::regclass;
  started timestamptz := clock_timestamp();
  existing oid[];
  created oid;
  job text := dsql_local.new_job_id();
BEGIN
  SELECT coalesce(array_agg(indexrelid), '{}') INTO existing FROM pg_index WHERE indrelid = target;
  EXECUTE index_sql;
  SELECT indexrelid INTO created FROM pg_index WHERE indrelid = target AND NOT indexrelid = ANY (existing);
  PERFORM dsql_local.record_job(job, 'INDEX_BUILD', 'pg_class'::regclass::oid, created,
    (SELECT relname FROM pg_class WHERE oid = created), started);
  RETURN job;
END
$body$;

CREATE OR REPLACE PROCEDURE sys.wait_for_job(job_id text, INOUT succeeded boolean DEFAULT NULL)
LANGUAGE plpgsql AS $body$
BEGIN
  SELECT j.status = 'completed' INTO succeeded FROM sys.jobs j WHERE j.job_id = wait_for_job.job_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = '42704', MESSAGE = format('job %s not found', wait_for_job.job_id);
  END IF;
END
$body$;
`

/** A dollar-quoted literal whose tag cannot occur in `value`: safe whatever `standard_conforming_strings` says. */
const literal = (value: string): string => {
  let tag = "$dsql$"
  for (let n = 0; value.includes(tag); n++) tag = `$dsql${n}$`
  return `${tag}${value}${tag}`
}

/**
 * A statement that fails with the refusal's SQLSTATE and message.
 *
 * @since 0.1.0
 * @category constructors
 */
export const raiseSql = (refusal: Refusal): string =>
  `CALL dsql_local.raise(${literal(refusal.code)}, ${literal(refusal.message)})`

/**
 * Run after BEGIN so the transaction's snapshot is taken at BEGIN, as in DSQL.
 *
 * @since 0.1.0
 * @category constructors
 */
export const takeSnapshotSql = "CALL dsql_local.take_snapshot()"

/**
 * `CREATE INDEX ASYNC` rewritten to a one-row `job_id` query (its tag is renamed `CREATE INDEX` on the way back).
 *
 * @since 0.1.0
 * @category constructors
 */
export const createIndexAsyncSql = (indexSql: string, target: AsyncIndexTarget): string =>
  `SELECT dsql_local.create_index_async(${literal(indexSql)}, ${
    target.schema === undefined ? "NULL" : literal(target.schema)
  }, ${literal(target.table)}) AS job_id`
