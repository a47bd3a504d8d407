import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { DsqlLocal } from "effect-dsql/local"
import { execFileSync } from "node:child_process"
import { randomUUID } from "node:crypto"
import { createRequire } from "node:module"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import type * as Lambda from "../../examples/lambda.js"
import * as LambdaSource from "../../examples/lambda.js"
import { bundleDir, bundleLikeCdk } from "../../scripts/check-bundle.js"
import { backendQuery, uniqueTable, withEnv } from "../utils/client.js"
import { sessionsLeft } from "./sessions.js"

type Container = Pick<typeof Lambda, "handler" | "runtime">

const root = fileURLToPath(new URL("../..", import.meta.url))

/**
 * Ends the backend sessions of the client named `applicationName` from another process, and waits until they are
 * gone, while this process is blocked as a frozen Lambda container is: nothing in it runs meanwhile. Returns how
 * many sessions were ended.
 */
const terminateWhileFrozen = (server: DsqlLocal.Server, applicationName: string): number =>
  Number(execFileSync(process.execPath, [
    "-e",
    `const pg = require("pg")
     const client = new pg.Client({ connectionString: process.env.BACKEND_URL })
     const sessions = "FROM pg_stat_activity WHERE application_name LIKE $1"
     const name = [process.env.APPLICATION_NAME + ":%"]
     const gone = () => client.query("SELECT count(*)::int AS n " + sessions, name)
       .then((result) => result.rows[0].n === 0 || new Promise((resolve) => setTimeout(resolve, 10)).then(gone))
     client.connect()
       .then(() => client.query("SELECT count(pg_terminate_backend(pid))::int AS n " + sessions, name))
       .then((result) => gone().then(() => process.stdout.write(String(result.rows[0].n))))
       .finally(() => client.end())`
  ], { cwd: root, env: { ...process.env, BACKEND_URL: server.backendUrl, APPLICATION_NAME: applicationName } }))

/**
 * What one Lambda container lives through: a cold first invocation, warm ones in sequence and at once, its pooled
 * connections closed behind its back while it is frozen (as DSQL's connection age limit or the network does),
 * more invocations, then the end of the container.
 */
const liveThrough = (server: DsqlLocal.Server, { handler, runtime }: Container) =>
  Effect.gen(function*() {
    const applicationName = uniqueTable("lambda")
    const page = `/test/${randomUUID()}`
    const invoke = (event: unknown) => Effect.tryPromise(() => handler(event))

    // The runtime builds DsqlClient.layer at the first invocation, from the environment Lambda sets.
    const first = yield* withEnv({ ...server.env, DSQL_APPLICATION_NAME: applicationName }, invoke({ page }))
    assert.deepStrictEqual(first, { page, visits: 1 })
    for (let n = 2; n <= 10; n++) assert.deepStrictEqual(yield* invoke({ page }), { page, visits: n })
    const concurrent = yield* Effect.forEach(Array.from({ length: 5 }), () => invoke({ page }), {
      concurrency: "unbounded"
    })
    assert.sameMembers(concurrent.map((count) => count.visits), [11, 12, 13, 14, 15])

    const rejected = yield* Effect.flip(invoke({ page: "" }))
    assert.include(String(rejected.error), "page")

    // Frozen, the container learns nothing of its connections' end: the next invocation is made in the same
    // synchronous step that ends them, before this process can read a byte about it.
    const { afterFreeze, terminated } = yield* Effect.sync(() => {
      const terminated = terminateWhileFrozen(server, applicationName)
      return { terminated, afterFreeze: handler({ page }) }
    })
    assert.isAtLeast(terminated, 1)
    // No user-visible error: the same runtime answers, on new connections.
    assert.deepStrictEqual(yield* Effect.tryPromise(() => afterFreeze), { page, visits: 16 })
    assert.deepStrictEqual(yield* invoke({ page }), { page, visits: 17 })
    assert.deepStrictEqual(
      yield* backendQuery(server, `SELECT visits FROM lambda_page_visit WHERE page = '${page}'`),
      [{ visits: 17 }]
    )

    yield* Effect.promise(() => runtime.dispose())
    assert.strictEqual(yield* sessionsLeft(server, applicationName), 0)
  })

describe("examples/lambda", () => {
  layer(DsqlLocal.layer(), { excludeTestServices: true })((it) => {
    it.scoped(
      "bundled as CDK's NodejsFunction does: one runtime for many invocations, through dead connections",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const outfile = join(yield* bundleDir, "lambda.cjs")
          yield* bundleLikeCdk("examples/lambda.ts", outfile)
          // The Lambda runtime loads a CommonJS handler with require.
          yield* liveThrough(server, createRequire(import.meta.url)(outfile) as Container)
        }),
      { timeout: 120_000 }
    )

    it.effect(
      "from source: one runtime for many invocations, through dead connections",
      () => Effect.flatMap(DsqlLocal.DsqlLocal, (server) => liveThrough(server, LambdaSource)),
      { timeout: 120_000 }
    )
  })
})
