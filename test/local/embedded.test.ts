import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Pg from "pg"
import type { Binaries } from "../../local/src/internal/embedded.js"
import { acquireEmbedded, embeddedPostgresPackage } from "../../local/src/internal/embedded.js"
import { failureOf } from "../utils/failure.js"

/** A fresh folder only its owner may enter (`mktemp -d`), removed with the scope. */
const privateDirectory = Effect.acquireRelease(
  Effect.promise(async () => {
    const dir = await Fs.mkdtemp(Path.join(Os.tmpdir(), "dsql-local-embedded-test-"))
    await Fs.chmod(dir, 0o700)
    return dir
  }),
  (dir) => Effect.promise(() => Fs.rm(dir, { recursive: true, force: true }))
)

/** Copies of the installed binaries (hard links) under a mode-0700 folder, as in a clone inside /root. */
const binariesInPrivateDirectory = Effect.gen(function*() {
  const installed = yield* Effect.promise(embeddedPostgresPackage.load)
  const installation = Path.dirname(Path.dirname(installed.initdb))
  const dir = yield* privateDirectory
  const copy = Path.join(dir, "clone", "postgresql")
  yield* Effect.promise(() => Fs.cp(installation, copy, { recursive: true, verbatimSymlinks: true }))
  return {
    initdb: Path.join(copy, Path.relative(installation, installed.initdb)),
    postgres: Path.join(copy, Path.relative(installation, installed.postgres))
  } satisfies Binaries
})

/** An installation whose programs are the given shell scripts, under a mode-0700 folder. */
const fakeBinaries = (scripts: { readonly initdb: string; readonly postgres: string }, mode = 0o755) =>
  Effect.gen(function*() {
    const dir = yield* privateDirectory
    const bin = Path.join(dir, "postgresql", "bin")
    yield* Effect.promise(() => Fs.mkdir(bin, { recursive: true }))
    const binaries = { initdb: Path.join(bin, "initdb"), postgres: Path.join(bin, "postgres") }
    for (const program of ["initdb", "postgres"] as const) {
      yield* Effect.promise(() => Fs.writeFile(binaries[program], `#!/bin/sh\n${scripts[program]}\n`, { mode }))
    }
    return binaries
  })

const start = (binaries: Binaries) =>
  acquireEmbedded({ dirPrefix: "dsql-local-embedded-test-pg-", maxConnections: undefined, binaries }, "pw")

const query = (port: number, sql: string) =>
  Effect.acquireUseRelease(
    Effect.promise(async () => {
      const client = new Pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "postgres" })
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.query(sql)).pipe(Effect.map((result) => result.rows)),
    (client) => Effect.promise(() => client.end())
  )

const expectOneLine = (message: string) => expect(message).not.toContain("\n")

describe("acquireEmbedded", () => {
  it.live("runs PostgreSQL 16 with UTF-8 and the C collation, as DSQL has them", () =>
    Effect.gen(function*() {
      const port = yield* start(yield* Effect.promise(embeddedPostgresPackage.load))
      expect(yield* query(port, "SHOW server_version")).toEqual([{
        server_version: expect.stringMatching(/^16\.\d+$/)
      }])
      expect(
        yield* query(
          port,
          "SELECT pg_encoding_to_char(encoding) AS encoding, datcollate FROM pg_database WHERE datname = 'postgres'"
        )
      ).toEqual([{ encoding: "UTF8", datcollate: "C" }])
    }).pipe(Effect.scoped))

  it.live("starts from binaries inside a folder that only their owner may enter", () =>
    Effect.gen(function*() {
      const port = yield* start(yield* binariesInPrivateDirectory)
      expect(yield* query(port, "SELECT 1 AS one")).toEqual([{ one: 1 }])
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("a program that cannot be executed is a one-line LocalFailure (EACCES)", () =>
    Effect.gen(function*() {
      const error = yield* failureOf(start(yield* fakeBinaries({ initdb: "exit 0", postgres: "exit 0" }, 0o644)))
      expect(error).toMatchObject({ _tag: "LocalFailure", reason: "Backend" })
      expect(error.message).toMatch(/^cannot run .*\/initdb: EACCES/)
      expectOneLine(error.message)
    }).pipe(Effect.scoped))

  it.live("missing binaries are a one-line LocalFailure (ENOENT)", () =>
    Effect.gen(function*() {
      const dir = yield* privateDirectory
      const error = yield* failureOf(start({
        initdb: Path.join(dir, "nowhere", "bin", "initdb"),
        postgres: Path.join(dir, "nowhere", "bin", "postgres")
      }))
      expect(error).toMatchObject({ _tag: "LocalFailure", reason: "Backend" })
      expect(error.message).toContain("ENOENT")
      expectOneLine(error.message)
    }).pipe(Effect.scoped))

  it.live("a temporary directory that cannot be written is a one-line LocalFailure", () =>
    Effect.gen(function*() {
      const dir = yield* privateDirectory
      const missing = Path.join(dir, "no-such-folder")
      // os.tmpdir() reads TMPDIR on every call; the tests of a file run one after another.
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          const before = process.env.TMPDIR
          process.env.TMPDIR = missing
          return before
        }),
        (before) =>
          Effect.sync(() => {
            if (before === undefined) delete process.env.TMPDIR
            else process.env.TMPDIR = before
          })
      )
      const error = yield* failureOf(start(yield* Effect.promise(embeddedPostgresPackage.load)))
      expect(error).toMatchObject({
        _tag: "LocalFailure",
        reason: "Backend",
        message: `cannot create a directory for the embedded PostgreSQL in ${missing}`
      })
    }).pipe(Effect.scoped))

  it.live("initdb failing is a one-line LocalFailure with what it said", () =>
    Effect.gen(function*() {
      const error = yield* failureOf(start(
        yield* fakeBinaries({
          initdb: "echo 'initdb: error: directory exists but is not empty' >&2\nexit 1",
          postgres: "exit 0"
        })
      ))
      expect(error).toMatchObject({ _tag: "LocalFailure", reason: "Backend" })
      expect(error.message).toBe(
        "initdb failed (exit code 1): it said: initdb: error: directory exists but is not empty"
      )
    }).pipe(Effect.scoped))

  it.live("a port another process took is tried three times, then a one-line LocalFailure", () =>
    Effect.gen(function*() {
      // The fake server runs as the postgres user when the tests run as root: its tally lives where anyone may write.
      const tally = yield* privateDirectory
      yield* Effect.promise(() => Fs.chmod(tally, 0o777))
      const attempts = Path.join(tally, "attempts")
      const error = yield* failureOf(start(
        yield* fakeBinaries({
          initdb: "exit 0",
          postgres: `echo "$4" >> ${attempts}\n` +
            "echo 'LOG:  could not bind IPv4 address \"127.0.0.1\": Address already in use' >&2\nexit 1"
        })
      ))
      expect(error).toMatchObject({ _tag: "LocalFailure", reason: "Backend" })
      expect(error.message).toMatch(
        /^PostgreSQL stopped while starting on port \d+ \(exit code 1\): it said: .*Address already in use$/
      )
      const ports = (yield* Effect.promise(() => Fs.readFile(attempts, "utf8"))).trim().split("\n")
      expect(ports).toHaveLength(3)
    }).pipe(Effect.scoped))
})
