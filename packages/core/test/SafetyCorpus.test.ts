import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { readFileSync, writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import * as SafetyFilter from "../src/SafetyFilter.js"
import { block, pii } from "./fixtures/safety-corpus.js"
import * as Figures from "./support/safetyFigures.js"

const filter = Effect.runSync(SafetyFilter.make())
const figures = Figures.measure(filter)
const readme = fileURLToPath(new URL("../../../README.md", import.meta.url))

describe("SafetyFilter on the labelled corpus", () => {
  it("has at least 300 cases", () => {
    expect(pii.length + block.length).toBeGreaterThanOrEqual(300)
  })

  it("PII: precision and recall per kind, clean texts unaltered", () => {
    console.table(figures.rows.map((r) => ({ ...r, precision: r.precision.toFixed(3), recall: r.recall.toFixed(3) })))
    console.log(`clean texts altered: ${figures.altered}/${figures.clean}`)
    if (figures.misses.length > 0) console.log(figures.misses.join("\n"))
    for (const r of figures.rows) {
      expect(r.recall, r.kind).toBeGreaterThanOrEqual(0.97)
      expect(r.precision, r.kind).toBeGreaterThanOrEqual(0.97)
    }
    expect(figures.altered / figures.clean).toBeLessThanOrEqual(0.01)
  })

  it("block policy: accuracy, and no benign case blocked", () => {
    console.table(figures.byGroup)
    console.log(`block accuracy ${(figures.blockRight / figures.blockCases).toFixed(3)} (${figures.blockRight}/${figures.blockCases})`)
    expect(figures.blockRight / figures.blockCases).toBeGreaterThanOrEqual(0.95)
    expect(figures.benignBlocked).toBe(0)
  })

  // The README's figures are this test's output, never typed by hand. To write them (with
  // today's date): LLM_GATEWAY_TEST_WRITE_FIGURES=1 npx vitest run packages/core/test/SafetyCorpus.test.ts
  it("the README states the figures this corpus gives", () => {
    const markdown = readFileSync(readme, "utf8")
    const found = Figures.find(markdown)
    if (process.env["LLM_GATEWAY_TEST_WRITE_FIGURES"] === "1") {
      const fresh = Figures.render(figures, new Date().toISOString().slice(0, 10))
      expect(found, "the README has no block of safety figures to replace").toBeDefined()
      writeFileSync(readme, markdown.replace(found!.block, fresh))
      return
    }
    expect(found, "the README has no block of safety figures").toBeDefined()
    expect(found!.block).toBe(Figures.render(figures, found!.date))
  })
})
