/**
 * The test runner (vitest's own, `runner` in vitest.config.ts) with one guard: a failure whose stack has no
 * `at file:line:col` frame reaches the reporter without that stack.
 *
 * Why: vitest's reporter parses such a stack with a regular expression that backtracks super-linearly
 * (`parseSingleFFOrSafariStack` in @vitest/utils); on a long line with quotes, which is what Effect makes of a
 * failure that is not an `Error` (a `ConfigError`, a config, a pg client handed to `Effect.flip`), it ran for hours
 * after printing the failures, and the run never exited. The message, printed in full, still says what failed.
 */
import type { RunnerTask, RunnerTestSuite } from "vitest"
import { VitestTestRunner } from "vitest/runners"

/** The line vitest's reporter takes for a V8 stack frame (its `CHROME_IE_STACK_REGEXP`). */
const v8Frame = /^\s*at .*(?:\S:\d+|\(native\))/m

const withoutFramelessStacks = (error: unknown, depth = 0): void => {
  if (depth > 10 || typeof error !== "object" || error === null) return
  const fields = error as { stack?: unknown; cause?: unknown }
  if (typeof fields.stack === "string" && !v8Frame.test(fields.stack)) fields.stack = ""
  withoutFramelessStacks(fields.cause, depth + 1)
}

const guardErrors = (task: RunnerTask) => task.result?.errors?.forEach((error) => withoutFramelessStacks(error))

export default class GuardedRunner extends VitestTestRunner {
  override onAfterRunTask(test: RunnerTask): void {
    guardErrors(test)
    super.onAfterRunTask(test)
  }

  override async onAfterRunSuite(suite: RunnerTestSuite): Promise<void> {
    guardErrors(suite)
    await super.onAfterRunSuite(suite)
  }
}
