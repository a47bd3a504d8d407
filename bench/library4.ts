/**
 * The Effect 4 line as its client processes load it: effect-dsql 2's ESM build (`effect4/dist`, which `npm run bench`
 * builds first) and Effect 4 itself (`effect` and `@effect/sql-pg` 4.1.5), resolved from `effect4/`, where npm keeps
 * them: from `bench/`, `effect` is the Effect 3 line's. Each module is loaded from the file a bare import in
 * `effect4/` resolves to, so that effect-dsql 2 and the bench share one copy of Effect 4. Typed from the sources the
 * build is made of and from Effect 4's own declarations.
 */
import { createRequire } from "node:module"
import { pathToFileURL } from "node:url"
import type * as SqlPgClient4 from "../effect4/node_modules/@effect/sql-pg/dist/PgClient.js"
import type * as Effect4 from "../effect4/node_modules/effect/dist/index.js"
import type * as SqlClient4 from "../effect4/node_modules/effect/dist/sql/SqlClient.js"
import type * as EffectDsql4 from "../effect4/src/index.js"

const effect4Dir = new URL("../effect4/", import.meta.url)
const requireFrom4 = createRequire(new URL("package.json", effect4Dir))

/** What `import(specifier)` would load in a module of `effect4/`. */
const importFrom4 = (specifier: string): Promise<unknown> => import(pathToFileURL(requireFrom4.resolve(specifier)).href)

const built = new URL("dist/index.js", effect4Dir)

export const effectDsql4 = await import(built.href).catch((cause: unknown) => {
  throw new Error(`effect-dsql 2's build is missing at ${built.pathname}: run the bench with npm run bench`, { cause })
}) as typeof EffectDsql4

export const effect4 = await importFrom4("effect") as typeof Effect4
export const SqlClient = (await importFrom4("effect/sql/SqlClient") as typeof SqlClient4).SqlClient
export type SqlClient = SqlClient4.SqlClient
export const PgClient = await importFrom4("@effect/sql-pg/PgClient") as typeof SqlPgClient4
