import { assert, describe, layer } from "@effect/vitest"
import { type Cause, ConfigProvider, Effect } from "effect"
import { TokenSigner } from "effect-dsql"
import { DsqlLocal } from "effect-dsql/local"
import { program } from "../../examples/alternatives/manual_token.js"
import { failureOf } from "../utils/failure.js"
import { logOf } from "./console.js"

const runWith = (server: DsqlLocal.Server, env: Readonly<Record<string, string>>) =>
  logOf(program).pipe(
    Effect.provide(TokenSigner.layerStatic(server.credentials)),
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
  )

describe("examples/alternatives/manual_token", () => {
  layer(DsqlLocal.layer(), { excludeTestServices: true })((it) => {
    it.effect("connects a plain pg.Client with a TokenSigner token over direct, verified TLS", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const before = yield* server.stats
        const lines = yield* runWith(server, server.env)
        const after = yield* server.stats
        assert.deepStrictEqual(lines, [
          `manual_token: signed a DbConnectAdmin token for ${server.hostname} (${server.region})`,
          `manual_token: pg.Client connected as admin, TLS verified for ${server.hostname}`
        ])
        assert.strictEqual(after.tokensVerified - before.tokensVerified, 1)
        assert.strictEqual(after.tlsModes.direct - before.tlsModes.direct, 1)
      }))

    it.effect("refuses the server when its CA is not trusted", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const { DSQL_CA_PEM: _, ...withoutCa } = server.env
        const error = yield* failureOf(runWith(server, withoutCa))
        assert.strictEqual(error._tag, "UnknownException")
        assert.match(String((error as Cause.UnknownException).cause), /certificate/i)
      }))
  })
})
