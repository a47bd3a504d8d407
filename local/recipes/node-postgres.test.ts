import { DsqlSigner } from "@aws-sdk/dsql-signer"
import { LocalServer } from "@effect-dsql/local"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

describe("orders (node-postgres on DsqlLocal)", () => {
  let server: LocalServer.LocalServer
  let client: pg.Client

  beforeAll(async () => {
    server = await LocalServer.start()
    const signer = new DsqlSigner({ hostname: server.hostname, region: server.region, credentials: server.credentials })
    client = new pg.Client({
      host: server.address, // dial the address…
      port: server.port,
      user: "admin",
      database: "postgres",
      password: await signer.getDbConnectAdminAuthToken(), // an IAM token, valid 15 minutes
      ssl: { ca: server.ca, servername: server.hostname }, // …verify the certificate against the cluster's name
      sslnegotiation: "direct" // TLS from the first byte, as DSQL allows (omit it for PostgreSQL's SSLRequest)
    })
    await client.connect()
    await client.query("CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL)")
  })

  afterAll(async () => {
    await client?.end()
    await server?.stop()
  })

  it("writes and reads back", async () => {
    await client.query("INSERT INTO orders VALUES ($1, $2)", [1, "book"])
    const { rows } = await client.query("SELECT id, item FROM orders WHERE id = $1", [1])
    expect(rows).toEqual([{ id: 1, item: "book" }])
  })

  it("loses a transaction to a conflict at COMMIT", async () => {
    server.faults.failNextCommits(1) // the next COMMIT fails as DSQL's does when another writer won
    await client.query("BEGIN")
    await client.query("INSERT INTO orders VALUES ($1, $2)", [2, "pen"])
    await expect(client.query("COMMIT")).rejects.toMatchObject({
      code: "40001",
      message: expect.stringContaining("(OC000)")
    })
    const { rows } = await client.query("SELECT id FROM orders WHERE id = $1", [2])
    expect(rows).toEqual([]) // rolled back
    expect(server.stats().tlsModes.direct).toBe(1)
  })
})
