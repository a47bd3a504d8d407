/**
 * The SigV4 pieces a DSQL token is made of, shared by the signer (`TokenSigner`) and DsqlLocal's verifier so that
 * both compute the same thing the same way: a presigned `GET https://<host>/` for service `dsql`, only `host` signed.
 *
 * @internal
 */
import { createHash, createHmac } from "node:crypto"

export const algorithm = "AWS4-HMAC-SHA256"
export const service = "dsql"
export const terminator = "aws4_request"

/** SHA-256 of the empty body a presigned GET has. */
const emptyBodySha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/** RFC 3986 escaping as SigV4 requires: `encodeURIComponent` leaves `!'()*` alone. */
export const escapeUri = (value: string): string =>
  encodeURIComponent(value).replace(/[!'()*]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`)

const hmac = (key: string | Buffer, data: string): Buffer => createHmac("sha256", key).update(data, "utf8").digest()

/** `<yyyymmdd>/<region>/dsql/aws4_request`. */
export const credentialScope = (shortDate: string, region: string): string =>
  `${shortDate}/${region}/${service}/${terminator}`

/** The key for one day and region: HMAC chain `"AWS4" + secret` → date → region → `dsql` → `aws4_request`. */
export const signingKey = (secretAccessKey: string, shortDate: string, region: string): Buffer =>
  [shortDate, region, service, terminator].reduce<Buffer>(
    (key, part) => hmac(key, part),
    Buffer.from(`AWS4${secretAccessKey}`, "utf8")
  )

/**
 * The signature of a presigned GET of `/` on `host`, given its canonical (escaped, key-sorted) query without
 * `X-Amz-Signature`.
 */
export const signature = (
  key: Buffer,
  request: { readonly amzDate: string; readonly scope: string; readonly canonicalQuery: string; readonly host: string }
): Buffer => {
  const canonicalRequest = `GET\n/\n${request.canonicalQuery}\nhost:${request.host}\n\nhost\n${emptyBodySha256}`
  const hashed = createHash("sha256").update(canonicalRequest, "utf8").digest("hex")
  return hmac(key, `${algorithm}\n${request.amzDate}\n${request.scope}\n${hashed}`)
}
