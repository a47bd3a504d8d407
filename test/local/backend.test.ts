import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, FastCheck, Fiber, Logger, LogLevel, Option, Schedule } from "effect"
import { randomUUID } from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { inspect } from "node:util"
import * as Pg from "pg"
import type { Backend } from "../../local/src/internal/backend.js"
import { acquireBackend, versionWarning } from "../../local/src/internal/backend.js"
import { failureOf } from "../utils/failure.js"

const uniquePrefix = () => `dsql-local-backend-test-${randomUUID()}-`

/** Data directories currently under the temporary directory with this prefix. */
const dataDirs = (prefix: string) =>
  Effect.promise(() => Fs.readdir(Os.tmpdir())).pipe(
    Effect.map((names) => names.filter((name) => name.startsWith(prefix)).map((name) => Path.join(Os.tmpdir(), name)))
  )

/** PostgreSQL processes whose command line names a data directory with this prefix (Linux exposes them in /proc). */
const postgresProcesses = (prefix: string) =>
  Effect.promise(async () => {
    const pids = (await Fs.readdir("/proc")).filter((name) => /^\d+$/.test(name))
    const commandLines = await Promise.all(
      pids.map((pid) => Fs.readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => ""))
    )
    return commandLines.filter((line) => line.includes(prefix))
  })

const isListening = (port: number) =>
  Effect.async<boolean>((resume) => {
    const socket = Net.connect(port, "127.0.0.1")
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.succeed(true))
    })
    socket.once("error", () => resume(Effect.succeed(false)))
  })

const query = (backend: Backend, user: string, sql: string, password?: string) =>
  Effect.acquireUseRelease(
    Effect.tryPromise(async () => {
      const client = new Pg.Client({
        host: backend.host,
        port: backend.port,
        user,
        database: "postgres",
        ...(password === undefined ? {} : { password })
      })
      await client.connect()
      return client
    }),
    (client) => Effect.tryPromise(() => client.query(sql)).pipe(Effect.map((result) => result.rows)),
    (client) => Effect.promise(() => client.end())
  )

const setupSql = "CREATE SCHEMA IF NOT EXISTS sys; CREATE TABLE IF NOT EXISTS sys.marker (id int)"

const waitFor = <E, R>(condition: Effect.Effect<boolean, E, R>) =>
  condition.pipe(Effect.repeat({ schedule: Schedule.spaced("5 millis"), until: (done) => done }))

/** Runs `effect` and returns its result with the warnings it logged. */
const withWarnings = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const warnings: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => {
      if (LogLevel.Warning === logLevel) warnings.push([message].flat().join(" "))
    })
    const result = yield* effect.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
    return [result, warnings] as const
  })

describe("versionWarning", () => {
  it("names the backend's major version and DSQL's when they differ", () => {
    expect(versionWarning(180004, "db.example:5432")).toBe(
      "DsqlLocal: the backend PostgreSQL at db.example:5432 is version 18, while DSQL is PostgreSQL 16: SQL that " +
        "runs here may not run on DSQL"
    )
    expect(versionWarning(150018, "127.0.0.1:5433")).toContain("is version 15,")
  })

  it.prop("is silent exactly for PostgreSQL 16", [FastCheck.integer({ min: 90_000, max: 999_999 })], ([number]) => {
    expect(versionWarning(number, "host:1") === undefined).toBe(number >= 160_000 && number < 170_000)
  })
})

describe("acquireBackend", () => {
  it.live("starts an embedded PostgreSQL that trusts loopback, and removes every trace when the scope closes", () =>
    Effect.gen(function*() {
      const prefix = uniquePrefix()
      const backend = yield* Effect.scoped(Effect.gen(function*() {
        const backend = yield* acquireBackend({ dataDirPrefix: prefix, setupSql })
        expect(backend).toMatchObject({ host: "127.0.0.1", superuser: "postgres", embedded: true })
        expect(backend.url).toBe(
          `postgres://postgres:${encodeURIComponent(backend.password)}@127.0.0.1:${backend.port}/postgres`
        )
        expect(yield* dataDirs(prefix)).toHaveLength(1)

        expect(yield* query(backend, "admin", "select current_user, current_database()")).toEqual([
          { current_user: "admin", current_database: "postgres" }
        ])
        expect(yield* query(backend, "admin", "select rolsuper from pg_roles where rolname = current_user")).toEqual([
          { rolsuper: true }
        ])
        expect(yield* query(backend, "postgres", "select count(*)::int as n from sys.marker", backend.password))
          .toEqual([{ n: 0 }])

        // The same server as an external one: prepared again (idempotently), and not stopped with its own scope. It
        // is PostgreSQL 16, as DSQL: no warning.
        const [external, warnings] = yield* withWarnings(Effect.scoped(acquireBackend({ url: backend.url, setupSql })))
        expect(warnings).toEqual([])
        expect(external).toEqual({ ...backend, embedded: false })
        expect(yield* isListening(backend.port)).toBe(true)
        const failedSetup = yield* failureOf(
          Effect.scoped(acquireBackend({ url: backend.url, setupSql: "select * from nowhere" }))
        )
        expect(failedSetup).toMatchObject({ _tag: "LocalFailure", reason: "Backend" })
        expect(failedSetup.message).toContain("setup SQL")
        return backend
      }))
      expect(yield* isListening(backend.port)).toBe(false)
      expect(yield* dataDirs(prefix)).toEqual([])
      expect(yield* postgresProcesses(prefix)).toEqual([])
    }))

  for (const phase of ["initialise", "start"] as const) {
    it.live(`cleans up when interrupted during ${phase}`, () =>
      Effect.gen(function*() {
        const prefix = uniquePrefix()
        const fiber = yield* Effect.fork(Effect.scoped(acquireBackend({ dataDirPrefix: prefix })))
        const dir = yield* waitFor(dataDirs(prefix).pipe(Effect.map((dirs) => dirs.length > 0))).pipe(
          Effect.zipRight(dataDirs(prefix)),
          Effect.map((dirs) => dirs[0]!)
        )
        if (phase === "start") {
          yield* waitFor(
            Effect.promise(() => Fs.access(Path.join(dir, "data", "postmaster.pid")).then(() => true, () => false))
          )
        }
        const exit = yield* Fiber.interrupt(fiber)
        expect(Exit.isInterrupted(exit)).toBe(true)
        expect(yield* dataDirs(prefix)).toEqual([])
        expect(yield* postgresProcesses(prefix)).toEqual([])
      }))
  }

  it.live("a bad URL or an unreachable server is a LocalFailure, without the password", () =>
    Effect.gen(function*() {
      const closedPort = yield* Effect.async<number>((resume) => {
        const server = Net.createServer()
        server.listen(0, "127.0.0.1", () => {
          const { port } = server.address() as Net.AddressInfo
          server.close(() => resume(Effect.succeed(port)))
        })
      })
      const urls = [
        "not a url",
        "http://postgres:s3cret-pw@127.0.0.1:5432/postgres",
        "postgres://postgres:s3cret-pw%zz@127.0.0.1/postgres",
        `postgres://postgres:s3cret-pw@127.0.0.1:${closedPort}/postgres`
      ]
      for (const url of urls) {
        const exit = yield* Effect.exit(Effect.scoped(acquireBackend({ url })))
        // A failure, not a defect: failureOption is empty for a die.
        const error = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined
        expect(error).toMatchObject({ _tag: "LocalFailure", reason: "Backend" })
        expect(inspect(error, { depth: 5 })).not.toContain("s3cret-pw")
      }
    }))
})
