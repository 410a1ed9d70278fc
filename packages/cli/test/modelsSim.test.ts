import { describe, expect, it } from "@effect/vitest"
import { CostMeter } from "@llm-gateway/core"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { rows } from "../src/internal/models.js"
import { loadScenarioFile } from "../src/internal/sim.js"

describe("models", () => {
  it("lists the catalog with prices, and priced models the catalog does not size", () => {
    const catalog = rows({ "acme-chat": { contextWindow: 32_768, maxOutputTokens: 4_096, encoding: "cl100k_base" } }, {
      "acme-chat": { promptPerMillion: 1, completionPerMillion: 4 }
    })
    expect(catalog.find((r) => r.model === "gpt-4o-mini")).toEqual({
      model: "gpt-4o-mini",
      contextWindow: 128_000,
      maxOutputTokens: 16_384,
      encoding: "o200k_base",
      promptPerMillion: 0.15,
      completionPerMillion: 0.6,
      source: "built-in"
    })
    expect(catalog.find((r) => r.model === "acme-chat")).toMatchObject({ contextWindow: 32_768, promptPerMillion: 1, source: "LLM_GATEWAY_MODELS" })
    // Every built-in price is shown: on the catalog rows it prices, or on a row of its own.
    for (const [key, price] of Object.entries(CostMeter.defaultPricing)) {
      const onCatalogRow = catalog.some((r) =>
        r.source === "built-in" && CostMeter.lookupPrice(CostMeter.defaultPricing, r.model).pipe((p) => p._tag === "Some" && p.value === price)
      )
      expect(onCatalogRow || catalog.some((r) => r.model === key), key).toBe(true)
    }
    // gpt-3.5-turbo-instruct is priced apart from its family, and sized like it.
    expect(catalog.find((r) => r.model === "gpt-3.5-turbo-instruct")).toMatchObject({
      contextWindow: 16_385,
      promptPerMillion: 1.5,
      completionPerMillion: 2
    })
  })
})

describe("sim --scenario", () => {
  const dir = mkdtempSync(join(tmpdir(), "llm-gateway-scenarios-"))

  it.effect("a wrong field: one short line naming the path and what was expected", () =>
    Effect.gen(function*() {
      const file = join(dir, "bad.json")
      writeFileSync(file, JSON.stringify({ name: "x", timing: { tokenMs: "fast" } }))
      const exit = yield* Effect.exit(loadScenarioFile(file))
      expect(Exit.isFailure(exit)).toBe(true)
      const error = Exit.isFailure(exit) ? (exit.cause as { error?: { message: string; _tag: string } }).error : undefined
      expect(error?._tag).toBe("ScenarioFileError")
      expect(error?.message).toContain(file)
      expect(error?.message).toContain(`at timing.tokenMs: Expected number, actual "fast"`)
      expect(error?.message).not.toContain("\n")
      expect(error!.message.length).toBeLessThan(400)
    }))

  it.effect("a wrong field in a list names its index", () =>
    Effect.gen(function*() {
      const file = join(dir, "list.json")
      writeFileSync(file, JSON.stringify({ scenarios: [{ name: "ok" }, { name: "y", reply: 42 }] }))
      const error = yield* Effect.flip(loadScenarioFile(file))
      expect(error.message).toContain("at scenarios.1.reply:")
      expect(error.message.length).toBeLessThan(600)
    }))

  it.effect("/dev/zero and a directory are refused before reading; a good file loads", () =>
    Effect.gen(function*() {
      expect((yield* Effect.flip(loadScenarioFile("/dev/zero"))).message).toContain("it is not a regular file")
      expect((yield* Effect.flip(loadScenarioFile(dir))).message).toContain("it is not a regular file")
      expect((yield* Effect.flip(loadScenarioFile(join(dir, "missing.json")))).message).toContain("ENOENT")
      const good = join(dir, "good.json")
      writeFileSync(good, JSON.stringify({ scenarios: [{ name: "greeting", reply: "Hi." }], defaultScenario: "greeting" }))
      const set = yield* loadScenarioFile(good)
      expect(set.defaultScenario).toBe("greeting")
      expect(set.scenarios.map((s) => s.name)).toEqual(["greeting"])
    }))
})
