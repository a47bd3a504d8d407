/**
 * Numbers for the benchmark: medians, percentiles and a latency recorder.
 */

/** The median of some numbers (the mean of the middle two for an even count); NaN for none. */
export const median = (values: ReadonlyArray<number>): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** The nearest-rank percentile `p` (0..100) of sorted values; NaN for none. */
export const percentile = (sorted: Float64Array, p: number): number => {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!
}

/** A latency summary in milliseconds. */
export interface Latency {
  readonly count: number
  readonly p50: number
  readonly p99: number
  readonly max: number
}

/** Collects latencies (ms) without allocating per sample. */
export const makeRecorder = () => {
  let samples = new Float64Array(1 << 14)
  let count = 0
  return {
    add: (millis: number) => {
      if (count === samples.length) {
        const grown = new Float64Array(samples.length * 2)
        grown.set(samples)
        samples = grown
      }
      samples[count++] = millis
    },
    summary: (): Latency => {
      const sorted = samples.slice(0, count).sort()
      return { count, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[count - 1] ?? Number.NaN }
    }
  }
}

/** Rounds to `digits` significant decimals, for JSON and tables. */
export const round = (value: number, digits = 3): number =>
  Number.isFinite(value)
    ? Number(value.toPrecision(Math.max(digits, Math.ceil(Math.log10(Math.abs(value) + 1)))))
    : value

/** A ratio over runs measured side by side: its lowest, median and highest value, and each run's. */
export interface Spread {
  readonly min: number
  readonly median: number
  readonly max: number
  readonly runs: ReadonlyArray<number>
}

/**
 * The per-run ratios `a[i] / b[i]` of two series measured in the same repetitions (run i of each side by side), so
 * that a verdict can be judged on the worst run and the spread shown next to the median.
 */
export const ratios = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): Spread => {
  const runs = a.slice(0, Math.min(a.length, b.length)).map((value, index) => value / b[index]!)
  return {
    min: round(Math.min(...runs)),
    median: round(median(runs)),
    max: round(Math.max(...runs)),
    runs: runs.map((value) => round(value))
  }
}
