/**
 * Verification of DSQL IAM tokens: SigV4 query-presigned `GET https://<host>/?Action=…` URLs without their scheme.
 * The signature is recomputed from the secret of the access key id by `@smithy/signature-v4` (the presigner
 * `@aws-sdk/dsql-signer` uses), presigning at the token's own `X-Amz-Date`, so DsqlLocal accepts exactly what a real
 * cluster accepts from `@aws-sdk/dsql-signer`, the AWS CLI or any other SDK.
 *
 * @internal
 */
import { Sha256 } from "@smithy/core/checksum"
import { escapeUri } from "@smithy/core/protocols"
import {
  ALGORITHM_IDENTIFIER,
  ALGORITHM_QUERY_PARAM,
  AMZ_DATE_QUERY_PARAM,
  CREDENTIAL_QUERY_PARAM,
  EXPIRES_QUERY_PARAM,
  MAX_PRESIGNED_TTL,
  SIGNATURE_QUERY_PARAM,
  SignatureV4,
  SIGNED_HEADERS_QUERY_PARAM
} from "@smithy/signature-v4"
import * as Effect from "effect/Effect"
import { timingSafeEqual } from "node:crypto"
import type { TokenRejection } from "./state.js"

/**
 * What a token is checked against.
 *
 * @since 0.1.0
 * @category models
 */
export interface VerifyInput {
  /** The cleartext password the client sent. */
  readonly token: string
  /** The user of the startup packet. */
  readonly user: string
  /** The TLS SNI name the client connected with (the cluster endpoint). */
  readonly hostname: string
  /** The server's region. */
  readonly region: string
  /** The secret access key of an access key id, or `undefined` when the id is unknown. */
  readonly secretFor: (accessKeyId: string) => string | undefined
  /** Current time, epoch milliseconds. */
  readonly now: number
  /** Fault injection: refuse tokens whose X-Amz-Date is older than this many seconds. */
  readonly maxTokenAgeSeconds?: number | undefined
}

/**
 * The verdict on a token. A hint never contains the secret key, the signature, the session token or the token.
 *
 * @since 0.1.0
 * @category models
 */
export type VerifyResult =
  | { readonly _tag: "Accepted"; readonly accessKeyId: string; readonly action: "DbConnect" | "DbConnectAdmin" }
  | { readonly _tag: "Rejected"; readonly reason: TokenRejection; readonly hint: string }

const service = "dsql"
const terminator = "aws4_request"
const allowedClockSkewMillis = 5 * 60 * 1000
/** The parameters the presigner writes itself; every other one is part of the request it signs. */
const presignerParameters = [
  ALGORITHM_QUERY_PARAM,
  CREDENTIAL_QUERY_PARAM,
  AMZ_DATE_QUERY_PARAM,
  EXPIRES_QUERY_PARAM,
  SIGNATURE_QUERY_PARAM,
  SIGNED_HEADERS_QUERY_PARAM
] as const
const writtenByPresigner: ReadonlySet<string> = new Set(presignerParameters)
const requiredParameters = ["Action", ...presignerParameters] as const

type Rejected = Extract<VerifyResult, { readonly _tag: "Rejected" }>

const rejected = (reason: TokenRejection, hint: string): Rejected => ({ _tag: "Rejected", reason, hint })

/** Echoes a value from the token in a hint, bounded so that no long value can be carried out whole. */
const shown = (value: string): string => value.length > 24 ? `${value.slice(0, 24)}…` : value

const decode = (raw: string): string | undefined => {
  try {
    return decodeURIComponent(raw)
  } catch {
    return undefined
  }
}

/**
 * Parses the query by name. Every key and value must be in canonical SigV4 form (exactly as a signer writes it), so
 * that two spellings of one token cannot both verify; keys must be unique.
 */
const parseQuery = (query: string): ReadonlyMap<string, string> | string => {
  const parameters = new Map<string, string>()
  for (const part of query.split("&")) {
    const equals = part.indexOf("=")
    if (equals < 1) return "Each query-string parameter must have the form name=value."
    const rawKey = part.slice(0, equals)
    const rawValue = part.slice(equals + 1)
    const key = decode(rawKey)
    const value = decode(rawValue)
    if (
      key === undefined || value === undefined || escapeUri(key) !== rawKey || escapeUri(value) !== rawValue
    ) {
      return "Query-string parameters must be percent-encoded as in RFC 3986, with upper-case hexadecimal digits."
    }
    if (parameters.has(key)) return `Query-string parameter '${shown(key)}' must not be repeated.`
    parameters.set(key, value)
  }
  return parameters
}

const amzDatePattern = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/

/** Formats epoch milliseconds as an ISO 8601 basic timestamp, `yyyyMMddTHHmmssZ` (out-of-range times as numbers). */
const amzDate = (millis: number): string => {
  const date = new Date(millis)
  return Number.isNaN(date.getTime()) ? String(millis) : date.toISOString().replace(/[-:]|\.\d{3}/g, "")
}

const parseAmzDate = (value: string): number | undefined => {
  const match = amzDatePattern.exec(value)
  if (match === null) return undefined
  const [, year, month, day, hour, minute, second] = match.map(Number)
  const millis = Date.UTC(year!, month! - 1, day!, hour!, minute!, second!)
  return amzDate(millis) === value ? millis : undefined
}

const describeSeconds = (seconds: number): string => seconds % 60 === 0 ? `${seconds / 60} min.` : `${seconds} sec.`

const expiredHint = (signedAt: number, now: number, windowSeconds: number): string =>
  `Signature expired: ${amzDate(signedAt)} is now earlier than ${amzDate(now - windowSeconds * 1000)} (${
    amzDate(now)
  } - ${describeSeconds(windowSeconds)})`

interface SignedRequest {
  readonly host: string
  readonly parameters: ReadonlyMap<string, string>
  readonly signedAt: number
  readonly expiresSeconds: number
  readonly region: string
  readonly accessKeyId: string
  readonly secret: string
}

/** The signature `@smithy/signature-v4` gives the token's request, presigned at the token's own date. */
const expectedSignature = (request: SignedRequest): Effect.Effect<Buffer, unknown> =>
  Effect.tryPromise(async () => {
    const signer = new SignatureV4({
      service,
      region: request.region,
      credentials: { accessKeyId: request.accessKeyId, secretAccessKey: request.secret },
      sha256: Sha256
    })
    const presigned = await signer.presign(
      {
        method: "GET",
        protocol: "https:",
        hostname: request.host,
        path: "/",
        query: Object.fromEntries([...request.parameters].filter(([key]) => !writtenByPresigner.has(key))),
        headers: { host: request.host }
      },
      { signingDate: new Date(request.signedAt), expiresIn: request.expiresSeconds }
    )
    return Buffer.from(String(presigned.query?.[SIGNATURE_QUERY_PARAM]), "hex")
  })

const signatureMismatch = rejected(
  "bad-signature",
  "The request signature we calculated does not match the signature you provided. " +
    "Check your AWS Secret Access Key and signing method."
)

/**
 * Verifies a DSQL IAM token the way DSQL does when a connection opens: structure, signature, validity window, the
 * user-to-action mapping and the host. Total: any string yields a verdict, never a failure.
 *
 * @since 0.1.0
 * @category constructors
 */
export const verifyToken = (input: VerifyInput): Effect.Effect<VerifyResult> => {
  const checked = checkToken(input)
  if (checked._tag === "Rejected") return Effect.succeed(checked)
  return Effect.map(
    Effect.orElseSucceed(expectedSignature(checked.request), () => Buffer.alloc(0)),
    (expected) =>
      expected.length === checked.signature.length && timingSafeEqual(expected, checked.signature)
        ? checkValidity(input, checked.request)
        : signatureMismatch
  )
}

type Checked =
  | Rejected
  | { readonly _tag: "Checked"; readonly request: SignedRequest; readonly signature: Buffer }

/** Everything about the token that comes before its signature: its form, its scope, the key it names. */
const checkToken = (input: VerifyInput): Checked => {
  const { token } = input
  const separator = token.indexOf("/?")
  const host = token.slice(0, separator)
  if (separator < 1 || !/^[A-Za-z0-9.:[\]-]+$/.test(host)) {
    return rejected("malformed", "The token must have the form <host>/?<query>, without a scheme.")
  }
  const parameters = parseQuery(token.slice(separator + 2))
  if (typeof parameters === "string") return rejected("malformed", parameters)
  if (requiredParameters.some((name) => !parameters.has(name))) {
    return rejected(
      "malformed",
      "AWS query-string parameters must include 'Action', 'X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Date', " +
        "'X-Amz-Expires', 'X-Amz-Signature' and 'X-Amz-SignedHeaders'. Re-examine the query-string parameters."
    )
  }
  const parameter = (name: typeof requiredParameters[number]): string => parameters.get(name)!

  if (parameter("X-Amz-Algorithm") !== ALGORITHM_IDENTIFIER) {
    return rejected("malformed", `X-Amz-Algorithm only supports "${ALGORITHM_IDENTIFIER}"`)
  }
  const credential = parameter("X-Amz-Credential").split("/")
  const [accessKeyId, scopeDate, scopeRegion, scopeService, scopeTerminator] = credential
  if (credential.length !== 5 || accessKeyId === "") {
    return rejected(
      "malformed",
      "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; expecting " +
        "\"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\"."
    )
  }
  if (scopeService !== service) {
    return rejected("malformed", `Credential should be scoped to correct service: '${service}'.`)
  }
  if (scopeTerminator !== terminator) {
    return rejected(
      "malformed",
      `Credential should be scoped with a valid terminator: '${terminator}', not '${shown(scopeTerminator!)}'.`
    )
  }
  const signedAt = parseAmzDate(parameter("X-Amz-Date"))
  if (signedAt === undefined) {
    return rejected("malformed", "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
  }
  if (scopeDate !== parameter("X-Amz-Date").slice(0, 8)) {
    return rejected(
      "malformed",
      `Invalid credential date "${shown(scopeDate!)}". This date is not the same as X-Amz-Date: "${
        parameter("X-Amz-Date").slice(0, 8)
      }".`
    )
  }
  if (scopeRegion !== input.region) {
    return rejected(
      "malformed",
      `Error parsing the X-Amz-Credential parameter; the region '${shown(scopeRegion!)}' is wrong; expecting '${
        shown(input.region)
      }'`
    )
  }
  if (parameter("X-Amz-SignedHeaders") !== "host") {
    return rejected("malformed", "X-Amz-SignedHeaders must be \"host\": only the host header may be signed.")
  }
  if (!/^\d{1,10}$/.test(parameter("X-Amz-Expires"))) {
    return rejected("malformed", "X-Amz-Expires should be a number")
  }
  const expiresSeconds = Number(parameter("X-Amz-Expires"))
  if (expiresSeconds < 1) {
    return rejected("expires-too-long", "X-Amz-Expires must be greater than 0")
  }
  if (expiresSeconds > MAX_PRESIGNED_TTL) {
    return rejected(
      "expires-too-long",
      "X-Amz-Expires must be less than a week (in seconds) that is, the given X-Amz-Expires must be less than " +
        `${MAX_PRESIGNED_TTL} seconds`
    )
  }
  const signature = parameter("X-Amz-Signature")
  if (!/^[0-9a-f]{64}$/.test(signature)) {
    return rejected("malformed", "X-Amz-Signature must be 64 lower-case hexadecimal digits.")
  }

  const secret = input.secretFor(accessKeyId!)
  if (secret === undefined) {
    return rejected("unknown-access-key", "The security token included in the request is invalid.")
  }
  return {
    _tag: "Checked",
    request: { host, parameters, signedAt, expiresSeconds, region: input.region, accessKeyId: accessKeyId!, secret },
    signature: Buffer.from(signature, "hex")
  }
}

/** Everything about a correctly signed token that DSQL checks after its signature: time, action and host. */
const checkValidity = (input: VerifyInput, request: SignedRequest): VerifyResult => {
  const { expiresSeconds, host, signedAt } = request
  const { now } = input
  if (now > signedAt + expiresSeconds * 1000) {
    return rejected("expired", expiredHint(signedAt, now, expiresSeconds))
  }
  if (signedAt > now + allowedClockSkewMillis) {
    return rejected(
      "not-yet-valid",
      `Signature not yet current: ${amzDate(signedAt)} is still later than ${amzDate(now + allowedClockSkewMillis)} (${
        amzDate(now)
      } + 5 min.)`
    )
  }
  const { maxTokenAgeSeconds } = input
  if (maxTokenAgeSeconds !== undefined && now - signedAt > maxTokenAgeSeconds * 1000) {
    return rejected("too-old", expiredHint(signedAt, now, maxTokenAgeSeconds))
  }
  const action = request.parameters.get("Action")!
  const expectedAction = input.user === "admin" ? "DbConnectAdmin" : "DbConnect"
  if (action !== expectedAction) {
    return rejected(
      "wrong-action",
      `Wrong user to action mapping. user: ${shown(input.user)}, action: ${shown(action)}`
    )
  }
  if (host.toLowerCase() !== input.hostname.toLowerCase()) {
    return rejected(
      "wrong-host",
      `The token was signed for host ${host}, but the connection was opened to ${input.hostname}.`
    )
  }
  return { _tag: "Accepted", accessKeyId: request.accessKeyId, action: expectedAction }
}
