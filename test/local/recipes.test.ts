/**
 * The README's DsqlLocal recipes are their files, verbatim: each recipe is a test suite that runs against a real
 * DsqlLocal (`local/recipes/*.test.ts` here, `effect4/test/recipes/` in the Effect 4 line), and this checks that the
 * block shown under each recipe's link is that file, so the documentation cannot drift from what is tested.
 */
import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"

const read = (path: string) => readFileSync(fileURLToPath(new URL(`../../${path}`, import.meta.url)), "utf8")

/** The first fenced block after the line linking to `target`, or undefined when there is no such link. */
const blockAfterLink = (markdown: string, target: string): string | undefined => {
  const lines = markdown.split("\n")
  const link = lines.findIndex((line) => line.includes(`](${target})`))
  if (link === -1) return undefined
  const open = lines.findIndex((line, index) => index > link && line.startsWith("```"))
  const close = lines.findIndex((line, index) => index > open && line.startsWith("```"))
  return open === -1 || close === -1 ? undefined : lines.slice(open + 1, close).join("\n") + "\n"
}

/** Each README, the recipes it shows (links relative to the README, paths relative to the repository). */
const shown: ReadonlyArray<readonly [readme: string, folder: string, recipes: ReadonlyArray<string>]> = [
  ["README.md", "", [
    "local/recipes/node-postgres.test.ts",
    "local/recipes/postgres-js.test.ts",
    "local/recipes/drizzle.test.ts",
    "local/recipes/effect3.test.ts",
    "effect4/test/recipes/effect4.test.ts"
  ]],
  ["effect4/README.md", "effect4/", ["effect4/test/recipes/effect4.test.ts"]]
]

describe("DsqlLocal recipes", () => {
  for (const [readme, folder, recipes] of shown) {
    for (const recipe of recipes) {
      it(`${readme} shows ${recipe} verbatim`, () => {
        expect(blockAfterLink(read(readme), recipe.slice(folder.length))).toBe(read(recipe))
      })
    }
  }
})
