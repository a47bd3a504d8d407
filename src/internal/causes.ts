/**
 * Walking an error's `cause` chain: @effect/sql's `SqlError` keeps pg's `DatabaseError` (SQLSTATE in `code`) or the
 * socket's error in `cause`, and the classifiers (OCC conflicts, ended sessions, migration failures) look there.
 *
 * @internal
 */

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
