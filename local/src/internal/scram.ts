/**
 * The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it, without channel binding: DsqlLocal
 * logs in to an external backend that asks for it.
 *
 * @internal
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto"

/**
 * One SCRAM exchange: send `clientFirst`, answer the server-first message with `respond`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ScramExchange {
  readonly clientFirst: string
  /** Computes the client-final message, or says why the server-first message is unacceptable. */
  readonly respond: (serverFirst: string) => ScramResponse
}

/**
 * The client-final message and the check of the server's signature, or why the server-first message was refused.
 *
 * @since 0.1.0
 * @category models
 */
export type ScramResponse =
  | {
    readonly _tag: "Continue"
    readonly clientFinal: string
    /** True when the server-final message proves the server knows the password. */
    readonly verify: (serverFinal: string) => boolean
  }
  | { readonly _tag: "Invalid"; readonly reason: string }

const hmac = (key: Buffer, data: string): Buffer => createHmac("sha256", key).update(data).digest()
const sha256 = (data: Buffer): Buffer => createHash("sha256").update(data).digest()

const attributes = (message: string): Map<string, string> =>
  new Map(message.split(",").map((part) => [part.slice(0, 1), part.slice(2)] as const))

/**
 * PostgreSQL ignores the SCRAM user name (the startup packet names the role), so it is sent empty.
 *
 * @since 0.1.0
 * @category constructors
 */
export const startScram = (password: string, clientNonce = randomBytes(18).toString("base64")): ScramExchange => {
  const clientFirstBare = `n=,r=${clientNonce}`
  return {
    clientFirst: `n,,${clientFirstBare}`,
    respond: (serverFirst) => {
      const fields = attributes(serverFirst)
      const nonce = fields.get("r")
      const salt = fields.get("s")
      const iterations = Number(fields.get("i"))
      if (nonce === undefined || !nonce.startsWith(clientNonce) || nonce.length === clientNonce.length) {
        return { _tag: "Invalid", reason: "the server nonce does not extend the client nonce" }
      }
      if (salt === undefined || !Number.isInteger(iterations) || iterations < 1) {
        return { _tag: "Invalid", reason: "the server-first message lacks a salt or an iteration count" }
      }
      const saltedPassword = pbkdf2Sync(password, Buffer.from(salt, "base64"), iterations, 32, "sha256")
      const clientKey = hmac(saltedPassword, "Client Key")
      const serverKey = hmac(saltedPassword, "Server Key")
      const clientFinalWithoutProof = `c=biws,r=${nonce}`
      const authMessage = `${clientFirstBare},${serverFirst},${clientFinalWithoutProof}`
      const clientSignature = hmac(sha256(clientKey), authMessage)
      const proof = Buffer.from(clientKey.map((byte, index) => byte ^ clientSignature[index]!))
      const serverSignature = hmac(serverKey, authMessage)
      return {
        _tag: "Continue",
        clientFinal: `${clientFinalWithoutProof},p=${proof.toString("base64")}`,
        verify: (serverFinal) => {
          const verifier = attributes(serverFinal).get("v")
          if (verifier === undefined) return false
          const received = Buffer.from(verifier, "base64")
          return received.length === serverSignature.length && timingSafeEqual(received, serverSignature)
        }
      }
    }
  }
}
