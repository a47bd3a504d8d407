/**
 * The established session: every frame, both ways, through the session policy; the latency fault; the
 * connection-age limit; and a shutdown notice when the server stops. Plain event handlers keep the per-packet path
 * cheap; the Effect completes when the session is over, and its scope closes the sockets.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type { Duplex } from "node:stream"
import type { Action, SessionPolicy } from "./policy.js"
import type { Frame } from "./wire.js"
import { dsqlError, encode, FrameReader, MalformedFrame } from "./wire.js"

/**
 * The two sockets of an established session and what governs the relay between them.
 *
 * @since 0.1.0
 * @category models
 */
export interface RelayOptions {
  readonly client: Duplex
  readonly backend: Duplex
  /** Bytes already read from either side past the handshake. */
  readonly clientRest: Buffer
  readonly backendRest: Buffer
  readonly policy: SessionPolicy
  /** The backend's process id, from its BackendKeyData. */
  readonly backendPid: number | undefined
  /** Read for every packet, so `setLatency` applies to open sessions. */
  readonly latencyMillis: () => number
  /** Time left before the connection-age limit closes the session. */
  readonly remainingAgeMillis: number
  readonly onAgeLimit: () => void
  readonly now: () => number
}

/**
 * DSQL documents no message for the 60-minute limit; this one names the reason plainly.
 *
 * @since 0.1.0
 * @category errors
 */
export const connectionAgeExceeded = dsqlError({
  code: "57P01",
  message: "terminating connection due to connection age limit",
  fatal: true
})

/**
 * What PostgreSQL says when it shuts down under a session (DsqlLocal `stop` or scope close).
 *
 * @since 0.1.0
 * @category errors
 */
export const serverStopping = dsqlError({
  code: "57P01",
  message: "terminating connection due to administrator command",
  fatal: true
})

/** Sent when the session policy throws: the session cannot continue, the server can. */
const internalError = dsqlError({
  code: "XX000",
  message: "DsqlLocal internal error: the session is closed",
  fatal: true
})

/** setTimeout's longest delay; a longer age limit is never reached within a test run anyway. */
const maxTimerMillis = 2_147_483_647

/** Writes to a socket in order, each packet held for the current latency, pausing `source` when the socket is full. */
interface Outlet {
  readonly write: (bytes: Buffer) => void
  /** Writes every held packet now. */
  readonly flush: () => void
}

const makeOutlet = (socket: Duplex, source: Duplex, latencyMillis: () => number, now: () => number): Outlet => {
  const held: Array<{ readonly due: number; readonly bytes: Buffer }> = []
  let timer: ReturnType<typeof setTimeout> | undefined
  let waitingForDrain = false

  const send = (bytes: Buffer) => {
    if (socket.destroyed) return
    if (!socket.write(bytes) && !waitingForDrain) {
      waitingForDrain = true
      source.pause()
      socket.once("drain", () => {
        waitingForDrain = false
        source.resume()
      })
    }
  }
  const sendDue = () => {
    timer = undefined
    while (held.length > 0 && held[0]!.due <= now()) send(held.shift()!.bytes)
    schedule()
  }
  const schedule = () => {
    if (timer !== undefined || held.length === 0) return
    timer = setTimeout(sendDue, Math.max(0, held[0]!.due - now()))
  }
  return {
    write: (bytes) => {
      const latency = latencyMillis()
      if (latency <= 0 && held.length === 0) return send(bytes)
      held.push({ due: now() + latency, bytes })
      schedule()
    },
    flush: () => {
      clearTimeout(timer)
      timer = undefined
      for (const { bytes } of held.splice(0)) send(bytes)
    }
  }
}

/**
 * The bytes of a frame: the original ones (header included) when the policy passes a frame through unchanged,
 * otherwise a fresh encoding. FrameReader bodies are views into the received chunk, right after their 5-byte header.
 */
const bytesOf = (frame: Frame, received: Frame): Buffer =>
  frame === received && frame.body.byteOffset >= 5
    ? Buffer.from(frame.body.buffer, frame.body.byteOffset - 5, frame.body.length + 5)
    : encode(frame)

const joined = (parts: Array<Buffer>): Buffer => parts.length === 1 ? parts[0]! : Buffer.concat(parts)

/**
 * Relays until either side closes, the policy closes, or the age limit strikes; interruption sends `serverStopping`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const relay = (options: RelayOptions): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const { backend, client, policy } = options
    const toBackend = makeOutlet(backend, client, options.latencyMillis, options.now)
    const toClient = makeOutlet(client, backend, options.latencyMillis, options.now)
    policy.attach((actions) => {
      for (const action of actions) {
        if (action._tag === "Close") return finish()
        ;(action._tag === "ToBackend" ? toBackend : toClient).write(encode(action.frame))
      }
    }, options.backendPid)
    const clientFrames = new FrameReader()
    const backendFrames = new FrameReader()
    let finished = false

    /** Ends the relay; a defect (a policy that threw) makes the session die so that it is logged. */
    const finish = (defect?: unknown) => {
      if (finished) return
      finished = true
      clearTimeout(ageTimer)
      policy.detach()
      toBackend.flush()
      toClient.flush()
      client.off("data", onClientData)
      backend.off("data", onBackendData)
      for (const socket of [client, backend]) {
        socket.off("end", onGone)
        socket.off("close", onGone)
        socket.off("error", onGone)
      }
      resume(defect === undefined ? Effect.void : Effect.die(defect))
    }
    const onGone = () => finish()

    const route = (frames: Array<Frame>, decide: (frame: Frame) => ReadonlyArray<Action>) => {
      const forBackend: Array<Buffer> = []
      const forClient: Array<Buffer> = []
      let close = false
      try {
        for (const frame of frames) {
          for (const action of decide(frame)) {
            if (action._tag === "ToBackend") forBackend.push(bytesOf(action.frame, frame))
            else if (action._tag === "ToClient") forClient.push(bytesOf(action.frame, frame))
            else close = true
            if (close) break
          }
          if (close) break
        }
      } catch (defect) {
        // A throw inside a socket event handler would crash the process: end this session instead.
        toClient.write(encode(internalError))
        return finish(defect)
      }
      if (forBackend.length > 0) toBackend.write(joined(forBackend))
      if (forClient.length > 0) toClient.write(joined(forClient))
      if (close) finish()
    }
    /** A peer that breaks framing can't be relayed any further: the client is told why and the session ends. */
    const framed = (reader: FrameReader, chunk: Buffer, decide: (frame: Frame) => ReadonlyArray<Action>) => {
      let frames: Array<Frame>
      try {
        frames = reader.push(chunk)
      } catch (error) {
        if (!(error instanceof MalformedFrame)) throw error
        toClient.write(encode(dsqlError({ code: "08P01", message: error.message, fatal: true })))
        return finish()
      }
      route(frames, decide)
    }
    const onClientData = (chunk: Buffer) => framed(clientFrames, chunk, (frame) => policy.fromClient(frame))
    const onBackendData = (chunk: Buffer) => framed(backendFrames, chunk, (frame) => policy.fromBackend(frame))

    const ageTimer = setTimeout(() => {
      options.onAgeLimit()
      toClient.write(encode(connectionAgeExceeded))
      finish()
    }, Math.min(Math.max(0, options.remainingAgeMillis), maxTimerMillis))

    client.on("data", onClientData)
    backend.on("data", onBackendData)
    for (const socket of [client, backend]) {
      socket.on("end", onGone)
      socket.on("close", onGone)
      socket.on("error", onGone)
    }
    if (options.clientRest.length > 0) onClientData(options.clientRest)
    if (options.backendRest.length > 0) onBackendData(options.backendRest)
    if (client.destroyed || backend.destroyed) finish()
    client.resume()
    backend.resume()

    return Effect.sync(() => {
      if (finished) return
      toClient.write(encode(serverStopping))
      finish()
    })
  })
