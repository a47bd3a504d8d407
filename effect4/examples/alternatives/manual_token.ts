/**
 * For code on another PostgreSQL library: sign the IAM token with `TokenSigner` and hand it to that library as the
 * password. Here a plain `pg.Client`, with the TLS DSQL requires: verify-full (certificate chain and host name) and
 * SNI set to the endpoint name, also when connecting to an IP address.
 *
 * A token opens connections for its lifetime (15 minutes here); sign a new one for each new connection.
 *
 * Run: `npm run example -w effect4 -- manual_token`.
 */
import { Config, Console, Effect, Option, Redacted } from "effect"
import { TokenSigner } from "effect-dsql"
import * as Tls from "node:tls"
import pg from "pg"
import { runMainIfScript } from "../internal/runMain.js"

const settings = Config.all({
  host: Config.String("DSQL_HOST"),
  region: Config.String("DSQL_REGION").pipe(Config.orElse(() => Config.String("AWS_REGION"))),
  // Only for DsqlLocal or a tunnel: where to connect, the port, and an extra CA to trust.
  address: Config.option(Config.String("DSQL_HOSTADDR")),
  port: Config.Port("DSQL_PORT").pipe(Config.withDefault(5432)),
  caPem: Config.option(Config.String("DSQL_CA_PEM"))
})

export const program = Effect.gen(function*() {
  const { address, caPem, host, port, region } = yield* settings
  const signer = yield* TokenSigner.TokenSigner
  const token = yield* signer.sign({ hostname: host, region, user: "admin", expiresIn: "15 minutes" })
  yield* Console.log(`manual_token: signed a ${TokenSigner.actionFor("admin")} token for ${host} (${region})`)

  const client = yield* Effect.acquireRelease(
    Effect.tryPromise(async () => {
      const client = new pg.Client({
        host: Option.getOrElse(address, () => host),
        port,
        user: "admin",
        database: "postgres",
        password: Redacted.value(token),
        ssl: {
          servername: host,
          rejectUnauthorized: true,
          ...Option.match(caPem, { onNone: () => ({}), onSome: (pem) => ({ ca: [...Tls.rootCertificates, pem] }) })
        },
        sslnegotiation: "direct"
      })
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.end())
  )
  const { rows } = yield* Effect.tryPromise(() => client.query<{ user: string }>("SELECT current_user AS user"))
  yield* Console.log(`manual_token: pg.Client connected as ${rows[0].user}, TLS verified for ${host}`)
}).pipe(Effect.scoped)

runMainIfScript(import.meta.url, program.pipe(Effect.provide(TokenSigner.layer)))
