/**
 * Logging in to the backend PostgreSQL for a client DsqlLocal has authenticated: startup, the backend's own
 * authentication (trust, cleartext, MD5 or SCRAM-SHA-256 with the backend password), then the greeting the client
 * should see (ParameterStatus, BackendKeyData, notices, ReadyForQuery).
 *
 * @internal
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { createHash } from "node:crypto"
import type * as net from "node:net"
import { startScram } from "./scram.js"
import type { ScramExchange, ScramResponse } from "./scram.js"
import { closeGracefully, connect, makeInbox, takeFrame } from "./sockets.js"
import type { Frame } from "./wire.js"
import { encode, parseErrorFields, readCString, startupMessage } from "./wire.js"

/**
 * Why the backend did not let the client in. `fields` holds the backend's ErrorResponse when it answered one.
 *
 * @since 0.1.0
 * @category errors
 */
export class BackendLoginError extends Data.TaggedError("BackendLoginError")<{
  readonly reason: "Unavailable" | "Refused" | "Protocol"
  readonly message: string
  readonly fields?: Readonly<Record<string, string>>
  readonly cause?: unknown
}> {}

/**
 * Where the backend is and whom to log in as.
 *
 * @since 0.1.0
 * @category models
 */
export interface BackendLoginOptions {
  readonly host: string
  readonly port: number
  readonly user: string
  /** Sent when the backend asks for a password; `undefined` for trust authentication. */
  readonly password: string | undefined
  /** Startup parameters besides `user` (database, application_name, options). */
  readonly parameters: Readonly<Record<string, string>>
}

/**
 * A backend session ready for queries, with what the client should see of its greeting.
 *
 * @since 0.1.0
 * @category models
 */
export interface BackendConnection {
  readonly socket: net.Socket
  /** Everything the backend sent after AuthenticationOk, ending with ReadyForQuery. */
  readonly greeting: ReadonlyArray<Frame>
  /** Bytes the backend sent after ReadyForQuery, not yet framed. */
  readonly rest: Buffer
}

const maxMessageLength = 1024 * 1024
const terminate = encode({ type: "X", body: Buffer.alloc(0) })

const AuthenticationOk = 0
const AuthenticationCleartextPassword = 3
const AuthenticationMD5Password = 5
const AuthenticationSASL = 10
const AuthenticationSASLContinue = 11
const AuthenticationSASLFinal = 12

const passwordMessage = (body: Buffer): Buffer => encode({ type: "p", body })
const cstring = (value: string): Buffer => Buffer.from(`${value}\0`, "utf8")

const md5Hex = (data: Buffer | string): string => createHash("md5").update(data).digest("hex")

/** PostgreSQL's MD5 answer: `"md5" + md5(md5(password + user) + salt)`. */
const md5Answer = (password: string, user: string, salt: Buffer): string =>
  `md5${md5Hex(Buffer.concat([Buffer.from(md5Hex(password + user)), salt]))}`

const saslInitialResponse = (mechanism: string, data: string): Buffer => {
  const bytes = Buffer.from(data, "utf8")
  const length = Buffer.alloc(4)
  length.writeInt32BE(bytes.length, 0)
  return passwordMessage(Buffer.concat([cstring(mechanism), length, bytes]))
}

const saslMechanisms = (body: Buffer): Array<string> => {
  const mechanisms: Array<string> = []
  let offset = 4
  while (offset < body.length && body[offset] !== 0) {
    const [mechanism, next] = readCString(body, offset)
    mechanisms.push(mechanism)
    offset = next
  }
  return mechanisms
}

const protocolError = (message: string, cause?: unknown) =>
  new BackendLoginError({ reason: "Protocol", message: `backend login: ${message}`, cause })

/**
 * Sends Terminate so the backend ends the session cleanly, then closes the socket.
 *
 * @since 0.1.0
 * @category combinators
 */
export const closeBackend = (socket: net.Socket): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (socket.writable) socket.write(terminate)
    return closeGracefully(socket)
  })

/**
 * Connects and logs in; the socket belongs to the surrounding scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const loginToBackend = (
  options: BackendLoginOptions
): Effect.Effect<BackendConnection, BackendLoginError, Scope.Scope> =>
  Effect.gen(function*() {
    // Interruptible, like every wait of the login, so that the handshake deadline reaches a backend that stalls.
    const socket = yield* Effect.acquireRelease(
      Effect.mapError(Effect.interruptible(connect(options.host, options.port)), (error) =>
        new BackendLoginError({
          reason: "Unavailable",
          message: `cannot reach the backend PostgreSQL at ${options.host}:${options.port}`,
          cause: error.cause
        })),
      closeBackend
    )
    const inbox = makeInbox(socket)
    socket.write(startupMessage({ user: options.user, ...options.parameters }))

    const needPassword = Effect.suspend(() =>
      options.password === undefined
        ? Effect.fail(protocolError("the backend asks for a password and none is configured"))
        : Effect.succeed(options.password)
    )
    const greeting: Array<Frame> = []
    let scram: ScramExchange | undefined
    let scramStep: ScramResponse | undefined

    while (true) {
      const frame = yield* Effect.mapError(takeFrame(inbox, maxMessageLength), (error) =>
        error._tag === "PeerClosed"
          ? new BackendLoginError({
            reason: "Unavailable",
            message: "the backend PostgreSQL closed the connection during login",
            cause: error.cause
          })
          : protocolError(error.message))
      switch (frame.type) {
        case "R": {
          const code = frame.body.readInt32BE(0)
          if (code === AuthenticationOk) break
          if (code === AuthenticationCleartextPassword) {
            socket.write(passwordMessage(cstring(yield* needPassword)))
          } else if (code === AuthenticationMD5Password) {
            socket.write(
              passwordMessage(cstring(md5Answer(yield* needPassword, options.user, frame.body.subarray(4, 8))))
            )
          } else if (code === AuthenticationSASL) {
            if (!saslMechanisms(frame.body).includes("SCRAM-SHA-256")) {
              return yield* protocolError("the backend offers no SASL mechanism DsqlLocal speaks (SCRAM-SHA-256)")
            }
            scram = startScram(yield* needPassword)
            socket.write(saslInitialResponse("SCRAM-SHA-256", scram.clientFirst))
          } else if (code === AuthenticationSASLContinue && scram !== undefined) {
            scramStep = scram.respond(frame.body.toString("utf8", 4))
            if (scramStep._tag === "Invalid") return yield* protocolError(`SCRAM: ${scramStep.reason}`)
            socket.write(passwordMessage(Buffer.from(scramStep.clientFinal, "utf8")))
          } else if (code === AuthenticationSASLFinal && scramStep?._tag === "Continue") {
            if (!scramStep.verify(frame.body.toString("utf8", 4))) {
              return yield* protocolError("SCRAM: the backend's signature does not match the password")
            }
          } else {
            return yield* protocolError(`unsupported authentication request ${code}`)
          }
          break
        }
        case "E": {
          const fields = parseErrorFields(frame.body)
          return yield* new BackendLoginError({
            reason: "Refused",
            message: `the backend refused the login: ${fields["M"] ?? "no message"}`,
            fields
          })
        }
        case "Z": {
          greeting.push(frame)
          return { socket, greeting, rest: inbox.detach() }
        }
        case "v":
          // NegotiateProtocolVersion: we ask for plain 3.0, so this only lists options we never send.
          break
        default:
          greeting.push(frame)
      }
    }
  })
