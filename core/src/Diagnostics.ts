/**
 * Errors in words: what a failed connection attempt says to a user (TLS, network and server codes), for both lines.
 *
 * @since 0.1.0
 */
import { causeChain } from "./Causes.js"
import { isSqlState } from "./SqlState.js"

interface ErrorLike {
  readonly message?: unknown
  readonly code?: unknown
  readonly hint?: unknown
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
  ETIMEDOUT: "connection timed out",
  ECONNRESET: "connection reset by the server"
}

/** Longest server text quoted: the message and hint come from the server, which may send megabytes of them. */
const maxQuoted = 1_000

const clip = (text: string): string =>
  text.length <= maxQuoted ? text : `${text.slice(0, maxQuoted)}… (${text.length} characters in all)`

/**
 * What one link of the chain says when it carries a known TLS, network or server code, which ends the description;
 * `hostInput` names where the host came from.
 */
const describeCode = (link: unknown, hostInput: string): string | undefined => {
  if (typeof link !== "object" || link === null) return undefined
  const e = link as ErrorLike
  const code = typeof e.code === "string" ? e.code : undefined
  if (code === undefined) return undefined
  if (code in tlsCodes) return `TLS verification failed: ${tlsCodes[code]} (${code})`
  if (code === "ENOTFOUND") return `host name not found: check ${hostInput}`
  if (code in networkCodes) return networkCodes[code]!
  if (isSqlState(code)) {
    const hint = typeof e.hint === "string" && e.hint.length > 0 ? ` — ${clip(e.hint)}` : ""
    return `${messageOf(link)} (SQLSTATE ${code})${hint}`
  }
  return undefined
}

const messageOf = (link: unknown): string => {
  const message = typeof link === "object" && link !== null ? (link as ErrorLike).message : undefined
  return clip(typeof message === "string" ? message : String(link))
}

/**
 * A readable description of why connecting failed: the messages along the cause chain, outermost first, down to the
 * first link with a known code (described by it), each inner part left out when the outer message already quotes it.
 * `hostInput` is the input the host came from (`DsqlConfig.hostInput`).
 *
 * @example
 * ```ts
 * import { Diagnostics } from "@effect-dsql/core"
 * Diagnostics.describeError({ message: "connect failed", cause: { code: "ENOTFOUND" } }, "DSQL_HOST")
 * // "connect failed: host name not found: check DSQL_HOST"
 * ```
 * @since 0.1.0
 */
export const describeError = (error: unknown, hostInput = "the host"): string => {
  const chain = causeChain(error)
  let end = chain.length - 1
  let description = messageOf(chain[end])
  for (let depth = 0; depth < chain.length; depth++) {
    const coded = describeCode(chain[depth], hostInput)
    if (coded !== undefined) {
      end = depth
      description = coded
      break
    }
  }
  for (let depth = end - 1; depth >= 0; depth--) {
    const message = messageOf(chain[depth])
    description = message.includes(description) ? message : `${message}: ${description}`
  }
  return description
}

/**
 * What a checkout that found no connection within `connectTimeout` says, and what to change: every connection the
 * pool may open stayed in use, or new ones were slow to open or refused for DSQL's connection limits.
 *
 * @example
 * ```ts
 * import { Diagnostics } from "@effect-dsql/core"
 * Diagnostics.checkoutTimedOut("10s", 20)
 * // "no connection within connectTimeout (10s): the pool's 20 connections stayed in use, or new ones …"
 * ```
 * @since 0.1.0
 */
export const checkoutTimedOut = (connectTimeout: string, maxConnections: number): string =>
  `no connection within connectTimeout (${connectTimeout}): the pool's ${maxConnections} ` +
  `connection${maxConnections === 1 ? "" : "s"} stayed in use, or new ones were slow to open or refused for DSQL's ` +
  "connection limits; raise maxConnections or connectTimeout, or hold connections for less time"
