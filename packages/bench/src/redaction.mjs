// Streaming redaction on prose: the SafetyFilter's output redactor fed one model token per push
// (tokens cut with o200k_base), against one whole-text `redact` pass over the same text, in µs
// per token; and how far the streaming output lags the input (hold-back), in tokens, per push.
import { SafetyFilter } from "@llm-gateway/core"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { Tiktoken } from "js-tiktoken/lite"
import o200k from "js-tiktoken/ranks/o200k_base"
import { interleave, median, pairedRatio } from "./stats.mjs"
import { percentile, prose } from "./support.mjs"

export const name = "Streaming redaction"

const tokenize = (encoding, text) => encoding.encode(text).map((token) => encoding.decode([token]))

export const run = async ({ quick }) => {
  const filter = Effect.runSync(SafetyFilter.make({}))
  // The v2 settings: operators on every kind they apply to, and block rules judging the reply.
  const judging = Effect.runSync(SafetyFilter.make({
    operators: { email: "placeholder", phone: "pseudonym", card: "mask", ssn: "mask" },
    pseudonymKey: Redacted.make("a-bench-key-of-32-characters-xx"),
    output: { hacking: "fail", exploits: "fail", malware: "mask" }
  }))
  const encoding = new Tiktoken(o200k)
  const text = prose(quick ? 40_000 : 120_000, 7)
  const tokens = tokenize(encoding, text)
  if (tokens.join("") !== text) throw new Error("the token pieces do not rebuild the text")
  const whole = filter.redact(text).text

  // Correctness on text that holds PII too: any split must give what one pass gives.
  const withPii = `${prose(3_000, 3)} Write to jane.doe@example.com or call +1 415 555 0132. ${prose(3_000, 5)} Card 4111 1111 1111 1111, ip 10.1.2.3.`
  const streamed = (pieces, by = filter) => {
    const redactor = Effect.runSync(by.outputRedactor)
    let out = ""
    for (const piece of pieces) out += redactor.push(piece)
    return out + redactor.end()
  }
  const expectedPii = filter.redact(withPii).text
  if (expectedPii === withPii) throw new Error("nothing was redacted in the PII text")
  if (streamed(tokenize(encoding, withPii)) !== expectedPii) throw new Error("streamed redaction differs from one whole pass (PII text)")

  // Hold-back: after each push, the pushed tokens not yet wholly emitted.
  const heldBack = (by) => {
    const held = []
    const redactor = Effect.runSync(by.outputRedactor)
    let emitted = 0
    let pushedChars = 0
    let done = 0 // tokens wholly emitted
    const ends = []
    for (const token of tokens) {
      pushedChars += token.length
      ends.push(pushedChars)
      emitted += redactor.push(token).length
      while (done < ends.length && ends[done] <= emitted) done++
      held.push(ends.length - done)
    }
    redactor.end()
    return held
  }
  const held = heldBack(filter)
  const heldJudging = heldBack(judging)

  const streaming = async () => {
    const start = performance.now()
    const out = streamed(tokens)
    const ms = performance.now() - start
    if (out !== whole) throw new Error("streamed redaction differs from one whole pass")
    return (ms * 1000) / tokens.length
  }
  const onePass = async () => {
    const start = performance.now()
    const out = filter.redact(text).text
    const ms = performance.now() - start
    if (out !== whole) throw new Error("redact is not deterministic")
    return (ms * 1000) / tokens.length
  }
  const judged = async () => {
    const start = performance.now()
    const out = streamed(tokens, judging)
    const ms = performance.now() - start
    if (out !== whole) throw new Error("the judging redactor changed PII-free prose")
    return (ms * 1000) / tokens.length
  }
  const samples = await interleave({ streaming, onePass, judged }, { rounds: quick ? 7 : 21, warmup: 2 })
  const perToken = median(samples.streaming)
  const p50 = percentile(held, 50)
  const p99 = percentile(held, 99)
  return {
    name,
    rows: [{
      case: "output redactor, one push per token, vs one whole-text `redact` pass (µs per token, prose)",
      short: "per-token pushes vs one whole pass",
      ours: `${perToken.toFixed(2)} µs/token`,
      peer: `${median(samples.onePass).toFixed(2)} µs/token`,
      ratio: pairedRatio(samples.streaming, samples.onePass),
      target: Infinity,
      targetText: "≤ 1 µs/token",
      met: perToken <= 1
    }, {
      case: "hold-back of the output redactor, in tokens after each push (p50 / p99)",
      ours: `p50 ${p50}, p99 ${p99}`,
      peer: "",
      ratio: undefined,
      targetText: "p50 ≤ 1, p99 ≤ 16",
      met: p50 <= 1 && p99 <= 16
    }, {
      case: "with the v2 settings (operators; output block rules hacking, exploits: fail, malware: mask), beside the default redactor (µs per token, prose)",
      short: "v2 settings vs default, per token",
      ours: `${median(samples.judged).toFixed(2)} µs/token`,
      peer: `${perToken.toFixed(2)} µs/token`,
      ratio: pairedRatio(samples.judged, samples.streaming),
      target: Infinity,
      targetText: "opt-in; reported",
      met: true
    }, {
      case: "hold-back with the v2 settings, in tokens after each push (p50 / p99): a sentence is held until it is judged",
      ours: `p50 ${percentile(heldJudging, 50)}, p99 ${percentile(heldJudging, 99)}`,
      peer: `p50 ${p50}, p99 ${p99}`,
      ratio: undefined,
      targetText: "one sentence (≤ 1000 characters)",
      met: Math.max(...heldJudging) <= 1000
    }],
    notes: [`${tokens.length} tokens of ${text.length} characters of PII-free prose; equality with one pass is also checked on prose with an email, a phone number, a card and an IP address`]
  }
}
