import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))

export default defineConfig({
  resolve: {
    // Tests import the package by name, as users do, and run against the sources (the shared core's too).
    alias: [
      { find: /^effect-dsql$/, replacement: here("./src/index.ts") },
      { find: /^effect-dsql\/local$/, replacement: here("./src/local/index.ts") },
      { find: /^@effect-dsql\/core$/, replacement: here("../core/src/index.ts") },
      // DsqlLocal from the repository root, through its promise API (no Effect 3 type reaches these tests).
      { find: /^@effect-dsql\/local$/, replacement: here("../local/src/index.ts") }
    ]
  },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks"
  }
})
