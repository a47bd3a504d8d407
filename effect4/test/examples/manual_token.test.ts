import { assert, describe, layer } from "@effect/vitest"
import { Cause, ConfigProvider, Effect, Exit } from "effect"
import { TokenSigner } from "effect-dsql"
import { program } from "../../examples/alternatives/manual_token.js"
import * as DsqlLocal from "../utils/dsqlLocal.js"
import { logOf } from "./run.js"

type Server = DsqlLocal.DsqlLocal["Service"]

const runWith = (server: Server, env: Readonly<Record<string, string>>) =>
  logOf(program).pipe(
    Effect.provide(TokenSigner.layerStatic(server.credentials)),
    Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env }))
  )

describe("examples/alternatives/manual_token", () => {
  layer(DsqlLocal.layer(), { excludeTestServices: true })((it) => {
    it.effect("connects a plain pg.Client with a TokenSigner token over direct, verified TLS", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const before = server.stats()
        const lines = yield* runWith(server, server.env)
        const after = server.stats()
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
        const exit = yield* Effect.exit(runWith(server, withoutCa))
        assert(Exit.isFailure(exit))
        const error = Cause.squash(exit.cause)
        assert(Cause.isUnknownError(error), Cause.pretty(exit.cause))
        assert.match(String(error.cause), /certificate/i)
      }))
  })
})
