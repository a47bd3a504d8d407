/**
 * The machinery in src/internal takes only types from the public modules: a value import would make a public module
 * a dependency of its own internals (DsqlMetrics was one, imported by the modules recording its metrics).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import ts from "typescript"

const internalDir = Path.join(import.meta.dirname, "../../src/internal")

/** The public modules `file` imports values from: `../X.js` specifiers, X capitalised, not type-only. */
const publicValueImports = (file: string): Array<string> => {
  const source = ts.createSourceFile(file, Fs.readFileSync(file, "utf8"), ts.ScriptTarget.Latest)
  return source.statements.flatMap((statement) => {
    const isImport = ts.isImportDeclaration(statement)
    if (!isImport && !ts.isExportDeclaration(statement)) return []
    const specifier = statement.moduleSpecifier
    if (specifier === undefined || !ts.isStringLiteral(specifier) || !/^\.\.\/[A-Z]/.test(specifier.text)) return []
    const typeOnly = isImport
      ? statement.importClause === undefined ? false : statement.importClause.isTypeOnly || (
        statement.importClause.name === undefined && statement.importClause.namedBindings !== undefined &&
        ts.isNamedImports(statement.importClause.namedBindings) &&
        statement.importClause.namedBindings.elements.every((element) => element.isTypeOnly)
      )
      : statement.isTypeOnly
    return typeOnly ? [] : [specifier.text]
  })
}

describe("layering", () => {
  it("src/internal imports no value from a public module", () => {
    const files = Fs.readdirSync(internalDir).filter((name) => name.endsWith(".ts"))
    assert.isAbove(files.length, 5, "the internal modules were found")
    const found = files.flatMap((name) =>
      publicValueImports(Path.join(internalDir, name)).map((specifier) => `${name}: ${specifier}`)
    )
    assert.deepStrictEqual(found, [])
  })
})
