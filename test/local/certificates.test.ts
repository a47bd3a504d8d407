import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { createPrivateKey, X509Certificate } from "node:crypto"
import type { AddressInfo } from "node:net"
import * as tls from "node:tls"
import type { KeyAndCertificate } from "../../local/src/internal/certificates.js"
import { issueServerCertificate, makeAuthority } from "../../local/src/internal/certificates.js"
import { failureOf } from "../utils/failure.js"

const hostnames = ["*.dsql.us-east-1.on.aws", "localhost"]
const day = 24 * 60 * 60 * 1000

/** A TLS server on a free loopback port presenting `served`; closed with the scope. */
const serve = (served: KeyAndCertificate) =>
  Effect.acquireRelease(
    Effect.async<tls.Server>((resume) => {
      const server = tls.createServer({ key: served.keyPem, cert: served.certPem }, (socket) => socket.end())
      server.listen(0, "127.0.0.1", () => {
        resume(Effect.succeed(server))
      })
    }),
    (server) =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map((server) => (server.address() as AddressInfo).port))

/** Opens a verify-full TLS connection; "authorized" or the error code the client refused with. */
const handshake = (port: number, options: { readonly ca: string; readonly servername: string }) =>
  Effect.async<string>((resume) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ...options })
    socket.once("secureConnect", () => {
      resume(Effect.succeed(socket.authorized ? "authorized" : "unauthorized"))
      socket.destroy()
    })
    socket.once("error", (error: NodeJS.ErrnoException) => resume(Effect.succeed(error.code ?? error.message)))
    return Effect.sync(() => socket.destroy())
  })

describe("certificates", () => {
  it.effect("the authority is a CA and keys are PKCS#8 P-256", () =>
    Effect.gen(function*() {
      const authority = yield* makeAuthority({ commonName: "effect-dsql test CA" })
      const issued = yield* issueServerCertificate(authority, { hostnames, ipAddresses: ["127.0.0.1"] })
      expect("getMetadata" in Reflect).toBe(false)
      const caCertificate = new X509Certificate(authority.certPem)
      expect(caCertificate.ca).toBe(true)
      expect(caCertificate.subject).toBe("CN=effect-dsql test CA")
      const serverCertificate = new X509Certificate(issued.certPem)
      expect(serverCertificate.ca).toBe(false)
      expect(serverCertificate.checkIssued(caCertificate)).toBe(true)
      expect(serverCertificate.verify(caCertificate.publicKey)).toBe(true)
      expect(serverCertificate.subjectAltName).toBe(
        "DNS:*.dsql.us-east-1.on.aws, DNS:localhost, IP Address:127.0.0.1"
      )
      expect(serverCertificate.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1"])
      const validFrom = Date.parse(serverCertificate.validFrom)
      const validTo = Date.parse(serverCertificate.validTo)
      expect(Math.abs(validFrom - (Date.now() - 60 * 60 * 1000))).toBeLessThan(60_000)
      expect(Math.abs(validTo - (Date.now() + 30 * day))).toBeLessThan(60_000)
      for (const { keyPem } of [authority, issued]) {
        expect(keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/)
        const key = createPrivateKey(keyPem)
        expect(key.asymmetricKeyType).toBe("ec")
        expect(key.asymmetricKeyDetails?.namedCurve).toBe("prime256v1")
      }
    }))

  it.scoped("a client verifying in full accepts the cluster endpoint, localhost and the IP", () =>
    Effect.gen(function*() {
      const authority = yield* makeAuthority()
      const port = yield* serve(yield* issueServerCertificate(authority, { hostnames, ipAddresses: ["127.0.0.1"] }))
      for (const servername of ["abc.dsql.us-east-1.on.aws", "localhost"]) {
        expect(yield* handshake(port, { ca: authority.certPem, servername })).toBe("authorized")
      }
      const byAddress = yield* Effect.async<boolean>((resume) => {
        const socket = tls.connect({ host: "127.0.0.1", port, ca: authority.certPem }, () => {
          resume(Effect.succeed(socket.authorized))
          socket.destroy()
        })
        socket.once("error", () => resume(Effect.succeed(false)))
      })
      expect(byAddress).toBe(true)
    }))

  it.scoped("a client refuses another host name", () =>
    Effect.gen(function*() {
      const authority = yield* makeAuthority()
      const port = yield* serve(yield* issueServerCertificate(authority, { hostnames }))
      expect(yield* handshake(port, { ca: authority.certPem, servername: "other.example.com" })).toBe(
        "ERR_TLS_CERT_ALTNAME_INVALID"
      )
      expect(yield* handshake(port, { ca: authority.certPem, servername: "a.b.dsql.us-east-1.on.aws" })).toBe(
        "ERR_TLS_CERT_ALTNAME_INVALID"
      )
    }))

  it.scoped("a client trusting another authority refuses the certificate", () =>
    Effect.gen(function*() {
      const authority = yield* makeAuthority()
      const stranger = yield* makeAuthority({ commonName: "DsqlLocal test authority" })
      const port = yield* serve(yield* issueServerCertificate(authority, { hostnames }))
      expect(yield* handshake(port, { ca: stranger.certPem, servername: "abc.dsql.us-east-1.on.aws" })).toBe(
        "UNABLE_TO_VERIFY_LEAF_SIGNATURE"
      )
    }))

  it.scoped("an expired or not yet valid certificate is refused", () =>
    Effect.gen(function*() {
      const authority = yield* makeAuthority()
      const expired = yield* issueServerCertificate(authority, {
        hostnames,
        notBefore: new Date(Date.now() - 2 * day),
        notAfter: new Date(Date.now() - day)
      })
      const early = yield* issueServerCertificate(authority, { hostnames, notBefore: new Date(Date.now() + day) })
      const servername = "abc.dsql.us-east-1.on.aws"
      expect(yield* handshake(yield* serve(expired), { ca: authority.certPem, servername })).toBe("CERT_HAS_EXPIRED")
      expect(yield* handshake(yield* serve(early), { ca: authority.certPem, servername })).toBe("CERT_NOT_YET_VALID")
    }))

  it.effect("invalid input fails with LocalFailure, not a defect", () =>
    Effect.gen(function*() {
      const authority = yield* makeAuthority()
      const error = yield* failureOf(issueServerCertificate(authority, { hostnames, ipAddresses: ["not-an-ip"] }))
      expect(error).toMatchObject({ _tag: "LocalFailure", reason: "Certificates" })
    }))
})
