/**
 * Turns results into the target verdicts, markdown tables (printed, and written into README.md after a full run)
 * and the SVG charts.
 */
import type { Chart } from "./charts.js"
import type { ClientName, QueryKind, RetryPolicy } from "./protocol.js"
import type { ClientUsage, Contention, LoadRow, OccRow, SetupRow, StormRow, TokenCost } from "./scenarios.js"
import { CONCURRENCIES, CURRENT_DEFAULTS, LATENCY_MS, QUERIES, STORM_POOL_SIZE } from "./scenarios.js"
import { round } from "./stats.js"
import type { SignerName } from "./tokens.js"

export interface Results {
  readonly meta: Record<string, unknown>
  readonly tokens?: ReadonlyArray<TokenCost>
  readonly setup?: ReadonlyArray<SetupRow>
  readonly throughput?: { readonly rows: ReadonlyArray<LoadRow>; readonly usage: ReadonlyArray<ClientUsage> }
  readonly occ?: Contention
  readonly storm?: ReadonlyArray<StormRow>
  readonly errors: ReadonlyArray<string>
}

export interface Target {
  readonly scenario: number
  readonly target: string
  /** undefined: not measured (the scenario errored). */
  readonly met: boolean | undefined
  readonly detail: string
}

export const CLIENT_NAMES: Record<ClientName | SignerName, string> = {
  ours: "effect-dsql",
  connector: "node-postgres connector",
  pg: "raw pg",
  sqlpg: "@effect/sql-pg (reference)",
  effectAws: "@effect-aws/dsql",
  floor: "floor (node:crypto)",
  floorCachedKey: "floor, key cached per day (reference)"
}

const QUERY_NAMES: Record<QueryKind, string> = {
  select1: "SELECT 1",
  pkRead: "primary-key read",
  insert: "insert"
}

const x = (ratio: number) => `${round(ratio, 3)}×`
const pct = (share: number) => `${round(share * 100, 3)}%`
const ms = (value: number) => `${round(value, 3)}`

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string | number>>): string =>
  [
    `| ${header.join(" | ")} |`,
    `| ${header.map(() => "---").join(" | ")} |`,
    ...rows.map((row) => `| ${row.join(" | ")} |`)
  ].join("\n")

export const policyName = (policy: RetryPolicy | "defaults") =>
  policy === "defaults"
    ? "defaults"
    : `${policy.maxRetries} retries, ${policy.baseDelayMs} ms → ${policy.maxDelayMs} ms, jitter ${policy.jitter}${
      policy.maxRetries === CURRENT_DEFAULTS.maxRetries && policy.baseDelayMs === CURRENT_DEFAULTS.baseDelayMs &&
        policy.maxDelayMs === CURRENT_DEFAULTS.maxDelayMs && policy.jitter === CURRENT_DEFAULTS.jitter
        ? " (current defaults)"
        : ""
    }`

const findSigner = (mode: TokenCost, name: SignerName) => mode.signers.find((signer) => signer.name === name)!

// ---------------------------------------------------------------------------------------------------------------
// Targets

const tokenTargets = (tokens: ReadonlyArray<TokenCost>): Array<Target> =>
  tokens.flatMap((mode) => {
    const ours = findSigner(mode, "ours")
    const floor = findSigner(mode, "floor")
    const connector = findSigner(mode, "connector")
    const floorTarget: Target = {
      scenario: 1,
      target: `token within 2× of the floor (credentials from ${mode.credentials})`,
      met: ours.medianUs <= 2 * floor.medianUs,
      detail: `ours ${ms(ours.medianUs)} µs, floor ${ms(floor.medianUs)} µs: ${x(ours.medianUs / floor.medianUs)}`
    }
    if (mode.credentials !== "profile") return [floorTarget]
    return [floorTarget, {
      scenario: 1,
      target: "≥ 3× faster than the connector's per-checkout path with a profile",
      met: connector.medianUs >= 3 * ours.medianUs,
      detail: `connector path ${ms(connector.medianUs)} µs, ours ${ms(ours.medianUs)} µs: ${
        x(connector.medianUs / ours.medianUs)
      } faster`
    }]
  })

const setupTargets = (rows: ReadonlyArray<SetupRow>): Array<Target> => {
  const targets: Array<Target> = []
  for (const latency of ["linkDelay", "setLatency"] as const) {
    const find = (variant: string, parallel: boolean) =>
      rows.find((row) => row.latency === latency && row.variant === variant && row.parallel === parallel)!
    const where = latency === "linkDelay"
      ? `${LATENCY_MS} ms link delay each way`
      : `DsqlLocal setLatency ${LATENCY_MS} ms`
    const ours = find("ours", false)
    const connector = find("connector", false)
    targets.push({
      scenario: 2,
      target: `one handshake round trip fewer than the connector (${where})`,
      met: round(connector.roundTripsPerConnection - ours.roundTripsPerConnection) === 1,
      detail: `ours ${ours.roundTripsPerConnection}, connector ${connector.roundTripsPerConnection} per connection`
    })
    for (const parallel of [false, true]) {
      for (
        const [oursId, peerId, how] of [
          ["ours", "connector", "CA in each client's option (ours caPem, connector ssl.ca)"],
          ["ours-extra-ca", "connector-extra-ca", "CA through NODE_EXTRA_CA_CERTS for both"]
        ] as const
      ) {
        const a = find(oursId, parallel)
        const b = find(peerId, parallel)
        targets.push({
          scenario: 2,
          target: `≥ 15% lower setup time than the connector, ${a.connections} connections ${
            parallel ? "at once" : "one after another"
          }, ${where}, ${how}`,
          met: a.medianMs <= 0.85 * b.medianMs,
          detail: `ours ${ms(a.medianMs)} ms, connector ${ms(b.medianMs)} ms: ${pct(1 - a.medianMs / b.medianMs)} lower`
        })
      }
    }
  }
  return targets
}

const throughputTargets = (rows: ReadonlyArray<LoadRow>): Array<Target> => {
  const cells = QUERIES.flatMap((query) => CONCURRENCIES.map((concurrency) => ({ query, concurrency })))
  const get = (query: QueryKind, concurrency: number, client: ClientName) =>
    rows.find((row) => row.query === query && row.concurrency === concurrency && row.client === client)!
  const check = (peer: ClientName, throughputFloor: number, p99Ceiling: number) => {
    const failures = cells.flatMap(({ concurrency, query }) => {
      const ours = get(query, concurrency, "ours")
      const other = get(query, concurrency, peer)
      const throughput = ours.opsPerSecond / other.opsPerSecond
      const p99 = ours.p99Ms / other.p99Ms
      return throughput >= throughputFloor && p99 <= p99Ceiling
        ? []
        : [`${QUERY_NAMES[query]} c=${concurrency}: ops/s ${x(throughput)}, p99 ${x(p99)}`]
    })
    return { met: failures.length === 0, detail: failures.length === 0 ? "all 9 cells" : failures.join("; ") }
  }
  return [
    { scenario: 3, target: "throughput ≥ 0.9× and p99 ≤ 1.1× raw pg, every cell", ...check("pg", 0.9, 1.1) },
    { scenario: 3, target: "throughput ≥ and p99 ≤ the connector's, every cell", ...check("connector", 1, 1) }
  ]
}

const occTargets = (rows: ReadonlyArray<OccRow>): Array<Target> =>
  [...new Set(rows.map((row) => `${row.workers}×${row.accounts}`))].flatMap((config) => {
    const ours = rows.find((row) => `${row.workers}×${row.accounts}` === config && row.client === "ours")!
    const peer = rows.find((row) => `${row.workers}×${row.accounts}` === config && row.client === "connector")!
    return [
      {
        scenario: 4,
        target: `more committed tx/s than the connector's defaults (${config})`,
        met: ours.committedPerSecond > peer.committedPerSecond,
        detail: `ours ${ours.committedPerSecond}/s, connector ${peer.committedPerSecond}/s: ${
          x(ours.committedPerSecond / peer.committedPerSecond)
        }`
      },
      {
        scenario: 4,
        target: `fewer give-ups than the connector's defaults (${config})`,
        met: ours.gaveUpShare < peer.gaveUpShare || (ours.gaveUpShare === 0 && peer.gaveUpShare === 0),
        detail: `ours ${pct(ours.gaveUpShare)}, connector ${pct(peer.gaveUpShare)} of transfers gave up`
      },
      {
        scenario: 4,
        target: `zero invariant violations (${config})`,
        met: ours.invariantViolations === 0 && peer.invariantViolations === 0,
        detail: `ours ${ours.invariantViolations}, connector ${peer.invariantViolations}`
      }
    ]
  })

const stormName = (row: StormRow) =>
  row.storm === "fibers"
    ? `${row.size} fibers, cold pool of ${STORM_POOL_SIZE}`
    : `${row.size} cold pools of ${STORM_POOL_SIZE}`

const stormTargets = (rows: ReadonlyArray<StormRow>): Array<Target> =>
  rows.filter((row) => row.variant.startsWith("ours")).map((row) => ({
    scenario: 5,
    target: `no errors seen by the program: ${stormName(row)}, ${row.label}`,
    met: row.errors === 0,
    detail: `${row.errors} errors in ${row.runs} runs of ${row.queries} queries${
      row.errorSamples.length > 0 ? ` (${row.errorSamples[0]})` : ""
    }`
  }))

export const targets = (results: Results): Array<Target> => [
  ...(results.tokens
    ? tokenTargets(results.tokens)
    : [{ scenario: 1, target: "token cost", met: undefined, detail: "not measured" }]),
  ...(results.setup
    ? setupTargets(results.setup)
    : [{ scenario: 2, target: "connection setup", met: undefined, detail: "not measured" }]),
  ...(results.throughput
    ? throughputTargets(results.throughput.rows)
    : [{ scenario: 3, target: "throughput", met: undefined, detail: "not measured" }]),
  ...(results.occ
    ? occTargets(results.occ.rows)
    : [{ scenario: 4, target: "OCC", met: undefined, detail: "not measured" }]),
  ...(results.storm
    ? stormTargets(results.storm)
    : [{ scenario: 5, target: "storm", met: undefined, detail: "not measured" }])
]

// ---------------------------------------------------------------------------------------------------------------
// Tables

const tokenTable = (tokens: ReadonlyArray<TokenCost>) =>
  table(
    ["credentials", "signer", "µs per token (median)", "rounds min–max", "× ours", "token accepted by DsqlLocal"],
    tokens.flatMap((mode) => {
      const ours = findSigner(mode, "ours")
      return mode.signers.map((signer) => [
        mode.credentials,
        CLIENT_NAMES[signer.name],
        ms(signer.medianUs),
        `${ms(Math.min(...signer.roundsUs))}–${ms(Math.max(...signer.roundsUs))}`,
        x(signer.medianUs / ours.medianUs),
        signer.accepted ? "yes" : `no: ${signer.acceptError}`
      ])
    })
  )

const setupTable = (rows: ReadonlyArray<SetupRow>) =>
  table(
    [
      "latency",
      "connections",
      "client",
      "ms to open all (median)",
      "ms per connection",
      "round trips / conn",
      "× connector (ssl.ca)"
    ],
    rows.map((row) => {
      const connector = rows.find((other) =>
        other.latency === row.latency && other.parallel === row.parallel && other.variant === "connector"
      )!
      return [
        row.latency === "linkDelay" ? `link ${LATENCY_MS} ms each way` : `setLatency ${LATENCY_MS} ms`,
        `${row.connections} ${row.parallel ? "at once" : "one after another"}`,
        row.label,
        ms(row.medianMs),
        ms(row.medianMs / row.connections),
        row.roundTripsPerConnection,
        x(row.medianMs / connector.medianMs)
      ]
    })
  )

const throughputTable = (rows: ReadonlyArray<LoadRow>) =>
  table(
    [
      "query",
      "concurrency",
      "client",
      "ops/s",
      "p50 ms",
      "p99 ms",
      "client CPU µs/op",
      "ops/s × raw pg",
      "p99 × raw pg",
      "ops/s × connector",
      "errors"
    ],
    rows.map((row) => {
      const peer = (client: ClientName) =>
        rows.find((other) =>
          other.query === row.query && other.concurrency === row.concurrency && other.client === client
        )!
      return [
        QUERY_NAMES[row.query],
        row.concurrency,
        CLIENT_NAMES[row.client],
        Math.round(row.opsPerSecond),
        ms(row.p50Ms),
        ms(row.p99Ms),
        round(row.clientCpuUsPerOp),
        x(row.opsPerSecond / peer("pg").opsPerSecond),
        x(row.p99Ms / peer("pg").p99Ms),
        x(row.opsPerSecond / peer("connector").opsPerSecond),
        row.errors
      ]
    })
  )

const usageTable = (usage: ReadonlyArray<ClientUsage>, label: (variant: string) => string) =>
  table(
    ["client", "RSS after loading (MiB)", "peak RSS (MiB)", "peak − loaded (MiB)"],
    usage.map((u) => [label(u.variant), u.baselineRssMiB, u.maxRssMiB, round(u.maxRssMiB - u.baselineRssMiB)])
  )

const occTable = (rows: ReadonlyArray<OccRow>, withPolicy: boolean) =>
  table(
    [
      ...(withPolicy ? ["policy"] : ["workers × accounts", "client"]),
      "committed tx/s (window)",
      "attempts / commit",
      "gave up",
      "p50 ms",
      "p99 ms",
      "invariant violations",
      "other errors",
      "drain ms"
    ],
    rows.map((row) => [
      ...(withPolicy ? [policyName(row.policy)] : [`${row.workers} × ${row.accounts}`, CLIENT_NAMES[row.client]]),
      round(row.committedPerSecond),
      round(row.attemptsPerCommit),
      pct(row.gaveUpShare),
      ms(row.p50Ms),
      ms(row.p99Ms),
      row.invariantViolations,
      row.otherErrors,
      ms(row.drainMs)
    ])
  )

const stormTable = (rows: ReadonlyArray<StormRow>) =>
  table(
    [
      "storm",
      "client",
      "ms until all done (median)",
      "connections opened",
      "refused (53400)",
      "tokens signed",
      "errors (all runs)",
      "peak RSS MiB"
    ],
    rows.map((row) => [
      stormName(row),
      row.label,
      ms(row.medianMs),
      row.connectionsOpened,
      row.connectionsRefused,
      row.tokensSigned,
      row.errors,
      row.usage.maxRssMiB
    ])
  )

const targetTable = (list: ReadonlyArray<Target>) =>
  table(
    ["#", "target", "verdict", "numbers"],
    list.map((
      t
    ) => [t.scenario, t.target, t.met === undefined ? "not measured" : t.met ? "met" : "**missed**", t.detail])
  )

/** The results as markdown: the target verdicts, then one section per scenario. */
export const markdown = (results: Results, list: ReadonlyArray<Target>): string => {
  const sections = [`### Targets\n\n${targetTable(list)}`]
  if (results.tokens) sections.push(`### 1. Token cost\n\n${tokenTable(results.tokens)}`)
  if (results.setup) sections.push(`### 2. Connection setup\n\n${setupTable(results.setup)}`)
  if (results.throughput) {
    const label = (variant: string) => CLIENT_NAMES[variant as ClientName] ?? variant
    sections.push(
      `### 3. Query throughput and latency (pool of 16)\n\n${throughputTable(results.throughput.rows)}\n\n` +
        `Client processes' memory in scenario 3:\n\n${usageTable(results.throughput.usage, label)}`
    )
  }
  if (results.occ) {
    sections.push(
      `### 4. OCC under contention (pool of 32)\n\n${occTable(results.occ.rows, false)}\n\n` +
        `#### withOccRetry policy sweep (32 workers × 4 accounts)\n\n${occTable(results.occ.sweep, true)}\n\n` +
        `#### The sweep's best policies and the current defaults at 32 workers × 64 accounts\n\n${
          occTable(results.occ.confirm, true)
        }`
    )
  }
  if (results.storm) sections.push(`### 5. Connection storm\n\n${stormTable(results.storm)}`)
  if (results.errors.length > 0) sections.push(`### Run errors\n\n${results.errors.map((e) => `- ${e}`).join("\n")}`)
  return sections.join("\n\n")
}

// ---------------------------------------------------------------------------------------------------------------
// Charts

export const charts = (results: Results): Record<string, Chart> => {
  const out: Record<string, Chart> = {}
  if (results.tokens) {
    out["s1-token-cost"] = {
      title: "1. Cost of one IAM token",
      subtitle: "median µs per token over timed rounds; lower is better",
      unit: "µs per token",
      groups: results.tokens.map((mode) => ({
        label: `credentials from ${mode.credentials}`,
        bars: mode.signers.map((signer) => ({ series: CLIENT_NAMES[signer.name], value: signer.medianUs }))
      }))
    }
  }
  if (results.setup) {
    const rows = results.setup
    out["s2-connection-setup"] = {
      title: `2. Time to open ${rows[0]?.connections} connections`,
      subtitle: "median ms; lower is better; labels show handshake round trips per connection",
      unit: "ms",
      groups: (["linkDelay", "setLatency"] as const).flatMap((latency) =>
        [false, true].map((parallel) => ({
          label: `${latency === "linkDelay" ? "link delay" : "setLatency"} ${LATENCY_MS} ms, ${
            parallel ? "at once" : "serial"
          }`,
          bars: rows.filter((row) => row.latency === latency && row.parallel === parallel).map((row) => ({
            series: row.label,
            value: row.medianMs,
            note: `${row.roundTripsPerConnection} RT`
          }))
        }))
      )
    }
  }
  if (results.throughput) {
    const rows = results.throughput.rows
    const groups = (value: (row: LoadRow) => number) =>
      QUERIES.flatMap((query) =>
        CONCURRENCIES.map((concurrency) => ({
          label: `${QUERY_NAMES[query]}, c=${concurrency}`,
          bars: rows.filter((row) => row.query === query && row.concurrency === concurrency).map((row) => ({
            series: CLIENT_NAMES[row.client],
            value: value(row)
          }))
        }))
      )
    out["s3-throughput"] = {
      title: "3. Query throughput, pool of 16",
      subtitle: "median ops/s; higher is better",
      unit: "ops/s",
      groups: groups((row) => row.opsPerSecond)
    }
    out["s3-p99"] = {
      title: "3. Query latency p99, pool of 16",
      subtitle: "median of runs' p99 in ms; lower is better",
      unit: "ms",
      groups: groups((row) => row.p99Ms)
    }
  }
  if (results.occ) {
    const configs = [...new Set(results.occ.rows.map((row) => `${row.workers} × ${row.accounts}`))]
    out["s4-occ"] = {
      title: "4. Transfers under OCC contention, each client's retry defaults",
      subtitle: "median committed tx/s; higher is better; labels show the share that gave up",
      unit: "committed tx/s",
      groups: configs.map((config) => ({
        label: `${config.replace(" × ", " workers × ")} accounts`,
        bars: results.occ!.rows.filter((row) => `${row.workers} × ${row.accounts}` === config).map((row) => ({
          series: CLIENT_NAMES[row.client],
          value: row.committedPerSecond,
          note: `${pct(row.gaveUpShare)} gave up`
        }))
      }))
    }
    out["s4-occ-sweep"] = {
      title: "4. withOccRetry policies, 32 workers × 4 accounts",
      subtitle: "median committed tx/s; labels show the share that gave up",
      unit: "committed tx/s",
      groups: results.occ.sweep.map((row) => ({
        label: policyName(row.policy),
        bars: [{ series: "effect-dsql", value: row.committedPerSecond, note: `${pct(row.gaveUpShare)} gave up` }]
      }))
    }
  }
  if (results.storm) {
    out["s5-storm"] = {
      title: "5. Connection storm against a rate limit of 100/s, burst 100",
      subtitle: "median ms until every query finished (or failed); labels show errors over all runs",
      unit: "ms",
      groups: (["fibers", "pools"] as const).map((kind) => ({
        label: stormName(results.storm!.find((row) => row.storm === kind)!),
        bars: results.storm!.filter((row) => row.storm === kind).map((row) => ({
          series: row.label,
          value: row.medianMs,
          note: `${row.errors} errors`
        }))
      }))
    }
  }
  return out
}
