/**
 * The backend sessions a client opened through DsqlLocal, found by the `application_name` it sent (DsqlLocal passes
 * it on to the backend as `<prefix>:effect-dsql/<version>`).
 */
import { Effect, Schedule } from "effect"
import type { DsqlLocal } from "effect-dsql/local"
import { backendQuery } from "../utils/client.js"

/** How many backend sessions the client named `applicationName` has open now. */
export const sessionsOf = (server: DsqlLocal.Server, applicationName: string) =>
  backendQuery<{ n: number }>(
    server,
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE '${applicationName}:%'`
  ).pipe(Effect.map(([row]) => row.n))

/** The count once it reaches 0 (sessions end shortly after the client closed them), or after about 5 s. */
export const sessionsLeft = (server: DsqlLocal.Server, applicationName: string) =>
  sessionsOf(server, applicationName).pipe(
    // passthrough: the repeat then returns the last count, not the schedule's own output (how often it repeated),
    // which made a session that took one poll to end read as one session left.
    Effect.repeat({ until: (n) => n === 0, schedule: Schedule.passthrough(Schedule.spaced("50 millis")), times: 100 })
  )
