/**
 * Fake servers on free local ports, for what DsqlLocal cannot be made to do: speak no TLS, present a bad certificate,
 * send garbage, refuse slowly, answer a ROLLBACK with an error. Each is closed with the scope, with every socket it
 * accepted.
 */
import { Effect } from "effect"
import * as Net from "node:net"
import * as Tls from "node:tls"
import type { Authority, KeyAndCertificate } from "../../local/src/internal/certificates.js"
import { issueServerCertificate, makeAuthority } from "../../local/src/internal/certificates.js"

/** What a fake server does once the client's TLS handshake (if any) is done and its startup message arrived. */
export type Behaviour = (socket: Tls.TLSSocket) => void

/** A TCP server on a free local port whose connections get `onSocket`. */
export const plainServer = (onSocket: (socket: Net.Socket) => void) =>
  Effect.acquireRelease(
    Effect.async<{ readonly server: Net.Server; readonly sockets: Set<Net.Socket> }>((resume) => {
      const sockets = new Set<Net.Socket>()
      const server = Net.createServer((socket) => {
        sockets.add(socket)
        socket.on("error", () => undefined)
        socket.on("close", () => sockets.delete(socket))
        onSocket(socket)
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ server, sockets })))
    }),
    ({ server, sockets }) =>
      Effect.sync(() => {
        for (const socket of sockets) socket.destroy()
        server.close()
      })
  ).pipe(Effect.map(({ server }) => (server.address() as Net.AddressInfo).port))

/**
 * A TCP server that speaks TLS either way a client starts it (direct, or SSLRequest then `S`), with `certificate`,
 * then does `behaviour`.
 */
export const tlsServer = (certificate: KeyAndCertificate, behaviour: Behaviour, sslReply = Buffer.from("S")) =>
  plainServer((socket) => {
    const secureContext = Tls.createSecureContext({ key: certificate.keyPem, cert: certificate.certPem })
    const startTls = (rest: Buffer) => {
      if (rest.length > 0) socket.unshift(rest)
      const secure = new Tls.TLSSocket(socket, { isServer: true, secureContext, ALPNProtocols: ["postgresql"] })
      secure.on("error", () => socket.destroy())
      secure.once("data", () => behaviour(secure))
    }
    socket.once("data", (first: Buffer) => {
      // back to paused mode, so that the TLS socket reads what is handed back and all that follows
      socket.pause()
      if (first[0] === 0x16) return startTls(first)
      // an SSLRequest: 8 bytes; answer, then the handshake
      socket.write(sslReply)
      startTls(first.subarray(8))
    })
  })

/** An authority and a certificate from it for `hostnames`, valid until `notAfter`. */
export const issued = (hostnames: ReadonlyArray<string>, notAfter?: Date) =>
  Effect.gen(function*() {
    const authority: Authority = yield* makeAuthority()
    const certificate = yield* issueServerCertificate(authority, {
      hostnames,
      ...(notAfter === undefined ? {} : { notBefore: new Date(notAfter.getTime() - 86_400_000), notAfter })
    })
    return { ca: authority.certPem, certificate }
  })

/** One PostgreSQL message: type byte, length, body. */
export const message = (type: string, body: Buffer) => {
  const head = Buffer.alloc(5)
  head.write(type, 0, "latin1")
  head.writeInt32BE(body.length + 4, 1)
  return Buffer.concat([head, body])
}

/** An ErrorResponse of severity `severity` with SQLSTATE `code`. */
export const errorResponse = (text: string, code = "08006", severity: "ERROR" | "FATAL" = "FATAL") =>
  message("E", Buffer.from(`S${severity}\0V${severity}\0C${code}\0M${text}\0\0`, "utf8"))

const commandComplete = (tag: string) => message("C", Buffer.from(`${tag}\0`, "utf8"))

/**
 * Just enough PostgreSQL over TLS: any startup is let in, and each simple query gets `answer(query)`, or a
 * CommandComplete, then ReadyForQuery (in a transaction between BEGIN and COMMIT or ROLLBACK). `connections()`
 * counts the sessions opened.
 */
export const pgServer = (certificate: KeyAndCertificate, answer: (query: string) => Buffer | undefined) =>
  Effect.gen(function*() {
    let connections = 0
    const port = yield* tlsServer(certificate, (socket) => {
      connections += 1
      let inTransaction = false
      let pending = Buffer.alloc(0)
      socket.write(Buffer.concat([message("R", Buffer.from([0, 0, 0, 0])), message("Z", Buffer.from("I"))]))
      socket.on("data", (chunk: Buffer) => {
        pending = Buffer.concat([pending, chunk])
        while (pending.length >= 5 && pending.length >= 1 + pending.readInt32BE(1)) {
          const type = String.fromCharCode(pending[0]!)
          const body = pending.subarray(5, 1 + pending.readInt32BE(1))
          pending = pending.subarray(1 + pending.readInt32BE(1))
          if (type === "X") return socket.end()
          if (type !== "Q") continue
          const query = body.toString("utf8", 0, body.length - 1).trim().toUpperCase()
          if (query === "BEGIN") inTransaction = true
          if (query === "COMMIT" || query === "ROLLBACK") inTransaction = false
          socket.write(Buffer.concat([
            answer(query) ?? commandComplete(query.split(" ")[0]!),
            message("Z", Buffer.from(inTransaction ? "T" : "I"))
          ]))
        }
      })
    })
    return { port, connections: () => connections }
  })
