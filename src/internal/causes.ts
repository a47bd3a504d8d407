/**
 * Walking an error's `cause` chain: @effect/sql's `SqlError` keeps pg's `DatabaseError` (SQLSTATE in `code`) or the
 * socket's error in `cause`, and the classifiers (OCC conflicts, ended sessions, migration failures) and the
 * connect-error descriptions look there. Every walk goes through the core's `Causes.causeChain`, which is bounded.
 *
 * @internal
 */

import { Causes, SqlState } from "@effect-dsql/core"

/** The first object along `error`'s cause chain, `error` included, for which `pick` returns something. */
export const findCause = <A>(
  error: unknown,
  pick: (candidate: { readonly code?: unknown; readonly message?: unknown }) => A | undefined
): A | undefined => {
  for (const candidate of Causes.causeChain(error)) {
    if (typeof candidate !== "object" || candidate === null) return undefined
    const found = pick(candidate)
    if (found !== undefined) return found
  }
  return undefined
}

/** The OCC conflict DSQL reports somewhere along `error`'s cause chain. */
export const conflictOf = (
  error: unknown
): { readonly code: SqlState.ConflictCode; readonly message: string } | undefined =>
  findCause(error, ({ code, message }) => {
    const conflict = typeof message === "string" ? SqlState.occConflict(code, message) : undefined
    return conflict === undefined ? undefined : { code: conflict, message: message as string }
  })
