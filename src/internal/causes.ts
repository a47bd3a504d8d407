/**
 * Walking an error's `cause` chain: @effect/sql's `SqlError` keeps pg's `DatabaseError` (SQLSTATE in `code`) or the
 * socket's error in `cause`, and the classifiers (OCC conflicts, ended sessions, migration failures) and the
 * connect-error descriptions look there. Every walk goes through `causeChain`, which is bounded.
 *
 * @internal
 */

import { SqlState } from "@effect-dsql/core"

/** How deep a chain is followed: a pathological chain must not loop or describe itself at length. */
const maxDepth = 10

/**
 * `error` and the causes it leads to, outermost first: at most `maxDepth` links, ending at a value that is not an
 * object, has no `cause`, or whose `cause` was already met (a cycle).
 */
export const causeChain = (error: unknown): ReadonlyArray<unknown> => {
  const chain: Array<unknown> = [error]
  let current = error
  while (chain.length < maxDepth && typeof current === "object" && current !== null) {
    const next = (current as { readonly cause?: unknown }).cause
    if (next === undefined || chain.includes(next)) break
    chain.push(next)
    current = next
  }
  return chain
}

/** The first object along `error`'s cause chain, `error` included, for which `pick` returns something. */
export const findCause = <A>(
  error: unknown,
  pick: (candidate: { readonly code?: unknown; readonly message?: unknown }) => A | undefined
): A | undefined => {
  for (const candidate of causeChain(error)) {
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
