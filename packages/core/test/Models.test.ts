import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { getEncodingNameForModel, type TiktokenModel } from "js-tiktoken/lite"
import * as Models from "../src/Models.js"

describe("Models", () => {
  it("resolves exact ids and dated snapshots to their family", () => {
    const cases: ReadonlyArray<readonly [string, string, number, number, Models.Encoding]> = [
      ["gpt-4o", "gpt-4o", 128_000, 16_384, "o200k_base"],
      ["gpt-4o-2024-08-06", "gpt-4o", 128_000, 16_384, "o200k_base"],
      ["gpt-4o-2024-05-13", "gpt-4o-2024-05-13", 128_000, 4_096, "o200k_base"],
      ["gpt-4o-mini-2024-07-18", "gpt-4o-mini", 128_000, 16_384, "o200k_base"],
      ["gpt-4.1-mini-2025-04-14", "gpt-4.1-mini", 1_047_576, 32_768, "o200k_base"],
      ["gpt-4.1", "gpt-4.1", 1_047_576, 32_768, "o200k_base"],
      ["gpt-4-turbo-2024-04-09", "gpt-4-turbo", 128_000, 4_096, "cl100k_base"],
      ["gpt-4-0613", "gpt-4", 8_192, 8_192, "cl100k_base"],
      ["gpt-4-32k-0613", "gpt-4-32k", 32_768, 32_768, "cl100k_base"],
      ["gpt-3.5-turbo-0125", "gpt-3.5-turbo", 16_385, 4_096, "cl100k_base"],
      ["gpt-3.5-turbo-0613", "gpt-3.5-turbo-0613", 4_096, 4_096, "cl100k_base"],
      ["gpt-35-turbo", "gpt-35-turbo", 16_385, 4_096, "cl100k_base"],
      ["gpt-35-turbo-16k", "gpt-35-turbo-16k", 16_384, 4_096, "cl100k_base"],
      ["o1-2024-12-17", "o1", 200_000, 100_000, "o200k_base"],
      ["o1-mini-2024-09-12", "o1-mini", 128_000, 65_536, "o200k_base"],
      ["o3-mini-2025-01-31", "o3-mini", 200_000, 100_000, "o200k_base"],
      ["o4-mini-2025-04-16", "o4-mini", 200_000, 100_000, "o200k_base"],
      ["gpt-5-2025-08-07", "gpt-5", 400_000, 128_000, "o200k_base"]
    ]
    for (const [id, matched, contextWindow, maxOutputTokens, encoding] of cases) {
      expect(Models.resolve(id), id).toEqual({ model: id, matched, info: { contextWindow, maxOutputTokens, encoding } })
    }
  })

  it("never lets a family swallow a different one", () => {
    // gpt-4o / gpt-4.1 / gpt-4.5 share the prefix "gpt-4" but not its window or encoding.
    expect(Models.resolve("gpt-4o-audio-preview").matched).toBe("gpt-4o")
    expect(Models.resolve("gpt-4.5-preview-2025-02-27").matched).toBe("gpt-4.5-preview")
    expect(Models.lookup("gpt-4.1-nano").encoding).toBe("o200k_base")
    expect(Models.resolve("gpt-4.7").matched).toBeUndefined()
    expect(Models.resolve("o10").matched).toBeUndefined()
  })

  it("looks through case, provider prefixes and the fine-tuning wrapper", () => {
    expect(Models.resolve("OpenAI/GPT-4o").matched).toBe("gpt-4o")
    expect(Models.resolve("azure/gpt-35-turbo-0613").matched).toBe("gpt-35-turbo-0613")
    expect(Models.resolve("ft:gpt-4o-mini-2024-07-18:acme::AbC123").matched).toBe("gpt-4o-mini")
    expect(Models.resolve("ft:gpt-3.5-turbo-0125:acme:custom:id").info.encoding).toBe("cl100k_base")
  })

  it("uses the encoding js-tiktoken assigns to every chat model it knows", () => {
    const ids: ReadonlyArray<TiktokenModel> = [
      "gpt-3.5-turbo", "gpt-35-turbo", "gpt-3.5-turbo-0125", "gpt-3.5-turbo-1106", "gpt-3.5-turbo-16k",
      "gpt-3.5-turbo-0613", "gpt-3.5-turbo-0301", "gpt-4", "gpt-4-0314", "gpt-4-0613", "gpt-4-32k",
      "gpt-4-turbo", "gpt-4-turbo-2024-04-09", "gpt-4-turbo-preview", "gpt-4-1106-preview", "gpt-4-0125-preview",
      "gpt-4-vision-preview", "gpt-4o", "gpt-4o-2024-05-13", "gpt-4o-2024-08-06", "gpt-4o-2024-11-20",
      "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "gpt-4o-audio-preview", "gpt-4o-search-preview",
      "chatgpt-4o-latest", "gpt-4o-realtime-preview-2024-12-17", "o1", "o1-2024-12-17", "o1-mini", "o1-preview",
      "o1-pro", "o3", "o3-mini", "o4-mini", "o4-mini-2025-04-16", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano",
      "gpt-4.5-preview", "gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-5-chat-latest"
    ]
    for (const id of ids) {
      const resolved = Models.resolve(id)
      expect(resolved.matched, id).toBeDefined()
      expect(resolved.info.encoding, id).toBe(getEncodingNameForModel(id))
      expect(resolved.info.maxOutputTokens, id).toBeLessThanOrEqual(resolved.info.contextWindow)
    }
  })

  it("falls back for unknown models, and the fallback can be replaced", () => {
    expect(Models.resolve("acme-chat")).toEqual({ model: "acme-chat", matched: undefined, info: Models.defaultFallback })
    expect(Models.defaultFallback).toEqual({ contextWindow: 8_192, maxOutputTokens: 4_096, encoding: "o200k_base" })
    const registry = Models.make({ fallback: { contextWindow: 32_000, maxOutputTokens: 2_000, encoding: "cl100k_base" } })
    expect(Models.lookup("acme-chat", registry).contextWindow).toBe(32_000)
    expect(Option.isNone(Models.find("acme-chat"))).toBe(true)
  })

  it("registers models by id or family, overriding built-ins", () => {
    const registry = Models.make({
      models: {
        "Acme-Chat": { contextWindow: 32_768, maxOutputTokens: 2_048, encoding: "cl100k_base" },
        "gpt-4o": { contextWindow: 64_000, maxOutputTokens: 8_000, encoding: "o200k_base" }
      }
    })
    expect(Models.resolve("acme-chat-2025-01-01", registry).matched).toBe("acme-chat")
    expect(Models.lookup("gpt-4o-2024-11-20", registry).contextWindow).toBe(64_000)
    expect(Models.lookup("gpt-4o-mini", registry).contextWindow).toBe(128_000)
    expect(Models.resolve("gpt-4o", Models.make({ builtIn: false })).matched).toBeUndefined()
  })

  it("reserves at most 4,096 reply tokens by default, and never half the window or more", () => {
    expect(Models.defaultReserveForReply(Models.lookup("gpt-4o"))).toBe(4_096)
    expect(Models.defaultReserveForReply(Models.lookup("gpt-4"))).toBe(4_096)
    expect(Models.defaultReserveForReply(Models.lookup("gpt-3.5-turbo-0613"))).toBe(2_048)
    expect(Models.defaultReserveForReply({ contextWindow: 1_000, maxOutputTokens: 100, encoding: "o200k_base" })).toBe(
      100
    )
  })

  describe("config", () => {
    const load = (value: string) =>
      Effect.withConfigProvider(Models.config("LLM_MODELS"), ConfigProvider.fromMap(new Map([["LLM_MODELS", value]])))

    it.effect("reads models from a JSON variable", () =>
      Effect.gen(function*() {
        const models = yield* load(`{"acme-chat":{"contextWindow":32768,"maxOutputTokens":4096,"encoding":"cl100k_base"}}`)
        expect(models).toEqual({ "acme-chat": { contextWindow: 32_768, maxOutputTokens: 4_096, encoding: "cl100k_base" } })
      }))

    it.effect("fails naming the variable on bad JSON or a bad entry", () =>
      Effect.gen(function*() {
        for (const bad of ["{not json", `{"m":{"contextWindow":0,"maxOutputTokens":1,"encoding":"o200k_base"}}`, `{"m":{"contextWindow":10,"maxOutputTokens":1,"encoding":"p50k_base"}}`]) {
          const error = yield* Effect.flip(load(bad))
          expect(String(error)).toContain("LLM_MODELS")
        }
      }))
  })
})
