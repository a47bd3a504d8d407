import { DsqlSigner } from "@aws-sdk/dsql-signer"
import { LocalServer } from "@effect-dsql/local"
import postgres from "postgres"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

describe("orders (postgres.js on DsqlLocal)", () => {
  let server: LocalServer.LocalServer
  let sql: postgres.Sql

  beforeAll(async () => {
    server = await LocalServer.start()
    const signer = new DsqlSigner({ hostname: server.hostname, region: server.region, credentials: server.credentials })
    sql = postgres({
      host: server.address, // dial the address…
      port: server.port,
      user: "admin",
      database: "postgres",
      password: () => signer.getDbConnectAdminAuthToken(), // a fresh IAM token for each new connection
      ssl: { ca: server.ca, servername: server.hostname }, // …verify the certificate against the cluster's name
      sslnegotiation: "direct", // TLS from the first byte, as DSQL allows (omit it for PostgreSQL's SSLRequest)
      onnotice: () => {}
    })
    await sql`CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL)`
  })

  afterAll(async () => {
    await sql?.end()
    await server?.stop()
  })

  it("writes and reads back", async () => {
    await sql`INSERT INTO orders ${sql({ id: 1, item: "book" })}`
    expect(await sql`SELECT id, item FROM orders WHERE id = ${1}`).toEqual([{ id: 1, item: "book" }])
  })

  it("loses a transaction to a conflict at COMMIT", async () => {
    server.faults.failNextCommits(1) // the next COMMIT fails as DSQL's does when another writer won
    const transaction = sql.begin((tx) => tx`INSERT INTO orders ${sql({ id: 2, item: "pen" })}`)
    await expect(transaction).rejects.toMatchObject({ code: "40001", message: expect.stringContaining("(OC000)") })
    expect(await sql`SELECT id FROM orders WHERE id = ${2}`).toEqual([]) // rolled back
    expect(server.stats().tlsModes.direct).toBeGreaterThan(0)
  })
})
