/**
 * `npm run check:readme`: type-checks every ```ts block of README.md as a module of its own, with the repo's
 * compiler settings and `effect-dsql` / `effect-dsql/local` resolved to the sources. Errors are reported at their
 * README line. The blocks are written to `.readme-check/` (gitignored), removed again when they pass.
 */
import { execFile } from "node:child_process"
import { mkdir, readFile, rm, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
const workDir = join(root, ".readme-check")

interface Block {
  /** README line of the block's first code line (1-based). */
  readonly line: number
  readonly code: string
}

const blocksOf = (markdown: string): Array<Block> => {
  const blocks: Array<Block> = []
  const lines = markdown.split("\n")
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i])) continue
    const start = i + 1
    let end = start
    while (end < lines.length && !lines[end].startsWith("```")) end++
    blocks.push({ line: start + 1, code: lines.slice(start, end).join("\n") + "\n" })
    i = end
  }
  return blocks
}

const fileName = (block: Block) => `readme-line-${block.line}.ts`

/** A block without imports or exports would be a script sharing one global scope with the others. */
const asModule = (code: string) => /^\s*(import|export)\b/m.test(code) ? code : `${code}export {}\n`

const tsconfig = {
  extends: "../tsconfig.json",
  // Blocks show a piece of an application: names they define but do not use are fine.
  compilerOptions: { noUnusedLocals: false, noUnusedParameters: false },
  include: ["./*.ts"]
}

const typeCheck = () =>
  new Promise<{ readonly ok: boolean; readonly output: string }>((resolve) =>
    execFile(
      process.execPath,
      [join(root, "node_modules/typescript/bin/tsc"), "--noEmit", "--pretty", "false", "-p", workDir],
      { cwd: root },
      (error, stdout, stderr) => resolve({ ok: error === null, output: stdout + stderr })
    )
  )

/** `.readme-check/readme-line-40.ts(3,7): …` → `README.md:42:7: …` */
const atReadmeLines = (output: string): string =>
  output.replace(
    /(?:\.readme-check\/)?readme-line-(\d+)\.ts\((\d+),(\d+)\)/g,
    (_, start: string, line: string, column: string) => `README.md:${Number(start) + Number(line) - 1}:${column}`
  )

const main = async () => {
  const blocks = blocksOf(await readFile(join(root, "README.md"), "utf8"))
  if (blocks.length === 0) throw new Error("README.md has no ```ts blocks")
  await rm(workDir, { recursive: true, force: true })
  await mkdir(workDir)
  await writeFile(join(workDir, "tsconfig.json"), JSON.stringify(tsconfig, null, 2))
  for (const block of blocks) await writeFile(join(workDir, fileName(block)), asModule(block.code))
  const { ok, output } = await typeCheck()
  if (!ok) {
    console.error(atReadmeLines(output).trimEnd())
    console.error(`check:readme: type errors in README.md (blocks kept in ${workDir})`)
    process.exitCode = 1
    return
  }
  await rm(workDir, { recursive: true, force: true })
  console.log(`check:readme: ${blocks.length} TypeScript blocks of README.md type-check`)
}

main().catch((error: unknown) => {
  console.error(`check:readme: ${error instanceof Error ? error.message : String(error)}`)
  process.exitCode = 1
})
