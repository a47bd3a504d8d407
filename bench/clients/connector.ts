/**
 * The official node-postgres connector, `AuroraDSQLPool` from `@aws/aurora-dsql-node-postgres-connector`, with its
 * defaults: a token signed on every pool checkout through a fresh `fromNodeProviderChain`, SSLRequest negotiation,
 * and `pool.transaction` for OCC retries (3 retries, 1 ms doubling to 100 ms, +25% jitter).
 */
import { DsqlSigner } from "@aws-sdk/dsql-signer"
import { AuroraDSQLPool, isOCCError } from "@aws/aurora-dsql-node-postgres-connector"
import type pg from "pg"
import type { Endpoint, TransferOptions, TransferResult } from "../protocol.js"
import { makeTransferTally, pgOptions, pooledClient } from "./common.js"

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
  const tally = makeTransferTally(options)
  const worker = async () => {
    while (tally.running()) {
      const { amount, from, id, to } = tally.pick()
      const begin = performance.now()
      try {
        await pool.transaction(async (client: pg.PoolClient) => {
          tally.attempted()
          await client.query(`UPDATE ${options.bank} SET balance = balance - $1 WHERE id = $2`, [amount, from])
          await client.query(`UPDATE ${options.bank} SET balance = balance + $1 WHERE id = $2`, [amount, to])
          await client.query(
            `INSERT INTO ${options.ledger} (id, src, dst, amount) VALUES ($1, $2, $3, $4)`,
            [id, from, to, amount]
          )
        })
        tally.committed(begin)
      } catch (error) {
        if (isOCCError(error)) tally.gaveUp()
        else tally.failed(error)
      }
    }
  }
  await Promise.all(Array.from({ length: options.workers }, worker))
  return tally.result()
}

export const client = pooledClient({ makePool, tokensSigned: () => tokensSigned, transfers })
