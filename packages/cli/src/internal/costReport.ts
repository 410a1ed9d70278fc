/**
 * Summing audit entries into a cost report, exactly: dollar amounts are added as integers of
 * 1e-18 USD (the CostMeter's unit), so 0.1 + 0.2 is 0.3, not 0.30000000000000004.
 */

/** Digits after the point of the integer unit: 1 unit = 1e-18 USD. */
const scale = 18
const unitsPerDollar = 10n ** BigInt(scale)

/**
 * A JSON number of dollars as integer units, from its shortest decimal form (what
 * `JSON.parse` read); digits below 1e-18 are rounded half away from zero.
 */
export const toUnits = (usd: number): bigint => {
  if (!Number.isFinite(usd)) return 0n
  const [mantissa, exponentText] = Math.abs(usd).toExponential().split("e") as [string, string]
  const digits = mantissa.replace(".", "")
  const shift = Number(exponentText) - (digits.length - 1) + scale
  let units: bigint
  if (shift >= 0) {
    units = BigInt(digits) * 10n ** BigInt(shift)
  } else {
    const divisor = 10n ** BigInt(-shift)
    const whole = BigInt(digits)
    units = whole / divisor + (2n * (whole % divisor) >= divisor ? 1n : 0n)
  }
  return usd < 0 ? -units : units
}

/** Integer units as a plain decimal string: at least `minDecimals`, trailing zeros dropped. */
export const formatUnits = (units: bigint, minDecimals = 2): string => {
  const negative = units < 0n
  const abs = negative ? -units : units
  const whole = abs / unitsPerDollar
  let fraction = (abs % unitsPerDollar).toString().padStart(scale, "0").replace(/0+$/, "")
  if (fraction.length < minDecimals) fraction = fraction.padEnd(minDecimals, "0")
  return `${negative ? "-" : ""}${whole}${fraction.length > 0 ? `.${fraction}` : ""}`
}

/** The sums of one row of the report. */
export interface Totals {
  requests: number
  /** Prompt tokens of requests the gateway answered (cache hits are not billed). */
  tokensIn: number
  tokensOut: number
  cost: bigint
  cacheHits: number
  /** What the cache hits would have cost at today's prices. */
  saved: bigint
}

const emptyTotals = (): Totals => ({ requests: 0, tokensIn: 0, tokensOut: 0, cost: 0n, cacheHits: 0, saved: 0n })

/** The fields of an audit entry the report reads. */
export interface Entry {
  readonly timestamp: string
  readonly model: string
  readonly outcome: string
  readonly cached: boolean
  readonly usage?: { readonly promptTokens: number; readonly completionTokens: number } | undefined
  readonly cost?: { readonly totalUsd: number } | undefined
}

const isCount = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n) && n >= 0

/** The entry a parsed line holds, or `undefined` when it is not an audit entry. */
export const asEntry = (value: unknown): Entry | undefined => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined
  const v = value as Record<string, unknown>
  if (typeof v.timestamp !== "string" || Number.isNaN(Date.parse(v.timestamp))) return undefined
  if (typeof v.model !== "string" || typeof v.outcome !== "string" || typeof v.cached !== "boolean") return undefined
  const usage = v.usage as Record<string, unknown> | undefined
  const cost = v.cost as Record<string, unknown> | undefined
  const validUsage = typeof usage === "object" && usage !== null && isCount(usage.promptTokens) &&
    isCount(usage.completionTokens)
  const validCost = typeof cost === "object" && cost !== null && typeof cost.totalUsd === "number" &&
    Number.isFinite(cost.totalUsd) && cost.totalUsd >= 0
  return {
    timestamp: v.timestamp,
    model: v.model,
    outcome: v.outcome,
    cached: v.cached,
    ...(validUsage
      ? { usage: { promptTokens: usage.promptTokens as number, completionTokens: usage.completionTokens as number } }
      : {}),
    ...(validCost ? { cost: { totalUsd: cost.totalUsd as number } } : {})
  }
}

/** A report being built: totals, and rows by model, by UTC day and by outcome. */
export class Report {
  readonly total: Totals = emptyTotals()
  readonly byModel = new Map<string, Totals>()
  readonly byDay = new Map<string, Totals>()
  readonly byOutcome = new Map<string, Totals>()
  entries = 0
  skipped = 0
  before = 0

  constructor(
    /** Entries older than this (epoch milliseconds) are left out. */
    readonly since: number | undefined,
    /** What a cache hit would have cost: the entry's model and usage priced, in USD. */
    readonly priceOf: (model: string, usage: { readonly promptTokens: number; readonly completionTokens: number }) => number
  ) {}

  /** Adds one line of an audit file. */
  addLine(line: string): void {
    if (line.trim().length === 0) return
    let parsed: unknown
    try {
      parsed = JSON.parse(line)
    } catch {
      parsed = undefined
    }
    const entry = asEntry(parsed)
    if (entry === undefined) {
      this.skipped++
      return
    }
    this.add(entry)
  }

  /** Adds one entry. */
  add(entry: Entry): void {
    const at = Date.parse(entry.timestamp)
    if (this.since !== undefined && at < this.since) {
      this.before++
      return
    }
    this.entries++
    const day = new Date(at).toISOString().slice(0, 10)
    const saved = entry.cached && entry.usage !== undefined ? toUnits(this.priceOf(entry.model, entry.usage)) : 0n
    for (const totals of [this.total, row(this.byModel, entry.model), row(this.byDay, day), row(this.byOutcome, entry.outcome)]) {
      totals.requests++
      if (!entry.cached && entry.usage !== undefined) {
        totals.tokensIn += entry.usage.promptTokens
        totals.tokensOut += entry.usage.completionTokens
      }
      if (entry.cost !== undefined) totals.cost += toUnits(entry.cost.totalUsd)
      if (entry.cached) {
        totals.cacheHits++
        totals.saved += saved
      }
    }
  }
}

const row = (rows: Map<string, Totals>, key: string): Totals => {
  const found = rows.get(key)
  if (found !== undefined) return found
  const created = emptyTotals()
  rows.set(key, created)
  return created
}

/** A row as JSON and CSV show it (dollar amounts as exact decimals). */
export const plain = (totals: Totals) => ({
  requests: totals.requests,
  tokensIn: totals.tokensIn,
  tokensOut: totals.tokensOut,
  costUsd: formatUnits(totals.cost),
  cacheHits: totals.cacheHits,
  savedUsd: formatUnits(totals.saved)
})

/** Rows sorted: days in order, models and outcomes by cost then name. */
export const sorted = (rows: Map<string, Totals>, byKey = false): Array<[string, Totals]> =>
  [...rows.entries()].sort(([a, x], [b, y]) =>
    byKey ? a.localeCompare(b) : x.cost === y.cost ? a.localeCompare(b) : x.cost > y.cost ? -1 : 1
  )

/** The report as one JSON-ready object. */
export const toJson = (report: Report, files: ReadonlyArray<string>) => ({
  files,
  since: report.since === undefined ? null : new Date(report.since).toISOString(),
  entries: report.entries,
  skippedLines: report.skipped,
  entriesBeforeSince: report.before,
  total: plain(report.total),
  byModel: sorted(report.byModel).map(([model, t]) => ({ model, ...plain(t) })),
  byDay: sorted(report.byDay, true).map(([day, t]) => ({ day, ...plain(t) })),
  byOutcome: sorted(report.byOutcome).map(([outcome, t]) => ({ outcome, ...plain(t) }))
})

const csvField = (value: string | number): string => {
  // A leading = + - @ would be read as a formula by spreadsheets: prefix it with a quote.
  const text = typeof value === "string" && /^[=+\-@\t\r]/.test(value) ? `'${value}` : String(value)
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

/** The report as CSV: one header, then the total and every row, with a `group` column. */
export const toCsv = (report: Report): string => {
  const lines = ["group,key,requests,tokens_in,tokens_out,cost_usd,cache_hits,saved_usd"]
  const add = (group: string, key: string, t: Totals) => {
    const p = plain(t)
    lines.push([group, key, p.requests, p.tokensIn, p.tokensOut, p.costUsd, p.cacheHits, p.savedUsd].map(csvField).join(","))
  }
  add("total", "", report.total)
  for (const [key, t] of sorted(report.byModel)) add("model", key, t)
  for (const [key, t] of sorted(report.byDay, true)) add("day", key, t)
  for (const [key, t] of sorted(report.byOutcome)) add("outcome", key, t)
  return lines.join("\n") + "\n"
}

const count = (n: number) => n.toLocaleString("en-US")

/** Columns padded to their widest cell; numbers right-aligned. */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>, rightFrom = 1): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const format = (cells: ReadonlyArray<string>) =>
    cells.map((c, i) => (i >= rightFrom ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join("  ").trimEnd()
  return [format(header), ...rows.map(format)].join("\n")
}

/** The report as text tables. */
export const toText = (report: Report): string => {
  const header = ["", "requests", "tokens in", "tokens out", "cost (USD)", "cache hits", "saved (USD)"]
  const cells = (key: string, t: Totals) => [
    key,
    count(t.requests),
    count(t.tokensIn),
    count(t.tokensOut),
    formatUnits(t.cost),
    count(t.cacheHits),
    formatUnits(t.saved)
  ]
  const section = (title: string, rows: Array<[string, Totals]>) =>
    `${title}\n${table([title === "By model" ? "model" : title === "By day" ? "day (UTC)" : "outcome", ...header.slice(1)], rows.map(([k, t]) => cells(k, t)))}`
  const t = report.total
  return [
    `Total: ${count(t.requests)} request${t.requests === 1 ? "" : "s"}, ${count(t.tokensIn)} tokens in, ${
      count(t.tokensOut)
    } tokens out, $${formatUnits(t.cost)}; ${count(t.cacheHits)} cache hit${t.cacheHits === 1 ? "" : "s"} saved $${
      formatUnits(t.saved)
    }`,
    "",
    section("By model", sorted(report.byModel)),
    "",
    section("By day", sorted(report.byDay, true)),
    "",
    section("By outcome", sorted(report.byOutcome))
  ].join("\n") + "\n"
}
