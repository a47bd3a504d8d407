/**
 * An AWS Lambda handler on DSQL. The `ManagedRuntime` is made once per container, at module load: it builds
 * `DsqlClient.layer` (and the table) at the first invocation and keeps the pool for the following ones, so a warm
 * invocation pays for no token, no TLS handshake and no connection. The event is decoded with `Schema`, the write
 * runs under `withOccRetry`, and a failure rejects the handler's promise (Lambda reports it as the invocation's
 * error).
 *
 * Bundle it as CDK's `NodejsFunction` does (`npm run check:bundle` does so and runs the bundle), and keep the pool
 * small: one invocation at a time per container.
 *
 * Run: `npm run example -- lambda` invokes the handler three times in one process, as one container would.
 */
import { SqlClient, SqlSchema } from "@effect/sql"
import { Effect, Layer, ManagedRuntime, Schema } from "effect"
import { DsqlClient, OccRetry, withOccRetry } from "effect-dsql"
import { pathToFileURL } from "node:url"

/** The event: which page was visited. */
export const VisitEvent = Schema.Struct({ page: Schema.NonEmptyTrimmedString.pipe(Schema.maxLength(200)) })

/** The handler's answer: the page's visits so far, this one included. */
export const VisitCount = Schema.Struct({ page: Schema.String, visits: Schema.Int })

const TableLive = Layer.effectDiscard(Effect.flatMap(SqlClient.SqlClient, (sql) =>
  OccRetry.execWithRetry(
    sql`CREATE TABLE IF NOT EXISTS lambda_page_visit (page varchar(200) PRIMARY KEY, visits int NOT NULL)`
  )))

/** One per container: module scope outlives the invocation, so the pool in it does too. */
export const runtime = ManagedRuntime.make(TableLive.pipe(Layer.provideMerge(DsqlClient.layer)))

const countVisit = Effect.fn("countVisit")(function*(event: unknown) {
  const { page } = yield* Schema.decodeUnknown(VisitEvent)(event)
  const sql = yield* SqlClient.SqlClient
  const upsert = SqlSchema.single({
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

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // What the Lambda runtime does: call the handler once per event, in one process.
  const page = `/example/${Date.now()}`
  const invokeThrice = async () => {
    for (const n of [1, 2, 3]) {
      const count = await handler({ page })
      console.log(`lambda: invocation ${n}: ${count.page} has ${count.visits} visits`)
    }
  }
  // Lambda freezes a container instead of ending it; a script ends, so it closes the pool itself.
  invokeThrice().finally(() => runtime.dispose()).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}
