/**
 * PostgreSQL v3 wire protocol: framing and the few messages DsqlLocal writes itself.
 *
 * @internal
 */

/** A typed message: one type byte, then a body (the length word is implied). */
export interface Frame {
  readonly type: string
  readonly body: Buffer
}

/** Protocol codes that arrive in untyped messages before startup. */
export const SSL_REQUEST_CODE = 80877103
export const GSSENC_REQUEST_CODE = 80877104
export const CANCEL_REQUEST_CODE = 80877102
export const PROTOCOL_3_0 = 196608

/** A message whose length word is impossible (below the 4 bytes of the word itself). */
export class MalformedFrame extends Error {}

/**
 * Splits a byte stream into typed frames, keeping partial messages between chunks. Throws `MalformedFrame` on an
 * impossible length, which would otherwise stall the stream forever.
 */
export class FrameReader {
  private buffer: Buffer = Buffer.alloc(0)

  push(chunk: Buffer): Array<Frame> {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
    const frames: Array<Frame> = []
    let offset = 0
    while (this.buffer.length - offset >= 5) {
      const length = this.buffer.readInt32BE(offset + 1)
      if (length < 4) throw new MalformedFrame(`invalid length ${length} for a message of type ${this.buffer[offset]}`)
      if (this.buffer.length - offset < 1 + length) break
      frames.push({
        type: String.fromCharCode(this.buffer[offset]!),
        body: this.buffer.subarray(offset + 5, offset + 1 + length)
      })
      offset += 1 + length
    }
    this.buffer = this.buffer.subarray(offset)
    return frames
  }

  /** Bytes received but not yet framed (e.g. the start of a TLS record after a handshake). */
  rest(): Buffer {
    return this.buffer
  }
}

/** Encodes a typed frame. */
export const encode = (frame: Frame): Buffer => {
  const header = Buffer.alloc(5)
  header.write(frame.type, 0, "latin1")
  header.writeInt32BE(frame.body.length + 4, 1)
  return Buffer.concat([header, frame.body])
}

/** Encodes an untyped message (startup, SSLRequest): a length word then the body. */
export const encodeUntyped = (body: Buffer): Buffer => {
  const header = Buffer.alloc(4)
  header.writeInt32BE(body.length + 4, 0)
  return Buffer.concat([header, body])
}

/** A NUL-terminated UTF-8 string. */
export const cstring = (value: string): Buffer => Buffer.from(`${value}\0`, "utf8")

/** Reads a NUL-terminated string at `offset`; returns it and the offset after the NUL. */
export const readCString = (body: Buffer, offset: number): readonly [string, number] => {
  const end = body.indexOf(0, offset)
  const stop = end === -1 ? body.length : end
  return [body.toString("utf8", offset, stop), stop + 1]
}

/** Fields of an ErrorResponse / NoticeResponse, keyed by their one-letter code (S, V, C, M, H, D, …). */
export type ErrorFields = Readonly<Record<string, string>>

export const errorResponse = (fields: ErrorFields): Frame => ({
  type: "E",
  body: Buffer.concat([...Object.entries(fields).map(([code, value]) => cstring(`${code}${value}`)), Buffer.from([0])])
})

/** An ErrorResponse in DSQL's shape: severity, SQLSTATE, message and an optional hint. */
export const dsqlError = (
  options: { readonly code: string; readonly message: string; readonly hint?: string; readonly fatal?: boolean }
): Frame => {
  const severity = options.fatal === true ? "FATAL" : "ERROR"
  return errorResponse({
    S: severity,
    V: severity,
    C: options.code,
    M: options.message,
    ...(options.hint === undefined ? {} : { H: options.hint })
  })
}

export const parseErrorFields = (body: Buffer): Record<string, string> => {
  const fields: Record<string, string> = {}
  let offset = 0
  while (offset < body.length && body[offset] !== 0) {
    const code = String.fromCharCode(body[offset]!)
    const [value, next] = readCString(body, offset + 1)
    fields[code] = value
    offset = next
  }
  return fields
}

export type TransactionStatus = "I" | "T" | "E"

export const readyForQuery = (status: TransactionStatus): Frame => ({ type: "Z", body: Buffer.from(status, "latin1") })
export const commandComplete = (tag: string): Frame => ({ type: "C", body: cstring(tag) })
export const query = (sql: string): Frame => ({ type: "Q", body: cstring(sql) })
export const parameterStatus = (name: string, value: string): Frame => ({
  type: "S",
  body: Buffer.concat([cstring(name), cstring(value)])
})

/** AuthenticationRequest: 0 = ok, 3 = cleartext password. */
export const authentication = (code: number, extra: Buffer = Buffer.alloc(0)): Frame => {
  const head = Buffer.alloc(4)
  head.writeInt32BE(code, 0)
  return { type: "R", body: Buffer.concat([head, extra]) }
}

/** Reads the key/value pairs of a StartupMessage body (after the protocol word). */
export const parseStartupParameters = (body: Buffer): Record<string, string> => {
  const parameters: Record<string, string> = {}
  let offset = 0
  while (offset < body.length && body[offset] !== 0) {
    const [key, afterKey] = readCString(body, offset)
    const [value, afterValue] = readCString(body, afterKey)
    parameters[key] = value
    offset = afterValue
  }
  return parameters
}

export const startupMessage = (parameters: Readonly<Record<string, string>>): Buffer => {
  const protocol = Buffer.alloc(4)
  protocol.writeInt32BE(PROTOCOL_3_0, 0)
  const pairs = Object.entries(parameters).flatMap(([key, value]) => [cstring(key), cstring(value)])
  return encodeUntyped(Buffer.concat([protocol, ...pairs, Buffer.from([0])]))
}

const int16 = (value: number): Buffer => {
  const bytes = Buffer.alloc(2)
  bytes.writeInt16BE(value, 0)
  return bytes
}

/** Parse of `sql` as the prepared statement `name`, parameter types left to the server. */
export const parseMessage = (name: string, sql: string): Frame => ({
  type: "P",
  body: Buffer.concat([cstring(name), cstring(sql), int16(0)])
})

/** Bind of `statement` to `portal` with no parameters and text results. */
export const bindMessage = (portal: string, statement: string): Frame => ({
  type: "B",
  body: Buffer.concat([cstring(portal), cstring(statement), int16(0), int16(0), int16(0)])
})

/** Execute of `portal`, all rows. */
export const executeMessage = (portal: string): Frame => ({
  type: "E",
  body: Buffer.concat([cstring(portal), Buffer.alloc(4)])
})

/** Close of a portal (`P`) or a prepared statement (`S`). */
export const closeMessage = (target: "P" | "S", name: string): Frame => ({
  type: "C",
  body: Buffer.concat([Buffer.from(target), cstring(name)])
})

/**
 * A Bind's parameter values as text (`null` for NULL), or `undefined` when one is in binary format; `offset` is where
 * the parameter formats start.
 */
export const bindTextParameters = (body: Buffer, offset: number): Array<string | null> | undefined => {
  let cursor = offset
  const formats = body.readInt16BE(cursor)
  for (let index = 0; index < formats; index++) {
    if (body.readInt16BE(cursor + 2 + 2 * index) !== 0) return undefined
  }
  cursor += 2 + 2 * formats
  const count = body.readInt16BE(cursor)
  cursor += 2
  const values: Array<string | null> = []
  for (let index = 0; index < count; index++) {
    const length = body.readInt32BE(cursor)
    cursor += 4
    values.push(length < 0 ? null : body.toString("utf8", cursor, cursor + length))
    cursor += Math.max(length, 0)
  }
  return values
}

/** The backend's process id from its greeting's BackendKeyData, if it sent one. */
export const backendPidOf = (greeting: ReadonlyArray<Frame>): number | undefined => {
  const keyData = greeting.find((frame) => frame.type === "K")
  return keyData === undefined ? undefined : keyData.body.readInt32BE(0)
}

/** The same Bind with its parameter formats and values removed; `offset` is where the parameter formats start. */
export const bindWithoutParameters = (body: Buffer, offset: number): Frame => {
  let cursor = offset
  const formats = body.readInt16BE(cursor)
  cursor += 2 + 2 * formats
  const parameters = body.readInt16BE(cursor)
  cursor += 2
  for (let index = 0; index < parameters; index++) {
    const length = body.readInt32BE(cursor)
    cursor += 4 + Math.max(length, 0)
  }
  return {
    type: "B",
    body: Buffer.concat([body.subarray(0, offset), int16(0), int16(0), body.subarray(cursor)])
  }
}
