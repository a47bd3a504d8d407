import { Effect } from "effect"
import * as Net from "node:net"

/** A TCP relay to `port` on loopback for the test's scope; after `stall()`, connections are accepted and never answered. */
export interface TcpProxy {
  readonly port: number
  readonly stall: () => void
}

export const tcpProxy = (port: number) =>
  Effect.acquireRelease(
    Effect.callback<TcpProxy & { readonly close: () => void }>((resume) => {
      const sockets = new Set<Net.Socket>()
      const track = (socket: Net.Socket) => {
        sockets.add(socket)
        socket.on("error", () => undefined).on("close", () => sockets.delete(socket))
        return socket
      }
      let stalled = false
      const server = Net.createServer((client) => {
        track(client)
        if (stalled) return
        const upstream = track(Net.connect(port, "127.0.0.1"))
        client.pipe(upstream).pipe(client)
        client.on("close", () => upstream.destroy())
        upstream.on("close", () => client.destroy())
      })
      server.listen(0, "127.0.0.1", () =>
        resume(Effect.succeed({
          port: (server.address() as Net.AddressInfo).port,
          stall: () => {
            stalled = true
          },
          close: () => {
            for (const socket of sockets) socket.destroy()
            server.close()
          }
        })))
    }),
    (proxy) => Effect.sync(proxy.close)
  )
