/**
 * Hand-written SVG: horizontal grouped bar charts, one bar per series in each group, each bar labelled with its value.
 */

export interface Bar {
  readonly series: string
  readonly value: number
  /** Printed after the value, e.g. "2 errors". */
  readonly note?: string
}

export interface Group {
  readonly label: string
  readonly bars: ReadonlyArray<Bar>
}

export interface Chart {
  readonly title: string
  readonly subtitle: string
  readonly unit: string
  readonly groups: ReadonlyArray<Group>
  /** Log scale for values spanning orders of magnitude. */
  readonly log?: boolean
}

const palette = ["#2f6fdf", "#e0762b", "#3a9e5c", "#9b59b6", "#c0392b", "#7f8c8d", "#16a085"]

const escape = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

const format = (value: number) =>
  !Number.isFinite(value)
    ? "n/a"
    : value >= 100
    ? Math.round(value).toLocaleString("en-US")
    : value >= 10
    ? value.toFixed(1)
    : value.toFixed(2)

export const barChart = (chart: Chart): string => {
  const series = [...new Set(chart.groups.flatMap((group) => group.bars.map((bar) => bar.series)))]
  const color = (name: string) => palette[series.indexOf(name) % palette.length]!
  // 12px sans-serif averages under 7px a character
  const labelWidth = Math.round(
    Math.min(380, Math.max(150, 20 + 6.8 * Math.max(...chart.groups.map((g) => g.label.length))))
  )
  const plotWidth = 480
  const valueWidth = 150
  const barHeight = 16
  const groupGap = 14
  const legendHeight = 22 * Math.ceil(series.length / 2)
  const top = 58 + legendHeight
  const width = labelWidth + plotWidth + valueWidth
  const values = chart.groups.flatMap((group) => group.bars.map((bar) => bar.value)).filter(Number.isFinite)
  const max = Math.max(...values, 0)
  const min = Math.min(...values.filter((value) => value > 0), max)
  const logMin = Math.log10(min) - 0.3
  const scale = (value: number) => {
    if (!Number.isFinite(value) || value <= 0 || max <= 0) return 0
    if (!chart.log) return (value / max) * plotWidth
    return Math.max(2, ((Math.log10(value) - logMin) / (Math.log10(max) - logMin)) * plotWidth)
  }
  const parts: Array<string> = []
  let y = top
  for (const group of chart.groups) {
    const groupHeight = group.bars.length * (barHeight + 2)
    parts.push(
      `<text x="${labelWidth - 10}" y="${y + groupHeight / 2 + 4}" text-anchor="end" class="group">${
        escape(group.label)
      }</text>`
    )
    for (const bar of group.bars) {
      const barWidth = scale(bar.value)
      parts.push(
        `<rect x="${labelWidth}" y="${y}" width="${barWidth.toFixed(1)}" height="${barHeight}" fill="${
          color(bar.series)
        }"><title>${escape(`${bar.series}: ${format(bar.value)} ${chart.unit}`)}</title></rect>`,
        `<text x="${labelWidth + barWidth + 5}" y="${y + barHeight - 4}" class="value">${
          escape(`${format(bar.value)}${bar.note === undefined ? "" : ` · ${bar.note}`}`)
        }</text>`
      )
      y += barHeight + 2
    }
    y += groupGap
  }
  const legend = series.map((name, index) => {
    const x = 20 + (index % 2) * 420
    const row = 50 + Math.floor(index / 2) * 22
    return `<rect x="${x}" y="${row}" width="12" height="12" fill="${color(name)}"/>` +
      `<text x="${x + 18}" y="${row + 11}" class="legend">${escape(name)}</text>`
  })
  const height = y + 24
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<style>text{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;fill:#222}` +
    `.title{font-size:16px;font-weight:600}.subtitle{font-size:12px;fill:#555}.group{font-size:12px}` +
    `.value{font-size:11px}.legend{font-size:12px}.axis{font-size:11px;fill:#555}</style>`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="20" y="24" class="title">${escape(chart.title)}</text>`,
    `<text x="20" y="42" class="subtitle">${escape(chart.subtitle)}</text>`,
    ...legend,
    `<line x1="${labelWidth}" y1="${top - 6}" x2="${labelWidth}" y2="${y - groupGap + 4}" stroke="#999"/>`,
    `<text x="${labelWidth}" y="${height - 8}" class="axis">${
      escape(`${chart.unit}${chart.log ? " (log scale)" : ""}`)
    }</text>`,
    ...parts,
    `</svg>`,
    ""
  ].join("\n")
}
