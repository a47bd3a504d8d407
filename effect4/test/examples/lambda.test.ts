/**
 * The Lambda handler bundled as CDK's `NodejsFunction` bundles it, loaded as the Lambda runtime loads it (`require`),
 * invoked on DsqlLocal: one runtime per container, built at the first invocation and reused by the next.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import * as esbuild from "esbuild"
import { execFile } from "node:child_process"
import { randomUUID } from "node:crypto"
import { mkdtemp, rm } from "node:fs/promises"
import { createRequire } from "node:module"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import type * as Lambda from "../../examples/lambda.js"
import * as DsqlLocal from "../utils/dsqlLocal.js"
import { inEnv } from "./run.js"

type Container = Pick<typeof Lambda, "handler" | "runtime">

const line = fileURLToPath(new URL("../..", import.meta.url))

/**
 * `examples/lambda.ts` bundled into a temporary directory (removed with the scope) with CDK `NodejsFunction`'s
 * defaults for a Node.js 22 runtime: esbuild, platform node, CommonJS, no minification. Two settings differ, as a
 * project would set them: `externalModules: []` bundles the AWS SDK at the versions tested here instead of leaving
 * it to the runtime's copy, and `define` + `banner` give the ESM source's `import.meta.url` a value in CommonJS.
 */
const bundleLikeCdk = Effect.gen(function*() {
  const dir = yield* Effect.acquireRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), "effect-dsql4-lambda-"))),
    (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
  )
  const outfile = join(dir, "index.js")
  const result = yield* Effect.promise(() =>
    esbuild.build({
      absWorkingDir: line,
      entryPoints: ["examples/lambda.ts"],
      outfile,
      bundle: true,
      platform: "node",
      format: "cjs",
      target: "node22",
      minify: false,
      external: [],
      define: { "import.meta.url": "__bundle_import_meta_url" },
      banner: { js: "const __bundle_import_meta_url = require(\"node:url\").pathToFileURL(__filename).href;" },
      logLevel: "silent"
    })
  )
  assert.deepStrictEqual(result.warnings, [], "esbuild bundled without a warning")
  return outfile
})

/** Runs the bundle as a script in a process of its own; what it printed. */
const runScript = (outfile: string, env: Readonly<Record<string, string>>) =>
  Effect.callback<{ error: Error | null; stdout: string; stderr: string }>((resume) => {
    const child = execFile(
      process.execPath,
      [outfile],
      { env: { ...process.env, ...env }, timeout: 60_000 },
      (error, stdout, stderr) => resume(Effect.succeed({ error, stdout, stderr }))
    )
    return Effect.sync(() => child.kill())
  })

describe("examples/lambda", () => {
  layer(Layer.provideMerge(DsqlLocal.pgClient, DsqlLocal.layer()), { excludeTestServices: true })((it) => {
    it.effect(
      "bundled like NodejsFunction: the first invocation builds the runtime, the second reuses its pool",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const sql = yield* SqlClient.SqlClient
          const outfile = yield* bundleLikeCdk
          // The Lambda runtime loads a CommonJS handler with require: module scope (the runtime) lives on between
          // invocations.
          const { handler, runtime } = createRequire(import.meta.url)(outfile) as Container
          const invoke = (event: unknown) => Effect.tryPromise(() => handler(event))
          const page = `/test/${randomUUID()}`

          const before = server.stats()
          // The runtime builds DsqlClient.layer at the first invocation, from the environment Lambda sets.
          assert.deepStrictEqual(yield* inEnv(server.env, invoke({ page })), { page, visits: 1 })
          const cold = server.stats()
          assert.isAtLeast(cold.tokensVerified - before.tokensVerified, 1)
          assert.isAtLeast(cold.connectionsAccepted - before.connectionsAccepted, 1)

          // Warm: same runtime, same pool; no token signed, no connection opened.
          assert.deepStrictEqual(yield* invoke({ page }), { page, visits: 2 })
          const warm = server.stats()
          assert.strictEqual(warm.tokensVerified, cold.tokensVerified)
          assert.strictEqual(warm.connectionsAccepted, cold.connectionsAccepted)
          assert.isAbove(warm.queries, cold.queries)

          // A bad event rejects the invocation with the decoding error.
          const rejected = yield* Effect.flip(invoke({ page: " " }))
          assert.include(String(rejected.cause), "page")

          // The container ends: its pool closes every session it had.
          yield* Effect.promise(() => runtime.dispose())
          yield* Effect.sync(() => server.stats().connectionsOpen).pipe(
            Effect.repeat({ until: (open) => open === before.connectionsOpen, schedule: Schedule.spaced("20 millis") }),
            Effect.timeout("10 seconds")
          )
          assert.deepStrictEqual(
            yield* sql`SELECT visits FROM lambda_page_visit WHERE page = ${page}`,
            [{ visits: 2 }]
          )
        }),
      { timeout: 120_000 }
    )

    it.effect(
      "the bundle run as a script invokes its handler three times in one process",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const { error, stderr, stdout } = yield* runScript(yield* bundleLikeCdk, server.env)
          assert.isNull(error, stderr)
          const lines = stdout.trimEnd().split("\n")
          assert.strictEqual(lines.length, 3, stdout)
          const page = /^lambda: invocation 1: (\/example\/\d+) has 1 visits$/.exec(lines[0])?.[1]
          assert.isDefined(page, lines[0])
          assert.deepStrictEqual(lines.slice(1), [
            `lambda: invocation 2: ${page} has 2 visits`,
            `lambda: invocation 3: ${page} has 3 visits`
          ])
        }),
      { timeout: 120_000 }
    )
  })
})
