/**
 * A vitest reporter that keeps, in the file named by `VITEST_PROGRESS_FILE`, the test files and tests running right
 * now: when `.ci/run` stops a run that outlived its time bound, that file says what hung.
 */
import { writeFileSync } from "node:fs"
import { relative } from "node:path"
import type { Reporter, TestCase, TestModule } from "vitest/node"

export default class ProgressReporter implements Reporter {
  private readonly running = new Map<string, Set<string>>()

  constructor(private readonly path: string) {}

  private write() {
    const lines = Array.from(this.running, ([file, tests]) => [file, ...Array.from(tests, (name) => `  ${name}`)])
    writeFileSync(this.path, lines.flat().join("\n") + "\n")
  }

  private file(module: TestModule) {
    return relative(process.cwd(), module.moduleId)
  }

  onTestModuleStart(module: TestModule) {
    this.running.set(this.file(module), new Set())
    this.write()
  }

  onTestCaseReady(test: TestCase) {
    this.running.get(this.file(test.module))?.add(test.fullName)
    this.write()
  }

  onTestCaseResult(test: TestCase) {
    this.running.get(this.file(test.module))?.delete(test.fullName)
    this.write()
  }

  onTestModuleEnd(module: TestModule) {
    this.running.delete(this.file(module))
    this.write()
  }
}
