// The chart of docs/performance.md: one horizontal bar per paired ratio on a log scale, drawn from
// 1× (parity with the peer) to the median, with a min–max whisker and the target as a tick.
// Hand-written SVG, so the suite needs no plotting dependency.

const escape = (text) => String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/`/g, "")

/**
 * SVG text of the chart of `rows` ({ label, ratio: { median, min, max }, target, met }): green when
 * the row's target is met, orange when not, blue when it has none.
 */
export const svgChart = (rows, title) => {
  const labelWidth = 470
  const plotWidth = 420
  const rowHeight = 26
  const top = 62
  const width = labelWidth + plotWidth + 30
  const height = top + rows.length * rowHeight + 40
  const finite = rows.flatMap((row) => [row.ratio.min, row.ratio.max, ...(Number.isFinite(row.target) ? [row.target] : [])])
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(0.5, ...finite))))
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(2, ...finite))))
  const x = (value) => labelWidth + (Math.log10(Math.max(lo, Math.min(hi, value)) / lo) / Math.log10(hi / lo)) * plotWidth
  const out = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`)
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`)
  out.push(`<text x="10" y="20" font-size="14" font-weight="bold">${escape(title)}</text>`)
  out.push(`<text x="10" y="36" fill="#555">ours ÷ peer, median of paired rounds, log scale: left of 1× is faster or smaller than the peer</text>`)
  out.push(`<text x="10" y="51" fill="#555">whisker: min–max of the rounds; red tick: ratio target; bar green: target met, orange: not met, blue: no target</text>`)
  // Grid: every power of ten and its 2× and 5×.
  for (let decade = lo; decade < hi * 1.001; decade *= 10) {
    for (const m of [1, 2, 5]) {
      const v = decade * m
      if (v > hi * 1.001) continue
      const gx = x(v).toFixed(1)
      out.push(`<line x1="${gx}" y1="${top - 4}" x2="${gx}" y2="${top + rows.length * rowHeight}" stroke="${v === 1 ? "#333" : "#ddd"}" stroke-width="${v === 1 ? 1.5 : 1}"/>`)
      out.push(`<text x="${gx}" y="${top + rows.length * rowHeight + 16}" text-anchor="middle" fill="#555">${Number(v.toPrecision(3))}×</text>`)
    }
  }
  rows.forEach((row, i) => {
    const y = top + i * rowHeight
    const mid = y + rowHeight / 2
    const met = row.met
    const color = met === undefined ? "#6b8fb5" : met ? "#4c9a5b" : "#d08a3c"
    const label = row.label.length > 74 ? `${row.label.slice(0, 73)}…` : row.label
    out.push(`<text x="${labelWidth - 8}" y="${mid + 4}" text-anchor="end">${escape(label)}</text>`)
    const x1 = x(Math.min(1, row.ratio.median))
    const x2 = x(Math.max(1, row.ratio.median))
    out.push(`<rect x="${x1.toFixed(1)}" y="${y + 5}" width="${Math.max(1, x2 - x1).toFixed(1)}" height="${rowHeight - 10}" fill="${color}"/>`)
    out.push(`<line x1="${x(row.ratio.min).toFixed(1)}" y1="${mid}" x2="${x(row.ratio.max).toFixed(1)}" y2="${mid}" stroke="#222"/>`)
    if (Number.isFinite(row.target)) {
      const tx = x(row.target).toFixed(1)
      out.push(`<line x1="${tx}" y1="${y + 2}" x2="${tx}" y2="${y + rowHeight - 2}" stroke="#c0392b" stroke-width="2"/>`)
    }
    const valueX = Math.min(x(Math.max(1, row.ratio.median, row.ratio.max)) + 4, width - 44)
    out.push(`<text x="${valueX.toFixed(1)}" y="${mid + 4}" fill="#222">${row.ratio.median.toFixed(2)}×</text>`)
  })
  out.push("</svg>")
  return `${out.join("\n")}\n`
}
