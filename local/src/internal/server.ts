/**
 * DsqlLocal's TCP listener: every accepted socket becomes a session fiber; `stop` closes the listener and every
 * session, `restart` listens again on the same port.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as net from "node:net"
import { LocalFailure } from "./failure.js"

/**
 * A listening DsqlLocal: its port, and the controls behind `Server.stop` and `Server.restart`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Listener {
  /** The port bound by the first `listen` (kept by `restart`). */
  readonly port: number
  readonly stop: Effect.Effect<void>
  /** Stops if listening, then listens again on `port`; fails once the owning scope has closed. */
  readonly restart: Effect.Effect<void, LocalFailure>
}

/**
 * Where to listen, and what serves each accepted socket.
 *
 * @since 0.1.0
 * @category models
 */
export interface ListenOptions {
  readonly address: string
  readonly port: number
  readonly serve: (socket: net.Socket) => Effect.Effect<void>
}

/** One listening period: the server socket and the session fibers it accepted. */
interface Generation {
  readonly port: number
  readonly close: Effect.Effect<void>
}

const bind = (server: net.Server, address: string, port: number) =>
  Effect.async<number, NodeJS.ErrnoException>((resume) => {
    const onError = (error: NodeJS.ErrnoException) => resume(Effect.fail(error))
    server.once("error", onError)
    server.listen({ host: address, port }, () => {
      server.off("error", onError)
      resume(Effect.succeed((server.address() as net.AddressInfo).port))
    })
  })

/** A port just released by `stop` may need a moment before the kernel lets us bind it again. */
const retryWhileInUse = Schedule.spaced("50 millis").pipe(Schedule.intersect(Schedule.recurs(40)))

const open = (options: ListenOptions, port: number, waitIfInUse: boolean): Effect.Effect<Generation, LocalFailure> =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const sessions = yield* Scope.extend(FiberSet.make<void, never>(), scope)
    const run = yield* FiberSet.runtime(sessions)<never>()
    const server = net.createServer({ noDelay: true }, (socket) => {
      // The runtime keeps the flags of the fiber that captured it — uninterruptible inside acquireRelease's acquire —
      // and `stop` must be able to interrupt sessions.
      run(Effect.interruptible(options.serve(socket)))
    })
    const close = Effect.sync(() => server.close()).pipe(Effect.andThen(Scope.close(scope, Exit.void)))
    const bound = yield* bind(server, options.address, port).pipe(
      Effect.retry({ schedule: retryWhileInUse, while: (error) => waitIfInUse && error.code === "EADDRINUSE" }),
      Effect.mapError((cause) =>
        new LocalFailure({
          reason: "Listen",
          message: `cannot listen on ${options.address}:${port}: ${cause.code ?? cause.message}`,
          cause
        })
      ),
      Effect.tapError(() => Scope.close(scope, Exit.void))
    )
    server.on("error", () => {})
    return { port: bound, close }
  })

/**
 * Listens until the scope closes; closing stops the listener first, then ends every session.
 *
 * @since 0.1.0
 * @category constructors
 */
export const listen = (options: ListenOptions): Effect.Effect<Listener, LocalFailure, Scope.Scope> =>
  Effect.gen(function*() {
    const lock = yield* Effect.makeSemaphore(1)
    let released = false
    let current: Generation | undefined = yield* Effect.acquireRelease(
      open(options, options.port, false),
      () =>
        Effect.suspend(() => {
          released = true
          return current?.close ?? Effect.void
        })
    )
    const port = current.port
    const stop = Effect.suspend(() => {
      const running = current
      current = undefined
      return running?.close ?? Effect.void
    })
    const restart = Effect.gen(function*() {
      yield* stop
      if (released) {
        return yield* new LocalFailure({ reason: "Listen", message: "DsqlLocal was shut down; it cannot restart" })
      }
      current = yield* open(options, port, true)
    })
    return { port, stop: lock.withPermits(1)(stop), restart: lock.withPermits(1)(restart) }
  })
