/**
 * DsqlLocal's promise API as a node-postgres user meets it: no Effect in the test, tokens from `@aws-sdk/dsql-signer`.
 */
import { DsqlSigner } from "@aws-sdk/dsql-signer"
import { inspect } from "node:util"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"
import { DsqlLocal, LocalServer } from "../../src/local/index.js"

const connect = async (server: LocalServer.LocalServer): Promise<pg.Client> => {
  const signer = new DsqlSigner({ hostname: server.hostname, region: server.region, credentials: server.credentials })
  const client = new pg.Client({
    host: server.address,
    port: server.port,
    user: "admin",
    database: "postgres",
    password: await signer.getDbConnectAdminAuthToken(),
    ssl: { ca: server.ca, servername: server.hostname }
  })
  client.on("error", () => undefined)
  await client.connect()
  return client
}

describe("LocalServer", () => {
  let server: LocalServer.LocalServer

  beforeAll(async () => {
    server = await LocalServer.start()
  })
  afterAll(() => server.stop())

  it("serves node-postgres with a signed token, counts it, and injects faults", async () => {
    server.resetStats()
    const client = await connect(server)
    try {
      expect((await client.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }])
      expect(server.stats()).toMatchObject({ connectionsAccepted: 1, connectionsOpen: 1 })
      // A gauge: resetStats zeroes the counters and leaves it as it is.
      server.resetStats()
      expect(server.stats()).toMatchObject({ connectionsAccepted: 0, connectionsOpen: 1 })

      server.faults.failNextCommits(1, "OC001")
      await client.query("BEGIN")
      await client.query("SELECT 1")
      await expect(client.query("COMMIT")).rejects.toMatchObject({ code: "40001", message: /OC001/ })
      expect(server.stats().commitsFailedByFault).toBe(1)
    } finally {
      await client.end()
    }
    // It falls back to 0 once the server has closed its side.
    await vi.waitFor(() => expect(server.stats().connectionsOpen).toBe(0), { timeout: 10_000, interval: 5 })
  })

  it("throws on an invalid limit instead of applying it", () => {
    expect(() => server.faults.setLimits({ maxConnections: -1 })).toThrow(/maxConnections/)
  })

  it("shows no secret when printed or JSON-encoded, while its fields still carry them", () => {
    const secret = server.credentials.secretAccessKey
    expect(server.env["AWS_SECRET_ACCESS_KEY"]).toBe(secret)
    for (const shown of [JSON.stringify(server), inspect(server, { depth: 5 })]) {
      expect(shown).not.toContain(secret)
      expect(shown).toContain(server.hostname)
    }
  })
})

describe("LocalServer.start", () => {
  it("rejects invalid options with the DsqlLocalError itself", async () => {
    const failure = await LocalServer.start({ region: "mars" }).catch((error: unknown) => error)
    expect(failure).toBeInstanceOf(DsqlLocal.DsqlLocalError)
    expect(failure).toMatchObject({ reason: "Options", message: expect.stringContaining("mars") })
  })

  it("stops once however often it is stopped, and no longer accepts connections", async () => {
    const stopped = await (async () => {
      await using local = await LocalServer.start()
      await Promise.all([local.stop(), local.stop()])
      return local
    })()
    await expect(connect(stopped)).rejects.toMatchObject({ code: "ECONNREFUSED" })
  })
})
