/**
 * Backend objects DsqlLocal installs once at start: DSQL's `sys` schema (jobs of asynchronous DDL, IAM role
 * mappings), the private `dsql_local` helpers the session policy rewrites statements into, and the backend half of
 * DSQL's rules; plus the SQL text of those rewrites.
 *
 * @internal
 */
import type { Refusal } from "./rules.js"
import { backendRules } from "./rules.js"
import type { AsyncTarget, DroppedColumns, Statement } from "./statements.js"

/**
 * A dollar-quoted literal whose tag cannot occur in `value`: safe whatever `standard_conforming_strings` says.
 *
 * @since 0.1.0
 * @category constructors
 */
export const literal = (value: string): string => {
  let tag = "$dsql$"
  for (let n = 0; value.includes(tag); n++) tag = `$dsql${n}$`
  return `${tag}${value}${tag}`
}

const rulesRows = Object.entries(backendRules).map(([name, rule]) =>
  `(${literal(name)}, ${literal(rule.code)}, ${literal(rule.message)}, ${rule.limit ?? "NULL"})`
).join(",\n  ")

/**
 * Idempotent setup run as superuser on the backend at start.
 *
 * - `sys.jobs`: DSQL's job table. Index builds run synchronously, so every job is recorded as `completed`, unless
 *   a fault marks it `failed` (a failed index build is left invalid, as DSQL leaves it).
 * - `sys.wait_for_job(job_id)`: answers `succeeded` at once (jobs are already done); an unknown id raises DSQL's
 *   `22P02`.
 * - `dsql_local.raise(code, message[, detail])`: raises an error with DSQL's SQLSTATE, message and detail, so a
 *   refusal aborts the backend transaction exactly like a failed statement.
 * - `dsql_local.take_snapshot()`: a no-op whose CALL takes the repeatable-read snapshot, run right after BEGIN
 *   because DSQL's snapshot is taken at BEGIN while PostgreSQL's is taken at the first statement.
 * - `dsql_local.run_async_job(sql, job_type, schema, table, failure)`: runs `CREATE INDEX ASYNC` (job type
 *   `INDEX_BUILD`, the object the new index) or `ALTER TABLE ASYNC … VALIDATE CONSTRAINT` (`VALIDATE_CONSTRAINT`, the
 *   object the table) without ASYNC, records the job (`failed` with `failure` as its details when that is not
 *   NULL), returns its id.
 * - `dsql_local.rules`: the backend rules of `rules.ts` (SQLSTATE, message, DSQL's limit), raised by name with
 *   `dsql_local.refuse(rule, detail)`.
 * - The event trigger `dsql_local_rules` (installed when the setup runs as a superuser, which event triggers need):
 *   after each DDL statement it checks what the catalog now says (column and key types, identity types, column and
 *   key-column counts, declared key sizes, indexes per table, schema/table/view/sequence counts), so the DDL fails
 *   inside its own transaction, and gives each new table the statement-level triggers that measure what is written.
 * - `dsql_local.count_writes()`: those triggers. They measure the written rows (from the transition table) as DSQL
 *   does at the statement: key, column and row sizes (text and bytea by their uncompressed length, other types by
 *   their stored size) and the bytes written in the transaction; and they count the rows the transaction modified
 *   in the transaction-local setting `dsql_local.written_rows`.
 * - `dsql_local.touch_locked(schema, table, locked)`: run by the session policy right after a `SELECT … FOR UPDATE`
 *   in a transaction block, for each table it locks: updates the locked rows (`locked` selects their `ctid`s) to
 *   themselves, so that they conflict as writes do, as DSQL counts them. Views and tables without a column the
 *   session may update are left alone; the update does not count toward the transaction's rows and bytes.
 * - `dsql_local.check_rows(max)`: run by the session policy right after each DML statement, in the same
 *   (implicit or explicit) transaction, so a statement that crosses the row limit is undone with its transaction,
 *   even in autocommit.
 * - `sys.iam_pg_role_mappings`: DSQL's IAM role mappings, written by `dsql_local.iam_grant(role, arn)` and
 *   `dsql_local.iam_revoke(role, arn)` (what `AWS IAM GRANT` / `REVOKE` run); a role may log in only with one.
 * - `dsql_local.check_drop_columns(schema, table, columns)`: run before `ALTER TABLE … DROP COLUMN`; refuses
 *   dropping a primary-key column (after the drop the catalog no longer knows the key).
 * - `dsql_local.check_drop_roles(roles)`: run before `DROP ROLE`; refuses dropping a role an IAM principal is still
 *   mapped to (PostgreSQL has no hook on dropping a role). It reads the mappings defined further down.
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

CREATE OR REPLACE PROCEDURE dsql_local.raise(code text, message text, detail text DEFAULT NULL)
LANGUAGE plpgsql AS $body$
BEGIN
  IF detail IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = code, MESSAGE = message;
  END IF;
  RAISE EXCEPTION USING ERRCODE = code, MESSAGE = message, DETAIL = detail;
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
  job_id text, job_type text, class_id oid, object_id oid, object_name text, started timestamptz, failure text
) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $body$
  INSERT INTO sys.jobs (job_id, status, details, job_type, class_id, object_id, object_name, start_time, update_time)
  VALUES (job_id, CASE WHEN failure IS NULL THEN 'completed' ELSE 'failed' END, failure, job_type, class_id,
    object_id, object_name, started, clock_timestamp());
  UPDATE pg_index SET indisvalid = false
  WHERE failure IS NOT NULL AND job_type = 'INDEX_BUILD' AND indexrelid = object_id
$body$;

CREATE OR REPLACE FUNCTION dsql_local.run_async_job(
  statement_sql text, job_type text, table_schema text, table_name text, failure text
) RETURNS text
LANGUAGE plpgsql AS $body$
DECLARE
  target regclass := (CASE WHEN table_schema IS NULL THEN quote_ident(table_name)
    ELSE quote_ident(table_schema) || '.' || quote_ident(table_name) END)::regclass;
  started timestamptz := clock_timestamp();
  existing oid[];
  job_object oid := target;
  job text := dsql_local.new_job_id();
BEGIN
  SELECT coalesce(array_agg(indexrelid), '{}') INTO existing FROM pg_index WHERE indrelid = target;
  EXECUTE statement_sql;
  IF job_type = 'INDEX_BUILD' THEN
    SELECT indexrelid INTO job_object FROM pg_index WHERE indrelid = target AND NOT indexrelid = ANY (existing);
  END IF;
  PERFORM dsql_local.record_job(job, job_type, 'pg_class'::regclass::oid, job_object,
    (SELECT relname FROM pg_class WHERE oid = job_object), started, failure);
  RETURN job;
END
$body$;

CREATE OR REPLACE PROCEDURE sys.wait_for_job(job_id text, INOUT succeeded boolean DEFAULT NULL)
LANGUAGE plpgsql AS $body$
BEGIN
  SELECT j.status = 'completed' INTO succeeded FROM sys.jobs j WHERE j.job_id = wait_for_job.job_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = '22P02', MESSAGE = 'Unable to convert text to UUID';
  END IF;
END
$body$;

CREATE TABLE IF NOT EXISTS dsql_local.rules (
  name text PRIMARY KEY,
  code text NOT NULL,
  message text NOT NULL,
  value bigint
);
GRANT SELECT ON dsql_local.rules TO PUBLIC;
INSERT INTO dsql_local.rules (name, code, message, value) VALUES
  ${rulesRows}
ON CONFLICT (name) DO UPDATE SET code = excluded.code, message = excluded.message, value = excluded.value;

CREATE OR REPLACE FUNCTION dsql_local.limit_of(rule_name text) RETURNS bigint
LANGUAGE sql STABLE SET search_path = pg_catalog AS $body$
  SELECT value FROM dsql_local.rules WHERE name = rule_name
$body$;

CREATE OR REPLACE PROCEDURE dsql_local.refuse(rule_name text, detail text DEFAULT NULL)
LANGUAGE plpgsql AS $body$
DECLARE
  rule record;
BEGIN
  SELECT r.code, r.message INTO rule FROM dsql_local.rules r WHERE r.name = rule_name;
  RAISE EXCEPTION USING ERRCODE = rule.code, MESSAGE = format(rule.message, detail);
END
$body$;

CREATE OR REPLACE FUNCTION dsql_local.base_type(type_oid oid) RETURNS oid
LANGUAGE sql STABLE SET search_path = pg_catalog AS $body$
  WITH RECURSIVE chain(oid, base) AS (
    SELECT oid, typbasetype FROM pg_type WHERE oid = type_oid
    UNION ALL
    SELECT t.oid, t.typbasetype FROM pg_type t JOIN chain c ON t.oid = c.base
  )
  SELECT oid FROM chain WHERE base = 0
$body$;

-- Column types DSQL refuses: arrays, money and the other types it only knows at query time. (json and jsonb
-- columns are stored natively since June 2026.)
CREATE OR REPLACE FUNCTION dsql_local.is_refused_type(type_oid oid) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog AS $body$
  SELECT t.typcategory IN ('A', 'G') OR t.typtype IN ('c', 'e', 'r', 'm')
    OR t.typname IN ('money', 'xml', 'tsvector', 'tsquery')
  FROM pg_type t WHERE t.oid = dsql_local.base_type(type_oid)
$body$;

-- Key types DSQL refuses: the refused column types, and JSON, which a column may hold but a key may not.
CREATE OR REPLACE FUNCTION dsql_local.is_refused_key_type(type_oid oid) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog AS $body$
  SELECT dsql_local.is_refused_type(type_oid) OR t.typname IN ('json', 'jsonb')
  FROM pg_type t WHERE t.oid = dsql_local.base_type(type_oid)
$body$;

-- The most bytes a value of the type can take, when its declaration says (fixed-size types, varchar(n), char(n)).
CREATE OR REPLACE FUNCTION dsql_local.declared_bytes(type_oid oid, type_modifier int) RETURNS int
LANGUAGE sql STABLE SET search_path = pg_catalog AS $body$
  SELECT CASE
    WHEN t.typlen > 0 THEN t.typlen
    WHEN type_modifier >= 4 AND t.oid IN ('varchar'::regtype, 'bpchar'::regtype) THEN type_modifier - 4
    ELSE 0
  END
  FROM pg_type t WHERE t.oid = dsql_local.base_type(type_oid)
$body$;

CREATE OR REPLACE FUNCTION dsql_local.user_relations(kind "char") RETURNS bigint
LANGUAGE sql STABLE SET search_path = pg_catalog AS $body$
  SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = kind AND n.nspname NOT IN ('information_schema', 'sys', 'dsql_local')
    AND n.nspname NOT LIKE 'pg\_%'
$body$;

CREATE OR REPLACE FUNCTION dsql_local.user_schemas() RETURNS bigint
LANGUAGE sql STABLE SET search_path = pg_catalog AS $body$
  SELECT count(*) FROM pg_namespace
  WHERE nspname NOT IN ('information_schema', 'sys', 'dsql_local') AND nspname NOT LIKE 'pg\_%'
$body$;

CREATE OR REPLACE FUNCTION dsql_local.check_index(index_oid oid) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $body$
DECLARE
  ix record;
  refused text;
BEGIN
  SELECT indrelid, indnkeyatts, indkey::int2[] AS keys INTO ix FROM pg_index WHERE indexrelid = index_oid;
  IF ix.indnkeyatts > dsql_local.limit_of('key_columns') THEN
    CALL dsql_local.refuse('key_columns');
  END IF;
  SELECT format_type(dsql_local.base_type(a.atttypid), NULL) INTO refused FROM pg_attribute a
  WHERE a.attrelid = index_oid AND a.attnum BETWEEN 1 AND ix.indnkeyatts
    AND dsql_local.is_refused_key_type(a.atttypid)
  ORDER BY a.attnum LIMIT 1;
  IF refused IS NOT NULL THEN
    CALL dsql_local.refuse('key_type', refused);
  END IF;
  IF (SELECT coalesce(sum(dsql_local.declared_bytes(a.atttypid, a.atttypmod)), 0)
      FROM unnest(ix.keys) WITH ORDINALITY AS k(attnum, position)
      JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum
      WHERE k.position <= ix.indnkeyatts) > dsql_local.limit_of('declared_key_bytes') THEN
    CALL dsql_local.refuse('declared_key_bytes');
  END IF;
  IF (SELECT count(*) FROM pg_index WHERE indrelid = ix.indrelid) > dsql_local.limit_of('indexes_per_table') THEN
    CALL dsql_local.refuse('indexes_per_table');
  END IF;
END
$body$;

-- The size of a column's value as DSQL's limits count it, as an SQL expression over the transition table.
CREATE OR REPLACE FUNCTION dsql_local.size_sql(column_name name, type_oid oid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog AS $body$
  SELECT CASE WHEN t.typcategory = 'S' OR t.oid = 'bytea'::regtype
    THEN format('coalesce(octet_length(%I), 0)', column_name)
    ELSE format('coalesce(pg_column_size(%I), 0)', column_name)
  END
  FROM pg_type t WHERE t.oid = dsql_local.base_type(type_oid)
$body$;

CREATE OR REPLACE FUNCTION dsql_local.measure_sql(table_oid oid) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog AS $body$
DECLARE
  sizes text[];
  keys text[];
BEGIN
  SELECT array_agg(dsql_local.size_sql(a.attname, a.atttypid) ORDER BY a.attnum) INTO sizes
  FROM pg_attribute a WHERE a.attrelid = table_oid AND a.attnum > 0 AND NOT a.attisdropped;
  SELECT array_agg(key_size) INTO keys FROM (
    SELECT '(' || string_agg(dsql_local.size_sql(a.attname, a.atttypid), ' + ') || ')' AS key_size
    FROM pg_index i
    CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, position)
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
    WHERE i.indrelid = table_oid AND k.position <= i.indnkeyatts
    GROUP BY i.indexrelid
  ) key_sizes;
  RETURN format(
    'SELECT count(*) AS n, coalesce(sum(row_bytes), 0) AS bytes, coalesce(max(row_bytes), 0) AS max_row, ' ||
    'coalesce(max(max_column), 0) AS max_column, coalesce(max(max_key), 0) AS max_key ' ||
    'FROM (SELECT %s AS row_bytes, GREATEST(%s) AS max_column, GREATEST(0, %s) AS max_key FROM written) measured',
    coalesce(array_to_string(sizes, ' + '), '0'),
    coalesce(array_to_string(sizes, ', '), '0'),
    coalesce(array_to_string(keys, ', '), '0'));
END
$body$;

CREATE OR REPLACE FUNCTION dsql_local.count_writes() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $body$
DECLARE
  measured record;
  total_bytes bigint;
  total_rows bigint;
BEGIN
  IF current_setting('dsql_local.touching', true) = 'on' THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'DELETE' THEN
    EXECUTE 'SELECT count(*) AS n, 0 AS bytes, 0 AS max_row, 0 AS max_column, 0 AS max_key FROM written'
      INTO measured;
  ELSE
    EXECUTE dsql_local.measure_sql(TG_RELID) INTO measured;
  END IF;
  IF measured.max_key > dsql_local.limit_of('key_bytes') THEN
    CALL dsql_local.refuse('key_bytes');
  END IF;
  IF measured.max_column > dsql_local.limit_of('column_bytes') THEN
    CALL dsql_local.refuse('column_bytes');
  END IF;
  IF measured.max_row > dsql_local.limit_of('row_bytes') THEN
    CALL dsql_local.refuse('row_bytes');
  END IF;
  total_bytes := coalesce(nullif(current_setting('dsql_local.written_bytes', true), ''), '0')::bigint + measured.bytes;
  IF total_bytes > dsql_local.limit_of('transaction_bytes') THEN
    CALL dsql_local.refuse('transaction_bytes');
  END IF;
  total_rows := coalesce(nullif(current_setting('dsql_local.written_rows', true), ''), '0')::bigint + measured.n;
  PERFORM set_config('dsql_local.written_bytes', total_bytes::text, true);
  PERFORM set_config('dsql_local.written_rows', total_rows::text, true);
  RETURN NULL;
END
$body$;

-- The table a statement names (schema NULL: found on the session's search_path), NULL when there is none.
CREATE OR REPLACE FUNCTION dsql_local.table_named(table_schema text, table_name text) RETURNS regclass
LANGUAGE sql STABLE AS $body$
  SELECT pg_catalog.to_regclass(CASE WHEN table_schema IS NULL THEN pg_catalog.quote_ident(table_name)
    ELSE pg_catalog.quote_ident(table_schema) || '.' || pg_catalog.quote_ident(table_name) END)
$body$;

-- Runs as the session's user, with its search_path: the locking statement was the session's own.
CREATE OR REPLACE FUNCTION dsql_local.touch_locked(table_schema text, table_name text, locked text) RETURNS void
LANGUAGE plpgsql AS $body$
DECLARE
  target regclass := dsql_local.table_named(table_schema, table_name);
  touched name;
BEGIN
  SELECT attname INTO touched FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
  WHERE a.attrelid = target AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
    AND a.attidentity <> 'a' AND pg_catalog.has_column_privilege(target, a.attnum, 'UPDATE')
  ORDER BY a.attnum LIMIT 1;
  IF touched IS NULL THEN
    RETURN;
  END IF;
  PERFORM pg_catalog.set_config('dsql_local.touching', 'on', true);
  EXECUTE pg_catalog.format('UPDATE %s SET %I = %I WHERE ctid = ANY (ARRAY(%s))', target, touched, touched, locked);
  PERFORM pg_catalog.set_config('dsql_local.touching', '', true);
END
$body$;

CREATE OR REPLACE PROCEDURE dsql_local.check_rows(max_rows bigint)
LANGUAGE plpgsql AS $body$
BEGIN
  IF coalesce(nullif(current_setting('dsql_local.written_rows', true), ''), '0')::bigint > max_rows THEN
    CALL dsql_local.refuse('transaction_rows');
  END IF;
END
$body$;

CREATE OR REPLACE PROCEDURE dsql_local.check_drop_columns(table_schema text, table_name text, dropped text[])
LANGUAGE plpgsql AS $body$
DECLARE
  target regclass := dsql_local.table_named(table_schema, table_name);
  key_column name;
BEGIN
  SELECT a.attname INTO key_column FROM pg_index i
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey::int2[])
  WHERE i.indrelid = target AND i.indisprimary AND a.attname = ANY (dropped)
  ORDER BY a.attnum LIMIT 1;
  IF key_column IS NOT NULL THEN
    CALL dsql_local.refuse('drop_key_column', key_column);
  END IF;
END
$body$;

CREATE OR REPLACE PROCEDURE dsql_local.check_drop_roles(dropped text[])
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $body$
DECLARE
  mapped name;
BEGIN
  SELECT r.rolname INTO mapped FROM dsql_local.iam_role_mappings m JOIN pg_roles r ON r.oid = m.pg_role_oid
  WHERE r.rolname = ANY (dropped) ORDER BY array_position(dropped, r.rolname::text) LIMIT 1;
  IF mapped IS NOT NULL THEN
    CALL dsql_local.refuse('drop_mapped_role', mapped);
  END IF;
END
$body$;

CREATE OR REPLACE FUNCTION dsql_local.check_table(table_oid oid, created boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $body$
DECLARE
  index_oid oid;
  refused text;
BEGIN
  IF (SELECT count(*) FROM pg_attribute WHERE attrelid = table_oid AND attnum > 0 AND NOT attisdropped)
      > dsql_local.limit_of('columns_per_table') THEN
    CALL dsql_local.refuse('columns_per_table');
  END IF;
  -- Keys first: DSQL names a refused type in a key as such.
  FOR index_oid IN SELECT indexrelid FROM pg_index WHERE indrelid = table_oid LOOP
    PERFORM dsql_local.check_index(index_oid);
  END LOOP;
  SELECT format_type(dsql_local.base_type(atttypid), NULL) INTO refused FROM pg_attribute
  WHERE attrelid = table_oid AND attnum > 0 AND NOT attisdropped AND dsql_local.is_refused_type(atttypid)
  ORDER BY attnum LIMIT 1;
  IF refused IS NOT NULL THEN
    CALL dsql_local.refuse('column_type', refused);
  END IF;
  SELECT format_type(atttypid, NULL) INTO refused FROM pg_attribute
  WHERE attrelid = table_oid AND attidentity <> '' AND atttypid <> 'int8'::regtype::oid
  ORDER BY attnum LIMIT 1;
  IF refused IS NOT NULL THEN
    CALL dsql_local.refuse('identity_type', refused);
  END IF;
  IF created THEN
    IF dsql_local.user_relations('r') > dsql_local.limit_of('tables') THEN
      CALL dsql_local.refuse('tables');
    END IF;
    EXECUTE format('CREATE TRIGGER dsql_local_inserted AFTER INSERT ON %s REFERENCING NEW TABLE AS written '
      'FOR EACH STATEMENT EXECUTE FUNCTION dsql_local.count_writes()', table_oid::regclass);
    EXECUTE format('CREATE TRIGGER dsql_local_updated AFTER UPDATE ON %s REFERENCING NEW TABLE AS written '
      'FOR EACH STATEMENT EXECUTE FUNCTION dsql_local.count_writes()', table_oid::regclass);
    EXECUTE format('CREATE TRIGGER dsql_local_deleted AFTER DELETE ON %s REFERENCING OLD TABLE AS written '
      'FOR EACH STATEMENT EXECUTE FUNCTION dsql_local.count_writes()', table_oid::regclass);
  END IF;
END
$body$;

CREATE OR REPLACE FUNCTION dsql_local.check_ddl() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $body$
DECLARE
  command record;
BEGIN
  FOR command IN SELECT * FROM pg_event_trigger_ddl_commands()
    WHERE coalesce(schema_name, '') NOT IN ('sys', 'dsql_local') AND NOT in_extension
  LOOP
    IF command.object_type = 'table' THEN
      PERFORM dsql_local.check_table(command.objid, command.command_tag = 'CREATE TABLE');
    ELSIF command.object_type = 'index' THEN
      PERFORM dsql_local.check_index(command.objid);
    ELSIF command.command_tag = 'CREATE VIEW' AND dsql_local.user_relations('v') > dsql_local.limit_of('views') THEN
      CALL dsql_local.refuse('views');
    ELSIF command.command_tag = 'CREATE SEQUENCE'
        AND dsql_local.user_relations('S') > dsql_local.limit_of('sequences') THEN
      CALL dsql_local.refuse('sequences');
    ELSIF command.command_tag = 'CREATE SCHEMA' AND dsql_local.user_schemas() > dsql_local.limit_of('schemas') THEN
      CALL dsql_local.refuse('schemas');
    END IF;
  END LOOP;
END
$body$;

CREATE TABLE IF NOT EXISTS dsql_local.iam_role_mappings (
  arn text NOT NULL,
  pg_role_oid oid NOT NULL,
  grantor_pg_role_oid oid NOT NULL,
  PRIMARY KEY (arn, pg_role_oid)
);
CREATE OR REPLACE VIEW sys.iam_pg_role_mappings AS
  SELECT m.arn, m.pg_role_oid, r.rolname AS pg_role_name, m.grantor_pg_role_oid, g.rolname AS grantor_pg_role_name
  FROM dsql_local.iam_role_mappings m
  JOIN pg_catalog.pg_roles r ON r.oid = m.pg_role_oid
  LEFT JOIN pg_catalog.pg_roles g ON g.oid = m.grantor_pg_role_oid;
GRANT SELECT ON sys.iam_pg_role_mappings TO PUBLIC;

CREATE OR REPLACE PROCEDURE dsql_local.iam_map(action text, role_name text, principal text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $body$
DECLARE
  role_oid oid := (SELECT oid FROM pg_roles WHERE rolname = role_name);
  grantor record;
BEGIN
  SELECT oid, rolsuper OR rolcreaterole AS allowed INTO grantor FROM pg_roles WHERE rolname = session_user;
  IF NOT grantor.allowed THEN
    RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = format('permission denied to %s role "%s"', lower(action), role_name);
  END IF;
  IF role_oid IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '42704', MESSAGE = format('role "%s" does not exist', role_name);
  END IF;
  IF action = 'GRANT' THEN
    INSERT INTO dsql_local.iam_role_mappings VALUES (principal, role_oid, grantor.oid) ON CONFLICT DO NOTHING;
  ELSE
    DELETE FROM dsql_local.iam_role_mappings WHERE arn = principal AND pg_role_oid = role_oid;
  END IF;
END
$body$;

DO $body$
BEGIN
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    DROP EVENT TRIGGER IF EXISTS dsql_local_rules;
    CREATE EVENT TRIGGER dsql_local_rules ON ddl_command_end EXECUTE FUNCTION dsql_local.check_ddl();
  END IF;
END
$body$;
`

/**
 * A statement that fails with the refusal's SQLSTATE and message.
 *
 * @since 0.1.0
 * @category constructors
 */
export const raiseSql = (refusal: Refusal): string =>
  `CALL dsql_local.raise(${literal(refusal.code)}, ${literal(refusal.message)}${
    refusal.detail === undefined ? "" : `, ${literal(refusal.detail)}`
  })`

/**
 * The savepoint every explicit transaction opens right after its snapshot: rolling back to it gives up the
 * transaction's row locks and keeps its snapshot.
 *
 * @since 0.1.0
 * @category constructors
 */
export const writesSavepoint = "dsql_local_writes"

/**
 * Run after BEGIN so the transaction's snapshot is taken at BEGIN, as in DSQL.
 *
 * @since 0.1.0
 * @category constructors
 */
export const takeSnapshotSql = "CALL dsql_local.take_snapshot()"

/** An asynchronous DSQL statement, ASYNC removed, rewritten to a one-row `job_id` query. */
const asyncJobSql = (sql: string, jobType: string, target: AsyncTarget, failure: string | undefined): string =>
  `SELECT dsql_local.run_async_job(${literal(sql)}, ${literal(jobType)}, ${
    target.schema === undefined ? "NULL" : literal(target.schema)
  }, ${literal(target.table)}, ${failure === undefined ? "NULL" : literal(failure)}) AS job_id`

/**
 * Fails with DSQL's refusal when the transaction has modified more than `maxRows` rows.
 *
 * @since 0.1.0
 * @category constructors
 */
export const checkRowsSql = (maxRows: number): string => `CALL dsql_local.check_rows(${Math.floor(maxRows)})`

/**
 * Fails with DSQL's refusal when one of the dropped columns is in the table's primary key.
 *
 * @since 0.1.0
 * @category constructors
 */
export const checkDropColumnsSql = (dropped: DroppedColumns): string =>
  `CALL dsql_local.check_drop_columns(${dropped.schema === undefined ? "NULL" : literal(dropped.schema)}, ${
    literal(dropped.table)
  }, ARRAY[${dropped.columns.map(literal).join(", ")}]::text[])`

/**
 * Fails with DSQL's refusal when an IAM principal is still mapped to one of the dropped roles.
 *
 * @since 0.1.0
 * @category constructors
 */
export const checkDropRolesSql = (roles: ReadonlyArray<string>): string =>
  `CALL dsql_local.check_drop_roles(ARRAY[${roles.map(literal).join(", ")}]::text[])`

/**
 * What runs on the backend instead of a statement PostgreSQL does not know, and the command tag the client gets:
 * `CREATE INDEX ASYNC`, `ALTER TABLE ASYNC … VALIDATE CONSTRAINT` and `AWS IAM GRANT` / `REVOKE`. An asynchronous
 * job given `jobFailure` is recorded as failed with it as its details.
 *
 * @since 0.1.0
 * @category constructors
 */
export const backendStatement = (
  statement: Statement,
  jobFailure?: string
): { readonly sql: string; readonly tag: string } | undefined => {
  if (statement.asyncIndex !== undefined) {
    return { sql: asyncJobSql(statement.sql, "INDEX_BUILD", statement.asyncIndex, jobFailure), tag: "CREATE INDEX" }
  }
  if (statement.asyncValidation !== undefined) {
    return {
      sql: asyncJobSql(statement.sql, "VALIDATE_CONSTRAINT", statement.asyncValidation, jobFailure),
      tag: "ALTER TABLE"
    }
  }
  const mapping = statement.iamMapping
  return mapping === undefined ? undefined : {
    sql: `CALL dsql_local.iam_map(${literal(mapping.action)}, ${literal(mapping.role)}, ${literal(mapping.arn)})`,
    tag: `AWS IAM ${mapping.action}`
  }
}
