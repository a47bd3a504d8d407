/**
 * @internal
 */
import * as Data from "effect/Data"

/**
 * DsqlLocal could not start, serve or stop: the backend PostgreSQL, certificates, the listener or its options.
 *
 * @since 0.1.0
 * @category errors
 */
export class DsqlLocalError extends Data.TaggedError("DsqlLocalError")<{
  readonly reason: "Backend" | "Certificates" | "Listen" | "Options"
  readonly message: string
  readonly cause?: unknown
}> {}
