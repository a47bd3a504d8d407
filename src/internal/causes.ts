/**
 * Walking an error's `cause` chain: @effect/sql's `SqlError` keeps pg's `DatabaseError` (SQLSTATE in `code`) or the
 * socket's error in `cause`, and the classifiers (OCC conflicts, ended sessions, migration failures) look there.
 *
 * @internal
 */

import { SqlState } from "@effect-dsql/core"

/** How deep a chain is followed: a cycle or a pathological chain must not loop. */
const maxDepth = 10

/** The first object along `error`'s cause chain, `error` included, for which `pick` returns something. */
export const findCause = <A>(
  error: unknown,
  pick: (candidate: { readonly code?: unknown; readonly message?: unknown }) => A | undefined
): A | undefined => {
  let current = error
  for (let depth = 0; typeof current === "object" && current !== null && depth < maxDepth; depth++) {
    const found = pick(current)
    if (found !== undefined) return found
    current = (current as { readonly cause?: unknown }).cause
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
