import { DsqlSigner } from "@aws-sdk/dsql-signer"
import { LocalServer } from "@effect-dsql/local"
import { eq, sql } from "drizzle-orm"
import { drizzle, type NodePgDatabase } from "drizzle-orm/node-postgres"
import { integer, pgTable, text } from "drizzle-orm/pg-core"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const orders = pgTable("orders", { id: integer().primaryKey(), item: text().notNull() })

describe("orders (Drizzle with node-postgres on DsqlLocal)", () => {
  let server: LocalServer.LocalServer
  let pool: pg.Pool
  let db: NodePgDatabase

  beforeAll(async () => {
    server = await LocalServer.start()
    const signer = new DsqlSigner({ hostname: server.hostname, region: server.region, credentials: server.credentials })
    pool = new pg.Pool({
      host: server.address, // dial the address…
      port: server.port,
      user: "admin",
      database: "postgres",
      password: () => signer.getDbConnectAdminAuthToken(), // a fresh IAM token for each new connection
      ssl: { ca: server.ca, servername: server.hostname }, // …verify the certificate against the cluster's name
      sslnegotiation: "direct" // TLS from the first byte, as DSQL allows (omit it for PostgreSQL's SSLRequest)
    })
    // An idle connection the server closes (DSQL: after 60 minutes; here: at `stop`) leaves the pool with an
    // "error" event, which without a listener would end the process.
    pool.on("error", () => {})
    db = drizzle({ client: pool })
    await db.execute(sql`CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL)`)
  })

  afterAll(async () => {
    await pool?.end()
    await server?.stop()
  })

  it("writes and reads back", async () => {
    await db.insert(orders).values({ id: 1, item: "book" })
    expect(await db.select().from(orders).where(eq(orders.id, 1))).toEqual([{ id: 1, item: "book" }])
  })

  it("loses a transaction to a conflict at COMMIT", async () => {
    server.faults.failNextCommits(1) // the next COMMIT fails as DSQL's does when another writer won
    const transaction = db.transaction((tx) => tx.insert(orders).values({ id: 2, item: "pen" }))
    // Drizzle wraps the driver's error: the SQLSTATE is on its cause.
    await expect(transaction).rejects.toMatchObject({
      cause: { code: "40001", message: expect.stringContaining("(OC000)") }
    })
    expect(await db.select().from(orders).where(eq(orders.id, 2))).toEqual([]) // rolled back
    expect(server.stats().tlsModes.direct).toBeGreaterThan(0)
  })
})
