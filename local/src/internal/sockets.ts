/**
 * Sockets as DsqlLocal's handshake needs them: message reads as Effects, connecting, and closing that never leaves
 * a socket open or an 'error' event unhandled.
 *
 * @internal
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as net from "node:net"
import type { Duplex } from "node:stream"
import type { Frame } from "./wire.js"

/**
 * The peer closed, reset or broke the connection while we waited for it.
 *
 * @since 0.1.0
 * @category errors
 */
export class PeerClosed extends Data.TaggedError("PeerClosed")<{ readonly cause?: unknown }> {}

/**
 * The peer sent bytes that are not a well-formed protocol message.
 *
 * @since 0.1.0
 * @category errors
 */
export class MalformedMessage extends Data.TaggedError("MalformedMessage")<{ readonly message: string }> {}

/**
 * A socket buffered for message-by-message reads.
 *
 * @since 0.1.0
 * @category models
 */
export interface Inbox {
  /** Waits until `count` bytes are buffered and returns them without consuming them. */
  readonly peek: (count: number) => Effect.Effect<Buffer, PeerClosed>
  /** Waits until `count` bytes are buffered and consumes them. */
  readonly take: (count: number) => Effect.Effect<Buffer, PeerClosed>
  /** Reads that found nothing buffered and waited for the peer's next flight. */
  readonly flights: () => number
  /** Stops reading and hands back the bytes not consumed, for whoever reads next (TLS or the relay). */
  readonly detach: () => Buffer
}

/**
 * Keeps 'error' events from ever being unhandled: errors also surface as 'close', where sessions handle them.
 *
 * @since 0.1.0
 * @category combinators
 */
export const guard = <S extends Duplex>(socket: S): S => {
  socket.on("error", () => {})
  return socket
}

/**
 * Buffers everything the socket receives until `detach`; reads wait for enough bytes or fail when the peer goes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeInbox = (socket: Duplex): Inbox => {
  let buffer: Buffer = Buffer.alloc(0)
  let closed: PeerClosed | undefined = socket.destroyed ? new PeerClosed({}) : undefined
  let flights = 0
  let wake: (() => void) | undefined

  const onData = (chunk: Buffer) => {
    buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk])
    wake?.()
  }
  const onError = (cause: unknown) => {
    closed ??= new PeerClosed({ cause })
    wake?.()
  }
  const onClose = () => onError(undefined)
  socket.on("data", onData)
  socket.on("error", onError)
  socket.on("end", onClose)
  socket.on("close", onClose)

  const waitFor = (count: number): Effect.Effect<void, PeerClosed> =>
    Effect.suspend(() => {
      if (buffer.length >= count) return Effect.void
      if (closed !== undefined) return Effect.fail(closed)
      if (buffer.length === 0) flights += 1
      return Effect.async<void, PeerClosed>((resume) => {
        wake = () => {
          if (buffer.length >= count) resume(Effect.void)
          else if (closed !== undefined) resume(Effect.fail(closed))
          else return
          wake = undefined
        }
        return Effect.sync(() => {
          wake = undefined
        })
      })
    })

  return {
    peek: (count) => Effect.map(waitFor(count), () => buffer.subarray(0, count)),
    take: (count) =>
      Effect.map(waitFor(count), () => {
        const taken = buffer.subarray(0, count)
        buffer = buffer.subarray(count)
        return taken
      }),
    flights: () => flights,
    detach: () => {
      socket.off("data", onData)
      socket.off("error", onError)
      socket.off("end", onClose)
      socket.off("close", onClose)
      socket.pause()
      const rest = buffer
      buffer = Buffer.alloc(0)
      return rest
    }
  }
}

/**
 * Reads one typed message (type byte, length word, body); refuses lengths outside 4..`maxLength`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const takeFrame = (inbox: Inbox, maxLength: number): Effect.Effect<Frame, PeerClosed | MalformedMessage> =>
  Effect.flatMap(inbox.peek(5), (head): Effect.Effect<Frame, PeerClosed | MalformedMessage> => {
    const type = String.fromCharCode(head[0]!)
    const length = head.readInt32BE(1)
    if (length < 4 || length > maxLength) {
      return Effect.fail(new MalformedMessage({ message: `invalid length ${length} for a message of type "${type}"` }))
    }
    return Effect.map(inbox.take(1 + length), (bytes) => ({ type, body: bytes.subarray(5) }))
  })

/**
 * Reads one untyped message (length word, then a protocol or request code); refuses lengths outside 8..`maxLength`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const takeUntyped = (inbox: Inbox, maxLength: number): Effect.Effect<Buffer, PeerClosed | MalformedMessage> =>
  Effect.flatMap(inbox.peek(4), (head): Effect.Effect<Buffer, PeerClosed | MalformedMessage> => {
    const length = head.readInt32BE(0)
    if (length < 8 || length > maxLength) {
      return Effect.fail(new MalformedMessage({ message: `invalid length ${length} for a startup-phase message` }))
    }
    return Effect.map(inbox.take(length), (bytes) => bytes.subarray(4))
  })

/**
 * Opens a TCP connection; interrupting the wait destroys the socket.
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect = (host: string, port: number): Effect.Effect<net.Socket, PeerClosed> =>
  Effect.async<net.Socket, PeerClosed>((resume) => {
    const socket = guard(net.connect({ host, port, noDelay: true }))
    const onError = (cause: unknown) => resume(Effect.fail(new PeerClosed({ cause })))
    socket.once("error", onError)
    socket.once("connect", () => {
      socket.off("error", onError)
      resume(Effect.succeed(socket))
    })
    return Effect.sync(() => socket.destroy())
  })

/**
 * Ends the socket after its queued writes, waits up to `graceMillis` for the peer to close its side, then destroys it.
 *
 * @since 0.1.0
 * @category combinators
 */
export const closeGracefully = (socket: Duplex, graceMillis = 1_000): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (socket.destroyed) return resume(Effect.void)
    const timer = setTimeout(() => socket.destroy(), graceMillis)
    socket.once("close", () => {
      clearTimeout(timer)
      resume(Effect.void)
    })
    socket.end()
    return Effect.sync(() => {
      clearTimeout(timer)
      socket.destroy()
    })
  })
