import { assert, describe, layer } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { DsqlLocal } from "effect-dsql/local"
import { randomUUID } from "node:crypto"
import { createRequire } from "node:module"
import { join } from "node:path"
import type * as Lambda from "../../examples/lambda.js"
import * as LambdaSource from "../../examples/lambda.js"
import { bundleDir, bundleLikeCdk } from "../../scripts/check-bundle.js"
import { backendQuery, uniqueTable, withEnv } from "../utils/client.js"

type Container = Pick<typeof Lambda, "handler" | "runtime">

const sessionsOf = (server: DsqlLocal.Server, applicationName: string) =>
  backendQuery<{ n: number }>(
    server,
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE '${applicationName}:%'`
  ).pipe(Effect.map(([row]) => row.n))

/**
 * What one Lambda container lives through: a cold first invocation, warm ones in sequence and at once, its pooled
 * connections closed behind its back (as DSQL or the network does while the container is frozen), more
 * invocations, then the end of the container.
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

    const [{ n: terminated }] = yield* backendQuery<{ n: number }>(
      server,
      `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
       WHERE application_name LIKE '${applicationName}:%'`
    )
    assert.isAtLeast(terminated, 1)
    // Straight after: no user-visible error, the same runtime, new connections.
    assert.deepStrictEqual(yield* invoke({ page }), { page, visits: 16 })
    assert.deepStrictEqual(yield* invoke({ page }), { page, visits: 17 })
    assert.deepStrictEqual(
      yield* backendQuery(server, `SELECT visits FROM lambda_page_visit WHERE page = '${page}'`),
      [{ visits: 17 }]
    )

    yield* Effect.promise(() => runtime.dispose())
    const left = yield* sessionsOf(server, applicationName).pipe(
      Effect.repeat({ until: (n) => n === 0, schedule: Schedule.spaced("50 millis"), times: 100 })
    )
    assert.strictEqual(left, 0)
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
