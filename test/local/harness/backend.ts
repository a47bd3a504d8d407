/**
 * Test-only PostgreSQL: an embedded server in a fresh data directory (loopback connections trusted), with DsqlLocal's
 * catalog installed and the SQL parser loaded. Started as DsqlLocal starts its own, so its watchdog stops it and
 * removes its directory when a test worker dies without closing the layer.
 */
import { Context, Effect, Layer } from "effect"
import { acquireBackend } from "../../../local/src/internal/backend.js"
import { backendSetupSql } from "../../../local/src/internal/catalog.js"
import { loadParser } from "../../../local/src/internal/policy.js"

export class TestBackend extends Context.Tag("test/TestBackend")<TestBackend, { readonly port: number }>() {}

/** One PostgreSQL for a test file, stopped and deleted afterwards. */
export const layer: Layer.Layer<TestBackend, unknown> = Layer.scoped(
  TestBackend,
  Effect.gen(function*() {
    const backend = yield* acquireBackend({ setupSql: backendSetupSql, dataDirPrefix: "dsql-policy-" })
    yield* Effect.promise(loadParser)
    return { port: backend.port }
  })
)
