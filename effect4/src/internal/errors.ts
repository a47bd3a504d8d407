/**
 * DSQL's own words in every `SqlError`. @effect/sql-pg 4 says only "PgConnection: Query failed" or "PgConnection:
 * Failed to connect" and keeps the server's message, SQLSTATE and hint (or the socket's or TLS error) in
 * `reason.cause`; here they are brought into the reason's message, the reason's tag, cause and fields kept.
 *
 * @internal
 */
import { SqlState } from "@effect-dsql/core"
import { SqlError } from "effect/sql/SqlError"

interface ErrorLike {
  readonly message?: unknown
  readonly code?: unknown
  readonly hint?: unknown
  readonly cause?: unknown
}

const tlsCodes: Readonly<Record<string, string>> = {
  ERR_TLS_CERT_ALTNAME_INVALID: "the server certificate does not match the host name",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the server certificate is not signed by a trusted CA",
  SELF_SIGNED_CERT_IN_CHAIN: "the server certificate chains to an untrusted CA",
  DEPTH_ZERO_SELF_SIGNED_CERT: "the server certificate is self-signed",
  CERT_HAS_EXPIRED: "the server certificate has expired",
  CERT_NOT_YET_VALID: "the server certificate is not yet valid"
}

const networkCodes: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused: is the endpoint reachable on that port?",
  ENOTFOUND: "host name not found: check DSQL_HOST",
  ETIMEDOUT: "connection timed out",
  ECONNRESET: "connection reset by the server"
}

/** Longest server text quoted: the message and hint come from the server, which may send megabytes of them. */
const maxQuoted = 1_000

const clip = (text: string): string =>
  text.length <= maxQuoted ? text : `${text.slice(0, maxQuoted)}… (${text.length} characters in all)`

/** The SQLSTATE a driver error carries, if any. */
export const sqlStateOf = (error: SqlError): string | undefined => {
  const code = (error.reason.cause as ErrorLike | undefined)?.code
  return SqlState.isSqlState(code) ? code : undefined
}

/** What went wrong, from the driver's cause: the server's message and SQLSTATE, or the TLS or socket error. */
export const describeCause = (cause: unknown): string | undefined => {
  if (typeof cause !== "object" || cause === null) return undefined
  const e = cause as ErrorLike
  const code = typeof e.code === "string" ? e.code : undefined
  const message = typeof e.message === "string" && e.message.length > 0 ? clip(e.message) : undefined
  if (code !== undefined && code in tlsCodes) return `TLS verification failed: ${tlsCodes[code]} (${code})`
  if (code !== undefined && code in networkCodes) return networkCodes[code]!
  if (SqlState.isSqlState(code)) {
    const hint = typeof e.hint === "string" && e.hint.length > 0 ? ` — ${clip(e.hint)}` : ""
    return `${message ?? "error"} (SQLSTATE ${code})${hint}`
  }
  const inner = e.cause !== cause ? describeCause(e.cause) : undefined
  if (inner === undefined) return message
  return message === undefined || message.includes(inner) ? inner : `${message}: ${inner}`
}

type ReasonConstructor = new(props: Record<string, unknown>) => SqlError["reason"]

/**
 * `error` with its reason's message followed by what the driver's cause says, as
 * `DsqlClient: <server message> (SQLSTATE <code>) — <hint>`; `context` (e.g. "could not connect to <host>") goes first
 * when given. An error whose cause says nothing more is returned as it is.
 */
export const withDsqlMessage = (error: SqlError, context?: string): SqlError => {
  const described = describeCause(error.reason.cause)
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
