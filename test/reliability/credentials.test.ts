/**
 * Credentials that expire and providers that fail, under a running pool: short-lived session credentials refreshed
 * ahead of expiry (DsqlLocal verifies tokens carrying X-Amz-Security-Token), and a provider that fails for a while
 * then recovers, with the same layer throughout.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { TokenSigner } from "effect-dsql"
import { DsqlLocal } from "effect-dsql/local"
import {
  after,
  assertSignedWhileValid,
  emptyTally,
  explain,
  report,
  runFibers,
  SecretWatch,
  sessionProvider,
  tallied,
  timestampingSigner,
  typedFailure,
  watched,
  watchedClient
} from "./harness.js"

const watch = new SecretWatch()
const file = "credentials"

describe("reliability: credentials", () => {
  layer(DsqlLocal.layer(), { excludeTestServices: true, timeout: "120 seconds" })("on DsqlLocal", (it) => {
    it.effect(
      "short-lived session credentials are refreshed before they expire, with no error",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const lifetimeMillis = 4_000
          const { issued, provider } = sessionProvider(watch, server, lifetimeMillis)
          const signer = timestampingSigner(TokenSigner.layerFromProvider(provider, { refreshBefore: "2 seconds" }))
          const before = yield* server.stats
          const tally = emptyTally()
          const runMillis = 12_000
          yield* runFibers({
            fibers: 8,
            until: after(runMillis),
            operation: () =>
              tallied(watch, tally, Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`)).pipe(
                Effect.zipLeft(Effect.sleep("10 millis"))
              )
          }).pipe(
            Effect.provide(
              watchedClient(watch, server, { maxConnections: 4, maxConnectionLifetime: "500 millis" }, signer.layer)
            ),
            watched(watch)
          )
          const stats = yield* server.stats
          const opened = stats.connectionsAccepted - before.connectionsAccepted
          assert.deepStrictEqual(
            { failed: tally.failed, died: tally.died },
            { failed: 0, died: 0 },
            tally.firstFailures[0]
          )
          // DsqlLocal verified every token, each carrying a session token.
          assert.strictEqual(stats.tokensVerified - before.tokensVerified, opened)
          assert.isAtLeast(opened, 12)
          assert.isTrue(signer.signed.every((token) => token.sessionToken !== undefined))
          // At least one provider call per validity period (4 s), at most about one per refresh interval (2 s): not one
          // per connection; and each refresh came before the previous credentials expired.
          assert.isAtLeast(issued.length, Math.floor(runMillis / lifetimeMillis))
          assert.isAtMost(issued.length, Math.ceil(runMillis / 2_000) + 2)
          for (let i = 1; i < issued.length; i++) {
            assert.isBelow(issued[i]!.at, issued[i - 1]!.expiresAt, `refresh ${i} came after the credentials expired`)
          }
          assertSignedWhileValid(signer.signed, issued)
          yield* report({
            file,
            case: "session credentials valid 4 s, refreshed 2 s ahead, 8 fibers × 12 s, connections recycled at 0.5 s",
            faults: `credentials expiring every 4 s: ${issued.length} provider calls for ${opened} connections`,
            operations: tally.ok + tally.failed,
            errorsSeen: tally.failed + tally.died,
            dataLost: 0
          })
        }),
      60_000
    )

    it.effect(
      "a provider failing for a while gives typed errors, then the same layer recovers",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const started = Date.now()
          const failingBetween = [2_000, 6_000] as const
          const { failures, issued, provider } = sessionProvider(watch, server, 2_000, () => {
            const elapsed = Date.now() - started
            return elapsed >= failingBetween[0] && elapsed < failingBetween[1]
          })
          const phases = { healthy: emptyTally(), failing: emptyTally(), recovered: emptyTally() }
          const phaseNow = () => {
            const elapsed = Date.now() - started
            // credentials fetched just before the failures start stay usable up to 2 s into them
            return elapsed < failingBetween[0] ? "healthy" : elapsed < failingBetween[1] + 500 ? "failing" : "recovered"
          }
          const layer = watchedClient(
            watch,
            server,
            { maxConnections: 2, maxConnectionLifetime: "300 millis" },
            TokenSigner.layerFromProvider(provider, { refreshBefore: "500 millis" })
          )
          yield* runFibers({
            fibers: 4,
            until: after(10_000),
            operation: () =>
              tallied(watch, () => phases[phaseNow()], Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`))
                .pipe(
                  Effect.zipLeft(Effect.sleep("20 millis"))
                )
          }).pipe(Effect.provide(layer), watched(watch))
          const { failing, healthy, recovered } = phases
          assert.strictEqual(healthy.failed + healthy.died, 0, healthy.firstFailures[0])
          assert.isAbove(failing.failed, 0, "new connections failed while no credentials could be had")
          assert.strictEqual(failing.died + recovered.died, 0, "no defect")
          assert.strictEqual(recovered.failed, 0, recovered.firstFailures[0])
          assert.isAbove(recovered.ok, 50, "the same layer works again")
          assert.isAbove(failures(), 0)
          assert.isTrue(issued.some((credentials) => credentials.at - started >= failingBetween[1]), "fetched again")
          yield* report({
            file,
            case: "credentials provider failing for 4 s (credentials valid 2 s), 4 fibers × 10 s, same layer",
            faults: `${failures()} failed provider calls, ${issued.length} successful`,
            operations: healthy.ok + failing.ok + failing.failed + recovered.ok,
            errorsSeen: failing.failed,
            dataLost: 0,
            notes: `errors expected only while no credentials could be had (all typed): "${
              failing.firstFailures[0] ?? ""
            }"`
          })
        }),
      60_000
    )

    it.effect("the error a failing provider causes says why", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const { provider } = sessionProvider(watch, server, 60_000, () => true)
        const exit = yield* Effect.exit(
          Layer.build(watchedClient(watch, server, {}, TokenSigner.layerFromProvider(provider))).pipe(
            Effect.scoped,
            watched(watch)
          )
        )
        const text = explain(typedFailure(exit, watch))
        assert.include(text, "no AWS credentials found")
        assert.include(text, "the instance metadata service did not answer")
      }))

    it.effect("leaks no secret in anything logged, traced or raised during these cases", () =>
      Effect.sync(() => watch.assertClean(["log", "span", "error"])))
  })
})
