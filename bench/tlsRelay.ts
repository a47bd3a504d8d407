/**
 * Scenario 7's middle reference: the least a TLS endpoint in front of the backend can cost. It answers SSLRequest,
 * runs the TLS handshake with a certificate of its own throwaway CA (ECDSA P-256, as DsqlLocal's), then pipes bytes
 * both ways to the backend PostgreSQL: no token, no DSQL checks, no session policy.
 */
import { Effect } from "effect"
import * as Net from "node:net"
import * as Tls from "node:tls"
import { issueServerCertificate, makeAuthority } from "../local/src/internal/certificates.js"

export interface TlsRelay {
  readonly port: number
  /** The CA to verify the relay's certificate with, issued for `hostname` and 127.0.0.1. */
  readonly ca: string
  readonly hostname: string
  readonly close: () => Promise<void>
}

const hostname = "localhost"

export const startTlsRelay = async (backend: { readonly host: string; readonly port: number }): Promise<TlsRelay> => {
  const { authority, certificate } = await Effect.runPromise(Effect.gen(function*() {
    const authority = yield* makeAuthority()
    const certificate = yield* issueServerCertificate(authority, { hostnames: [hostname], ipAddresses: ["127.0.0.1"] })
    return { authority, certificate }
  }))
  const secureContext = Tls.createSecureContext({ key: certificate.keyPem, cert: certificate.certPem })
  const sockets = new Set<Net.Socket>()
  const server = Net.createServer({ noDelay: true }, (raw) => {
    sockets.add(raw)
    raw.on("close", () => sockets.delete(raw))
    raw.on("error", () => raw.destroy())
    // The first message is SSLRequest (8 bytes); pg sends nothing else before the answer.
    raw.once("data", () => {
      raw.write("S")
      const secure = new Tls.TLSSocket(raw, { isServer: true, secureContext })
      const upstream = Net.connect({ host: backend.host, port: backend.port, noDelay: true })
      const closeBoth = () => {
        secure.destroy()
        upstream.destroy()
      }
      for (const socket of [secure, upstream]) {
        socket.on("error", closeBoth)
        socket.on("close", closeBoth)
      }
      secure.pipe(upstream)
      upstream.pipe(secure)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    port: (server.address() as Net.AddressInfo).port,
    ca: authority.certPem,
    hostname,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve())
        for (const socket of sockets) socket.destroy()
      })
  }
}
