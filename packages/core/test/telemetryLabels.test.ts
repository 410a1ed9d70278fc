import { describe, expect, it } from "@effect/vitest"
import { bounded } from "../src/internal/telemetry.js"

describe("telemetry metric labels", () => {
  it("model names are kept up to 100 distinct values per label, then recorded as _other", () => {
    const key = "gen_ai.response.model"
    const seen = Array.from({ length: 150 }, (_, i) => bounded(key, `hostile-model-${i}`))
    const kept = seen.filter((v) => v !== "_other")
    // Other tests of this process may have used some of the 100 places already.
    expect(kept.length).toBeLessThanOrEqual(100)
    expect(seen.filter((v) => v === "_other").length).toBeGreaterThanOrEqual(50)
    // A value seen before keeps its own series; other labels are never bounded.
    expect(bounded(key, kept[0]!)).toBe(kept[0])
    expect(bounded("llm_gateway.redaction.kind", "anything-1")).toBe("anything-1")
  })
})
