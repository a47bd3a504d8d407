/**
 * No token, secret access key or session token in anything a program can print: errors (message, `Cause.pretty`,
 * `inspect`, `JSON.stringify`), logs at every level, span attributes, events and exits, configs. The program here
 * walks every path that produces such output — refusals at connect, failing statements, OCC retries, dropped
 * connections, a server restart, failing credentials — with session credentials, and the watch searches it all for
 * the secret values and for `X-Amz-Signature`.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Redacted } from "effect"
import { DsqlConfig, OccRetry, TokenSigner, withOccRetry } from "effect-dsql"
import { DsqlLocal } from "effect-dsql/local"
import { inspect } from "node:util"
import { uniqueTable } from "../utils/client.js"
import {
  recordingSigner,
  report,
  SecretWatch,
  sessionProvider,
  typedFailure,
  watched,
  watchedClient
} from "./harness.js"

const watch = new SecretWatch()

describe("reliability: secrets", () => {
  layer(DsqlLocal.layer(), { excludeTestServices: true, timeout: "120 seconds" })("on DsqlLocal", (it) => {
    it.effect("the watch finds a token, a secret or a signature when one is printed", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const probe = new SecretWatch()
        const token = yield* Effect.flatMap(TokenSigner.TokenSigner, (signer) =>
          signer.sign({ hostname: server.hostname, region: server.region, user: "admin", expiresIn: "60 seconds" }))
          .pipe(
            Effect.provide(recordingSigner(probe, TokenSigner.layerStatic(server.credentials)))
          )
        probe.addSecret(server.credentials.secretAccessKey)
        probe.scan("redacted", inspect({ password: token }))
        assert.deepStrictEqual(probe.leaks, [], "a Redacted token prints as <redacted>")
        const signature = /X-Amz-Signature=([0-9a-f]{64})/.exec(Redacted.value(token))![1]!
        for (const text of [Redacted.value(token), `sig ${signature} end`, server.credentials.secretAccessKey]) {
          probe.scan("probe", `before ${text} after`)
        }
        assert.strictEqual(probe.leaks.length, 3)
      }))

    it.effect("a program through every error, log and span path prints no secret", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const table = uniqueTable("secret_paths")
        const { provider } = sessionProvider(watch, server, 60_000)
        const client = watchedClient(
          watch,
          server,
          { maxConnections: 2, maxConnectionLifetime: "1 second" },
          TokenSigner.layerFromProvider(provider)
        )
        yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* sql`CREATE TABLE ${sql(table)} (id int PRIMARY KEY, note text)`
          yield* Effect.logTrace("trace from the program")
          // An OCC conflict retried (OccRetry logs at debug), and one that exhausts the retries.
          yield* server.faults.failNextCommits(1)
          yield* withOccRetry(sql`INSERT INTO ${sql(table)} VALUES (1, 'a')`)
          yield* server.faults.failNextCommits(3)
          const exhausted = yield* Effect.exit(
            withOccRetry(sql`INSERT INTO ${sql(table)} VALUES (2, 'b')`, { maxRetries: 2, baseDelay: 1 })
          )
          assert.isTrue(OccRetry.isOccConflict(typedFailure(exhausted, watch)))
          // A failed COMMIT in a plain transaction, a statement DSQL refuses, a syntax error, a unique violation.
          yield* server.faults.failNextCommits(1)
          typedFailure(yield* Effect.exit(sql.withTransaction(sql`INSERT INTO ${sql(table)} VALUES (3, 'c')`)), watch)
          typedFailure(yield* Effect.exit(sql.unsafe(`TRUNCATE ${table}`)), watch)
          typedFailure(yield* Effect.exit(sql.unsafe("SELEC 1")), watch)
          typedFailure(yield* Effect.exit(sql`INSERT INTO ${sql(table)} VALUES (1, 'again')`), watch)
          // A connection dropped under a query, then the server stopped under idle connections and restarted.
          yield* server.faults.dropNextQueries(1)
          typedFailure(yield* Effect.exit(sql`SELECT 1`), watch)
          yield* sql`SELECT 1`
          yield* server.stop
          typedFailure(yield* Effect.exit(sql`SELECT 1`), watch)
          yield* server.restart
          yield* Effect.sleep("200 millis")
          yield* sql`SELECT 1`.pipe(Effect.retry({ times: 5 }))
          // New connections refused for the token's age; then accepted again.
          yield* server.faults.setMaxTokenAge("0 seconds")
          yield* Effect.sleep("1100 millis")
          typedFailure(yield* Effect.exit(sql`SELECT pg_sleep(0.01)`), watch)
          yield* server.faults.reset
          // What a program might print of the client itself.
          const pg = yield* PgClient.PgClient
          watch.value("config", pg.config)
        }).pipe(Effect.provide(client), watched(watch), Effect.ensuring(server.faults.reset))
      }), 60_000)

    it.effect(
      "refusals at connect print no secret: wrong secret, unknown key, expired credentials, no credentials",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const wrongSecret = "wrong-secret-0123456789abcdefghijklmnopqrstuv"
          watch.addSecret(wrongSecret)
          const signers = [
            TokenSigner.layerStatic({ ...server.credentials, secretAccessKey: wrongSecret }),
            TokenSigner.layerStatic({ accessKeyId: "AKIAUNKNOWNKEY000000", secretAccessKey: wrongSecret }),
            TokenSigner.layerFromProvider(() =>
              Promise.resolve({ ...server.credentials, sessionToken: "s", expiration: new Date(Date.now() - 1_000) })
            ),
            TokenSigner.layerFromProvider(() => Promise.reject(new Error("no credentials configured")))
          ]
          for (const signer of signers) {
            const exit = yield* Effect.exit(
              Layer.build(watchedClient(watch, server, {}, signer)).pipe(Effect.scoped, watched(watch))
            )
            assert.strictEqual((typedFailure(exit, watch) as { _tag: string })._tag, "SqlError")
          }
          // A token's age refused at connect.
          yield* server.faults.setMaxTokenAge("0 seconds")
          yield* Effect.sleep("1100 millis")
          const aged = yield* Effect.exit(
            Layer.build(watchedClient(watch, server)).pipe(
              Effect.scoped,
              watched(watch),
              Effect.ensuring(server.faults.reset)
            )
          )
          typedFailure(aged, watch)
          // Signing refused before any network: a bad request.
          const invalid = yield* Effect.exit(
            Effect.flatMap(
              TokenSigner.TokenSigner,
              (signer) => signer.sign({ hostname: "", region: server.region, user: "admin", expiresIn: "60 seconds" })
            ).pipe(
              Effect.provide(TokenSigner.layerStatic(server.credentials))
            )
          )
          typedFailure(invalid, watch)
        }),
      60_000
    )

    it.effect("configs from every constructor print no secret", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const configs = [
          yield* DsqlConfig.make({ host: server.hostname, caPem: server.ca, hostAddress: server.address }),
          yield* DsqlConfig.fromUrl(`dsql://admin@${server.hostname}:${server.port}/postgres?tokenDurationSecs=60`),
          // the environment a user exports for DsqlLocal, secret key included
          yield* DsqlConfig.config.pipe(Effect.withConfigProvider(
            ConfigProvider.fromMap(new Map(Object.entries({ ...server.env })), { pathDelim: "_" })
          ))
        ]
        for (const config of configs) watch.value("config", config)
        watch.value("config", server)
        watch.value("config", server.env)
        watch.value("config", server.credentials)
        const sign = Effect.flatMap(TokenSigner.TokenSigner, (signer) =>
          signer.sign({ hostname: server.hostname, region: server.region, user: "admin", expiresIn: "60 seconds" }))
        const token = yield* sign.pipe(
          Effect.provide(recordingSigner(watch, TokenSigner.layerStatic(server.credentials)))
        )
        watch.value("config", token)
        watch.value("config", { password: token })
      }))

    it.effect("leaks no secret in anything logged, traced, raised or printed during these cases", () =>
      Effect.gen(function*() {
        watch.assertClean(["log", "span", "error", "config"])
        const { config, error, log, span } = watch.scanned
        yield* report({
          file: "secrets",
          case: "every error, log (all levels), span and config path with session credentials, wrong keys, expired " +
            "and failing credentials, a restart",
          faults: "OC000 at COMMIT, refused statements, dropped connection, server stop, token age 0, bad signature",
          operations: (config ?? 0) + (error ?? 0) + (log ?? 0) + (span ?? 0),
          errorsSeen: error ?? 0,
          dataLost: 0,
          notes: "texts searched for the secret key, session tokens, every token, its signature and X-Amz-Signature: " +
            `${log} log, ${span} span, ${error} error, ${config} config; 0 found`
        })
      }))
  })
})
