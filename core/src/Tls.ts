/**
 * The TLS a DSQL connection needs, for both lines: verify-full (certificate chain and host name checked against the
 * DSQL host name, never the dialled address), SNI, TLS 1.2 or later. An extra CA is added to Node's roots, never
 * replacing them.
 *
 * @since 0.1.0
 */
import * as NodeTls from "node:tls"

/** Secure contexts by extra CA PEM, shared by every client of the process that trusts the same CA. */
const secureContexts = new Map<string, NodeTls.SecureContext>()

/**
 * Node's roots plus `pem` in one secure context, built once per process and PEM: building one parses Node's ~150
 * roots (tens of ms of CPU), which every connection (with `ca` in its options) or every client opened at once (a storm
 * of cold starts) would otherwise pay again. A context is immutable: sharing it shares no state.
 *
 * @since 0.1.0
 */
export const secureContextFor = (pem: string): NodeTls.SecureContext => {
  const cached = secureContexts.get(pem)
  if (cached !== undefined) return cached
  const context = NodeTls.createSecureContext({ ca: [...NodeTls.rootCertificates, pem], minVersion: "TLSv1.2" })
  secureContexts.set(pem, context)
  return context
}

/**
 * TLS options for verify-full against `host`, trusting `caPem` besides Node's roots when given.
 *
 * @example
 * ```ts
 * import { Tls } from "@effect-dsql/core"
 * import * as NodeTls from "node:tls"
 *
 * NodeTls.connect({ host: "10.0.0.5", port: 5432, ...Tls.verifyFull("abc.dsql.us-east-1.on.aws", undefined) })
 * ```
 *
 * @since 0.1.0
 */
export const verifyFull = (host: string, caPem: string | undefined): NodeTls.ConnectionOptions => ({
  servername: host,
  rejectUnauthorized: true,
  minVersion: "TLSv1.2",
  checkServerIdentity: (_hostname, certificate) => NodeTls.checkServerIdentity(host, certificate),
  ...(caPem === undefined ? {} : { secureContext: secureContextFor(caPem) })
})
