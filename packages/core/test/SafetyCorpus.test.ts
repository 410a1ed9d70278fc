import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as SafetyFilter from "../src/SafetyFilter.js"
import { block, pii } from "./fixtures/safety-corpus.js"

const filter = Effect.runSync(SafetyFilter.make())
const kinds = ["email", "phone", "ssn", "itin", "card", "iban", "ip"]

describe("SafetyFilter on the labelled corpus", () => {
  it("has at least 300 cases", () => {
    expect(pii.length + block.length).toBeGreaterThanOrEqual(300)
  })

  it("PII: precision and recall per kind, clean texts unaltered", () => {
    const tp = new Map<string, number>()
    const fp = new Map<string, number>()
    const fn = new Map<string, number>()
    const add = (m: Map<string, number>, k: string, n: number) => m.set(k, (m.get(k) ?? 0) + n)
    let clean = 0
    let altered = 0
    const misses: Array<string> = []
    for (const c of pii) {
      const found = new Map<string, number>()
      for (const f of filter.redact(c.text).findings) add(found, f.kind, 1)
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
        if (filter.redact(c.text).text !== c.text) altered++
      }
    }
    const rows = kinds.map((k) => {
      const t = tp.get(k) ?? 0
      const precision = t + (fp.get(k) ?? 0) === 0 ? 1 : t / (t + (fp.get(k) ?? 0))
      const recall = t + (fn.get(k) ?? 0) === 0 ? 1 : t / (t + (fn.get(k) ?? 0))
      return { kind: k, positives: t + (fn.get(k) ?? 0), precision: precision.toFixed(3), recall: recall.toFixed(3) }
    })
    console.table(rows)
    console.log(`clean texts altered: ${altered}/${clean}`)
    if (misses.length > 0) console.log(misses.join("\n"))
    for (const r of rows) {
      expect(Number(r.recall), r.kind).toBeGreaterThanOrEqual(0.97)
      expect(Number(r.precision), r.kind).toBeGreaterThanOrEqual(0.97)
    }
    expect(altered / clean).toBeLessThanOrEqual(0.01)
  })

  it("block policy: accuracy, and no benign case blocked", () => {
    let right = 0
    const wrong: Array<string> = []
    const byGroup = new Map<string, { right: number; total: number }>()
    for (const c of block) {
      const result = Effect.runSync(
        Effect.either(filter.guardInput({ system: undefined, messages: [{ role: "user", content: c.text }] }))
      )
      const blocked = result._tag === "Left"
      const g = byGroup.get(c.group) ?? { right: 0, total: 0 }
      g.total++
      if (blocked === c.blocked) {
        right++
        g.right++
      } else wrong.push(`${c.group} ${blocked ? "blocked" : "passed"}: ${c.text}`)
      byGroup.set(c.group, g)
    }
    console.table(Array.from(byGroup, ([group, g]) => ({ group, right: g.right, total: g.total })))
    console.log(`block accuracy ${(right / block.length).toFixed(3)} (${right}/${block.length})`)
    if (wrong.length > 0) console.log(wrong.join("\n"))
    expect(right / block.length).toBeGreaterThanOrEqual(0.95)
    expect(wrong.filter((w) => w.startsWith("benign") || w.startsWith("near-miss"))).toEqual([])
  })
})
