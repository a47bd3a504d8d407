/**
 * Turns a failed connection attempt into one line a user can act on. Never includes the token: pg errors carry
 * the server's message, code and hint only.
 *
 * @internal
 */

import { SqlState } from "@effect-dsql/core"

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

/** A readable description of why connecting failed. */
export const describeConnectError = (error: unknown): string => {
  const e = (typeof error === "object" && error !== null ? error : { message: String(error) }) as ErrorLike
  const code = typeof e.code === "string" ? e.code : undefined
  const message = clip(typeof e.message === "string" ? e.message : String(error))
  if (code !== undefined && code in tlsCodes) return `TLS verification failed: ${tlsCodes[code]} (${code})`
  if (code !== undefined && code in networkCodes) return networkCodes[code]!
  if (SqlState.isSqlState(code)) {
    const hint = typeof e.hint === "string" && e.hint.length > 0 ? ` — ${clip(e.hint)}` : ""
    return `${message} (SQLSTATE ${code})${hint}`
  }
  if (e.cause !== undefined && e.cause !== error) {
    const inner = describeConnectError(e.cause)
    return message.includes(inner) ? message : `${message}: ${inner}`
  }
  return message
}
