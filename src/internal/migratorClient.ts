/**
 * The `SqlClient` a migration runs on. Statements outside a transaction are retried on OCC conflicts; a migration's
 * own outermost `withTransaction` is retried as a whole; the job id that every `CREATE INDEX ASYNC` (and
 * `ALTER TABLE ASYNC`) answers with is collected, so the migrator can wait for those jobs before recording the
 * migration. Jobs are taken from the statements' own answers, never from `sys.jobs`, so a concurrent deploy's
 * jobs are never mistaken for this migration's.
 *
 * @internal
 */
import { Migration } from "@effect-dsql/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlConnection from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import { identity } from "effect/Function"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Ref from "effect/Ref"
import type * as OccRetry from "../OccRetry.js"
import type { AsyncJob } from "./migrator.js"
import { retryingOcc } from "./migrator.js"

type TransformRows = (<A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined

/** What a client's statements are made of: @effect/sql 0.52 keeps them as public fields of every statement. */
interface StatementParts {
  readonly acquirer: SqlConnection.Connection.Acquirer
  readonly compiler: Statement.Compiler
  readonly spanAttributes: ReadonlyArray<readonly [string, unknown]>
  readonly transformRows: TransformRows
}

const isStatementParts = (u: unknown): u is StatementParts =>
  Predicate.hasProperty(u, "acquirer") && Effect.isEffect(u.acquirer) &&
  Predicate.hasProperty(u, "compiler") && Predicate.hasProperty(u.compiler, "compile") &&
  Predicate.hasProperty(u, "spanAttributes") && Array.isArray(u.spanAttributes)

/** Where the jobs started inside a migration's transaction go until it commits: an attempt rolled back started none. */
class TransactionJobs extends Context.Tag("effect-dsql/DsqlMigrator/TransactionJobs")<
  TransactionJobs,
  Ref.Ref<ReadonlyArray<AsyncJob>>
>() {}

/** `connection`, with every statement retried by `retry` and the jobs of asynchronous DDL added to `jobs`. */
const watchConnection = (
  connection: SqlConnection.Connection,
  jobs: Ref.Ref<ReadonlyArray<AsyncJob>>,
  retry: <A>(statement: Effect.Effect<A, SqlError>) => Effect.Effect<A, SqlError>
): SqlConnection.Connection => {
  const watch = <A>(sql: string, statement: Effect.Effect<A, SqlError>) =>
    retry(
      Migration.isAsyncDdl(sql)
        ? Effect.tap(statement, (result) => {
          const object = Migration.asyncDdlObject(sql)
          return Ref.update(jobs, (all) => [...all, ...Migration.jobIdsOf(result).map((jobId) => ({ jobId, object }))])
        })
        : statement
    )
  return {
    execute: (sql, params, transformRows) => watch(sql, connection.execute(sql, params, transformRows)),
    executeRaw: (sql, params) => watch(sql, connection.executeRaw(sql, params)),
    executeValues: (sql, params) => watch(sql, connection.executeValues(sql, params)),
    executeUnprepared: (sql, params, transformRows) =>
      watch(sql, connection.executeUnprepared(sql, params, transformRows)),
    executeStream: connection.executeStream
  }
}

/**
 * The migration client over `sql`, or `None` when `sql`'s statements do not expose their parts (not an @effect/sql
 * 0.52 client). Everything `sql` carries besides statements (`reserve`, PgClient's `config`, `json`, …) is kept.
 */
export const make = (
  sql: SqlClient.SqlClient,
  jobs: Ref.Ref<ReadonlyArray<AsyncJob>>,
  occRetry: OccRetry.Options | undefined
): Option.Option<SqlClient.SqlClient> => {
  const parts: unknown = sql.unsafe("")
  if (!isStatementParts(parts)) return Option.none()
  const retried = <A>(statement: Effect.Effect<A, SqlError>) => retryingOcc(statement, occRetry)
  const acquirer = Effect.flatMap(
    Effect.serviceOption(SqlClient.TransactionConnection),
    Option.match({
      onNone: () => Effect.map(parts.acquirer, (connection) => watchConnection(connection, jobs, retried)),
      onSome: ([connection]) =>
        Effect.map(
          Effect.serviceOption(TransactionJobs),
          (started) => watchConnection(connection, Option.getOrElse(started, () => jobs), identity)
        )
    })
  )
  const withTransaction = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
    Effect.flatMap(
      Effect.serviceOption(SqlClient.TransactionConnection),
      Option.match({
        onSome: () => sql.withTransaction(effect),
        onNone: () =>
          retryingOcc(
            Effect.flatMap(Ref.make<ReadonlyArray<AsyncJob>>([]), (started) =>
              sql.withTransaction(Effect.provideService(effect, TransactionJobs, started)).pipe(
                Effect.tap(() =>
                  Effect.flatMap(Ref.get(started), (added) =>
                    Ref.update(jobs, (all) => [...all, ...added]))
                )
              )),
            occRetry
          )
      })
    )
  const statements = Statement.make(acquirer, parts.compiler, parts.spanAttributes, parts.transformRows)
  const client = statements as SqlClient.SqlClient & Record<PropertyKey, unknown>
  for (const key of Reflect.ownKeys(sql)) {
    if (!(key in statements) && Object.prototype.propertyIsEnumerable.call(sql, key)) {
      client[key] = (sql as unknown as Record<PropertyKey, unknown>)[key]
    }
  }
  return Option.some(Object.assign(client, {
    safe: client,
    withTransaction,
    withoutTransforms: () => Option.getOrElse(make(sql.withoutTransforms(), jobs, occRetry), () => client)
  }))
}
