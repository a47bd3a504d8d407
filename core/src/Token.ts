/**
 * What DSQL's IAM authentication token is signed for, and which requests make sense: the rules behind both lines'
 * `TokenSigner`.
 *
 * @since 0.1.0
 */
import * as Limits from "./Limits.js"

/**
 * The IAM action a token is signed for.
 *
 * @since 0.1.0
 */
export type Action = "DbConnect" | "DbConnectAdmin"

/**
 * The action DSQL expects for a user: `DbConnectAdmin` for exactly `admin`, `DbConnect` for every other role
 * (`Admin` included: DSQL compares the name exactly).
 *
 * @since 0.1.0
 */
export const actionFor = (user: string): Action => user === "admin" ? "DbConnectAdmin" : "DbConnect"

// printable ASCII without space, and none of the characters that end the host part of a URL
const isHostname = (hostname: string): boolean => /^[\x21-\x7e]+$/.test(hostname) && !/[/?#@]/.test(hostname)

/**
 * What is wrong with a signing request, as a message for the user, or `undefined` when it can be signed:
 * `expiresInSeconds` is whole seconds from 1 to 7 days (`NaN` for a duration that could not be read).
 *
 * @since 0.1.0
 */
export const problemWith = (request: {
  readonly hostname: string
  readonly region: string
  readonly user: string
  readonly expiresInSeconds: number
}): string | undefined => {
  if (!isHostname(request.hostname)) {
    return `hostname ${JSON.stringify(request.hostname)} is not a host name: expected the DSQL endpoint host`
  }
  if (request.region.length === 0) return "region is empty: expected the cluster's AWS region"
  if (request.user.length === 0) return "user is empty: expected a database role such as admin"
  return request.expiresInSeconds >= 1 && request.expiresInSeconds <= Limits.maxTokenSeconds
    ? undefined
    : `expiresIn must be between 1 second and 7 days (${Limits.maxTokenSeconds} s)`
}
