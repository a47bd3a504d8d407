/**
 * Test-only clients of the relay: node-postgres (simple and extended protocol) and a raw wire session that
 * pipelines messages.
 */
import type { Scope } from "effect"
import { Effect } from "effect"
import * as net from "node:net"
import pg from "pg"
import type { Frame } from "../../../local/src/internal/wire.js"
import { encode, FrameReader, parseErrorFields, readCString, startupMessage } from "../../../local/src/internal/wire.js"

/** A connected node-postgres client, ended with the scope. */
export const connect = (port: number): Effect.Effect<pg.Client, unknown, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise(async () => {
      const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "postgres" })
      client.on("error", () => undefined)
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.end().catch(() => undefined))
  )

/** Runs one query; fails with node-postgres' DatabaseError (SQLSTATE in `code`). */
export const query = (
  client: pg.Client,
  text: string,
  values?: ReadonlyArray<unknown>
): Effect.Effect<pg.QueryResult, pg.DatabaseError> =>
  Effect.tryPromise({
    try: () => client.query(text, values === undefined ? undefined : [...values]),
    catch: (error) => error as pg.DatabaseError
  })

/** Expects `effect` to fail and returns the DatabaseError. */
export const failure = <A>(effect: Effect.Effect<A, pg.DatabaseError>): Effect.Effect<pg.DatabaseError> =>
  Effect.flip(effect).pipe(Effect.orDieWith(() => new Error("expected the query to fail")))

/** A unique table name for one test. */
export const tableName = (prefix: string): string => `${prefix}_${Math.random().toString(36).slice(2, 10)}`

/** What a raw session saw: one entry per message, e.g. `C:INSERT 0 1`, `E:0A000`, `Z:T`, `D`. */
export type Seen = ReadonlyArray<string>

const describe = (frame: Frame): string => {
  switch (frame.type) {
    case "C":
      return `C:${readCString(frame.body, 0)[0]}`
    case "E":
      return `E:${parseErrorFields(frame.body).C}`
    case "Z":
      return `Z:${frame.body.toString("latin1")}`
    default:
      return frame.type
  }
}

/** A raw protocol session: sends frames in one write and reads answers until `readyCount` ReadyForQuery messages. */
export interface RawSession {
  readonly exchange: (frames: ReadonlyArray<Frame>, readyCount: number) => Effect.Effect<Seen>
}

export const rawSession = (port: number): Effect.Effect<RawSession, unknown, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<net.Socket, Error>((resume) => {
      const socket = net.connect(port, "127.0.0.1")
      socket.once("error", (error) => resume(Effect.fail(error)))
      socket.once("connect", () => resume(Effect.succeed(socket)))
    }),
    (socket) => Effect.sync(() => socket.destroy())
  ).pipe(
    Effect.flatMap((socket) => {
      const reader = new FrameReader()
      const exchange = (frames: ReadonlyArray<Frame>, readyCount: number, raw?: Buffer) =>
        Effect.async<Seen>((resume) => {
          const seen: Array<string> = []
          let ready = 0
          const onData = (chunk: Buffer) => {
            for (const frame of reader.push(chunk)) {
              seen.push(describe(frame))
              if (frame.type === "Z" && ++ready === readyCount) {
                socket.off("data", onData)
                resume(Effect.succeed(seen))
              }
            }
          }
          socket.on("data", onData)
          socket.write(raw ?? Buffer.concat(frames.map(encode)))
        })
      return exchange([], 1, startupMessage({ user: "postgres", database: "postgres" })).pipe(
        Effect.as({ exchange: (frames: ReadonlyArray<Frame>, readyCount: number) => exchange(frames, readyCount) })
      )
    })
  )

const cstring = (value: string): Buffer => Buffer.from(`${value}\0`, "utf8")

/** Extended-protocol messages for raw sessions: an unnamed statement and portal with text parameters. */
export const extended = (sql: string, parameters: ReadonlyArray<string> = []): ReadonlyArray<Frame> => {
  const count = Buffer.alloc(2)
  count.writeInt16BE(parameters.length, 0)
  const values = parameters.map((value) => {
    const length = Buffer.alloc(4)
    length.writeInt32BE(Buffer.byteLength(value), 0)
    return Buffer.concat([length, Buffer.from(value)])
  })
  return [
    { type: "P", body: Buffer.concat([cstring(""), cstring(sql), Buffer.from([0, 0])]) },
    {
      type: "B",
      body: Buffer.concat([cstring(""), cstring(""), Buffer.from([0, 0]), count, ...values, Buffer.from([0, 0])])
    },
    { type: "D", body: Buffer.concat([Buffer.from("P"), cstring("")]) },
    { type: "E", body: Buffer.concat([cstring(""), Buffer.alloc(4)]) }
  ]
}

export const sync: Frame = { type: "S", body: Buffer.alloc(0) }
