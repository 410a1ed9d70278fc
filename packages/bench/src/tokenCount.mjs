// Token counting: our tokenizer (ContextWindow's synchronous `textCounter`, o200k_base) against
// js-tiktoken and gpt-tokenizer on the same texts; every count must be equal. Each round prefixes
// the texts with its number, so a cache of earlier counts cannot answer.
import { ContextWindow } from "@llm-gateway/core"
import * as Effect from "effect/Effect"
import { countTokens as gptCount } from "gpt-tokenizer/encoding/o200k_base"
import { Tiktoken } from "js-tiktoken/lite"
import o200k from "js-tiktoken/ranks/o200k_base"
import { readFileSync } from "node:fs"
import { interleave, median, pairedRatio } from "./stats.mjs"
import { prose } from "./support.mjs"

export const name = "Token counting"

const model = "bench-o200k"

const multilingual = "Grüße aus Köln: die Straßenbahn fährt um 7:45 Uhr. 東京の天気は晴れ、気温は二十度です。 " +
  "Привет, как дела? Всё хорошо. ¿Dónde está la estación? 😀👍🏽 العربية نص قصير. हिंदी में एक वाक्य। "

const corpus = (length) => {
  const code = readFileSync(new URL("../../core/src/Gateway.ts", import.meta.url), "utf8")
  const json = JSON.stringify(
    Array.from({ length: 400 }, (_, i) => ({ id: `item-${i}`, price: i * 1.25, tags: ["alpha", "beta", `t${i % 7}`], ok: i % 3 === 0 })),
    null,
    2
  )
  const fill = (text) => text.repeat(Math.ceil(length / text.length)).slice(0, length)
  return {
    long: [prose(length, 11), fill(code), fill(json), fill(multilingual)],
    short: Array.from({ length: 1_000 }, (_, i) => prose(60 + ((i * 37) % 400), i + 100))
  }
}

export const run = async ({ quick }) => {
  const service = await Effect.runPromise(
    ContextWindow.make({ models: { [model]: { contextWindow: 1_000_000, maxOutputTokens: 16_000, encoding: "o200k_base" } } })
  )
  const ours = await Effect.runPromise(service.textCounter(model))
  const tiktoken = new Tiktoken(o200k)
  const counters = {
    ours: (text) => ours(text),
    "js-tiktoken": (text) => tiktoken.encode(text).length,
    "gpt-tokenizer": (text) => gptCount(text)
  }
  const { long, short } = corpus(quick ? 20_000 : 60_000)
  let round = 0
  const expected = new Map()
  // One case counts every text once; the answers of the round must agree across counters.
  const caseOf = (who, texts) => async () => {
    const prefix = `Round ${Math.floor(round++ / 3)}. `
    const count = counters[who]
    const start = performance.now()
    const counts = texts.map((text) => count(prefix + text))
    const ms = performance.now() - start
    const key = `${texts === long}:${prefix}`
    const seen = expected.get(key)
    if (seen === undefined) expected.set(key, { who, counts })
    else {
      for (let i = 0; i < counts.length; i++) {
        if (counts[i] !== seen.counts[i]) throw new Error(`${who} counts ${counts[i]} tokens in text ${i}, ${seen.who} counts ${seen.counts[i]}`)
      }
    }
    return ms
  }
  const rounds = { rounds: quick ? 5 : 15, warmup: 2 }
  const longSamples = await interleave(
    Object.fromEntries(Object.keys(counters).map((who) => [who, caseOf(who, long)])),
    rounds
  )
  round = 0
  const shortSamples = await interleave(
    Object.fromEntries(Object.keys(counters).map((who) => [who, caseOf(who, short)])),
    rounds
  )
  const longChars = long.reduce((n, text) => n + text.length, 0)
  const rate = (samples, chars) => `${(chars / 1000 / median(samples)).toFixed(1)} M chars/s`
  const shortChars = short.reduce((n, text) => n + text.length, 0)
  const rowsOf = (label, shortLabel, samples, chars) =>
    ["js-tiktoken", "gpt-tokenizer"].map((peer) => ({
      case: `${label}: ours vs ${peer} (equal counts)`,
      short: `${shortLabel} vs ${peer}`,
      ours: rate(samples.ours, chars),
      peer: rate(samples[peer], chars),
      ratio: pairedRatio(samples.ours, samples[peer]),
      target: 1
    }))
  return {
    name,
    rows: [
      ...rowsOf(`4 long texts (prose, TypeScript, JSON, multilingual), ${longChars / 4} characters each`, "long texts", longSamples, longChars),
      ...rowsOf(`${short.length} short messages`, "short messages", shortSamples, shortChars)
    ],
    notes: ["o200k_base; target ≤ 1.0× is this suite's own (the issue sets none for counting)"]
  }
}
