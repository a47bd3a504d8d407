/**
 * Scenario 1, run inside a client process whose environment holds the credentials (env keys, or a profile in a
 * shared credentials file): the cost of one token by each signer, measured in interleaved timed rounds.
 */
import { fromNodeProviderChain } from "@aws-sdk/credential-providers"
import { DsqlSigner } from "@aws-sdk/dsql-signer"
import { DsqlSigner as EffectAwsDsqlSigner } from "@effect-aws/dsql"
import { Effect, ManagedRuntime, Redacted } from "effect"
import { createHash, createHmac } from "node:crypto"
import pg from "pg"
import type { TokenSigner as TokenSignerTypes } from "../src/index.js"
import { dialing, sslFor } from "./clients/common.js"
import { effectDsql } from "./library.js"
import { effect4, effectDsql4 } from "./library4.js"
import type { Endpoint } from "./protocol.js"
import { describeError } from "./protocol.js"
import { median } from "./stats.js"

const { TokenSigner } = effectDsql

export type SignerName = "ours" | "ours4" | "connector" | "effectAws" | "floor" | "floorCachedKey"

export interface SignerResult {
  readonly name: SignerName
  /** Median over rounds of µs per token. */
  readonly medianUs: number
  readonly roundsUs: ReadonlyArray<number>
  readonly tokens: number
  /** Whether DsqlLocal accepted a token from this signer (one connection opened with it). */
  readonly accepted: boolean
  readonly acceptError: string | undefined
}

interface Signer {
  readonly name: SignerName
  /** Signs tokens until `deadline` (performance.now()); returns how many and the last one. */
  readonly runUntil: (deadline: number) => Promise<{ readonly count: number; readonly token: string }>
}

const EMPTY_BODY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

const hmac = (key: Buffer | string, data: string): Buffer => createHmac("sha256", key).update(data).digest()

/** SigV4's key derivation: four HMACs from the secret, the day, the region and the service. */
const deriveKey = (secretAccessKey: string, shortDate: string, region: string): Buffer => {
  let key = hmac(`AWS4${secretAccessKey}`, shortDate)
  for (const part of [region, "dsql", "aws4_request"]) key = hmac(key, part)
  return key
}

/** The same key, derived once per day (as our signer and @smithy/signature-v4 keep it). */
const cachedKeyFor = (secretAccessKey: string, region: string) => {
  let cached: { readonly shortDate: string; readonly key: Buffer } = { shortDate: "", key: Buffer.alloc(0) }
  return (shortDate: string) => {
    if (cached.shortDate !== shortDate) cached = { shortDate, key: deriveKey(secretAccessKey, shortDate, region) }
    return cached.key
  }
}

/**
 * The floor: the HMAC/SHA-256 work of one token and nothing else — date formatting, the canonical request and its
 * hash, the key derivation, the signature — with credentials already in hand. With a cached key the crypto left is
 * one SHA-256 and one HMAC: a reference for what a signer that keeps the key could reach.
 */
const floorToken = (
  accessKeyId: string,
  keyFor: (shortDate: string) => Buffer,
  hostname: string,
  region: string
): string => {
  const longDate = new Date().toISOString().replace(/\.\d{3}Z$/, "Z").replace(/[-:]/g, "")
  const shortDate = longDate.slice(0, 8)
  const scope = `${shortDate}/${region}/dsql/aws4_request`
  const query = `Action=DbConnectAdmin&X-Amz-Algorithm=AWS4-HMAC-SHA256` +
    `&X-Amz-Credential=${encodeURIComponent(`${accessKeyId}/${scope}`)}&X-Amz-Date=${longDate}` +
    `&X-Amz-Expires=900&X-Amz-SignedHeaders=host`
  const canonicalRequest = `GET\n/\n${query}\nhost:${hostname}\n\nhost\n${EMPTY_BODY_SHA256}`
  const stringToSign = `AWS4-HMAC-SHA256\n${longDate}\n${scope}\n` +
    createHash("sha256").update(canonicalRequest).digest("hex")
  const signature = createHmac("sha256", keyFor(shortDate)).update(stringToSign).digest("hex")
  return `${hostname}/?${query}&X-Amz-Signature=${signature}`
}

/** Signs with a synchronous function until the deadline. */
const loopUntil = (sign: () => string) => (deadline: number) => {
  let count = 0
  let token = ""
  while (performance.now() < deadline) {
    token = sign()
    count++
  }
  return Promise.resolve({ count, token })
}

const makeSigners = async (endpoint: Endpoint, profile: string | undefined): Promise<ReadonlyArray<Signer>> => {
  const { hostname, region } = endpoint

  const ours = ManagedRuntime.make(TokenSigner.layerFromChain(profile === undefined ? undefined : { profile }))
  const request: TokenSignerTypes.SignRequest = { hostname, region, user: "admin", expiresIn: "15 minutes" }
  const oursLoop = (deadline: number) =>
    Effect.gen(function*() {
      const signer = yield* TokenSigner.TokenSigner
      let count = 0
      let token = Redacted.make("")
      while (performance.now() < deadline) {
        token = yield* signer.sign(request)
        count++
      }
      return { count, token: Redacted.value(token) }
    })

  // effect-dsql 2 (the Effect 4 line): the same loop on its own TokenSigner and Effect 4
  const request4 = { hostname, region, user: "admin", expiresIn: "15 minutes" } as const
  const ours4 = effect4.ManagedRuntime.make(
    effectDsql4.TokenSigner.layerFromChain(profile === undefined ? undefined : { profile })
  )
  const ours4Loop = (deadline: number) =>
    effect4.Effect.gen(function*() {
      const signer = yield* effectDsql4.TokenSigner.TokenSigner
      let count = 0
      let token = effect4.Redacted.make("")
      while (performance.now() < deadline) {
        token = yield* signer.sign(request4)
        count++
      }
      return { count, token: effect4.Redacted.value(token) }
    })

  const effectAws = ManagedRuntime.make(
    EffectAwsDsqlSigner.layer({ hostname, region, expiresIn: 900, ...(profile === undefined ? {} : { profile }) })
  )
  const effectAwsLoop = (deadline: number) =>
    Effect.gen(function*() {
      let count = 0
      let token = ""
      while (performance.now() < deadline) {
        token = yield* EffectAwsDsqlSigner.getDbConnectAdminAuthToken()
        count++
      }
      return { count, token }
    })

  // The connector passes `{ profile }` to the chain even when no profile is set.
  const chainInit = { profile } as Parameters<typeof fromNodeProviderChain>[0]
  // What AuroraDSQLUtil.getDSQLToken does on every pool checkout (connector 0.1.9, dist/index.mjs).
  const connectorToken = () =>
    new DsqlSigner({
      hostname,
      credentials: fromNodeProviderChain(chainInit),
      region,
      expiresIn: 900
    }).getDbConnectAdminAuthToken()

  const credentials = await fromNodeProviderChain(chainInit)()
  const cachedKey = cachedKeyFor(credentials.secretAccessKey, region)

  return [
    { name: "ours", runUntil: (deadline) => ours.runPromise(oursLoop(deadline)) },
    { name: "ours4", runUntil: (deadline) => ours4.runPromise(ours4Loop(deadline)) },
    {
      name: "connector",
      runUntil: async (deadline) => {
        let count = 0
        let token = ""
        while (performance.now() < deadline) {
          token = await connectorToken()
          count++
        }
        return { count, token }
      }
    },
    { name: "effectAws", runUntil: (deadline) => effectAws.runPromise(effectAwsLoop(deadline)) },
    {
      name: "floor",
      runUntil: loopUntil(() =>
        floorToken(
          credentials.accessKeyId,
          (shortDate) => deriveKey(credentials.secretAccessKey, shortDate, region),
          hostname,
          region
        )
      )
    },
    {
      name: "floorCachedKey",
      runUntil: loopUntil(() => floorToken(credentials.accessKeyId, cachedKey, hostname, region))
    }
  ]
}

/** Opens one connection with the token: proof the signer did the real work. */
const accepts = async (endpoint: Endpoint, token: string): Promise<string | undefined> => {
  const client = new pg.Client({
    host: endpoint.hostname,
    port: endpoint.port,
    user: "admin",
    database: "postgres",
    password: token,
    ssl: sslFor(endpoint),
    stream: dialing(endpoint.address),
    connectionTimeoutMillis: 10_000
  } as pg.ClientConfig)
  client.on("error", () => undefined)
  try {
    await client.connect()
    return undefined
  } catch (error) {
    return describeError(error)
  } finally {
    await client.end().catch(() => undefined)
  }
}

/**
 * Signers are warmed for this many rounds before the timed ones: a token is signed once per physical connection of a
 * long-lived process, so the steady-state cost is what counts, and one 100 ms round left the first timed round still
 * compiling (in a round-2 run the first timed round of one signer was 1.5× its others).
 */
const WARM_UP_ROUNDS = 3

/** Warm-up rounds, then `rounds` timed rounds of `roundMs` per signer, the signers' order rotating per round. */
export const measureTokens = async (
  endpoint: Endpoint,
  profile: string | undefined,
  rounds: number,
  roundMs: number
): Promise<ReadonlyArray<SignerResult>> => {
  const signers = await makeSigners(endpoint, profile)
  const perRound = new Map<SignerName, Array<number>>(signers.map((signer) => [signer.name, []]))
  const lastToken = new Map<SignerName, string>()
  const totals = new Map<SignerName, number>(signers.map((signer) => [signer.name, 0]))
  for (let round = -WARM_UP_ROUNDS; round < rounds; round++) {
    for (let index = 0; index < signers.length; index++) {
      const signer = signers[(index + Math.max(round, 0)) % signers.length]!
      const started = performance.now()
      const { count, token } = await signer.runUntil(started + roundMs)
      const elapsed = performance.now() - started
      lastToken.set(signer.name, token)
      if (round >= 0) {
        perRound.get(signer.name)!.push((elapsed * 1000) / count)
        totals.set(signer.name, totals.get(signer.name)! + count)
      }
    }
  }
  const results: Array<SignerResult> = []
  for (const signer of signers) {
    const acceptError = await accepts(endpoint, lastToken.get(signer.name)!)
    const roundsUs = perRound.get(signer.name)!
    results.push({
      name: signer.name,
      medianUs: median(roundsUs),
      roundsUs,
      tokens: totals.get(signer.name)!,
      accepted: acceptError === undefined,
      acceptError
    })
  }
  return results
}
