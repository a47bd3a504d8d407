/**
 * One connection instead of a pool, for scripts and migrations: `DsqlClient.connect` opens it (same IAM token and
 * TLS rules as the pool) and closes it with the scope. Every query runs on the same session.
 *
 * Run: `npm run example -- single_connection`.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Config, Console, Effect, Option } from "effect"
import { DsqlClient } from "effect-dsql"
import { pathToFileURL } from "node:url"

const optional = <A>(config: Config.Config<A>) => Config.map(Config.option(config), Option.getOrUndefined)

const options = Config.all({
  host: Config.string("DSQL_HOST"),
  region: optional(Config.string("DSQL_REGION")),
  // Only for DsqlLocal or a tunnel:
  port: optional(Config.port("DSQL_PORT")),
  hostAddress: optional(Config.string("DSQL_HOSTADDR")),
  caPem: optional(Config.string("DSQL_CA_PEM"))
})

export const program = Effect.gen(function*() {
  const { host, ...rest } = yield* options
  const sql = yield* DsqlClient.connect({ host, ...rest })
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

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  NodeRuntime.runMain(program)
}
