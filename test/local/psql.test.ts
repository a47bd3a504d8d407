import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { execFile, spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { DsqlLocal } from "../../src/local/index.js"
import { dsqlLocalLayer, signToken } from "../utils/dsqlLocal.js"

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs a program to completion (10 s at most) and keeps its exit code and output. */
const run = (file: string, args: ReadonlyArray<string>, env: Record<string, string>) =>
  Effect.async<Run>((resume) => {
    execFile(file, args, { env: { ...process.env, ...env }, timeout: 10_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1
      resume(Effect.succeed({ code, stdout, stderr }))
    })
  })

/** The CA in a file, as libpq's `sslrootcert` wants it; removed with the scope. */
const caFile = (server: DsqlLocal.Server) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const directory = await mkdtemp(join(tmpdir(), "dsql-local-psql-test-"))
      await writeFile(join(directory, "ca.pem"), server.ca)
      return directory
    }),
    (directory) => Effect.promise(() => rm(directory, { recursive: true, force: true }))
  ).pipe(Effect.map((directory) => join(directory, "ca.pem")))

const psql = (server: DsqlLocal.Server, caPath: string, password: string, commands: ReadonlyArray<string>) =>
  run(
    "/usr/bin/psql",
    [
      `host=${server.hostname} hostaddr=${server.address} port=${server.port} user=admin dbname=postgres ` +
      `sslmode=verify-full sslrootcert=${caPath}`,
      "--no-psqlrc",
      "--tuples-only",
      "--no-align",
      ...commands.flatMap((command) => ["-c", command])
    ],
    { PGPASSWORD: password }
  )

layer(dsqlLocalLayer, { excludeTestServices: true, timeout: "120 seconds" })("psql", (it) => {
  describe("psql 15 (SSLRequest, verify-full)", () => {
    it.scoped("connects with a token and sees DSQL's server version", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const before = yield* server.stats
        const result = yield* psql(server, yield* caFile(server), yield* signToken(server), [
          "SELECT 'Hello, DSQL!'",
          "\\echo :SERVER_VERSION_NAME"
        ])
        expect(result.stderr).toBe("")
        expect(result.code).toBe(0)
        expect(result.stdout.split("\n").slice(0, 2)).toEqual(["Hello, DSQL!", "16.15"])
        const after = yield* server.stats
        expect(after.tlsModes.sslrequest - before.tlsModes.sslrequest).toBe(1)
        expect(after.tokensVerified - before.tokensVerified).toBe(1)
      }))

    it.scoped("is refused with a bad token, with DSQL's message and hint", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const token = yield* signToken(server, { secretAccessKey: "wrong" })
        const result = yield* psql(server, yield* caFile(server), token, ["SELECT 1"])
        expect(result.code).toBe(2)
        expect(result.stderr).toContain("FATAL:  unable to accept connection, access denied")
        expect(result.stderr).toContain("HINT:  The request signature we calculated does not match")
        expect(result.stdout).toBe("")
      }))
  })

  describe("npm run local", () => {
    it.scoped("prints a psql command that works, and cleans up on SIGINT", () =>
      Effect.gen(function*() {
        const shared = yield* DsqlLocal.DsqlLocal
        const cli = yield* Effect.acquireRelease(
          Effect.sync(() =>
            spawn(join("node_modules", ".bin", "tsx"), ["local/src/cli.ts", "--region", "eu-west-1"], {
              env: { ...process.env, DSQL_LOCAL_BACKEND_URL: shared.backendUrl },
              stdio: ["ignore", "pipe", "pipe"]
            })
          ),
          (child) => Effect.sync(() => child.kill("SIGKILL"))
        )
        const printed = yield* Effect.async<string>((resume) => {
          let stdout = ""
          cli.stdout.on("data", (chunk: Buffer) => {
            stdout += chunk.toString()
            if (stdout.includes("psql '")) resume(Effect.succeed(stdout))
          })
          cli.once("exit", () => resume(Effect.succeed(stdout)))
        }).pipe(Effect.timeout("30 seconds"))
        const command = printed.split("\n").find((line) => line.startsWith("PGPASSWORD="))!
        expect(printed).toMatch(/^export DSQL_HOST='[a-z0-9]{26}\.dsql\.eu-west-1\.on\.aws'$/m)
        const caPath = /^export DSQL_CA_PEM="\$\(cat '(.+)'\)"$/m.exec(printed)![1]!
        expect(existsSync(caPath)).toBe(true)

        const result = yield* run("/bin/sh", ["-c", `${command} --no-psqlrc -tAc "SELECT 'from the CLI'"`], {})
        expect(result.stdout.trim()).toBe("from the CLI")

        const exitCode = yield* Effect.async<number | null>((resume) => {
          cli.once("exit", (code) => resume(Effect.succeed(code)))
          cli.kill("SIGINT")
        }).pipe(Effect.timeout("15 seconds"))
        expect(exitCode).toBe(0)
        expect(existsSync(caPath)).toBe(false)
      }))
  })
})
