/**
 * @internal
 */
import * as Data from "effect/Data"

/**
 * DsqlLocal could not start, serve or stop: its packages are not installed (`MissingPackages`, the message names
 * them and the install command), or the backend PostgreSQL, certificates, the listener or its options failed.
 *
 * @since 0.1.0
 * @category errors
 */
export class DsqlLocalError extends Data.TaggedError("DsqlLocalError")<{
  readonly reason: "Backend" | "Certificates" | "Listen" | "MissingPackages" | "Options"
  readonly message: string
  readonly cause?: unknown
}> {}
