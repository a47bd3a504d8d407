/**
 * How DsqlLocal keeps its secrets (the secret access key, the backend's password) out of what gets printed.
 *
 * @internal
 */
import { NodeInspectSymbol } from "effect/Inspectable"

/** What a hidden secret shows instead. */
export const redacted = "<redacted>"

/** Keeps secrets out of `inspect`, `JSON.stringify` and Effect's logs, while spreading the object still copies them. */
export const hideSecrets = <A extends object>(value: A, view: () => unknown): A =>
  Object.defineProperties(value, {
    toJSON: { value: view, enumerable: false },
    [NodeInspectSymbol]: { value: view, enumerable: false }
  })

/** `url` with its password, if any, shown as {@link redacted}; a URL that does not parse is hidden whole. */
export const withoutPassword = (url: string): string => {
  try {
    const parsed = new URL(url)
    if (parsed.password === "") return url
    parsed.password = redacted
    return parsed.toString()
  } catch {
    return redacted
  }
}
