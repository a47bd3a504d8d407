/**
 * Fixtures for tests of our client against DsqlLocal: a client layer pointed at a server, direct queries on the
 * backend PostgreSQL for verification, unique table names and a scoped process environment.
 */
import { Effect, Layer, Ref } from "effect"
import { DsqlClient, TokenSigner } from "effect-dsql"
import { DsqlLocal } from "effect-dsql/local"
import pg from "pg"

/** A `DsqlClient` layer for `server`, signing with its credentials unless another signer is given. */
export const clientLayer = (
  server: DsqlLocal.Server,
  overrides: DsqlClient.ConfigInput = {},
  signer: Layer.Layer<TokenSigner.TokenSigner> = TokenSigner.layerStatic(server.credentials)
) => DsqlClient.layerConfig({ ...DsqlLocal.clientConfig(server), ...overrides }).pipe(Layer.provide(signer))

/** `server`'s static signer, recording every request it is asked to sign (the number of tokens is its length). */
export const recordingSigner = (server: DsqlLocal.Server, requests: Ref.Ref<Array<TokenSigner.SignRequest>>) =>
  Layer.effect(
    TokenSigner.TokenSigner,
    Effect.map(TokenSigner.TokenSigner, (inner) =>
      TokenSigner.TokenSigner.of({
        sign: (request) => Effect.zipRight(Ref.update(requests, (all) => [...all, request]), inner.sign(request))
      }))
  ).pipe(Layer.provide(TokenSigner.layerStatic(server.credentials)))

/** Runs SQL on the backend PostgreSQL directly (no DSQL rules), to set up or check what the client did. */
export const backendQuery = <A = Record<string, unknown>>(server: DsqlLocal.Server, sql: string) =>
  Effect.acquireUseRelease(
    Effect.tryPromise(async () => {
      const client = new pg.Client({ connectionString: server.backendUrl })
      await client.connect()
      return client
    }),
    (client) => Effect.tryPromise(() => client.query(sql)).pipe(Effect.map((result) => result.rows as Array<A>)),
    (client) => Effect.promise(() => client.end())
  )

let tables = 0
/** A table name no other test in this process uses. */
export const uniqueTable = (prefix: string) => `${prefix}_${process.pid}_${++tables}_${Date.now() % 100_000}`

/** Runs `effect` with `env` merged into `process.env`, restoring the previous values afterwards. */
export const withEnv = <A, E, R>(env: Readonly<Record<string, string>>, effect: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const previous = Object.fromEntries(Object.keys(env).map((key) => [key, process.env[key]]))
      Object.assign(process.env, env)
      return previous
    }),
    () => effect,
    (previous) =>
      Effect.sync(() => {
        for (const [key, value] of Object.entries(previous)) {
          if (value === undefined) delete process.env[key]
          else process.env[key] = value
        }
      })
  )
