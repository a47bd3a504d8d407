/**
 * DSQL's own words in every `SqlError`. @effect/sql-pg 4 says only "PgConnection: Query failed" or "PgConnection:
 * Failed to connect" and keeps the server's message, SQLSTATE and hint (or the socket's or TLS error) in
 * `reason.cause`; here they are brought into the reason's message, the reason's tag, cause and fields kept.
 *
 * @internal
 */
import { Diagnostics, SqlState } from "@effect-dsql/core"
import { SqlError } from "effect/sql/SqlError"

interface ErrorLike {
  readonly code?: unknown
}

/** The SQLSTATE a driver error carries, if any. */
export const sqlStateOf = (error: SqlError): string | undefined => {
  const code = (error.reason.cause as ErrorLike | undefined)?.code
  return SqlState.isSqlState(code) ? code : undefined
}

/**
 * What went wrong, from the driver's cause, in the words both lines use (the server's message and SQLSTATE, or the
 * TLS or socket error, along a bounded walk of its chain); nothing when there is no cause to read.
 */
export const describeCause = (cause: unknown, hostInput?: string): string | undefined =>
  typeof cause === "object" && cause !== null ? Diagnostics.describeError(cause, hostInput) : undefined

type ReasonConstructor = new(props: Record<string, unknown>) => SqlError["reason"]

/**
 * `error` with its reason's message followed by what the driver's cause says, as
 * `DsqlClient: <server message> (SQLSTATE <code>) — <hint>`; `context` (e.g. "could not connect to <host>") goes first
 * when given; `hostInput` names where the host came from, for a host not found. An error whose cause says nothing
 * more is returned as it is.
 */
export const withDsqlMessage = (error: SqlError, context?: string, hostInput?: string): SqlError => {
  const described = describeCause(error.reason.cause, hostInput)
  if (described === undefined) return error
  const reason = error.reason
  const message = `DsqlClient: ${context === undefined ? "" : `${context}: `}${described}`
  if (reason.message === message) return error
  const Reason = reason.constructor as ReasonConstructor
  const constraint = reason._tag === "UniqueViolation" ? { constraint: reason.constraint } : {}
  return new SqlError({
    reason: new Reason({ cause: reason.cause, operation: reason.operation, message, ...constraint })
  })
}
