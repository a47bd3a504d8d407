/**
 * DSQL's optimistic concurrency over the wire, in both protocols: no statement waits on another transaction, both
 * writers' statements succeed, the first COMMIT wins and the later one fails with 40001 OC000.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type pg from "pg"
import { makeClusterState } from "../../local/src/internal/state.js"
import * as Backend from "./harness/backend.js"
import { connect, failure, query, tableName } from "./harness/client.js"
import { relay } from "./harness/relay.js"

const conflict = { code: "40001", message: "change conflicts with another transaction (OC000)" }

type Protocol = "simple" | "extended"

/** `sql` with `$n` placeholders: inlined for the simple protocol, bound for the extended one. */
const run = (client: pg.Client, protocol: Protocol, sql: string, values: ReadonlyArray<number> = []) =>
  protocol === "extended"
    ? query(client, sql, values)
    : query(client, sql.replace(/\$(\d+)/g, (_, n: string) => String(values[Number(n) - 1])))

const expectConflict = (error: pg.DatabaseError) =>
  expect({ code: error.code, message: error.message }).toEqual(conflict)

/** Two sessions through a fresh relay, with the relay's cluster state. */
const twoSessions = Effect.gen(function*() {
  const { port } = yield* Backend.TestBackend
  const state = makeClusterState()
  const relayPort = yield* relay(port, state)
  return { state, first: yield* connect(relayPort), second: yield* connect(relayPort) }
})

/** Two sessions on a table holding rows 1 and 2 (v = 0). */
const setup = Effect.gen(function*() {
  const { first, second, state } = yield* twoSessions
  const table = tableName("occ")
  yield* query(first, `CREATE TABLE ${table} (id int PRIMARY KEY, v int)`)
  yield* query(first, `INSERT INTO ${table} VALUES (1, 0), (2, 0)`)
  const rows = Effect.map(query(first, `SELECT id, v FROM ${table} ORDER BY id`), (result) => result.rows)
  return { state, first, second, table, rows }
})

type Rows = ReadonlyArray<{ readonly id: number; readonly v: number }>

/** Each shape: what each of two open transactions runs (both succeed), and the rows after each one wins. */
const SHAPES: ReadonlyArray<{
  readonly name: string
  readonly first: (table: string) => readonly [sql: string, values: ReadonlyArray<number>]
  readonly second: (table: string) => readonly [sql: string, values: ReadonlyArray<number>]
  readonly won: { readonly first: Rows; readonly second: Rows }
  /** The row each transaction reads back before COMMIT: its id, then what the first and the second see. */
  readonly sees: readonly [id: number, first: ReadonlyArray<{ v: number }>, second: ReadonlyArray<{ v: number }>]
}> = [
  {
    name: "UPDATE against UPDATE",
    first: (t) => [`UPDATE ${t} SET v = $1 WHERE id = $2`, [10, 1]],
    second: (t) => [`UPDATE ${t} SET v = $1 WHERE id = $2`, [20, 1]],
    won: { first: [{ id: 1, v: 10 }, { id: 2, v: 0 }], second: [{ id: 1, v: 20 }, { id: 2, v: 0 }] },
    sees: [1, [{ v: 10 }], [{ v: 20 }]]
  },
  {
    name: "INSERT against INSERT of the same key",
    first: (t) => [`INSERT INTO ${t} VALUES ($1, $2)`, [3, 10]],
    second: (t) => [`INSERT INTO ${t} VALUES ($1, $2)`, [3, 20]],
    won: {
      first: [{ id: 1, v: 0 }, { id: 2, v: 0 }, { id: 3, v: 10 }],
      second: [{ id: 1, v: 0 }, { id: 2, v: 0 }, { id: 3, v: 20 }]
    },
    sees: [3, [{ v: 10 }], [{ v: 20 }]]
  },
  {
    name: "SELECT … FOR UPDATE against UPDATE",
    first: (t) => [`SELECT v FROM ${t} WHERE id = $1 FOR UPDATE`, [1]],
    second: (t) => [`UPDATE ${t} SET v = $1 WHERE id = $2`, [20, 1]],
    won: { first: [{ id: 1, v: 0 }, { id: 2, v: 0 }], second: [{ id: 1, v: 20 }, { id: 2, v: 0 }] },
    sees: [1, [{ v: 0 }], [{ v: 20 }]]
  },
  {
    // What guards against write skew on DSQL: two transactions locking the same row cannot both commit.
    name: "SELECT … FOR UPDATE OF an alias in a join against SELECT … FOR UPDATE",
    first: (t) => [`SELECT a.v FROM ${t} AS a JOIN ${t} AS b ON b.id = a.id + 1 WHERE a.id = $1 FOR UPDATE OF a`, [1]],
    second: (t) => [`SELECT v FROM ${t} WHERE id = $1 FOR UPDATE`, [1]],
    won: { first: [{ id: 1, v: 0 }, { id: 2, v: 0 }], second: [{ id: 1, v: 0 }, { id: 2, v: 0 }] },
    sees: [1, [{ v: 0 }], [{ v: 0 }]]
  },
  {
    name: "DELETE against UPDATE",
    first: (t) => [`DELETE FROM ${t} WHERE id = $1`, [1]],
    second: (t) => [`UPDATE ${t} SET v = $1 WHERE id = $2`, [20, 1]],
    won: { first: [{ id: 2, v: 0 }], second: [{ id: 1, v: 20 }, { id: 2, v: 0 }] },
    sees: [1, [], [{ v: 20 }]]
  }
]

/** Two sessions on a parent table (rows 1, 2) and a child table referencing it (row 1 → 2). */
const setupForeignKeys = (onDelete: "NO ACTION" | "CASCADE") =>
  Effect.gen(function*() {
    const { first, second, state } = yield* twoSessions
    const parent = tableName("occ_parent")
    const child = tableName("occ_child")
    yield* query(first, `CREATE TABLE ${parent} (id int PRIMARY KEY)`)
    yield* query(
      first,
      `CREATE TABLE ${child} (id int PRIMARY KEY, parent_id int REFERENCES ${parent} (id) ON DELETE ${onDelete}, v int)`
    )
    yield* query(first, `INSERT INTO ${parent} VALUES (1), (2)`)
    yield* query(first, `INSERT INTO ${child} VALUES (1, 2, 0)`)
    const rows = Effect.gen(function*() {
      const parents = (yield* query(first, `SELECT id FROM ${parent} ORDER BY id`)).rows
      const children = (yield* query(first, `SELECT id, parent_id, v FROM ${child} ORDER BY id`)).rows
      return { parents, children }
    })
    return { state, first, second, parent, child, rows }
  })

type FkRows = {
  readonly parents: ReadonlyArray<{ readonly id: number }>
  readonly children: ReadonlyArray<{ readonly id: number; readonly parent_id: number; readonly v: number }>
}

/** Conflicts through a foreign key: each of two open transactions' statements succeeds, the first COMMIT wins. */
const FK_SHAPES: ReadonlyArray<{
  readonly name: string
  readonly onDelete: "NO ACTION" | "CASCADE"
  readonly first: (parent: string, child: string) => readonly [sql: string, values: ReadonlyArray<number>]
  readonly second: (parent: string, child: string) => readonly [sql: string, values: ReadonlyArray<number>]
  readonly won: { readonly first: FkRows; readonly second: FkRows }
  /** Who may win: a FOR KEY SHARE that commits first does not fail a later delete of its row (see the README). */
  readonly winners?: ReadonlyArray<"first" | "second">
}> = [
  {
    name: "INSERT of a referencing row against DELETE of the row it references",
    onDelete: "NO ACTION",
    first: (_, c) => [`INSERT INTO ${c} VALUES ($1, $2, $3)`, [2, 1, 0]],
    second: (p) => [`DELETE FROM ${p} WHERE id = $1`, [1]],
    won: {
      first: {
        parents: [{ id: 1 }, { id: 2 }],
        children: [{ id: 1, parent_id: 2, v: 0 }, { id: 2, parent_id: 1, v: 0 }]
      },
      second: { parents: [{ id: 2 }], children: [{ id: 1, parent_id: 2, v: 0 }] }
    }
  },
  {
    name: "a cascading DELETE against UPDATE of a row it cascades to",
    onDelete: "CASCADE",
    first: (p) => [`DELETE FROM ${p} WHERE id = $1`, [2]],
    second: (_, c) => [`UPDATE ${c} SET v = $1 WHERE id = $2`, [20, 1]],
    won: {
      first: { parents: [{ id: 1 }], children: [] },
      second: { parents: [{ id: 1 }, { id: 2 }], children: [{ id: 1, parent_id: 2, v: 20 }] }
    }
  },
  {
    name: "SELECT … FOR KEY SHARE against DELETE of that row",
    onDelete: "NO ACTION",
    first: (p) => [`SELECT id FROM ${p} WHERE id = $1 FOR KEY SHARE`, [1]],
    second: (p) => [`DELETE FROM ${p} WHERE id = $1`, [1]],
    won: {
      first: { parents: [{ id: 1 }, { id: 2 }], children: [{ id: 1, parent_id: 2, v: 0 }] },
      second: { parents: [{ id: 2 }], children: [{ id: 1, parent_id: 2, v: 0 }] }
    },
    winners: ["second"]
  }
]

describe("optimistic concurrency", () => {
  it.layer(Backend.layer, { timeout: 60_000 })((it) => {
    for (const protocol of ["simple", "extended"] as const) {
      for (const shape of SHAPES) {
        for (const winner of ["first", "second"] as const) {
          it.scoped(`${protocol}: ${shape.name}, both succeed, the ${winner} to COMMIT wins`, () =>
            Effect.gen(function*() {
              const { first, rows, second, state, table } = yield* setup
              yield* query(first, "BEGIN")
              yield* query(second, "BEGIN")
              expect((yield* run(first, protocol, ...shape.first(table))).rowCount).toBe(1)
              expect((yield* run(second, protocol, ...shape.second(table))).rowCount).toBe(1)
              // Each still reads its own write.
              const [id, firstSees, secondSees] = shape.sees
              for (const [client, sees] of [[first, firstSees], [second, secondSees]] as const) {
                expect((yield* run(client, protocol, `SELECT v FROM ${table} WHERE id = $1`, [id])).rows).toEqual(sees)
              }
              const [wins, loses] = winner === "first" ? [first, second] : [second, first]
              expect((yield* query(wins, "COMMIT")).command).toBe("COMMIT")
              expectConflict(yield* failure(query(loses, "COMMIT")))
              // The loser left nothing behind; the winner's write is there.
              expect(yield* rows).toEqual(shape.won[winner])
              expect(state.stats.occErrors).toEqual({ OC000: 1, OC001: 0 })
            }))
        }
      }

      it.scoped(`${protocol}: SELECT … FOR UPDATE against a write committed meanwhile loses at COMMIT`, () =>
        Effect.gen(function*() {
          const { first, rows, second, table } = yield* setup
          yield* query(first, "BEGIN")
          yield* query(second, "BEGIN")
          expect((yield* run(first, protocol, `SELECT v FROM ${table} WHERE id = $1 FOR UPDATE`, [1])).rows).toEqual([
            { v: 0 }
          ])
          expect((yield* run(second, protocol, `UPDATE ${table} SET v = $1 WHERE id = $2`, [20, 1])).rowCount).toBe(1)
          expect((yield* query(second, "COMMIT")).command).toBe("COMMIT")
          expectConflict(yield* failure(query(first, "COMMIT")))
          expect(yield* rows).toEqual([{ id: 1, v: 20 }, { id: 2, v: 0 }])
        }))

      it.scoped(`${protocol}: FOR UPDATE through a view and on an identity table leaves rows and row count as they were`, () =>
        Effect.gen(function*() {
          const state = makeClusterState({ maxRowsPerTransaction: 2 })
          const client = yield* connect(yield* relay((yield* Backend.TestBackend).port, state))
          const table = tableName("occ_locked")
          const view = tableName("occ_view")
          yield* query(
            client,
            `CREATE TABLE ${table} (id bigint GENERATED ALWAYS AS IDENTITY (CACHE 1) PRIMARY KEY, v int)`
          )
          yield* query(client, `INSERT INTO ${table} (v) VALUES (1), (2)`)
          yield* query(client, `CREATE VIEW ${view} AS SELECT id, v FROM ${table}`)
          yield* query(client, "BEGIN")
          const locked = yield* run(client, protocol, `SELECT v FROM ${table} WHERE v >= $1 ORDER BY v FOR UPDATE`, [1])
          expect(locked.rows).toEqual([{ v: 1 }, { v: 2 }])
          expect((yield* run(client, protocol, `SELECT v FROM ${view} WHERE v = $1 FOR UPDATE`, [2])).rows).toEqual([
            { v: 2 }
          ])
          // Locked rows are not written rows as the limit counts them: two inserted rows still fit.
          expect((yield* run(client, protocol, `INSERT INTO ${table} (v) VALUES ($1), ($2)`, [3, 4])).rowCount).toBe(2)
          expect((yield* query(client, "COMMIT")).command).toBe("COMMIT")
          expect((yield* query(client, `SELECT id, v FROM ${table} ORDER BY id`)).rows).toEqual([
            { id: "1", v: 1 },
            { id: "2", v: 2 },
            { id: "3", v: 3 },
            { id: "4", v: 4 }
          ])
        }))

      it.scoped(`${protocol}: an autocommit write against an open transaction's write commits; the open one loses`, () =>
        Effect.gen(function*() {
          const { first, rows, second, table } = yield* setup
          yield* query(first, "BEGIN")
          expect((yield* run(first, protocol, `UPDATE ${table} SET v = $1 WHERE id = $2`, [10, 1])).rowCount).toBe(1)
          expect((yield* run(second, protocol, `UPDATE ${table} SET v = $1 WHERE id = $2`, [20, 1])).rowCount).toBe(1)
          expectConflict(yield* failure(query(first, "COMMIT")))
          expect(yield* rows).toEqual([{ id: 1, v: 20 }, { id: 2, v: 0 }])
        }))

      it.scoped(`${protocol}: disjoint rows never conflict, and an injected commit failure still strikes`, () =>
        Effect.gen(function*() {
          const { first, rows, second, state, table } = yield* setup
          yield* query(first, "BEGIN")
          yield* query(second, "BEGIN")
          yield* run(first, protocol, `UPDATE ${table} SET v = $1 WHERE id = $2`, [10, 1])
          yield* run(second, protocol, `UPDATE ${table} SET v = $1 WHERE id = $2`, [20, 2])
          expect((yield* query(second, "COMMIT")).command).toBe("COMMIT")
          expect((yield* query(first, "COMMIT")).command).toBe("COMMIT")
          expect(yield* rows).toEqual([{ id: 1, v: 10 }, { id: 2, v: 20 }])

          state.faults.commitFailures.push("OC000")
          yield* query(first, "BEGIN")
          yield* run(first, protocol, `UPDATE ${table} SET v = $1 WHERE id = $2`, [30, 1])
          expectConflict(yield* failure(query(first, "COMMIT")))
          expect(yield* rows).toEqual([{ id: 1, v: 10 }, { id: 2, v: 20 }])
          expect(state.stats.commitsFailedByFault).toBe(1)
        }))
    }

    it.scoped("counts the blocks that could give their locks up: BEGIN opens one, COMMIT, ROLLBACK and a close end it", () =>
      Effect.gen(function*() {
        const { first, second, state, table } = yield* setup
        const third = yield* connect(yield* relay((yield* Backend.TestBackend).port, state))
        yield* query(first, "BEGIN")
        yield* query(second, "BEGIN")
        yield* query(third, "BEGIN")
        expect(state.openBlocks).toBe(3)
        yield* failure(query(second, "SELECT * FROM no_such_table")) // a failed block still holds its savepoint
        expect(state.openBlocks).toBe(3)
        yield* query(first, `UPDATE ${table} SET v = 1 WHERE id = 1`)
        yield* query(first, "COMMIT")
        yield* query(second, "ROLLBACK")
        expect(state.openBlocks).toBe(1)
        yield* Effect.promise(() => third.end())
        for (let polls = 0; polls < 100 && state.openBlocks > 0; polls++) yield* Effect.sleep("10 millis")
        expect(state.openBlocks).toBe(0)
        expect(state.sessions.size).toBe(2)
      }))

    for (const protocol of ["simple", "extended"] as const) {
      for (const shape of FK_SHAPES) {
        for (const winner of shape.winners ?? ["first", "second"] as const) {
          it.scoped(`${protocol}: ${shape.name}, both succeed, the ${winner} to COMMIT wins`, () =>
            Effect.gen(function*() {
              const { child, first, parent, rows, second, state } = yield* setupForeignKeys(shape.onDelete)
              yield* query(first, "BEGIN")
              yield* query(second, "BEGIN")
              expect((yield* run(first, protocol, ...shape.first(parent, child))).rowCount).toBe(1)
              expect((yield* run(second, protocol, ...shape.second(parent, child))).rowCount).toBe(1)
              const [wins, loses] = winner === "first" ? [first, second] : [second, first]
              expect((yield* query(wins, "COMMIT")).command).toBe("COMMIT")
              expectConflict(yield* failure(query(loses, "COMMIT")))
              expect(yield* rows).toEqual(shape.won[winner])
              expect(state.stats.occErrors).toEqual({ OC000: 1, OC001: 0 })
            }))
        }
      }
    }
  })
})
