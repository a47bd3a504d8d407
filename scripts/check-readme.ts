/**
 * `npm run check:readme`: type-checks every ```ts block of README.md, local/README.md and effect4/README.md as a
 * module of its own, with the line's compiler settings and `effect-dsql` / `effect-dsql/local` resolved to the
 * sources. Blocks of the root and local READMEs are Effect 3 code unless fenced ```ts effect4; the Effect 4 package's
 * README is Effect 4 code. Errors are reported at their README line. The blocks are written to `.readme-check/` of
 * their line's folder (gitignored),
 * removed again when they pass.
 */
import { execFile } from "node:child_process"
import { existsSync } from "node:fs"
import { mkdir, readFile, rm, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))

type Line = "effect3" | "effect4"

/** Where each line's blocks are type-checked: a folder beside that line's tsconfig.json. */
const lineDirs: Record<Line, string> = { effect3: root, effect4: join(root, "effect4") }

interface Block {
  readonly readme: string
  /** README line of the block's first code line (1-based). */
  readonly line: number
  readonly of: Line
  readonly code: string
}

const blocksOf = (readme: string, markdown: string, defaultLine: Line): Array<Block> => {
  const blocks: Array<Block> = []
  const lines = markdown.split("\n")
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(ts|typescript)(?:\s+(effect4))?\s*$/.exec(lines[i])
    if (fence === null) continue
    const start = i + 1
    let end = start
    while (end < lines.length && !lines[end].startsWith("```")) end++
    const of = fence[2] === "effect4" ? "effect4" : defaultLine
    blocks.push({ readme, line: start + 1, of, code: lines.slice(start, end).join("\n") + "\n" })
    i = end
  }
  return blocks
}

const fileName = (block: Block) => `${block.readme.replace(/\W/g, "_")}-line-${block.line}.ts`

/** A block without imports or exports would be a script sharing one global scope with the others. */
const asModule = (code: string) => /^\s*(import|export)\b/m.test(code) ? code : `${code}export {}\n`

const tsconfig = {
  extends: "../tsconfig.json",
  // Blocks show a piece of an application: names they define but do not use are fine.
  compilerOptions: { noUnusedLocals: false, noUnusedParameters: false },
  include: ["./*.ts"]
}

const typeCheck = (workDir: string) =>
  new Promise<{ readonly ok: boolean; readonly output: string }>((resolve) =>
    execFile(
      process.execPath,
      [join(root, "node_modules/typescript/bin/tsc"), "--noEmit", "--pretty", "false", "-p", workDir],
      { cwd: root },
      (error, stdout, stderr) => resolve({ ok: error === null, output: stdout + stderr })
    )
  )

/** `.readme-check/README_md-line-40.ts(3,7): …` → `README.md:42:7: …` */
const atReadmeLines = (output: string, blocks: ReadonlyArray<Block>): string =>
  output.replace(
    /(?:\S*\.readme-check\/)?(\w+)-line-(\d+)\.ts\((\d+),(\d+)\)/g,
    (whole, readme: string, start: string, line: string, column: string) => {
      const block = blocks.find((candidate) => fileName(candidate) === `${readme}-line-${start}.ts`)
      return block === undefined ? whole : `${block.readme}:${Number(start) + Number(line) - 1}:${column}`
    }
  )

const checkLine = async (of: Line, blocks: ReadonlyArray<Block>): Promise<boolean> => {
  const workDir = join(lineDirs[of], ".readme-check")
  await rm(workDir, { recursive: true, force: true })
  await mkdir(workDir)
  await writeFile(join(workDir, "tsconfig.json"), JSON.stringify(tsconfig, null, 2))
  for (const block of blocks) await writeFile(join(workDir, fileName(block)), asModule(block.code))
  const { ok, output } = await typeCheck(workDir)
  if (!ok) {
    console.error(atReadmeLines(output, blocks).trimEnd())
    console.error(`check:readme: type errors in the ${of} blocks (kept in ${workDir})`)
    return false
  }
  await rm(workDir, { recursive: true, force: true })
  return true
}

const main = async () => {
  const readmes: ReadonlyArray<readonly [string, Line]> = [
    ["README.md", "effect3"],
    ["local/README.md", "effect3"],
    ["effect4/README.md", "effect4"]
  ]
  const blocks: Array<Block> = []
  for (const [readme, defaultLine] of readmes) {
    const path = join(root, readme)
    if (existsSync(path)) blocks.push(...blocksOf(readme, await readFile(path, "utf8"), defaultLine))
  }
  if (blocks.length === 0) throw new Error("README.md has no ```ts blocks")
  let ok = true
  for (const  of of["effect3", "effect4"] as const) {
    const ofLine = blocks.filter((block) => block.of === of)
    if (ofLine.length > 0) ok = (await checkLine(of, ofLine)) && ok
  }
  if (!ok) {
    process.exitCode = 1
    return
  }
  const count = (of: Line) => blocks.filter((block) => block.of === of).length
  console.log(
    `check:readme: ${count("effect3")} Effect 3 and ${count("effect4")} Effect 4 TypeScript blocks type-check`
  )
}

main().catch((error: unknown) => {
  console.error(`check:readme: ${error instanceof Error ? error.message : String(error)}`)
  process.exitCode = 1
})
