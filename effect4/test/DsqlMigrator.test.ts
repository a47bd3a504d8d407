/**
 * DsqlMigrator of the Effect 4 line against DsqlLocal (through its promise API) on `@effect/sql-pg` 4: per-statement
 * transactions, OC001 retried, async index builds awaited (and failed ones typed), the lease under racing runs.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Layer, Option, Ref } from "effect"
import { DsqlMigrator } from "effect-dsql"
import { Migrator, SqlClient, Statement } from "effect/sql"
import { TestClock } from "effect/testing"
import * as ChildProcess from "node:child_process"
import { fileURLToPath } from "node:url"
import * as DsqlLocal from "./utils/dsqlLocal.js"
import type { Holder } from "./utils/migrationHolder.js"

type Sql = SqlClient.SqlClient

let names = 0
const unique = (prefix: string) => `${prefix}4_${process.pid}_${++names}`

/** A migration written against the `SqlClient` it runs on. */
const migration = (body: (sql: Sql) => Effect.Effect<unknown, unknown>) =>
  Effect.asVoid(Effect.flatMap(SqlClient.SqlClient, body))

/** The migrations recorded in `table`. */
const recorded = (table: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ migration_id: number; name: string }>`SELECT migration_id, name FROM ${sql(table)} ORDER BY migration_id`
        .withoutTransform,
      (rows) => rows.map((row) => [row.migration_id, row.name] as const)
    ))

const errorOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  assert.isTrue(Exit.isFailure(exit), "expected a failure")
  return Option.getOrThrow(Exit.findErrorOption(exit))
}

/** Runs `hook` with the SQL of each statement `self` runs, before it runs. */
const onStatements = <A, E, R>(self: Effect.Effect<A, E, R>, hook: (sql: string) => Effect.Effect<void>) =>
  Effect.provideService(
    self,
    Statement.CurrentTransformer,
    (statement) => Effect.as(hook(statement.compile()[0]), statement)
  )

/** Waits (polling) until `condition` holds or `fiber` has ended. */
const untilOrDone = (condition: () => boolean, fiber: Fiber.Fiber<unknown, unknown>) =>
  Effect.gen(function*() {
    while (fiber.pollUnsafe() === undefined && !condition()) yield* Effect.sleep("20 millis")
  })

const holderScript = fileURLToPath(new URL("./utils/migrationHolder.ts", import.meta.url))

/** Starts `migrationHolder.ts` in a process of its own, killed when the scope closes if it still runs. */
const spawnHolder = (holder: Holder) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      ChildProcess.spawn(process.execPath, ["--import", "tsx", holderScript], {
        // tsx reads effect4's tsconfig paths from there (the sources of the shared core)
        cwd: fileURLToPath(new URL("..", import.meta.url)),
        env: { ...process.env, HOLDER: JSON.stringify(holder) },
        stdio: ["ignore", "pipe", "pipe"]
      })
    ),
    (child) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
  )

/** Waits until `child` prints `text`; fails with what it wrote to stderr if it exits first. */
const printed = (child: ChildProcess.ChildProcess, text: string) =>
  Effect.callback<void, Error>((resume) => {
    let out = ""
    let err = ""
    child.stdout?.on("data", (chunk) => {
      out += String(chunk)
      if (out.includes(text)) resume(Effect.void)
    })
    child.stderr?.on("data", (chunk) => {
      err += String(chunk)
    })
    child.once("exit", (code) => resume(Effect.fail(new Error(`the holder exited (${code}): ${out}${err}`))))
  })

/** Kills `child` with SIGKILL (no finalizer of it runs) and waits until it is gone. */
const killed = (child: ChildProcess.ChildProcess) =>
  Effect.callback<void>((resume) => {
    child.once("exit", () => resume(Effect.void))
    child.kill("SIGKILL")
  })

// Back-off, lease beats and waits need real time: `TestClock.withLive` in each test.
describe("DsqlMigrator on DsqlLocal (Effect 4)", () => {
  layer(Layer.provideMerge(DsqlLocal.pgClient, DsqlLocal.layer()), { timeout: "120 seconds" })("migrator", (it) => {
    it.effect("migrates a table, an async index, a seed in a transaction; a second run applies nothing", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const table = unique("migrations")
        const users = unique("users")
        const index = `${users}_email`
        const migrate = DsqlMigrator.run({
          loader: Migrator.fromRecord({
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
          }),
          table
        })
        const applied = yield* migrate
        assert.deepStrictEqual(applied, [[1, "create_users"], [2, "index_email"], [3, "seed"]])
        assert.deepStrictEqual(yield* recorded(table), applied)
        const [job] = yield* sql<{ status: string }>`SELECT status FROM sys.jobs WHERE object_name = ${index}`
        assert.strictEqual(job?.status, "completed", "the index build had ended when the run returned")
        assert.deepStrictEqual(yield* migrate, [])
        assert.deepStrictEqual(yield* sql`SELECT count(*)::int AS n FROM ${sql(users)}`, [{ n: 2 }], "seeded once")
        assert.deepStrictEqual(yield* sql`SELECT count(*)::int AS n FROM ${sql(`${table}_lease`)}`, [{ n: 0 }])
      }).pipe(TestClock.withLive))

    it.effect("a DDL that meets OC001 while a transaction reads its table is retried until it goes through", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const server = yield* DsqlLocal.DsqlLocal
        const table = unique("migrations")
        const events = unique("events")
        const create = migration((sql) => sql`CREATE TABLE ${sql(events)} (id int PRIMARY KEY)`)
        yield* DsqlMigrator.run({ loader: Migrator.fromRecord({ "1_create": create }), table })
        // Traffic: an open transaction that altered the table makes the ALTER lose with OC001 until it ends (a reader
        // would give its locks up, a block that ran DDL cannot).
        const reading = yield* Deferred.make<void>()
        const done = yield* Deferred.make<void>()
        const traffic = yield* Effect.forkChild(sql.withTransaction(
          Effect.andThen(
            sql`ALTER TABLE ${sql(events)} ADD COLUMN note text`,
            Effect.andThen(Deferred.succeed(reading, undefined), Deferred.await(done))
          )
        ))
        yield* Deferred.await(reading)
        const before = server.stats().occErrors.OC001
        const migrating = yield* Effect.forkChild(DsqlMigrator.run({
          loader: Migrator.fromRecord({
            "1_create": create,
            "2_add_column": migration((sql) => sql`ALTER TABLE ${sql(events)} ADD COLUMN kind text`)
          }),
          table
        }))
        yield* untilOrDone(() => server.stats().occErrors.OC001 >= before + 2, migrating)
        yield* Deferred.succeed(done, undefined)
        yield* Fiber.join(traffic)
        assert.deepStrictEqual(yield* Fiber.join(migrating), [[2, "add_column"]])
        assert.deepStrictEqual(yield* sql`SELECT kind FROM ${sql(events)}`, [])
      }).pipe(TestClock.withLive))

    it.effect("a migration's own transaction that loses OC001 at COMMIT is retried as a whole", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const server = yield* DsqlLocal.DsqlLocal
        server.faults.reset()
        const table = unique("migrations")
        const items = unique("items")
        const attempts = yield* Ref.make(0)
        const applied = yield* DsqlMigrator.run({
          loader: Migrator.fromRecord({
            "1_create": migration((sql) => sql`CREATE TABLE ${sql(items)} (id int PRIMARY KEY)`),
            "2_seed": Effect.andThen(
              Effect.sync(() => server.faults.failNextCommits(2, "OC001")),
              migration((sql) =>
                sql.withTransaction(
                  Effect.andThen(Ref.update(attempts, (n) => n + 1), sql`INSERT INTO ${sql(items)} VALUES (1)`)
                )
              )
            )
          }),
          table,
          occRetry: { baseDelay: "1 millis" }
        })
        assert.deepStrictEqual(applied.map(([id]) => id), [1, 2])
        assert.strictEqual(yield* Ref.get(attempts), 3, "two attempts lost at COMMIT, the third committed")
        assert.deepStrictEqual(yield* sql`SELECT id FROM ${sql(items)}`, [{ id: 1 }])
      }).pipe(TestClock.withLive))

    /** Migrates a table, then an index built by `build` whose job DsqlLocal fails: the run fails, typed. */
    const failedIndexBuild = (build: (sql: Sql, index: string, table: string) => Effect.Effect<unknown, unknown>) =>
      Effect.gen(function*() {
        const server = yield* DsqlLocal.DsqlLocal
        server.faults.reset()
        const table = unique("migrations")
        const accounts = unique("accounts")
        const index = `${accounts}_email`
        server.faults.failNextAsyncJobs(1, "duplicate key value violates unique constraint")
        const error = errorOf(
          yield* Effect.exit(DsqlMigrator.run({
            loader: Migrator.fromRecord({
              "1_accounts": migration((sql) => sql`CREATE TABLE ${sql(accounts)} (id int PRIMARY KEY, email text)`),
              "2_index": migration((sql) => build(sql, index, accounts))
            }),
            table
          }))
        )
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
        assert.deepStrictEqual(yield* recorded(table), [[1, "accounts"]])
      }).pipe(TestClock.withLive)

    it.effect("an index build that fails fails its migration as index-build-failed, naming the index; not recorded", () =>
      failedIndexBuild((sql, index, table) => sql`CREATE UNIQUE INDEX ASYNC ${sql(index)} ON ${sql(table)} (email)`))

    it.effect("an async index built in a migration's own transaction is awaited: a failed build fails it", () =>
      failedIndexBuild((sql, index, table) =>
        sql.withTransaction(sql`CREATE INDEX ASYNC ${sql(index)} ON ${sql(table)} (email)`)
      ))

    it.effect("a refused statement fails the migration typed with DSQL's SQLSTATE and message; nothing recorded", () =>
      Effect.gen(function*() {
        const table = unique("migrations")
        const error = errorOf(
          yield* Effect.exit(DsqlMigrator.run({
            loader: Migrator.fromRecord({ "1_truncate": migration((sql) => sql`TRUNCATE ${sql(table)}`) }),
            table
          }))
        )
        assert.instanceOf(error, DsqlMigrator.MigrationError)
        assert.strictEqual(error.reason, "failed")
        assert.strictEqual(error.code, "0A000")
        assert.include(error.message, "unsupported statement: Truncate")
        assert.deepStrictEqual(yield* recorded(table), [])
      }).pipe(TestClock.withLive))

    it.effect("a run that finds the lease held waits, then applies nothing: each migration runs once", () =>
      Effect.gen(function*() {
        const table = unique("migrations")
        const stock = unique("stock")
        const firstMigrating = yield* Deferred.make<void>()
        const secondWaited = yield* Deferred.make<void>()
        const bodies = yield* Ref.make(0)
        const loader = Migrator.fromRecord({
          "1_create_stock": Effect.andThen(
            Effect.all([
              Ref.update(bodies, (n) => n + 1),
              Deferred.succeed(firstMigrating, undefined),
              Deferred.await(secondWaited)
            ]),
            migration((sql) => sql`CREATE TABLE IF NOT EXISTS ${sql(stock)} (id int PRIMARY KEY)`)
          ),
          "2_seed_stock": migration((sql) => sql`INSERT INTO ${sql(stock)} VALUES (1)`)
        })
        const first = yield* Effect.forkChild(DsqlMigrator.run({ loader, table }))
        yield* Deferred.await(firstMigrating)
        // The second reads the lease, live: its next statement must not write it (it waits, then looks again).
        const lease = `"${table}_lease"`
        let sawLease = false
        const second = onStatements(DsqlMigrator.run({ loader, table }), (statement) => {
          if (!sawLease) {
            sawLease = statement.includes(lease) && statement.trimStart().startsWith("SELECT holder")
            return Effect.void
          }
          return statement.includes(`INSERT INTO ${lease}`)
            ? Effect.die(new Error("the second run claimed a live lease"))
            : Effect.asVoid(Deferred.succeed(secondWaited, undefined))
        })
        assert.deepStrictEqual(yield* second, [])
        assert.deepStrictEqual(yield* Fiber.join(first), [[1, "create_stock"], [2, "seed_stock"]])
        assert.strictEqual(yield* Ref.get(bodies), 1, "the first migration ran once")
        assert.deepStrictEqual(yield* recorded(table), [[1, "create_stock"], [2, "seed_stock"]])
      }).pipe(TestClock.withLive))

    it.effect("4 migrators racing apply every migration exactly once and all return", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const table = unique("migrations")
        const audit = unique("audit")
        const note = (id: number) => migration((sql) => sql`INSERT INTO ${sql(audit)} (migration) VALUES (${id})`)
        const loader = Migrator.fromRecord({
          "1_create_audit": migration((sql) =>
            sql`CREATE TABLE ${sql(audit)} (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), migration int NOT NULL)`
          ),
          "2_note": note(2),
          "3_add_column": migration((sql) => sql`ALTER TABLE ${sql(audit)} ADD COLUMN detail text`),
          "4_index": migration((sql) =>
            sql`CREATE INDEX ASYNC ${sql(`${audit}_migration`)} ON ${sql(audit)} (migration)`
          ),
          "5_note": note(5)
        })
        const runs = yield* Effect.all(Array.from({ length: 4 }, () => DsqlMigrator.run({ loader, table })), {
          concurrency: "unbounded"
        })
        const all = runs.flat().sort(([a], [b]) => a - b)
        assert.deepStrictEqual(all, [[1, "create_audit"], [2, "note"], [3, "add_column"], [4, "index"], [5, "note"]])
        assert.deepStrictEqual(yield* recorded(table), all)
        assert.deepStrictEqual(
          yield* sql`SELECT migration FROM ${sql(audit)} ORDER BY migration`,
          [{ migration: 2 }, { migration: 5 }]
        )
      }).pipe(TestClock.withLive))

    it.effect("a lease taken over during the last migration fails the run with lease-lost and records nothing of it", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const table = unique("migrations")
        const marks = unique("marks")
        const inLast = yield* Deferred.make<void>()
        const finishLast = yield* Deferred.make<void>()
        const run = yield* Effect.forkChild(DsqlMigrator.run({
          loader: Migrator.fromRecord({
            "1_create_marks": migration((sql) => sql`CREATE TABLE ${sql(marks)} (id int PRIMARY KEY)`),
            // The last migration holds until told: only the lease's renewal can end the run before that.
            "2_last": Effect.andThen(Deferred.succeed(inLast, undefined), Deferred.await(finishLast))
          }),
          table,
          leaseDuration: "1 second"
        }))
        yield* Deferred.await(inLast)
        yield* sql`UPDATE ${sql(`${table}_lease`)} SET holder = 'intruder', expires_at = now() + interval '1 hour'`
        // The renewal (every third of the lease) notices within about 0.3 s; past 15 s the run is let finish, so that
        // a migrator ignoring the lost lease shows what it does then.
        const ended = yield* Fiber.await(run).pipe(Effect.timeoutOption("15 seconds"))
        yield* Deferred.succeed(finishLast, undefined)
        const error = errorOf(yield* Fiber.await(run))
        assert.isTrue(Option.isSome(ended), "the run ended while its last migration was still running")
        assert.instanceOf(error, DsqlMigrator.MigrationError)
        assert.strictEqual(error.reason, "lease-lost")
        assert.deepStrictEqual(yield* recorded(table), [[1, "create_marks"]])
        assert.deepStrictEqual(
          yield* sql`SELECT holder FROM ${sql(`${table}_lease`)}`,
          [{ holder: "intruder" }],
          "the lease it lost is left to its new holder"
        )
      }).pipe(TestClock.withLive))

    it.effect(
      "a holder killed mid-run leaves its lease: the next run takes it once expired, recording nothing twice",
      () =>
        Effect.gen(function*() {
          const server = yield* DsqlLocal.DsqlLocal
          const sql = yield* SqlClient.SqlClient
          const table = unique("migrations")
          const items = unique("items")
          const leaseMillis = 6_000
          // The holder, a process of its own, applies `1_create_items` and hangs in its second migration.
          const holder = yield* spawnHolder({
            hostname: server.hostname,
            region: server.region,
            address: server.address,
            port: server.port,
            ca: server.ca,
            // copied field by field: the server's credentials JSON-encode with the secret redacted
            credentials: {
              accessKeyId: server.credentials.accessKeyId,
              secretAccessKey: server.credentials.secretAccessKey
            },
            table,
            items,
            leaseMillis
          })
          yield* printed(holder, "migrating 2").pipe(Effect.timeout("60 seconds"))
          // Killed: its process gone, its sessions closed without a word, it cannot give the lease up.
          yield* killed(holder)
          const [lease] = yield* sql<{ live: boolean; expires_at: Date }>`
          SELECT expires_at > now() AS live, expires_at FROM ${sql(`${table}_lease`)}`.withoutTransform
          assert.isTrue(lease?.live, "the dead holder's lease was still live when the next run started")
          const applied = yield* DsqlMigrator.run({
            loader: Migrator.fromRecord({
              "1_create_items": migration((sql) => sql`CREATE TABLE IF NOT EXISTS ${sql(items)} (id int PRIMARY KEY)`),
              "2_seed": migration((sql) => sql`INSERT INTO ${sql(items)} VALUES (1)`)
            }),
            table,
            leaseDuration: Duration.millis(leaseMillis)
          })
          assert.deepStrictEqual(applied, [[2, "seed"]])
          assert.deepStrictEqual(yield* recorded(table), [[1, "create_items"], [2, "seed"]])
          assert.deepStrictEqual(yield* sql`SELECT id FROM ${sql(items)}`, [{ id: 1 }])
          const [seeded] = yield* sql<{ created_at: Date }>`
          SELECT created_at FROM ${sql(table)} WHERE migration_id = 2`.withoutTransform
          assert.isAtLeast(seeded!.created_at.getTime(), lease!.expires_at.getTime(), "nothing ran before it expired")
        }).pipe(TestClock.withLive),
      { timeout: 120_000 }
    )
  })
})
