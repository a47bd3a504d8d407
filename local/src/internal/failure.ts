/**
 * @internal
 */
import * as Data from "effect/Data"
import type { DsqlLocalError } from "../DsqlLocal.js"

/**
 * Why DsqlLocal's machinery could not start, serve or stop; `DsqlLocal.start` hands it to callers as the public
 * `DsqlLocalError` with the same reason, message and cause.
 *
 * @since 0.2.0
 * @category errors
 */
export class LocalFailure extends Data.TaggedError("LocalFailure")<{
  readonly reason: DsqlLocalError["reason"]
  readonly message: string
  readonly cause?: unknown
}> {}
