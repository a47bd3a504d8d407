/**
 * Walking an error's `cause` chain, boundedly: drivers keep the server's error (SQLSTATE in `code`) or the socket's
 * error one or more levels down, and a chain may loop.
 *
 * @since 0.1.0
 */

/**
 * How deep a cause chain is followed: a pathological chain must not loop or describe itself at length.
 *
 * @since 0.1.0
 */
export const maxCauseDepth = 10

/**
 * `error` and the causes it leads to, outermost first: at most `maxCauseDepth` links, ending at a value that is not an
 * object, has no `cause`, or whose `cause` was already met (a cycle). Every walk along a cause chain goes through it.
 *
 * @since 0.1.0
 */
export const causeChain = (error: unknown): ReadonlyArray<unknown> => {
  const chain: Array<unknown> = [error]
  let current = error
  while (chain.length < maxCauseDepth && typeof current === "object" && current !== null) {
    const next = (current as { readonly cause?: unknown }).cause
    if (next === undefined || chain.includes(next)) break
    chain.push(next)
    current = next
  }
  return chain
}
