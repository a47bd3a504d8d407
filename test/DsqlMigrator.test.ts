import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Statement from "@effect/sql/Statement"
import { assert, describe, layer } from "@effect/vitest"
import { Deferred, Effect, Either, Fiber, HashMap, Layer, Logger, Option, Ref, Tracer } from "effect"
import { DsqlMigrator } from "effect-dsql"
import { DsqlLocal } from "effect-dsql/local"
import { backendQuery, clientLayer, uniqueTable } from "./utils/client.js"
import { connectPg, query } from "./utils/dsqlLocal.js"

type Sql = SqlClient.SqlClient

/** A migration written against the `SqlClient` it runs on. */
const migration = (body: (sql: Sql) => Effect.Effect<unknown, unknown>) =>
  Effect.asVoid(Effect.flatMap(SqlClient.SqlClient, body))

/** The migrations recorded in `table`, read on the backend. */
const recorded = (server: DsqlLocal.Server, table: string) =>
  Effect.map(
    backendQuery<{ migration_id: number; name: string }>(
      server,
      `SELECT migration_id, name FROM ${table} ORDER BY migration_id`
    ),
    (rows) => rows.map((row) => [row.migration_id, row.name] as const)
  )

/** Waits, polling, until `condition` holds or `fiber` has ended. */
const untilOrDone = <E, R>(condition: Effect.Effect<boolean, E, R>, fiber: Fiber.Fiber<unknown, unknown>) =>
  Effect.gen(function*() {
    while (Option.isNone(yield* Fiber.poll(fiber)) && !(yield* condition)) yield* Effect.sleep("20 millis")
  })

describe("DsqlMigrator on DsqlLocal", () => {
  layer(DsqlLocal.layer(), { excludeTestServices: true })((it) => {
    it.effect("migrates a fresh database from a record: a table, an async index, a seed; a second run applies nothing", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const table = uniqueTable("migrations")
        const users = uniqueTable("users")
        const index = `${users}_email`
        const loader = Migrator.fromRecord({
          "1_create_users": migration((sql) =>
            sql`CREATE TABLE ${sql(users)} (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), email text NOT NULL)`
          ),
          "2_index_email": migration((sql) => sql`CREATE INDEX ASYNC ${sql(index)} ON ${sql(users)} (email)`),
          "3_seed": migration((sql) =>
            sql.withTransaction(Effect.all([
              sql`INSERT INTO ${sql(users)} (email) VALUES ('ada@example.com')`,
              sql`INSERT INTO ${sql(users)} (email) VALUES ('grace@example.com')`
            ]))
          )
        })
        const migrate = DsqlMigrator.run({ loader, table }).pipe(Effect.provide(clientLayer(server)))

        const applied = yield* migrate
        assert.deepStrictEqual(applied, [[1, "create_users"], [2, "index_email"], [3, "seed"]])
        assert.deepStrictEqual(yield* recorded(server, table), applied)
        const [built] = yield* backendQuery<{ valid: boolean; status: string }>(
          server,
          `SELECT i.indisvalid AS valid, j.status FROM pg_index i
           JOIN pg_class c ON c.oid = i.indexrelid JOIN sys.jobs j ON j.object_name = c.relname
           WHERE c.relname = '${index}'`
        )
        assert.deepStrictEqual(built, { valid: true, status: "completed" })
        const found = yield* Effect.flatMap(
          SqlClient.SqlClient,
          (sql) => sql<{ email: string }>`SELECT email FROM ${sql(users)} WHERE email = 'grace@example.com'`
        ).pipe(
          Effect.provide(clientLayer(server))
        )
        assert.deepStrictEqual(found, [{ email: "grace@example.com" }])

        assert.deepStrictEqual(yield* migrate, [])
        assert.deepStrictEqual(yield* recorded(server, table), applied)
        assert.deepStrictEqual(
          yield* backendQuery(server, `SELECT count(*)::int AS n FROM ${users}`),
          [{ n: 2 }],
          "the seed ran once"
        )
        assert.deepStrictEqual(
          yield* backendQuery(server, `SELECT count(*)::int AS n FROM ${table}_lease`),
          [{ n: 0 }],
          "the lease is given up"
        )
      }))

    it.effect("one span per run and per migration, one log line per migration applied; the layer migrates when built", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const table = uniqueTable("migrations")
        const notes = uniqueTable("notes")
        const loader = Migrator.fromRecord({
          "1_create_notes": migration((sql) => sql`CREATE TABLE ${sql(notes)} (id int PRIMARY KEY)`),
          "2_seed_notes": migration((sql) => sql`INSERT INTO ${sql(notes)} VALUES (1)`)
        })
        const spans: Array<Tracer.Span> = []
        const base = yield* Effect.tracer
        const tracer = Tracer.make({
          span: (...args) => {
            const span = base.span(...args)
            spans.push(span)
            return span
          },
          context: base.context
        })
        const logged: Array<{ message: unknown; id: unknown }> = []
        const logger = Logger.make(({ annotations, message }) => {
          const text = Array.isArray(message) ? message.join(" ") : message
          if (typeof text === "string" && text.startsWith("DsqlMigrator: applied")) {
            logged.push({ message: text, id: Option.getOrUndefined(HashMap.get(annotations, "migration_id")) })
          }
        })

        yield* Layer.build(DsqlMigrator.layer({ loader, table })).pipe(
          Effect.provide(clientLayer(server)),
          Effect.provide(Logger.add(logger)),
          Effect.withTracer(tracer),
          Effect.scoped
        )

        assert.deepStrictEqual(yield* recorded(server, table), [[1, "create_notes"], [2, "seed_notes"]])
        assert.strictEqual(spans.filter((span) => span.name === "DsqlMigrator.run").length, 1)
        assert.deepStrictEqual(
          spans.filter((span) => span.name === "DsqlMigrator.migration").map((span) => [
            span.attributes.get("dsql.migration.id"),
            span.attributes.get("dsql.migration.name")
          ]),
          [[1, "create_notes"], [2, "seed_notes"]]
        )
        assert.deepStrictEqual(logged, [
          { message: "DsqlMigrator: applied migration 1_create_notes", id: 1 },
          { message: "DsqlMigrator: applied migration 2_seed_notes", id: 2 }
        ])
      }))

    it.effect("a migration's own transaction that loses OCC conflicts at COMMIT is retried as a whole", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const table = uniqueTable("migrations")
        const prices = uniqueTable("prices")
        const attempts = yield* Ref.make(0)
        const loader = Migrator.fromRecord({
          "1_create_prices": migration((sql) => sql`CREATE TABLE ${sql(prices)} (id int PRIMARY KEY, cents int)`),
          "2_seed_prices": migration((sql) =>
            sql.withTransaction(Effect.gen(function*() {
              yield* Ref.update(attempts, (n) => n + 1)
              yield* sql`INSERT INTO ${sql(prices)} VALUES (1, 100)`
              yield* sql`INSERT INTO ${sql(prices)} VALUES (2, 250)`
            }))
          )
        })
        // The migrator's own statements commit alone: the seed's transaction is the only COMMIT of the run.
        yield* server.faults.failNextCommits(2)
        const applied = yield* DsqlMigrator.run({ loader, table }).pipe(
          Effect.provide(clientLayer(server)),
          Effect.ensuring(server.faults.reset)
        )
        assert.deepStrictEqual(applied, [[1, "create_prices"], [2, "seed_prices"]])
        assert.strictEqual(yield* Ref.get(attempts), 3, "two commits lost, the third went through")
        assert.deepStrictEqual(
          yield* backendQuery(server, `SELECT id, cents FROM ${prices} ORDER BY id`),
          [{ id: 1, cents: 100 }, { id: 2, cents: 250 }]
        )
      }))

    it.effect("an async index created in a migration's transaction is awaited once, from the attempt that committed", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const table = uniqueTable("migrations")
        const parcels = uniqueTable("parcels")
        const index = `${parcels}_zip`
        const attempts = yield* Ref.make(0)
        const loader = Migrator.fromRecord({
          "1_create_parcels": migration((sql) => sql`CREATE TABLE ${sql(parcels)} (id int PRIMARY KEY, zip text)`),
          "2_index_zip": migration((sql) =>
            sql.withTransaction(Effect.zipRight(
              Ref.update(attempts, (n) => n + 1),
              sql`CREATE INDEX ASYNC ${sql(index)} ON ${sql(parcels)} (zip)`
            ))
          )
        })
        // The first attempt's COMMIT fails: its job is rolled back with it and must not be waited for.
        yield* server.faults.failNextCommits(1)
        const applied = yield* DsqlMigrator.run({ loader, table }).pipe(
          Effect.provide(clientLayer(server)),
          Effect.ensuring(server.faults.reset)
        )
        assert.deepStrictEqual(applied, [[1, "create_parcels"], [2, "index_zip"]])
        assert.strictEqual(yield* Ref.get(attempts), 2)
        assert.deepStrictEqual(
          yield* backendQuery(server, `SELECT status FROM sys.jobs WHERE object_name = '${index}'`),
          [{ status: "completed" }]
        )
      }))

    it.effect("takes @effect/sql's glob loader: each module's default export is its migration", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const table = uniqueTable("migrations")
        const tags = uniqueTable("tags")
        const applied = yield* DsqlMigrator.run({
          loader: Migrator.fromGlob({
            "./migrations/0002_seed_tags.ts": () =>
              Promise.resolve({ default: migration((sql) => sql`INSERT INTO ${sql(tags)} VALUES ('new')`) }),
            "./migrations/0001_create_tags.ts": () =>
              Promise.resolve({ default: migration((sql) => sql`CREATE TABLE ${sql(tags)} (name text PRIMARY KEY)`) })
          }),
          table
        }).pipe(Effect.provide(clientLayer(server)))
        assert.deepStrictEqual(applied, [[1, "create_tags"], [2, "seed_tags"]])
        assert.deepStrictEqual(yield* backendQuery(server, `SELECT name FROM ${tags}`), [{ name: "new" }])
      }))

    it.effect(
      "4 migrators racing from separate clients apply every migration exactly once and all return",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const table = uniqueTable("migrations")
          const audit = uniqueTable("audit")
          const note = (id: number) => migration((sql) => sql`INSERT INTO ${sql(audit)} (migration) VALUES (${id})`)
          const loader = Migrator.fromRecord({
            "1_create_audit": migration((sql) =>
              sql`CREATE TABLE ${sql(audit)} (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), migration int NOT NULL)`
            ),
            "2_slow": Effect.zipRight(note(2), migration((sql) => sql`SELECT pg_sleep(0.3)`)),
            "3_add_column": migration((sql) => sql`ALTER TABLE ${sql(audit)} ADD COLUMN detail text`),
            "4_index": migration((sql) =>
              sql`CREATE INDEX ASYNC ${sql(`${audit}_migration`)} ON ${sql(audit)} (migration)`
            ),
            "5_note": note(5)
          })
          const runs = yield* Effect.all(
            Array.from(
              { length: 4 },
              () => DsqlMigrator.run({ loader, table }).pipe(Effect.provide(clientLayer(server)))
            ),
            { concurrency: "unbounded" }
          )
          const all = runs.flat().sort(([a], [b]) => a - b)
          assert.deepStrictEqual(all, [[1, "create_audit"], [2, "slow"], [3, "add_column"], [4, "index"], [5, "note"]])
          assert.deepStrictEqual(yield* recorded(server, table), all)
          assert.deepStrictEqual(
            yield* backendQuery(server, `SELECT migration FROM ${audit} ORDER BY migration`),
            [{ migration: 2 }, { migration: 5 }]
          )
        }),
      { timeout: 120_000 }
    )

    it.effect(
      "two claims that both saw the lease free: the later one, landing on a live lease, does not take it",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const table = uniqueTable("migrations")
          const stock = uniqueTable("stock")
          const leaseInsert = `INSERT INTO "${table}_lease"`
          const secondAtClaim = yield* Deferred.make<void>()
          const firstMigrating = yield* Deferred.make<void>()
          const secondClaimed = yield* Deferred.make<void>()
          const bodies = yield* Ref.make(0)
          const loader = Migrator.fromRecord({
            "1_create_stock": Effect.zipRight(
              Effect.all([
                Ref.update(bodies, (n) => n + 1),
                Deferred.succeed(firstMigrating, undefined),
                Deferred.await(secondClaimed)
              ]),
              migration((sql) => sql`CREATE TABLE IF NOT EXISTS ${sql(stock)} (id int PRIMARY KEY)`)
            ),
            "2_seed_stock": migration((sql) => sql`INSERT INTO ${sql(stock)} VALUES (1)`)
          })
          /** Holds `run`'s statements at the points below; `onClaim` runs before its first write of the lease. */
          const interleaved = <A, E>(
            run: Effect.Effect<A, E>,
            onClaim: Effect.Effect<void>,
            afterClaim: Effect.Effect<unknown>
          ) =>
            Effect.suspend(() => {
              let claimed = false
              return Statement.withTransformer(run, (statement) =>
                Effect.suspend(() => {
                  if (!claimed && statement.compile()[0].startsWith(leaseInsert)) {
                    claimed = true
                    return Effect.as(onClaim, statement)
                  }
                  return Effect.as(claimed ? afterClaim : Effect.void, statement)
                }))
            })
          const migrate = DsqlMigrator.run({ loader, table }).pipe(Effect.provide(clientLayer(server)))
          // The second has read the lease free and is about to write it: only then does the first claim it. The
          // second writes once the first is migrating, and the first goes on once the second's claim has returned
          // (its next statement is the proof).
          const first = migrate.pipe((run) => interleaved(run, Deferred.await(secondAtClaim), Effect.void))
          const second = migrate.pipe((run) =>
            interleaved(
              run,
              Effect.zipRight(Deferred.succeed(secondAtClaim, undefined), Deferred.await(firstMigrating)),
              Deferred.succeed(secondClaimed, undefined)
            )
          )
          const [firstApplied, secondApplied] = yield* Effect.all([first, second], { concurrency: 2 })

          assert.deepStrictEqual(firstApplied, [[1, "create_stock"], [2, "seed_stock"]])
          assert.deepStrictEqual(secondApplied, [])
          assert.strictEqual(yield* Ref.get(bodies), 1, "the first migration ran once")
          assert.deepStrictEqual(yield* recorded(server, table), firstApplied)
        }),
      { timeout: 60_000 }
    )

    it.effect(
      "a holder killed mid-run leaves its lease behind: the next run waits for its expiry, then migrates",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const table = uniqueTable("migrations")
          const items = uniqueTable("items")
          const create = migration((sql) => sql`CREATE TABLE IF NOT EXISTS ${sql(items)} (id int PRIMARY KEY)`)
          // The holder applies its first migration, then hangs in the second until it is killed.
          const holder = yield* DsqlMigrator.run({
            loader: Migrator.fromRecord({ "1_create_items": create, "2_hang": Effect.never }),
            table,
            leaseDuration: "3 seconds"
          }).pipe(Effect.provide(clientLayer(server)), Effect.fork)
          yield* untilOrDone(
            Effect.map(recorded(server, table).pipe(Effect.orElseSucceed(() => [])), (rows) => rows.length === 1),
            holder
          )
          // Killed: the server goes away under it, so it cannot give the lease up.
          yield* server.stop
          yield* Fiber.interrupt(holder)
          yield* server.restart
          const [{ expires_at: expiresAt }] = yield* backendQuery<{ expires_at: Date }>(
            server,
            `SELECT expires_at FROM ${table}_lease`
          )

          const { applied, finished, started } = yield* Effect.gen(function*() {
            const started = Date.now()
            const applied = yield* DsqlMigrator.run({
              loader: Migrator.fromRecord({
                "1_create_items": create,
                "2_seed": migration((sql) => sql`INSERT INTO ${sql(items)} VALUES (1)`)
              }),
              table,
              leaseDuration: "3 seconds"
            })
            return { applied, finished: Date.now(), started }
          }).pipe(Effect.provide(clientLayer(server)))

          assert.isAbove(expiresAt.getTime(), started, "the dead holder's lease was still live when the run started")
          assert.deepStrictEqual(applied, [[2, "seed"]])
          const [{ created_at: appliedAt }] = yield* backendQuery<{ created_at: Date }>(
            server,
            `SELECT created_at FROM ${table} WHERE migration_id = 2`
          )
          assert.isAtLeast(appliedAt.getTime(), expiresAt.getTime(), "nothing ran before the lease expired")
          assert.isBelow(finished - expiresAt.getTime(), 5_000, "the run went ahead soon after the expiry")
        }),
      { timeout: 60_000 }
    )

    it.effect(
      "a lease taken over during the last migration fails the run with lease-lost and records nothing of it",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const table = uniqueTable("migrations")
          const marks = uniqueTable("marks")
          const inLast = yield* Deferred.make<void>()
          const finishLast = yield* Deferred.make<void>()
          const run = yield* DsqlMigrator.run({
            loader: Migrator.fromRecord({
              "1_create_marks": migration((sql) => sql`CREATE TABLE ${sql(marks)} (id int PRIMARY KEY)`),
              // The last migration holds until told: only the lease's renewal can end the run before that.
              "2_last": Effect.zipRight(Deferred.succeed(inLast, undefined), Deferred.await(finishLast))
            }),
            table,
            leaseDuration: "1 second"
          }).pipe(Effect.provide(clientLayer(server)), Effect.fork)
          yield* Deferred.await(inLast)
          yield* backendQuery(
            server,
            `UPDATE ${table}_lease SET holder = 'intruder', expires_at = now() + interval '1 hour'`
          )
          // The renewal (every third of the lease) notices within about 0.3 s; past 15 s, the run is let finish so
          // that a migrator that ignores the lost lease shows what it does then.
          const ended = yield* Fiber.await(run).pipe(Effect.timeout("15 seconds"), Effect.option)
          yield* Deferred.succeed(finishLast, undefined)
          const result = yield* Fiber.join(run).pipe(Effect.either)

          assert.isTrue(Option.isSome(ended), "the run ended while its last migration was still running")
          assert.isTrue(Either.isLeft(result))
          const error = (result as Either.Left<DsqlMigrator.MigrationError, unknown>).left
          assert.strictEqual(error.reason, "lease-lost")
          assert.deepStrictEqual(yield* recorded(server, table), [[1, "create_marks"]])
          assert.deepStrictEqual(
            yield* backendQuery(server, `SELECT holder FROM ${table}_lease`),
            [{ holder: "intruder" }],
            "the lease it lost is left to its new holder"
          )
        }),
      { timeout: 60_000 }
    )

    it.effect("a statement DSQL refuses fails the migration, typed with DSQL's message; a fixed rerun resumes at it", () =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const table = uniqueTable("migrations")
        const first = uniqueTable("first")
        const second = uniqueTable("second")
        const createFirst = migration((sql) => sql`CREATE TABLE IF NOT EXISTS ${sql(first)} (id int PRIMARY KEY)`)
        const createSecond = migration((sql) =>
          sql`CREATE TABLE IF NOT EXISTS ${sql(second)} (id int PRIMARY KEY, tag text)`
        )
        const failing = yield* DsqlMigrator.run({
          loader: Migrator.fromRecord({
            "1_first": createFirst,
            "2_second": Effect.zipRight(
              createSecond,
              migration((sql) => sql`CREATE INDEX ${sql(`${second}_tag`)} ON ${sql(second)} (tag)`)
            )
          }),
          table
        }).pipe(Effect.provide(clientLayer(server)), Effect.either)

        assert.isTrue(Either.isLeft(failing))
        const error = (failing as Either.Left<DsqlMigrator.MigrationError, unknown>).left
        assert.strictEqual(error._tag, "MigrationError")
        assert.strictEqual(error.reason, "failed")
        assert.deepStrictEqual(error.migration, [2, "second"])
        assert.strictEqual(error.code, "0A000")
        assert.include(
          error.message,
          "Migration 2_second failed: 0A000 unsupported mode. please use CREATE INDEX ASYNC. It is not recorded"
        )
        assert.deepStrictEqual(yield* recorded(server, table), [[1, "first"]])

        const resumed = yield* DsqlMigrator.run({
          loader: Migrator.fromRecord({
            "1_first": createFirst,
            "2_second": Effect.zipRight(
              createSecond,
              migration((sql) => sql`CREATE INDEX ASYNC IF NOT EXISTS ${sql(`${second}_tag`)} ON ${sql(second)} (tag)`)
            )
          }),
          table
        }).pipe(Effect.provide(clientLayer(server)))
        assert.deepStrictEqual(resumed, [[2, "second"]])
        assert.deepStrictEqual(yield* recorded(server, table), [[1, "first"], [2, "second"]])
      }))

    /** Migrates a table, then an index built by `build` whose job DsqlLocal fails; the run's error. */
    const failedIndexBuild = (build: (sql: Sql, index: string, table: string) => Effect.Effect<unknown, unknown>) =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        const table = uniqueTable("migrations")
        const accounts = uniqueTable("accounts")
        const index = `${accounts}_email`
        yield* server.faults.failNextAsyncJobs(1, "duplicate key value violates unique constraint")
        const error = yield* DsqlMigrator.run({
          loader: Migrator.fromRecord({
            "1_accounts": migration((sql) => sql`CREATE TABLE ${sql(accounts)} (id int PRIMARY KEY, email text)`),
            "2_index": migration((sql) => build(sql, index, accounts))
          }),
          table
        }).pipe(Effect.provide(clientLayer(server)), Effect.ensuring(server.faults.reset), Effect.flip)
        assert.instanceOf(error, DsqlMigrator.MigrationError)
        assert.strictEqual(error.reason, "index-build-failed")
        assert.deepStrictEqual(error.migration, [2, "index"])
        assert.strictEqual(error.index, index)
        assert.match(
          error.message,
          new RegExp(
            `index ${index} \\(job [a-z2-7]{26}\\) ended failed: duplicate key value violates unique constraint`
          )
        )
        assert.deepStrictEqual(yield* recorded(server, table), [[1, "accounts"]])
      })

    it.effect("an index build that fails fails its migration, typed, naming the index; it is not recorded", () =>
      failedIndexBuild((sql, index, table) => sql`CREATE INDEX ASYNC ${sql(index)} ON ${sql(table)} (email)`))

    it.effect("a failed CREATE UNIQUE INDEX ASYNC fails its migration as index-build-failed", () =>
      failedIndexBuild((sql, index, table) => sql`CREATE UNIQUE INDEX ASYNC ${sql(index)} ON ${sql(table)} (email)`))

    it.effect("a failed async index built in the migration's own transaction fails it as index-build-failed", () =>
      failedIndexBuild((sql, index, table) =>
        sql.withTransaction(sql`CREATE INDEX ASYNC ${sql(index)} ON ${sql(table)} (email)`)
      ))

    it.effect(
      "a DDL that meets a schema conflict (OC001) while traffic runs is retried until it goes through",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const table = uniqueTable("migrations")
          const events = uniqueTable("events")
          const create = migration((sql) => sql`CREATE TABLE ${sql(events)} (id int PRIMARY KEY)`)
          const migrate = (loader: Migrator.Loader) =>
            DsqlMigrator.run({ loader, table }).pipe(Effect.provide(clientLayer(server)))
          yield* migrate(Migrator.fromRecord({ "1_create_events": create }))

          // Traffic: an open transaction that altered the table holds it (a reader would give its locks up, a block
          // that ran DDL cannot), so the ALTER loses with OC001 after DsqlLocal's lock timeout until it ends.
          const traffic = yield* connectPg(server)
          yield* query(traffic, "BEGIN")
          yield* query(traffic, `ALTER TABLE ${events} ADD COLUMN note text`)
          const before = (yield* server.stats).occErrors.OC001
          const migrating = yield* Effect.fork(migrate(Migrator.fromRecord({
            "1_create_events": create,
            "2_add_column": migration((sql) => sql`ALTER TABLE ${sql(events)} ADD COLUMN kind text`)
          })))
          yield* untilOrDone(Effect.map(server.stats, (stats) => stats.occErrors.OC001 >= before + 2), migrating)
          yield* query(traffic, "ROLLBACK")

          assert.deepStrictEqual(yield* Fiber.join(migrating), [[2, "add_column"]])
          const conflicts = (yield* server.stats).occErrors.OC001 - before
          assert.isAtLeast(conflicts, 2, "the ALTER lost at least twice before it went through")
          assert.deepStrictEqual(
            yield* backendQuery(
              server,
              `SELECT column_name FROM information_schema.columns WHERE table_name = '${events}' AND column_name = 'kind'`
            ),
            [{ column_name: "kind" }]
          )
        }).pipe(Effect.scoped),
      { timeout: 60_000 }
    )
  })
})
