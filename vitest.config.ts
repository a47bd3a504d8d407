import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"
import ProgressReporter from "./test/utils/progressReporter.js"

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))
const src = (path: string) => here(`./src/${path}`)

const progressFile = process.env["VITEST_PROGRESS_FILE"]

export default defineConfig({
  resolve: {
    // Tests import the package by name, as users do, and run against the sources.
    alias: [
      { find: /^effect-dsql\/local$/, replacement: src("local/index.ts") },
      { find: /^effect-dsql$/, replacement: src("index.ts") },
      { find: /^@effect-dsql\/core$/, replacement: here("./core/src/index.ts") },
      { find: /^@effect-dsql\/local$/, replacement: here("./local/src/index.ts") },
      { find: /^@effect-dsql\/local\/DsqlLocal$/, replacement: here("./local/src/DsqlLocal.ts") }
    ]
  },
  test: {
    include: ["test/**/*.test.ts", "local/recipes/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // A worker whose leaked handles or stuck release outlive its tests is given this long, then the run goes on.
    teardownTimeout: 10_000,
    pool: "forks",
    setupFiles: ["./test/utils/setup.ts"],
    // vitest's runner, minus the stacks its reporter would parse for hours (see the file).
    runner: "./test/utils/runner.ts",
    // `.ci/run` names what was still running when it had to stop a run.
    ...(progressFile === undefined ? {} : { reporters: ["default", new ProgressReporter(progressFile)] })
  }
})
