/**
 * Test-only plaintext relay: does the startup exchange itself (the backend trusts 127.0.0.1), then passes every
 * message through the session policy — what DsqlLocal's TLS front does, without TLS or tokens.
 */
import type { Scope } from "effect"
import { Effect } from "effect"
import * as net from "node:net"
import type { Action, SessionPolicy } from "../../../local/src/internal/policy.js"
import { backendSessionOptions, makeSessionPolicy } from "../../../local/src/internal/policy.js"
import type { ClusterState } from "../../../local/src/internal/state.js"
import type { Frame } from "../../../local/src/internal/wire.js"
import {
  backendPidOf,
  encode,
  FrameReader,
  parseStartupParameters,
  PROTOCOL_3_0,
  SSL_REQUEST_CODE,
  startupMessage
} from "../../../local/src/internal/wire.js"

/** Reads the client's StartupMessage (refusing SSL), then hands over the parameters and any bytes that followed. */
const readStartup = (client: net.Socket, onStartup: (parameters: Record<string, string>, rest: Buffer) => void) => {
  let buffer = Buffer.alloc(0)
  const onData = (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk])
    while (buffer.length >= 8 && buffer.length >= buffer.readInt32BE(0)) {
      const length = buffer.readInt32BE(0)
      const code = buffer.readInt32BE(4)
      const body = buffer.subarray(8, length)
      buffer = buffer.subarray(length)
      if (code === SSL_REQUEST_CODE) {
        client.write("N")
      } else if (code === PROTOCOL_3_0) {
        client.off("data", onData)
        onStartup(parseStartupParameters(body), buffer)
        return
      } else {
        client.destroy()
        return
      }
    }
  }
  client.on("data", onData)
}

const serve = (client: net.Socket, backendPort: number, policy: SessionPolicy) => {
  client.on("error", () => client.destroy())
  readStartup(client, (parameters, early) => {
    const backend = net.connect(backendPort, "127.0.0.1")
    const closeBoth = () => {
      policy.detach()
      client.destroy()
      backend.destroy()
    }
    backend.on("error", closeBoth)
    backend.on("close", closeBoth)
    client.on("close", closeBoth)
    client.setNoDelay(true)
    backend.setNoDelay(true)
    const apply = (actions: ReadonlyArray<Action>) => {
      const forBackend: Array<Buffer> = []
      const forClient: Array<Buffer> = []
      for (const action of actions) {
        if (action._tag === "Close") return closeBoth()
        const outgoing = action._tag === "ToBackend" ? forBackend : forClient
        outgoing.push(encode(action.frame))
      }
      if (forBackend.length > 0) backend.write(Buffer.concat(forBackend))
      if (forClient.length > 0) client.write(Buffer.concat(forClient))
    }
    const clientFrames = new FrameReader()
    const backendFrames = new FrameReader()
    let ready = false
    const greeting: Array<Frame> = []
    backend.write(startupMessage({
      user: parameters.user ?? "postgres",
      database: parameters.database ?? parameters.user ?? "postgres",
      options: backendSessionOptions(parameters.options)
    }))
    backend.on("data", (chunk: Buffer) => {
      apply(
        backendFrames.push(chunk).flatMap((frame) => {
          if (ready) return policy.fromBackend(frame)
          ready = frame.type === "Z"
          greeting.push(frame)
          if (ready) policy.attach(apply, backendPidOf(greeting))
          return [{ _tag: "ToClient", frame } as const]
        })
      )
    })
    const fromClient = (chunk: Buffer) => apply(clientFrames.push(chunk).flatMap((frame) => policy.fromClient(frame)))
    client.on("data", fromClient)
    if (early.length > 0) fromClient(early)
  })
}

/** A relay on 127.0.0.1 in front of the backend on `backendPort`; every session shares `state`. */
export const relay = (backendPort: number, state: ClusterState): Effect.Effect<number, unknown, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ readonly server: net.Server; readonly sockets: Set<net.Socket> }, Error>((resume) => {
      const sockets = new Set<net.Socket>()
      const server = net.createServer((client) => {
        sockets.add(client)
        client.on("close", () => sockets.delete(client))
        serve(client, backendPort, makeSessionPolicy(state))
      })
      server.once("error", (error) => resume(Effect.fail(error)))
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ server, sockets })))
    }),
    ({ server, sockets }) =>
      Effect.async<void>((resume) => {
        sockets.forEach((socket) => socket.destroy())
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ server }) => (server.address() as net.AddressInfo).port))
