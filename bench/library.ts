/**
 * effect-dsql as the client processes load it: its ESM build (`npm run bench` builds it first), as users run it,
 * not the sources through tsx, whose esbuild `keepNames` wraps every named closure in a `__name` call (~0.5 µs each
 * time one is made) that a build does not have. The other clients run from their builds in node_modules too. Typed
 * from the sources the build is made of.
 */
import type * as EffectDsql from "../src/index.js"

const built = new URL("../dist/esm/index.js", import.meta.url)

export const effectDsql: typeof EffectDsql = await import(built.href).catch((cause: unknown) => {
  throw new Error(`effect-dsql's build is missing at ${built.pathname}: run the bench with npm run bench`, { cause })
})
