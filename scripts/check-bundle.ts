/**
 * `npm run check:bundle`: bundles examples/example_preferred.ts the way AWS CDK's `NodejsFunction` does by default
 * (esbuild, platform node, CommonJS, target node20), then runs the bundle against a DsqlLocal started here and
 * checks what it printed. Proves the library survives bundling: no file-system lookups of its own modules, no
 * optional native module required at load time.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Data, Duration, Effect } from "effect"
import { DsqlLocal } from "effect-dsql/local"
import * as esbuild from "esbuild"
import { execFile } from "node:child_process"
import { mkdtemp, rm, stat } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))

class BundleCheckError extends Data.TaggedError("BundleCheckError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

const expected = [
  /^example_preferred: table example_owner ready$/,
  /^example_preferred: inserted 20 owners from 8 fibers in \d+ ms$/,
  /^example_preferred: read back 20 owners: Owner 01 … Owner 20, all in Anytown$/,
  /^example_preferred: deleted them again$/
]

const outDir = Effect.acquireRelease(
  Effect.tryPromise({
    try: () => mkdtemp(join(tmpdir(), "effect-dsql-bundle-")),
    catch: (cause) => new BundleCheckError({ message: "cannot create a temporary directory", cause })
  }),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

const bundle = (outfile: string) =>
  Effect.tryPromise({
    try: () =>
      esbuild.build({
        absWorkingDir: root,
        entryPoints: ["examples/example_preferred.ts"],
        outfile,
        bundle: true,
        platform: "node",
        format: "cjs",
        target: "node20",
        // pg loads pg-native only when asked for `pg.native`; bundlers must leave it out (CDK: `externalModules`).
        external: ["pg-native"],
        // ESM code that looks at `import.meta.url` needs it defined in CommonJS output.
        define: { "import.meta.url": "__bundle_import_meta_url" },
        banner: { js: "const __bundle_import_meta_url = require(\"node:url\").pathToFileURL(__filename).href;" },
        logLevel: "warning"
      }),
    catch: (cause) => new BundleCheckError({ message: "esbuild failed", cause })
  })

const run = (file: string, env: NodeJS.ProcessEnv) =>
  Effect.async<string, BundleCheckError>((resume) => {
    const child = execFile(process.execPath, [file], { env, timeout: 60_000 }, (error, stdout, stderr) =>
      resume(
        error === null
          ? Effect.succeed(stdout)
          : Effect.fail(
            new BundleCheckError({ message: `the bundle failed: ${stderr || error.message}`, cause: error })
          )
      ))
    return Effect.sync(() => child.kill())
  })

const main = Effect.gen(function*() {
  const dir = yield* outDir
  const outfile = join(dir, "example_preferred.cjs")
  const [took] = yield* Effect.timed(bundle(outfile))
  const { size } = yield* Effect.tryPromise({
    try: () => stat(outfile),
    catch: (cause) => new BundleCheckError({ message: `esbuild wrote no ${outfile}`, cause })
  })
  yield* Console.log(
    `check:bundle: esbuild (node, cjs, node20) wrote ${(size / 1024 / 1024).toFixed(1)} MiB in ` +
      `${Math.round(Duration.toMillis(took))} ms`
  )
  const server = yield* DsqlLocal.start()
  const output = yield* run(outfile, { ...process.env, ...server.env })
  const lines = output.trimEnd().split("\n")
  const ok = lines.length === expected.length && expected.every((pattern, i) => pattern.test(lines[i]))
  if (!ok) {
    return yield* new BundleCheckError({ message: `unexpected output from the bundle:\n${output}` })
  }
  yield* Console.log(`check:bundle: the bundle ran on DsqlLocal and printed:\n  ${lines.join("\n  ")}`)
}).pipe(Effect.scoped)

NodeRuntime.runMain(main)
