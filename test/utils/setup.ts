/**
 * Run before every test file (`setupFiles` in vitest.config.ts).
 */
import * as FastCheck from "effect/FastCheck"

// A property's runs, and fast-check's shrinking of a failure, chain promises without ever yielding to the event
// loop, so neither vitest's test timeout nor its RPC can fire meanwhile: a slow property that failed once shrank
// for as long as it liked. Past this budget fast-check stops, reporting the smallest failure it had (a property that
// found none passes on the runs it made).
FastCheck.configureGlobal({ interruptAfterTimeLimit: 15_000 })
