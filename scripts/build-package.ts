/**
 * Last step of `npm run build` (of the root package, or of the workspace given as argument: `build-package.ts local`),
 * after tsc has written `dist/esm` (JS + declarations) and `dist/cjs` (JS only).
 *
 * - `dist/cjs/package.json` marks that tree as CommonJS: the package root is `"type": "module"`, so without it Node
 *   would load the CJS files as ESM and TypeScript would read their declarations as ESM (TS1479 for `require` users).
 * - The ESM declarations are copied next to the CJS files. Both builds compile the same sources and the declarations
 *   use no format-specific syntax, so one type-checked set serves both; inside `dist/cjs` TypeScript reads the copies
 *   as CommonJS, which is what `@arethetypeswrong/cli` checks for ("Masquerading as ESM/CJS").
 */
import { copyFileSync, existsSync, readdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"

const dir = process.argv[2] ?? "."
const esm = join(dir, "dist/esm")
const cjs = join(dir, "dist/cjs")

writeFileSync(join(cjs, "package.json"), JSON.stringify({ type: "commonjs", sideEffects: false }, null, 2) + "\n")

for (const declaration of readdirSync(esm, { recursive: true, encoding: "utf8" })) {
  // Only modules the CJS build emitted: the CLI exists as ESM only.
  if (declaration.endsWith(".d.ts") && existsSync(join(cjs, declaration.replace(/\.d\.ts$/, ".js")))) {
    copyFileSync(join(esm, declaration), join(cjs, declaration))
  }
}
