/**
 * The official node-postgres connector, `AuroraDSQLPool` from `@aws/aurora-dsql-node-postgres-connector`, with its
 * defaults: a token signed on every pool checkout through a fresh `fromNodeProviderChain`, SSLRequest negotiation,
 * and `pool.transaction` for OCC retries (3 retries, 1 ms doubling to 100 ms, +25% jitter).
 */
import { DsqlSigner } from "@aws-sdk/dsql-signer"
import { AuroraDSQLPool, isOCCError } from "@aws/aurora-dsql-node-postgres-connector"
import { randomUUID } from "node:crypto"
import type pg from "pg"
import type { Endpoint, TransferOptions, TransferResult } from "../protocol.js"
import { makeRecorder } from "../stats.js"
import { makeErrorLog, pgOptions, pooledClient } from "./common.js"

// The connector signs through this class's methods; counting calls (then signing as before) is how the storm
// scenario learns how many tokens it signed.
let tokensSigned = 0
const signAdmin = DsqlSigner.prototype.getDbConnectAdminAuthToken
DsqlSigner.prototype.getDbConnectAdminAuthToken = function(this: DsqlSigner) {
  tokensSigned++
  return signAdmin.call(this)
}

const makePool = (endpoint: Endpoint, poolSize: number): AuroraDSQLPool =>
  new AuroraDSQLPool({ ...pgOptions(endpoint, poolSize), region: endpoint.region } as never)

const transfers = async (pool: AuroraDSQLPool, options: TransferOptions): Promise<TransferResult> => {
  if (options.policy !== undefined) throw new Error("the connector runs with its own defaults")
  const recorder = makeRecorder()
  const errors = makeErrorLog()
  let commits = 0
  let commitsInWindow = 0
  let attempts = 0
  let gaveUp = 0
  const started = performance.now()
  const deadline = started + options.durationMs
  const worker = async () => {
    while (performance.now() < deadline) {
      const from = 1 + Math.floor(Math.random() * options.accounts)
      const to = 1 + ((from + Math.floor(Math.random() * (options.accounts - 1))) % options.accounts)
      const amount = 1 + Math.floor(Math.random() * 10)
      const id = randomUUID()
      const begin = performance.now()
      try {
        await pool.transaction(async (client: pg.PoolClient) => {
          attempts++
          await client.query(`UPDATE ${options.bank} SET balance = balance - $1 WHERE id = $2`, [amount, from])
          await client.query(`UPDATE ${options.bank} SET balance = balance + $1 WHERE id = $2`, [amount, to])
          await client.query(
            `INSERT INTO ${options.ledger} (id, src, dst, amount) VALUES ($1, $2, $3, $4)`,
            [id, from, to, amount]
          )
        })
        const now = performance.now()
        commits++
        if (now <= deadline) commitsInWindow++
        recorder.add(now - begin)
      } catch (error) {
        if (isOCCError(error)) gaveUp++
        else errors.add(error)
      }
    }
  }
  await Promise.all(Array.from({ length: options.workers }, worker))
  return {
    commits,
    commitsInWindow,
    drainMs: performance.now() - deadline,
    attempts,
    gaveUp,
    otherErrors: errors.count(),
    errorSamples: errors.samples(),
    latency: recorder.summary()
  }
}

export const client = pooledClient({ makePool, tokensSigned: () => tokensSigned, transfers })
