/**
 * `npm run check:bundle`: bundles examples/example_preferred.ts and examples/lambda.ts the way AWS CDK's
 * `NodejsFunction` bundles (esbuild, platform node, CommonJS, target node20, no minification) with
 * `externalModules: ["pg-native"]`, runs both bundles against a DsqlLocal started here, checks what they printed,
 * and measures the Lambda handler's cold start: process start to first query answered. Proves the library survives
 * bundling: no file-system lookups of its own modules, no optional native module required at load time.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Data, Duration, Effect } from "effect"
import { DsqlLocal } from "effect-dsql/local"
import * as esbuild from "esbuild"
import { execFile } from "node:child_process"
import { mkdtemp, rm, stat } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))

class BundleCheckError extends Data.TaggedError("BundleCheckError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/** A temporary directory for bundles, removed with the scope. */
export const bundleDir = Effect.acquireRelease(
  Effect.tryPromise({
    try: () => mkdtemp(join(tmpdir(), "effect-dsql-bundle-")),
    catch: (cause) => new BundleCheckError({ message: "cannot create a temporary directory", cause })
  }),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

/**
 * Bundles `entry` (relative to the repository) into `outfile` as CDK's `NodejsFunction` does for a Node.js 20
 * runtime, with `externalModules: ["pg-native"]`. CDK's own default, `["@aws-sdk/*"]`, would leave the AWS SDK to
 * the runtime's copy, whose version AWS chooses; replacing it bundles the SDK at the versions tested here. pg loads
 * pg-native only when asked for `pg.native`, so it must stay out of the bundle.
 */
export const bundleLikeCdk = (entry: string, outfile: string) =>
  Effect.tryPromise({
    try: () =>
      esbuild.build({
        absWorkingDir: root,
        entryPoints: [entry],
        outfile,
        bundle: true,
        platform: "node",
        format: "cjs",
        target: "node20",
        minify: false,
        external: ["pg-native"],
        // ESM code that looks at `import.meta.url` needs it defined in CommonJS output.
        define: { "import.meta.url": "__bundle_import_meta_url" },
        banner: { js: "const __bundle_import_meta_url = require(\"node:url\").pathToFileURL(__filename).href;" },
        logLevel: "warning"
      }),
    catch: (cause) => new BundleCheckError({ message: `esbuild failed on ${entry}`, cause })
  })

const runNode = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv) =>
  Effect.async<string, BundleCheckError>((resume) => {
    const child = execFile(process.execPath, args, { env, timeout: 60_000 }, (error, stdout, stderr) =>
      resume(
        error === null
          ? Effect.succeed(stdout)
          : Effect.fail(
            new BundleCheckError({ message: `the bundle failed: ${stderr || error.message}`, cause: error })
          )
      ))
    return Effect.sync(() => child.kill())
  })

/** Runs a bundle as a script and checks each line it printed against `expected`. */
const runAndCheck = (outfile: string, expected: ReadonlyArray<RegExp>, env: NodeJS.ProcessEnv) =>
  Effect.gen(function*() {
    const output = yield* runNode([outfile], env)
    const lines = output.trimEnd().split("\n")
    const ok = lines.length === expected.length && expected.every((pattern, i) => pattern.test(lines[i]))
    if (!ok) {
      return yield* new BundleCheckError({ message: `unexpected output from ${outfile}:\n${output}` })
    }
    yield* Console.log(`check:bundle: ${outfile} ran on DsqlLocal and printed:\n  ${lines.join("\n  ")}`)
  })

/**
 * A fresh Node process that loads the Lambda bundle as the Lambda runtime does (`require`), invokes its handler once
 * and prints how long after the process started the answer came: the cold start as a caller sees it.
 */
const coldStart = (outfile: string, env: NodeJS.ProcessEnv) =>
  runNode([
    "-e",
    `const { handler, runtime } = require(process.env.LAMBDA_BUNDLE)
     handler({ page: "/cold-start" }).then(() => {
       process.stdout.write(String(Math.round(performance.now())))
       return runtime.dispose()
     })`
  ], { ...env, LAMBDA_BUNDLE: outfile }).pipe(Effect.map(Number))

const main = Effect.gen(function*() {
  const dir = yield* bundleDir
  const bundles = { example_preferred: join(dir, "example_preferred.cjs"), lambda: join(dir, "lambda.cjs") }
  for (const [name, outfile] of Object.entries(bundles)) {
    const [took] = yield* Effect.timed(bundleLikeCdk(`examples/${name}.ts`, outfile))
    const { size } = yield* Effect.tryPromise({
      try: () => stat(outfile),
      catch: (cause) => new BundleCheckError({ message: `esbuild wrote no ${outfile}`, cause })
    })
    yield* Console.log(
      `check:bundle: esbuild (node, cjs, node20) wrote ${name}.cjs, ${(size / 1024 / 1024).toFixed(1)} MiB, in ` +
        `${Math.round(Duration.toMillis(took))} ms`
    )
  }
  const server = yield* DsqlLocal.start()
  const env = { ...process.env, ...server.env }
  yield* runAndCheck(bundles.example_preferred, [
    /^example_preferred: table example_owner ready$/,
    /^example_preferred: inserted 20 owners from 8 fibers in \d+ ms$/,
    /^example_preferred: read back 20 owners: Owner 01 … Owner 20, all in Anytown$/,
    /^example_preferred: deleted them again$/
  ], env)
  yield* runAndCheck(
    bundles.lambda,
    [1, 2, 3].map((n) => new RegExp(`^lambda: invocation ${n}: /example/\\d+ has ${n} visits$`)),
    env
  )
  const coldStarts = yield* Effect.forEach([1, 2, 3], () => coldStart(bundles.lambda, env))
  yield* Console.log(
    `check:bundle: lambda cold start, process start → first query answered: ${coldStarts.join(" ms, ")} ms`
  )
}).pipe(Effect.scoped)

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  NodeRuntime.runMain(main)
}
