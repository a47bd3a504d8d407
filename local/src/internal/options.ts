/**
 * DsqlLocal's options checked before anything starts, and the identity it makes up when none is given: a cluster id
 * and an access key pair.
 *
 * @internal
 */
import { Endpoint } from "@effect-dsql/core"
import { randomBytes } from "node:crypto"
import * as net from "node:net"
import type { Limits, Options } from "../DsqlLocal.js"
import { LocalFailure } from "./failure.js"

const base32 = "abcdefghijklmnopqrstuvwxyz234567"

/** 26 characters of unpadded base32, like a real cluster id (a UUID's 128 bits). */
export const randomClusterId = (): string => {
  const bytes = randomBytes(17)
  let id = ""
  for (let index = 0; index < 26; index++) {
    const bit = index * 5
    const pair = (bytes[bit >> 3]! << 8) | bytes[(bit >> 3) + 1]!
    id += base32[(pair >> (11 - (bit & 7))) & 31]
  }
  return id
}

export const randomCredentials = () => ({
  accessKeyId: `AKIA${randomClusterId().slice(0, 16).toUpperCase()}`,
  secretAccessKey: randomBytes(30).toString("base64")
})

const optionsError = (message: string) => new LocalFailure({ reason: "Options", message })

const isPositive = (value: unknown) => typeof value === "number" && value > 0 && !Number.isNaN(value)

/** Says which limit is not a positive number, if any (`maxTokenAgeSeconds` may also be undefined). */
export const invalidLimit = (limits: Partial<Limits>): string | undefined =>
  Object.entries(limits).find(([name, value]) =>
    !(isPositive(value) || (name === "maxTokenAgeSeconds" && value === undefined))
  )?.[0]

export const validate = (options: Options) => {
  if (options.region !== undefined && !Endpoint.isRegion(options.region)) {
    return optionsError(`region "${options.region}" is not an AWS region name like us-east-1`)
  }
  if (options.clusterId !== undefined && !Endpoint.isClusterId(options.clusterId)) {
    return optionsError("clusterId must be 26 characters of [a-z0-9]")
  }
  if (options.port !== undefined && !(Number.isInteger(options.port) && options.port >= 0 && options.port <= 65535)) {
    return optionsError(`port ${options.port} is not a TCP port (0-65535)`)
  }
  if (options.listenAddress !== undefined && net.isIP(options.listenAddress) === 0) {
    return optionsError(`listenAddress "${options.listenAddress}" is not an IP address`)
  }
  if (
    options.credentials !== undefined &&
    (options.credentials.length === 0 ||
      options.credentials.some((pair) => pair.accessKeyId.length === 0 || pair.secretAccessKey.length === 0))
  ) {
    return optionsError("credentials must hold at least one pair of non-empty accessKeyId and secretAccessKey")
  }
  const maxConnections = options.backendMaxConnections
  if (maxConnections !== undefined && !(Number.isInteger(maxConnections) && maxConnections >= 1)) {
    return optionsError(`backendMaxConnections ${maxConnections} is not a positive integer`)
  }
  const limit = options.limits === undefined ? undefined : invalidLimit(options.limits)
  if (limit !== undefined) return optionsError(`limits.${limit} must be a positive number`)
  return undefined
}
