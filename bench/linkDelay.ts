/**
 * A TCP relay that holds every chunk for a fixed delay in each direction before passing it on, in order: a network
 * link whose round trip is the sum of both delays, handshake included. (DsqlLocal's `setLatency` fault delays the
 * packets of established sessions only.) A direction with no delay passes chunks on at once, so that a round trip
 * below the timers' 1 ms granularity each way can still be modelled (1 ms one way, none the other).
 */
import { Effect } from "effect"
import * as Net from "node:net"

/** How long the link holds chunks: client → server (`requestMs`) and server → client (`replyMs`). */
export interface Delays {
  readonly requestMs: number
  readonly replyMs: number
}

const forwardDelayed = (from: Net.Socket, to: Net.Socket, delayMs: number) => {
  if (delayMs <= 0) {
    from.on("data", (chunk: Buffer) => {
      if (!to.destroyed) to.write(chunk)
    })
    from.on("end", () => to.end())
    return
  }
  const held: Array<{ readonly due: number; readonly chunk: Buffer | undefined }> = []
  let timer: ReturnType<typeof setTimeout> | undefined
  const flush = () => {
    timer = undefined
    while (held.length > 0 && held[0]!.due <= performance.now()) {
      const { chunk } = held.shift()!
      if (chunk === undefined) to.end()
      else if (!to.destroyed) to.write(chunk)
    }
    // the clock may pass `due` between the loop's check and here: Node warns on a negative delay (and waits 1 ms)
    if (held.length > 0) timer = setTimeout(flush, Math.max(0, held[0]!.due - performance.now()))
  }
  const hold = (chunk: Buffer | undefined) => {
    held.push({ due: performance.now() + delayMs, chunk })
    if (timer === undefined) timer = setTimeout(flush, delayMs)
  }
  from.on("data", hold)
  from.on("end", () => hold(undefined))
}

/** Listens on 127.0.0.1 for the scope's lifetime, relaying to `target` with the given delays. */
export const linkDelay = (target: { readonly address: string; readonly port: number }, delays: Delays) =>
  Effect.acquireRelease(
    Effect.async<{ readonly server: Net.Server; readonly sockets: Set<Net.Socket>; readonly port: number }>(
      (resume) => {
        const sockets = new Set<Net.Socket>()
        const server = Net.createServer((client) => {
          const upstream = Net.connect(target.port, target.address)
          for (const socket of [client, upstream]) {
            sockets.add(socket)
            socket.setNoDelay(true)
            socket.on("error", () => {
              client.destroy()
              upstream.destroy()
            })
            socket.on("close", () => sockets.delete(socket))
          }
          forwardDelayed(client, upstream, delays.requestMs)
          forwardDelayed(upstream, client, delays.replyMs)
        })
        server.listen(
          0,
          "127.0.0.1",
          () => resume(Effect.succeed({ server, sockets, port: (server.address() as Net.AddressInfo).port }))
        )
      }
    ),
    ({ server, sockets }) =>
      Effect.async<void>((resume) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ port }) => ({ address: "127.0.0.1", port })))
