// Cache key: `ResponseCache.requestKey` (canonical JSON, keys sorted, then SHA-256) of a 2 KB and
// a 50 KB request against JSON.stringify + node:crypto SHA-256 of the same request. The answer is
// checked against the documented definition: SHA-256 of the version line and the sorted JSON.
import { ResponseCache } from "@llm-gateway/core"
import { createHash } from "node:crypto"
import { interleaveCalls, median, pairedRatio } from "./stats.mjs"
import { prose } from "./support.mjs"

export const name = "Cache key"

const sortDeep = (value) =>
  Array.isArray(value)
    ? value.map(sortDeep)
    : value !== null && typeof value === "object"
    ? Object.fromEntries(Object.keys(value).sort().filter((k) => value[k] !== undefined).map((k) => [k, sortDeep(value[k])]))
    : value

const requestOf = (bytes) => {
  const messages = []
  let size = 200
  for (let i = 0; size < bytes; i++) {
    const content = prose(80 + ((i * 53) % 700), i + 1)
    messages.push({ role: i % 2 === 0 ? "user" : "assistant", content })
    size += content.length + 40
  }
  // Keys in the order callers write them, not sorted.
  return { model: "gpt-4o-mini", system: "You are a helpful assistant. Answer briefly.", messages, temperature: 0.2, maxTokens: 512, profile: "openai", policy: "a".repeat(64) }
}

const sha256 = (text) => createHash("sha256").update(text).digest("hex")

export const run = async ({ quick }) => {
  const rows = []
  for (const bytes of [2_000, 50_000]) {
    const request = requestOf(bytes)
    const expected = sha256(`${ResponseCache.requestKeyVersion}\n${JSON.stringify(sortDeep(request))}`)
    const actual = ResponseCache.requestKey(request)
    if (actual !== expected) throw new Error(`requestKey of the ${bytes}-byte request is not SHA-256 of the sorted JSON`)
    const reps = Math.max(20, Math.round((quick ? 2e6 : 8e6) / bytes))
    let key = ""
    const samples = interleaveCalls({
      ours: () => {
        if (ResponseCache.requestKey(request) !== expected) throw new Error("requestKey changed")
      },
      peer: () => {
        key = sha256(JSON.stringify(request))
      }
    }, { rounds: quick ? 7 : 21, warmup: 2, calls: reps, block: Math.max(2, Math.round(2e5 / bytes)) })
    if (key.length !== 64) throw new Error("not a SHA-256")
    const size = JSON.stringify(request).length
    rows.push({
      case: `\`ResponseCache.requestKey\` vs JSON.stringify + SHA-256, ${(size / 1000).toFixed(0)} KB request`,
      short: `${(size / 1000).toFixed(0)} KB request`,
      ours: `${median(samples.ours).toFixed(1)} µs`,
      peer: `${median(samples.peer).toFixed(1)} µs`,
      ratio: pairedRatio(samples.ours, samples.peer),
      target: 1.1
    })
  }
  return {
    name,
    rows,
    notes: [
      "the peer does not sort keys, so its key depends on key order; ours does not",
      "within each round the two take turns in blocks of about 1 ms of calls"
    ]
  }
}
