/**
 * One connection instead of a pool, for scripts and migrations: `DsqlClient.connect` opens it (same IAM token and
 * TLS rules as the pool) and closes it with the scope. Every query runs on the same session.
 *
 * Run: `npm run example -w effect4 -- single_connection`.
 */
import { Config, Console, Effect, Option } from "effect"
import { DsqlClient } from "effect-dsql"
import { runMainIfScript } from "../internal/runMain.js"

const optional = <A>(config: Config.Config<A>) => Config.map(Config.option(config), Option.getOrUndefined)

export const program = Effect.gen(function*() {
  const host = yield* Config.String("DSQL_HOST")
  // Each option a value or a Config, read when the connection opens.
  const sql = yield* DsqlClient.connect({
    host,
    region: optional(Config.String("DSQL_REGION")),
    // Only for DsqlLocal or a tunnel:
    port: optional(Config.Port("DSQL_PORT")),
    hostAddress: optional(Config.String("DSQL_HOSTADDR")),
    caPem: optional(Config.String("DSQL_CA_PEM"))
  })
  const sessions = yield* Effect.forEach(
    [1, 2, 3],
    () => sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.pipe(Effect.map(([row]) => row.pid))
  )
  const [{ user }] = yield* sql<{ user: string }>`SELECT current_user AS user`
  yield* Console.log(`single_connection: connected to ${host} as ${user}`)
  yield* Console.log(
    `single_connection: 3 queries, ${new Set(sessions).size} session (backend pid ${sessions.join(", ")})`
  )
}).pipe(Effect.scoped)

runMainIfScript(import.meta.url, program)
