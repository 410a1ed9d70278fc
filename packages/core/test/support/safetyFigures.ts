/**
 * The SafetyFilter's figures on the labelled corpus: precision and recall per PII kind, clean
 * texts altered, block-policy accuracy. `SafetyCorpus.test.ts` asserts them and keeps the
 * README's block of figures equal to what they are (`render`).
 */
import * as Effect from "effect/Effect"
import type * as SafetyFilter from "../../src/SafetyFilter.js"
import { block, pii } from "../fixtures/safety-corpus.js"

export const kinds = ["email", "phone", "ssn", "itin", "card", "iban", "ip"] as const

export interface KindRow {
  readonly kind: string
  readonly positives: number
  readonly precision: number
  readonly recall: number
}

export interface Figures {
  readonly piiCases: number
  readonly blockCases: number
  readonly rows: ReadonlyArray<KindRow>
  readonly clean: number
  readonly altered: number
  readonly blockRight: number
  readonly benignBlocked: number
  /** Cases the filter got wrong, for the test's output. */
  readonly misses: ReadonlyArray<string>
  readonly byGroup: ReadonlyArray<{ readonly group: string; readonly right: number; readonly total: number }>
}

const add = (m: Map<string, number>, k: string, n: number) => m.set(k, (m.get(k) ?? 0) + n)

/** Measures `filter` (the default policy in the tests) on the whole corpus. */
export const measure = (filter: SafetyFilter.Service): Figures => {
  const tp = new Map<string, number>()
  const fp = new Map<string, number>()
  const fn = new Map<string, number>()
  const misses: Array<string> = []
  let clean = 0
  let altered = 0
  for (const c of pii) {
    const redacted = filter.redact(c.text)
    const found = new Map<string, number>()
    for (const f of redacted.findings) add(found, f.kind, 1)
    const expected = new Map<string, number>()
    for (const k of c.kinds) add(expected, k, 1)
    for (const k of kinds) {
      const e = expected.get(k) ?? 0
      const f = found.get(k) ?? 0
      add(tp, k, Math.min(e, f))
      add(fp, k, Math.max(0, f - e))
      add(fn, k, Math.max(0, e - f))
      if (e !== f) misses.push(`${k} expected ${e} found ${f}: ${c.text}`)
    }
    if (c.kinds.length === 0) {
      clean++
      if (redacted.text !== c.text) altered++
    }
  }
  const rows = kinds.map((kind): KindRow => {
    const t = tp.get(kind) ?? 0
    const falsePositives = fp.get(kind) ?? 0
    const falseNegatives = fn.get(kind) ?? 0
    return {
      kind,
      positives: t + falseNegatives,
      precision: t + falsePositives === 0 ? 1 : t / (t + falsePositives),
      recall: t + falseNegatives === 0 ? 1 : t / (t + falseNegatives)
    }
  })
  let blockRight = 0
  let benignBlocked = 0
  const groups = new Map<string, { right: number; total: number }>()
  for (const c of block) {
    const result = Effect.runSync(
      Effect.either(filter.guardInput({ system: undefined, messages: [{ role: "user", content: c.text }] }))
    )
    const blocked = result._tag === "Left"
    const g = groups.get(c.group) ?? { right: 0, total: 0 }
    g.total++
    if (blocked === c.blocked) {
      blockRight++
      g.right++
    } else {
      misses.push(`${c.group} ${blocked ? "blocked" : "passed"}: ${c.text}`)
      if (blocked) benignBlocked++
    }
    groups.set(c.group, g)
  }
  return {
    piiCases: pii.length,
    blockCases: block.length,
    rows,
    clean,
    altered,
    blockRight,
    benignBlocked,
    misses,
    byGroup: Array.from(groups, ([group, g]) => ({ group, ...g }))
  }
}

export const startMarker = "<!-- safety-figures:start (written by packages/core/test/SafetyCorpus.test.ts) -->"
export const endMarker = "<!-- safety-figures:end -->"

/** The README's block of figures, measured on `date` (YYYY-MM-DD). */
export const render = (figures: Figures, date: string): string =>
  [
    startMarker,
    `Measured on ${date} over the labelled corpus \`packages/core/test/fixtures/safety-corpus.ts\` ` +
    `(${figures.piiCases + figures.blockCases} cases written for this project: ${figures.piiCases} PII texts, ` +
    `${figures.blockCases} block-policy texts), default policy:`,
    "",
    "| kind | positives | precision | recall |",
    "|---|---|---|---|",
    ...figures.rows.map((r) => `| ${r.kind} | ${r.positives} | ${r.precision.toFixed(3)} | ${r.recall.toFixed(3)} |`),
    "",
    `Clean texts altered: ${figures.altered} of ${figures.clean}. Block-policy accuracy: ` +
    `${(figures.blockRight / figures.blockCases).toFixed(3)} (${figures.blockRight} of ${figures.blockCases}), ` +
    `benign texts blocked: ${figures.benignBlocked}.`,
    endMarker
  ].join("\n")

/** The block of figures in `markdown` and its date, if present. */
export const find = (markdown: string): { readonly block: string; readonly date: string } | undefined => {
  const start = markdown.indexOf(startMarker)
  const end = markdown.indexOf(endMarker)
  if (start < 0 || end < start) return undefined
  const block = markdown.slice(start, end + endMarker.length)
  const date = /Measured on (\d{4}-\d{2}-\d{2})/.exec(block)?.[1]
  return date === undefined ? undefined : { block, date }
}
