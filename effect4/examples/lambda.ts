/**
 * An AWS Lambda handler on DSQL. The `ManagedRuntime` is made once per container, at module load: it builds
 * `DsqlClient.layer` (and the table) at the first invocation and keeps the pool for the following ones, so a warm
 * invocation signs no token and opens no connection. The event is decoded with `Schema`, the write runs under
 * `withOccRetry`, and a failure rejects the handler's promise (Lambda reports it as the invocation's error).
 *
 * Bundle it as CDK's `NodejsFunction` does (esbuild, platform node, CommonJS; `test/examples/lambda.test.ts` does so
 * and invokes the bundle), and keep the pool small: a container runs one invocation at a time.
 *
 * Run: `npm run example -w effect4 -- lambda` invokes the handler three times in one process, as one container would.
 */
import { Console, Effect, Layer, ManagedRuntime, Schema } from "effect"
import { DsqlClient, OccRetry, withOccRetry } from "effect-dsql"
import { SqlClient, SqlSchema } from "effect/sql"
import { runMainIfScript } from "./internal/runMain.js"

/** The event: which page was visited. */
export const VisitEvent = Schema.Struct({ page: Schema.Trimmed.check(Schema.isNonEmpty(), Schema.isMaxLength(200)) })

/** The handler's answer: the page's visits so far, this one included. */
export const VisitCount = Schema.Struct({ page: Schema.String, visits: Schema.Int })

const TableLive = Layer.effectDiscard(Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* OccRetry.execWithRetry(
    sql`CREATE TABLE IF NOT EXISTS lambda_page_visit (page varchar(200) PRIMARY KEY, visits int NOT NULL)`
  )
}))

/** One per container: module scope outlives the invocation, so the pool in it does too. */
export const runtime = ManagedRuntime.make(TableLive.pipe(Layer.provideMerge(DsqlClient.layer)))

const countVisit = Effect.fn("countVisit")(function*(event: unknown) {
  const { page } = yield* Schema.decodeUnknownEffect(VisitEvent)(event)
  const sql = yield* SqlClient.SqlClient
  const upsert = SqlSchema.findOne({
    Request: Schema.String,
    Result: VisitCount,
    execute: (page) =>
      sql`INSERT INTO lambda_page_visit (page, visits) VALUES (${page}, 1)
          ON CONFLICT (page) DO UPDATE SET visits = lambda_page_visit.visits + 1
          RETURNING page, visits`
  })
  return yield* upsert(page).pipe(withOccRetry())
})

/** The Lambda entry point (`handler` in CDK's `NodejsFunction`). */
export const handler = (event: unknown): Promise<typeof VisitCount.Type> => runtime.runPromise(countVisit(event))

// What the Lambda runtime does: call the handler once per event, in one process. Lambda freezes a container instead
// of ending it; a script ends, so it closes the pool itself.
runMainIfScript(
  import.meta.url,
  Effect.gen(function*() {
    const page = `/example/${Date.now()}`
    for (const n of [1, 2, 3]) {
      const count = yield* Effect.promise(() => handler({ page }))
      yield* Console.log(`lambda: invocation ${n}: ${count.page} has ${count.visits} visits`)
    }
  }).pipe(Effect.ensuring(Effect.promise(() => runtime.dispose())))
)
