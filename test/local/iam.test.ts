/**
 * DSQL's IAM role mapping on DsqlLocal: `AWS IAM GRANT` / `AWS IAM REVOKE`, `sys.iam_pg_role_mappings`, and the
 * login rule (a role other than admin needs a mapping; DsqlLocal has no IAM, so any ARN counts).
 */
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import type pg from "pg"
import { DsqlLocal } from "../../src/local/index.js"
import { connectPg, query, signToken } from "../utils/dsqlLocal.js"
import { failureOf } from "../utils/failure.js"

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

        const denied = yield* failureOf(login)
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
        expect((yield* failureOf(login)).code).toBe("08006")
        // An open session outlives the mapping, like one outlives its token.
        expect((yield* query(client, "SELECT 1 AS ok")).rows).toEqual([{ ok: 1 }])
      }))

    it.scoped("AWS IAM GRANT names an existing role, and is DDL for DSQL's transaction rules", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const admin = yield* connectPg(server)
        const missing = yield* failureOf(query(admin, `AWS IAM GRANT nobody_here TO '${arn}'`))
        expect({ code: missing.code, message: missing.message }).toEqual({
          code: "42704",
          message: "role \"nobody_here\" does not exist"
        })
        yield* query(admin, "BEGIN")
        yield* query(admin, "CREATE ROLE iam_in_block")
        const second = yield* failureOf(query(admin, `AWS IAM GRANT iam_in_block TO '${arn}'`))
        expect({ code: second.code, message: second.message }).toEqual({
          code: "0A000",
          message: "multiple ddl statements not supported in a transaction"
        })
        expect((yield* query(admin, "COMMIT")).command).toBe("ROLLBACK")
      }))
  })

  describe("DROP ROLE", () => {
    const dependsOn = (role: string) => ({
      code: "2BP01",
      message: `role "${role}" cannot be dropped because some objects depend on it`
    })

    it.scoped("is refused with 2BP01 while an IAM principal is mapped to the role, in both protocols", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const admin = yield* connectPg(server)
        const role = `mapped_${Math.random().toString(36).slice(2, 8)}`
        yield* query(admin, `CREATE ROLE ${role} WITH LOGIN`)
        yield* query(admin, `AWS IAM GRANT ${role} TO '${arn}'`)

        const simple = yield* failureOf(query(admin, `DROP ROLE IF EXISTS nobody_at_all, ${role}`))
        expect({ code: simple.code, message: simple.message }).toEqual(dependsOn(role))
        const extended = yield* failureOf(extendedQuery(admin, `DROP USER ${role.toUpperCase()}`))
        expect({ code: extended.code, message: extended.message, where: extended.where }).toEqual({
          ...dependsOn(role),
          where: undefined
        })

        // Inside a block the refusal aborts it, like DSQL's other refusals.
        yield* query(admin, "BEGIN")
        const inBlock = yield* failureOf(query(admin, `DROP ROLE ${role}`))
        expect({ code: inBlock.code, message: inBlock.message }).toEqual(dependsOn(role))
        expect((yield* failureOf(query(admin, "SELECT 1"))).code).toBe("25P02")
        expect((yield* query(admin, "COMMIT")).command).toBe("ROLLBACK")
        const kept = yield* query(admin, `SELECT count(*)::int AS n FROM pg_roles WHERE rolname = '${role}'`)
        expect(kept.rows).toEqual([{ n: 1 }])

        yield* query(admin, `AWS IAM REVOKE ${role} FROM '${arn}'`)
        yield* query(admin, `DROP ROLE ${role}`)
        const gone = yield* query(admin, `SELECT count(*)::int AS n FROM pg_roles WHERE rolname = '${role}'`)
        expect(gone.rows).toEqual([{ n: 0 }])
      }))
  })
})
