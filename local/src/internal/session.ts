/**
 * One client connection from its first byte to its close: transport negotiation (direct TLS, SSLRequest, refusals),
 * the DSQL startup checks and IAM authentication, the backend login, then the relay.
 *
 * @internal
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as net from "node:net"
import type { Duplex } from "node:stream"
import * as tls from "node:tls"
import type { BackendConnection, BackendLoginError } from "./backendLogin.js"
import { loginToBackend } from "./backendLogin.js"
import type { ConnectionGate } from "./limits.js"
import { isRefusingConnections } from "./limits.js"
import type { SessionPolicy } from "./policy.js"
import { relay } from "./relay.js"
import { verifyToken } from "./sigv4.js"
import type { Inbox, MalformedMessage } from "./sockets.js"
import { closeGracefully, guard, makeInbox, PeerClosed, takeFrame, takeUntyped } from "./sockets.js"
import type { ClusterState, TlsMode } from "./state.js"
import type { Frame } from "./wire.js"
import {
  authentication,
  backendPidOf,
  CANCEL_REQUEST_CODE,
  dsqlError,
  encode,
  errorResponse,
  GSSENC_REQUEST_CODE,
  parameterStatus,
  parseStartupParameters,
  query,
  readCString,
  SSL_REQUEST_CODE
} from "./wire.js"

/**
 * What every session of one server shares.
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionContext {
  readonly state: ClusterState
  readonly gate: ConnectionGate
  /** `<clusterId>.dsql.<region>.on.aws`: the only SNI name accepted. */
  readonly hostname: string
  readonly region: string
  readonly secureContext: tls.SecureContext
  readonly secretFor: (accessKeyId: string) => string | undefined
  readonly backend: { readonly host: string; readonly port: number; readonly password: string | undefined }
  /** The backend's `options` startup parameter, given the client's. */
  readonly backendSessionOptions: (clientOptions: string | undefined) => string
  readonly makePolicy: () => SessionPolicy
  /** How long a client may take from its first byte to a session (PostgreSQL's authentication_timeout: 60 s). */
  readonly handshakeTimeoutMillis?: number
}

/**
 * The connection ends before it is established. `error` is sent first when present; `refused` counts it in
 * `stats.connectionsRefused` (a decision of the server, not a client that went away).
 */
class Refused extends Data.TaggedError("Refused")<{ readonly error: Frame | undefined; readonly refused: boolean }> {}

const TLS_HANDSHAKE_RECORD = 0x16
/** PostgreSQL's MAX_STARTUP_PACKET_LENGTH. */
const maxStartupLength = 10_000
/** Room for the longest tokens (session credentials make them a few kB). */
const maxPasswordLength = 64 * 1024
/** PostgreSQL's authentication_timeout default: a client that stalls the handshake longer is dropped. */
const defaultHandshakeTimeoutMillis = 60_000
/** The server_version DSQL reports, whatever PostgreSQL runs behind DsqlLocal. */
const dsqlServerVersion = "16.15"

const fatal = (code: string, message: string, hint?: string): Frame =>
  dsqlError({ code, message, fatal: true, ...(hint === undefined ? {} : { hint }) })

const refuse = (error: Frame) => new Refused({ error, refused: true })

/** Unconfirmed on the wire: DSQL's wording for plaintext is not recorded; this follows its other refusals. */
const sslRequired = fatal("28000", "unable to accept connection, ssl is required")
const sniMissing = fatal("08006", "unable to accept connection, sni was not received")
const accessDenied = (hint: string) => fatal("08006", "unable to accept connection, access denied", hint)
const backendUnavailable = fatal("08006", "unable to accept connection, the DsqlLocal backend is unavailable")

/** Only the fields a DSQL client would see; PostgreSQL's file, line and routine stay behind. */
const clientFacingFields = ["S", "V", "C", "M", "D", "H"]

const fromBackendError = (error: BackendLoginError): Frame => {
  if (error.fields === undefined) return backendUnavailable
  const fields = error.fields
  return errorResponse(
    Object.fromEntries(clientFacingFields.flatMap((code) => fields[code] === undefined ? [] : [[code, fields[code]]]))
  )
}

/** NegotiateProtocolVersion: the client asked for 3.x with x > 0 or sent `_pq_.` options; we speak 3.0. */
const negotiateProtocolVersion = (unsupported: ReadonlyArray<string>): Frame => {
  const head = Buffer.alloc(8)
  head.writeInt32BE(0, 0)
  head.writeInt32BE(unsupported.length, 4)
  return { type: "v", body: Buffer.concat([head, ...unsupported.map((name) => Buffer.from(`${name}\0`, "utf8"))]) }
}

/** Room for the backend's answers to the role-mapping query. */
const maxBackendMessageLength = 64 * 1024

/** DSQL lets a role other than `admin` in only when an IAM principal is mapped to it (`AWS IAM GRANT`). */
const roleMappingQuery = "SELECT 1 FROM sys.iam_pg_role_mappings WHERE pg_role_name = current_user LIMIT 1"

/**
 * Asks the freshly logged-in backend session whether its role has a mapping (DsqlLocal has no IAM, so any ARN
 * counts); returns the answer and the backend's bytes past it, for the relay.
 */
const hasRoleMapping = (backend: BackendConnection) =>
  Effect.gen(function*() {
    if (backend.rest.length > 0) backend.socket.unshift(backend.rest)
    const inbox = makeInbox(backend.socket)
    backend.socket.resume()
    backend.socket.write(encode(query(roleMappingQuery)))
    let mapped = false
    while (true) {
      const frame = yield* takeFrame(inbox, maxBackendMessageLength)
      if (frame.type === "D") mapped = true
      if (frame.type === "Z") return { mapped, rest: inbox.detach() }
    }
  })

const rewriteServerVersion = (frame: Frame): Frame => {
  if (frame.type !== "S") return frame
  const [name] = readCString(frame.body, 0)
  return name === "server_version" ? parameterStatus(name, dsqlServerVersion) : frame
}

/** Direct TLS or SSLRequest; GSSENCRequest is declined and plaintext refused, like DSQL. */
const negotiateTransport = (raw: net.Socket, inbox: Inbox) =>
  Effect.gen(function*() {
    while (true) {
      const first = yield* inbox.peek(1)
      if (first[0] === TLS_HANDSHAKE_RECORD) return { mode: "direct" as TlsMode, rest: inbox.detach() }
      const request = yield* takeUntyped(inbox, maxStartupLength)
      const code = request.readInt32BE(0)
      if (code === SSL_REQUEST_CODE) {
        const rest = inbox.detach()
        // Bytes sent before our answer would be read as if they came over TLS (CVE-2021-23214): refuse them.
        if (rest.length > 0) return yield* refuse(fatal("08P01", "received unencrypted data after SSL request"))
        raw.write("S")
        return { mode: "sslrequest" as TlsMode, rest }
      }
      if (code === GSSENC_REQUEST_CODE) {
        raw.write("N")
        continue
      }
      if (code === CANCEL_REQUEST_CODE) return yield* new Refused({ error: undefined, refused: false })
      return yield* refuse(sslRequired)
    }
  })

/** Runs the TLS handshake on the raw socket; `rest` is what was read from it before (the ClientHello's start). */
const startTls = (raw: net.Socket, rest: Buffer, secureContext: tls.SecureContext) =>
  Effect.async<tls.TLSSocket, PeerClosed>((resume) => {
    if (rest.length > 0) raw.unshift(rest)
    const secure = guard(new tls.TLSSocket(raw, { isServer: true, secureContext, ALPNProtocols: ["postgresql"] }))
    const fail = (cause?: unknown) => resume(Effect.fail(new PeerClosed({ cause })))
    secure.once("error", fail)
    secure.once("close", fail)
    secure.once("secure", () => {
      secure.off("error", fail)
      secure.off("close", fail)
      resume(Effect.succeed(secure))
    })
    return Effect.sync(() => secure.destroy())
  })

/** Client flights of the TLS handshake beyond the ClientHello: a full TLS 1.2 handshake needs a second one. */
const laterTlsFlights = (secure: tls.TLSSocket): number =>
  secure.getProtocol() === "TLSv1.2" && !secure.isSessionReused() ? 1 : 0

const handshake = (raw: net.Socket, context: SessionContext, answerOn: (socket: Duplex) => void) =>
  Effect.gen(function*() {
    const { state } = context
    const rawInbox = makeInbox(raw)
    const { mode, rest } = yield* negotiateTransport(raw, rawInbox)
    // Interruptible (the handshake deadline must reach a client that stalls mid-TLS): interrupting the wait destroys
    // the TLS socket it made.
    const secure = yield* Effect.acquireRelease(
      Effect.interruptible(startTls(raw, rest, context.secureContext)),
      (socket) => closeGracefully(socket)
    )
    answerOn(secure)
    state.stats.tlsModes[mode] += 1

    const inbox = makeInbox(secure)
    const startup = yield* takeUntyped(inbox, maxStartupLength)
    const protocol = startup.readInt32BE(0)
    if (protocol === CANCEL_REQUEST_CODE) return yield* new Refused({ error: undefined, refused: false })
    if (protocol >>> 16 !== 3) {
      return yield* refuse(
        fatal("0A000", `unsupported frontend protocol ${protocol >>> 16}.${protocol & 0xffff}: server supports 3.0`)
      )
    }
    const parameters = parseStartupParameters(startup.subarray(4))
    const sni = secure.servername
    if (typeof sni !== "string" || sni.length === 0) return yield* refuse(sniMissing)
    if (sni.toLowerCase() !== context.hostname) {
      return yield* refuse(
        accessDenied(`No cluster "${sni.split(".")[0]}" here: DsqlLocal serves ${context.hostname}.`)
      )
    }
    const user = parameters["user"]
    if (user === undefined || user.length === 0) {
      return yield* refuse(fatal("28000", "no PostgreSQL user name specified in startup packet"))
    }
    const database = parameters["database"] ?? user
    if (database !== "postgres") return yield* refuse(fatal("3D000", `database "${database}" does not exist`))

    const admission = context.gate.admit()
    if (admission._tag === "Refused") return yield* refuse(admission.error)
    yield* Effect.addFinalizer(() => Effect.sync(admission.release))

    const unsupportedOptions = Object.keys(parameters).filter((name) => name.startsWith("_pq_."))
    const negotiation = (protocol & 0xffff) > 0 || unsupportedOptions.length > 0
      ? [encode(negotiateProtocolVersion(unsupportedOptions))]
      : []
    secure.write(Buffer.concat([...negotiation, encode(authentication(3))]))

    const answer = yield* takeFrame(inbox, maxPasswordLength)
    if (answer.type !== "p") {
      return yield* refuse(fatal("08P01", `expected password response, got message type "${answer.type}"`))
    }
    const [token] = readCString(answer.body, 0)
    const verdict = yield* verifyToken({
      token,
      user,
      hostname: sni,
      region: context.region,
      secretFor: context.secretFor,
      now: state.now(),
      maxTokenAgeSeconds: state.limits.maxTokenAgeSeconds
    })
    if (verdict._tag === "Rejected") {
      state.stats.tokensRejected[verdict.reason] += 1
      return yield* refuse(accessDenied(verdict.hint))
    }
    state.stats.tokensVerified += 1

    const backend = yield* Effect.mapError(
      loginToBackend({
        host: context.backend.host,
        port: context.backend.port,
        user,
        password: context.backend.password,
        parameters: {
          database: "postgres",
          ...(parameters["application_name"] === undefined ? {} : { application_name: parameters["application_name"] }),
          options: context.backendSessionOptions(parameters["options"])
        }
      }),
      (error) => refuse(fromBackendError(error))
    )
    let backendRest = backend.rest
    if (user !== "admin") {
      const { mapped, rest } = yield* Effect.mapError(hasRoleMapping(backend), () => refuse(backendUnavailable))
      if (!mapped) {
        return yield* refuse(
          accessDenied(`No IAM principal is mapped to role "${user}": as admin, run AWS IAM GRANT ${user} TO '<arn>'.`)
        )
      }
      backendRest = rest
    }
    const flights = rawInbox.flights() + (mode === "direct" ? 0 : 1) + laterTlsFlights(secure) + inbox.flights()
    return { secure, backend: { ...backend, rest: backendRest }, clientRest: inbox.detach(), flights }
  })

type Established = Effect.Effect.Success<ReturnType<typeof handshake>>
type HandshakeError = Effect.Effect.Error<ReturnType<typeof handshake>>

/**
 * Serves one accepted TCP connection until it closes. Never fails: refusals are answered, broken peers closed, and
 * the scope's finalizers close every socket whatever happened (interruption included).
 *
 * @since 0.1.0
 * @category constructors
 */
export const serveConnection = (context: SessionContext) => (raw: net.Socket): Effect.Effect<void> => {
  const { state } = context
  guard(raw)
  raw.setNoDelay(true)
  const acceptedAt = state.now()
  const maxAgeMillis = state.limits.maxConnectionAgeMillis
  let answerSocket: Duplex = raw

  return Effect.gen(function*() {
    yield* Effect.addFinalizer(() => Effect.sync(() => raw.destroy()))
    if (isRefusingConnections(state)) return yield* new Refused({ error: undefined, refused: true })

    // A client that stalls the handshake (or a backend that stalls its login) ends the session: a timer interrupts
    // this fiber. Not Effect.timeout: racing a fiber per connection cost more CPU than the rest of the handshake.
    const established = yield* Effect.withFiberRuntime<Established, HandshakeError, Scope.Scope>(
      (fiber) => {
        const stalled = setTimeout(
          () => fiber.unsafeInterruptAsFork(fiber.id()),
          context.handshakeTimeoutMillis ?? defaultHandshakeTimeoutMillis
        )
        return handshake(raw, context, (socket) => {
          answerSocket = socket
        }).pipe(Effect.ensuring(Effect.sync(() => clearTimeout(stalled))))
      }
    )
    const { backend, secure } = established
    secure.write(Buffer.concat([encode(authentication(0)), ...backend.greeting.map(rewriteServerVersion).map(encode)]))
    state.stats.connectionsAccepted += 1
    state.stats.handshakeRoundTrips += established.flights

    yield* relay({
      client: secure,
      backend: backend.socket,
      clientRest: established.clientRest,
      backendRest: backend.rest,
      policy: context.makePolicy(),
      backendPid: backendPidOf(backend.greeting),
      latencyMillis: () => state.faults.latencyMillis,
      remainingAgeMillis: maxAgeMillis - (state.now() - acceptedAt),
      onAgeLimit: () => {
        state.stats.connectionsClosedByAge += 1
      },
      now: state.now
    })
  }).pipe(
    Effect.catchTags({
      Refused: (refusal) =>
        Effect.sync(() => {
          if (refusal.refused) state.stats.connectionsRefused += 1
          if (refusal.error !== undefined && !answerSocket.destroyed) answerSocket.write(encode(refusal.error))
        }),
      MalformedMessage: (malformed: MalformedMessage) =>
        Effect.sync(() => {
          if (!answerSocket.destroyed) answerSocket.write(encode(fatal("08P01", malformed.message)))
        }),
      PeerClosed: () => Effect.void
    }),
    Effect.catchAllDefect((defect) => Effect.logError("DsqlLocal: a session failed", defect)),
    Effect.ensuring(Effect.suspend(() => answerSocket === raw ? closeGracefully(raw) : Effect.void)),
    Effect.scoped
  )
}
