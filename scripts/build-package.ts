/**
 * Last step of `npm run build`, after tsc has written `dist/esm` (JS + declarations) and `dist/cjs` (JS only).
 *
 * - `dist/cjs/package.json` marks that tree as CommonJS: the package root is `"type": "module"`, so without it Node
 *   would load the CJS files as ESM and TypeScript would read their declarations as ESM (TS1479 for `require` users).
 * - The ESM declarations are copied next to the CJS files. Both builds compile the same sources and the declarations
 *   use no format-specific syntax, so one type-checked set serves both; inside `dist/cjs` TypeScript reads the copies
 *   as CommonJS, which is what `@arethetypeswrong/cli` checks for ("Masquerading as ESM/CJS").
 * - The `effect-dsql-local` bin gets its `#!/usr/bin/env node` line (unless the source already has it) and the
 *   executable bit.
 */
import { chmodSync, copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"

const esm = "dist/esm"
const cjs = "dist/cjs"
const bin = join(esm, "local/cli.js")
const shebang = "#!/usr/bin/env node\n"

writeFileSync(join(cjs, "package.json"), JSON.stringify({ type: "commonjs", sideEffects: false }, null, 2) + "\n")

for (const declaration of readdirSync(esm, { recursive: true, encoding: "utf8" })) {
  // Only modules the CJS build emitted: the bin exists as ESM only.
  if (declaration.endsWith(".d.ts") && existsSync(join(cjs, declaration.replace(/\.d\.ts$/, ".js")))) {
    copyFileSync(join(esm, declaration), join(cjs, declaration))
  }
}

const binSource = readFileSync(bin, "utf8")
if (!binSource.startsWith("#!")) writeFileSync(bin, shebang + binSource)
chmodSync(bin, 0o755)
