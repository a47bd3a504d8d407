/**
 * DSQL's IAM role mapping on DsqlLocal: `AWS IAM GRANT` / `AWS IAM REVOKE`, `sys.iam_pg_role_mappings`, and the
 * login rule (a role other than admin needs a mapping; DsqlLocal has no IAM, so any ARN counts).
 */
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import type pg from "pg"
import { DsqlLocal } from "../../src/local/index.js"
import { connectPg, query, signToken } from "../utils/dsqlLocal.js"

const arn = "arn:aws:iam::123456789012:role/app"

const extendedQuery = (client: pg.Client, text: string) =>
  Effect.tryPromise({
    try: () => client.query({ text, queryMode: "extended" } as pg.QueryConfig),
    catch: (error) => error as pg.DatabaseError
  })

layer(DsqlLocal.layer(), { excludeTestServices: true, timeout: "120 seconds" })("IAM role mapping", (it) => {
  describe("login", () => {
    it.scoped("a role logs in only while an IAM principal is mapped to it", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const admin = yield* connectPg(server)
        const role = `app_${Math.random().toString(36).slice(2, 8)}`
        yield* query(admin, `CREATE ROLE ${role} WITH LOGIN`)
        const login = Effect.gen(function*() {
          const password = yield* Effect.orDie(signToken(server, { action: "DbConnect" }))
          return yield* connectPg(server, { user: role, password })
        })

        const denied = yield* Effect.flip(login)
        expect({ code: denied.code, message: denied.message }).toEqual({
          code: "08006",
          message: "unable to accept connection, access denied"
        })
        expect(denied.hint).toContain("AWS IAM GRANT")

        const granted = yield* query(admin, `AWS IAM GRANT ${role} TO '${arn}'`)
        // The tag is `AWS IAM GRANT`; node-postgres keeps its first word.
        expect(granted.command).toBe("AWS")
        const mappings = yield* query(
          admin,
          `SELECT arn, pg_role_name, grantor_pg_role_name FROM sys.iam_pg_role_mappings WHERE pg_role_name = '${role}'`
        )
        expect(mappings.rows).toEqual([{ arn, pg_role_name: role, grantor_pg_role_name: "admin" }])
        const client = yield* login
        expect((yield* query(client, "SELECT current_user AS name")).rows).toEqual([{ name: role }])

        const revoked = yield* extendedQuery(admin, `aws iam revoke "${role}" from '${arn}'`)
        expect(revoked.command).toBe("AWS")
        expect((yield* Effect.flip(login)).code).toBe("08006")
        // An open session outlives the mapping, like one outlives its token.
        expect((yield* query(client, "SELECT 1 AS ok")).rows).toEqual([{ ok: 1 }])
      }))

    it.scoped("AWS IAM GRANT names an existing role, and is DDL for DSQL's transaction rules", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const admin = yield* connectPg(server)
        const missing = yield* Effect.flip(query(admin, `AWS IAM GRANT nobody_here TO '${arn}'`))
        expect({ code: missing.code, message: missing.message }).toEqual({
          code: "42704",
          message: "role \"nobody_here\" does not exist"
        })
        yield* query(admin, "BEGIN")
        yield* query(admin, "CREATE ROLE iam_in_block")
        const second = yield* Effect.flip(query(admin, `AWS IAM GRANT iam_in_block TO '${arn}'`))
        expect({ code: second.code, message: second.message }).toEqual({
          code: "0A000",
          message: "multiple ddl statements not supported in a transaction"
        })
        expect((yield* query(admin, "COMMIT")).command).toBe("ROLLBACK")
      }))
  })
})
