/**
 * The same hello query through two connection strings: DSQL's own `dsql://admin@<endpoint>/postgres`, and a
 * `postgres://` URL carrying the region (needed when the host is not a `<id>.dsql.<region>.on.aws` endpoint, such as
 * a PrivateLink name). The endpoint comes from `DSQL_HOST`, the region from `DSQL_REGION` or `AWS_REGION`.
 *
 * `DSQL_PORT`, `DSQL_HOSTADDR` and `DSQL_CA_PEM` are only set for DsqlLocal (or a tunnel): they are passed as
 * overrides next to the URL, and beat what the URL says.
 *
 * Run: `npm run example -w effect4 -- connection_string`.
 */
import { Config, Console, Effect, Option } from "effect"
import { DsqlClient } from "effect-dsql"
import { SqlClient } from "effect/sql"
import { runMainIfScript } from "./internal/runMain.js"

const optional = <A>(config: Config.Config<A>) => Config.map(Config.option(config), Option.getOrUndefined)

const settings = Config.all({
  host: Config.String("DSQL_HOST"),
  region: Config.String("DSQL_REGION").pipe(Config.orElse(() => Config.String("AWS_REGION"))),
  overrides: Config.all({
    port: optional(Config.Port("DSQL_PORT")),
    hostAddress: optional(Config.String("DSQL_HOSTADDR")),
    caPem: optional(Config.String("DSQL_CA_PEM"))
  })
})

const hello = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql<{ greeting: string; user: string }>`SELECT 'Hello, DSQL!' AS greeting, current_user AS user`
)

export const program = Effect.gen(function*() {
  const { host, overrides, region } = yield* settings
  const urls = [
    `dsql://admin@${host}/postgres`,
    `postgres://admin@${host}:${overrides.port ?? 5432}/postgres?region=${region}&tokenDurationSecs=900`
  ]
  for (const url of urls) {
    const [row] = yield* hello.pipe(Effect.provide(DsqlClient.layerFromUrl(url, overrides)))
    yield* Console.log(`connection_string: ${url} → ${row.greeting} (as ${row.user})`)
  }
})

runMainIfScript(import.meta.url, program)
