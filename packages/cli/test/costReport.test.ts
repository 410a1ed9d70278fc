import { describe, expect, it } from "@effect/vitest"
import { AuditLog, CostMeter } from "@llm-gateway/core"
import { parseSince } from "../src/CostCommand.js"
import { formatUnits, Report, toCsv, toJson, toText, toUnits } from "../src/internal/costReport.js"

type Entry = AuditLog.AuditEntry

const base: Entry = {
  requestId: "r",
  timestamp: "2026-11-01T09:00:00.000Z",
  requestHash: "a".repeat(64),
  model: "gpt-4o-mini",
  outcome: "success",
  cached: false,
  inputRedactions: [],
  outputRedactions: [],
  droppedMessages: 0,
  durationMs: 5
}
const usage = (promptTokens: number, completionTokens: number) => ({
  promptTokens,
  completionTokens,
  totalTokens: promptTokens + completionTokens
})
const cost = (totalUsd: number) => ({ promptUsd: 0, completionUsd: totalUsd, totalUsd })

/** A known audit file, chained as `AuditLog` writes it. */
const entries: ReadonlyArray<Entry> = [
  { ...base, requestId: "1", usage: usage(100, 50), cost: cost(0.1) },
  { ...base, requestId: "2", usage: usage(200, 10), cost: cost(0.2) },
  { ...base, requestId: "3", timestamp: "2026-11-02T23:59:59.999Z", model: "gpt-4o", usage: usage(1_000, 1_000), cost: cost(0.0000001) },
  // A cache hit: billed nothing; it saved what its usage costs at today's prices.
  { ...base, requestId: "4", timestamp: "2026-11-02T10:00:00.000Z", cached: true, usage: usage(1_000_000, 1_000_000), cost: cost(0) },
  { ...base, requestId: "5", timestamp: "2026-11-03T00:00:00.000Z", outcome: "failure", errorTag: "UpstreamError" },
  { ...base, requestId: "6", timestamp: "2026-11-03T01:00:00.000Z", outcome: "interrupted", model: "gpt-4o", usage: usage(7, 3), cost: cost(0.000033) }
]
const lines = (() => {
  let head: AuditLog.ChainHead = { seq: 0, prevHash: AuditLog.genesisHash }
  return entries.map((e) => {
    const linked = AuditLog.link(head, e)
    head = linked.head
    return linked.line
  })
})()

const priceOf = CostMeter.makePrice()
const build = (since?: number) => {
  const report = new Report(since, (model, u) => priceOf(model, { ...u, totalTokens: u.promptTokens + u.completionTokens }).totalUsd)
  for (const line of lines) report.addLine(line)
  return report
}

describe("cost report", () => {
  it("sums a known audit file exactly, by model, day and outcome", () => {
    const json = toJson(build(), ["audit.jsonl"])
    // 0.1 + 0.2 + 0.0000001 + 0 + 0.000033 as decimals, not as floats (0.30000000000000004…).
    expect(json.total).toEqual({
      requests: 6,
      tokensIn: 1_307,
      tokensOut: 1_063,
      costUsd: "0.3000331",
      cacheHits: 1,
      // gpt-4o-mini: 1M prompt tokens at $0.15 + 1M completion tokens at $0.60.
      savedUsd: "0.75"
    })
    expect(json.byModel).toEqual([
      { model: "gpt-4o-mini", requests: 4, tokensIn: 300, tokensOut: 60, costUsd: "0.30", cacheHits: 1, savedUsd: "0.75" },
      { model: "gpt-4o", requests: 2, tokensIn: 1_007, tokensOut: 1_003, costUsd: "0.0000331", cacheHits: 0, savedUsd: "0.00" }
    ])
    expect(json.byDay.map((d) => [d.day, d.requests, d.costUsd])).toEqual([
      ["2026-11-01", 2, "0.30"],
      ["2026-11-02", 2, "0.0000001"],
      ["2026-11-03", 2, "0.000033"]
    ])
    expect(json.byOutcome.map((o) => [o.outcome, o.requests, o.costUsd])).toEqual([
      ["success", 4, "0.3000001"],
      ["interrupted", 1, "0.000033"],
      ["failure", 1, "0.00"]
    ])
    expect(json.skippedLines).toBe(0)
  })

  it("--since leaves out older entries; lines that are not entries are counted, not summed", () => {
    const report = build(parseSince("2026-11-02"))
    report.addLine("not json")
    report.addLine(`{"model":"x"}`)
    report.addLine("")
    const json = toJson(report, [])
    expect(json.total.requests).toBe(4)
    expect(json.entriesBeforeSince).toBe(2)
    expect(json.skippedLines).toBe(2)
    expect(json.total.costUsd).toBe("0.0000331")
  })

  it("text and CSV show the same sums; CSV cells cannot start a formula", () => {
    const report = build()
    const text = toText(report)
    expect(text).toMatch(/^Total: 6 requests, 1,307 tokens in, 1,063 tokens out, \$0\.3000331; 1 cache hit saved \$0\.75$/m)
    expect(text).toMatch(/^gpt-4o-mini\s+4\s+300\s+60\s+0\.30\s+1\s+0\.75$/m)
    report.add({ ...base, model: "=HYPERLINK(\"x\")", usage: usage(1, 1), cost: cost(1) })
    const csv = toCsv(report).split("\n")
    expect(csv[0]).toBe("group,key,requests,tokens_in,tokens_out,cost_usd,cache_hits,saved_usd")
    expect(csv[1]).toBe("total,,7,1308,1064,1.3000331,1,0.75")
    expect(csv).toContain(`model,"'=HYPERLINK(""x"")",1,1,1,1.00,0,0.00`)
  })

  it("converts dollars to exact units and back", () => {
    expect(toUnits(0.1) + toUnits(0.2)).toBe(toUnits(0.3))
    expect(formatUnits(toUnits(0.1) + toUnits(0.2))).toBe("0.30")
    expect(formatUnits(toUnits(4.5e-7))).toBe("0.00000045")
    expect(formatUnits(toUnits(123.456789))).toBe("123.456789")
    expect(formatUnits(toUnits(1e-18))).toBe("0.000000000000000001")
    expect(toUnits(4e-19)).toBe(0n)
    expect(toUnits(5e-19)).toBe(1n)
    expect(formatUnits(toUnits(1e15))).toBe("1000000000000000.00")
  })

  it("--since takes a UTC date or a time with a zone", () => {
    expect(parseSince("2026-11-02")).toBe(Date.UTC(2026, 10, 2))
    expect(parseSince("2026-11-02T12:00:00Z")).toBe(Date.UTC(2026, 10, 2, 12))
    expect(parseSince("2026-11-02T12:00:00+02:00")).toBe(Date.UTC(2026, 10, 2, 10))
    expect(parseSince("yesterday")).toBeUndefined()
    expect(parseSince("2026-13-45")).toBeUndefined()
    expect(parseSince("2026-11-02T12:00")).toBeUndefined()
  })
})
