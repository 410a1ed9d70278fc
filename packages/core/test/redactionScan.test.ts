import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import { makeEngine, type RecognizerSpec } from "../src/internal/redaction.js"
import * as Recognizers from "../src/internal/redactionRecognizers.js"

/** Property runs; raise with SAFETY_PROP_RUNS for a deeper search. */
const runs = Number(process.env["SAFETY_PROP_RUNS"] ?? 300)

/**
 * The engine's rule written out naively: from `p`, each recognizer's first accepted match is
 * found by trying its pattern at every position (never inside a surrogate pair for a Unicode
 * pattern); the leftmost wins, ties go to the first listed. No start sets, no holds, no search.
 */
const reference = (specs: ReadonlyArray<RecognizerSpec>, text: string): string => {
  const sticky = specs.map((s) => new RegExp(s.pattern.source, s.pattern.flags.replace(/[gy]/g, "") + "y"))
  const accepted = (i: number, at: number): number => {
    const spec = specs[i]!
    const re = sticky[i]!
    if (
      (re.unicode || re.flags.includes("v")) && at > 0 && /[\udc00-\udfff]/.test(text.charAt(at)) &&
      /[\ud800-\udbff]/.test(text.charAt(at - 1))
    ) return 0
    re.lastIndex = at
    const m = re.exec(text)
    if (m === null || m[0].length === 0 || m[0].length >= spec.maxLength) return 0
    if (spec.validate === undefined) return m[0].length
    const v = spec.validate(m[0])
    if (v === true) return m[0].length
    if (v === false) return 0
    return Number.isInteger(v) && v > 0 ? Math.min(v, m[0].length) : 0
  }
  let out = ""
  let p = 0
  while (p < text.length) {
    let found = -1
    let at = p
    for (; at < text.length && found < 0; at++) {
      for (let i = 0; i < specs.length; i++) {
        const len = accepted(i, at)
        if (len > 0) {
          found = i
          out += text.slice(p, at) + specs[i]!.marker
          p = at + len
          break
        }
      }
    }
    if (found < 0) break
  }
  return out + text.slice(p)
}

const splitAt = (text: string, points: ReadonlyArray<number>): Array<string> => {
  const cuts = Array.from(new Set(points.map((p) => p % (text.length + 1)))).sort((a, b) => a - b)
  const chunks: Array<string> = []
  let prev = 0
  for (const c of cuts) {
    chunks.push(text.slice(prev, c))
    prev = c
  }
  chunks.push(text.slice(prev))
  return chunks
}

// Start classes of every form the engine reads: Unicode-aware or not (the search gate), not a
// plain class (per-character test), and none (the alphabet is the start set).
const custom: ReadonlyArray<RecognizerSpec> = [
  { kind: "tag", marker: "[TAG]", pattern: /(?<![a-z])#[a-z]{2,8}(?![a-z])/, maxLength: 10, alphabet: /[#a-z]/, start: /[#]/ },
  { kind: "astral", marker: "[MATH]", pattern: /[𝐀-𝐙]{2,4}/u, maxLength: 9, alphabet: /[𝐀-𝐙]/u, start: /[𝐀-𝐙]/u },
  { kind: "code", marker: "[CODE]", pattern: /(?<![A-Z])[A-Z]{3}-\d{2}(?!\d)/, maxLength: 7, alphabet: /[A-Z0-9-]/, start: /(?:[A-Z])/ },
  { kind: "word", marker: "[W]", pattern: /\bzz[a-z]{0,3}\b/, maxLength: 7, alphabet: /[a-z]/ }
]
const builtIns: ReadonlyArray<RecognizerSpec> = [
  Recognizers.email,
  Recognizers.card,
  Recognizers.ssn,
  Recognizers.iban,
  Recognizers.ipv4,
  Recognizers.ipv6,
  Recognizers.phone()
]

const pieceArb = FastCheck.constantFrom(
  "a", "b", "zz", "zzq", " ", "  ", ".", "-", "@", "x@y.de", "jane.doe@example.com", "#", "#tag", "ABC-12", "ABC",
  "𝐀", "𝐁𝐂", "\ud835", "\udc00", "1", "12", "192.168.0.1", "2001:db8::8a2e:370:7334", "4111 1111 1111 1111",
  "123-45-6789", "DE89 3704 0044 0532 0130 00", "(212) 555-0123", "fe80", ":", "é", "\n", "the quick brown fox "
)
const textArb = FastCheck.array(pieceArb, { minLength: 0, maxLength: 60 }).map((parts) => parts.join(""))
const splitsArb = FastCheck.array(FastCheck.nat({ max: 4_000 }), { maxLength: 16 })

describe("redaction scan", () => {
  for (const [name, specs] of [["custom", custom], ["built-in", builtIns], ["both", [...custom, ...builtIns]]] as const) {
    const engine = makeEngine(specs)
    it(`equals the naive scan, whole and streamed in any split (${name} recognizers)`, () => {
      FastCheck.assert(
        FastCheck.property(textArb, splitsArb, (text, points) => {
          const expected = reference(specs, text)
          expect(engine.redact(text).text).toBe(expected)
          const stream = engine.stream()
          let out = ""
          for (const chunk of splitAt(text, points)) out += stream.push(chunk)
          expect(out + stream.end()).toBe(expected)
        }),
        { numRuns: runs }
      )
    })
  }

  it("finds matches past many rejected tries and far into long pushes", () => {
    // Dense start characters make the scanner switch from tries at each start to one search.
    const specs = [...custom, ...builtIns]
    const engine = makeEngine(specs)
    const filler = "word a.b c@d e-f ".repeat(200)
    const text = `${filler}jane.doe@example.com ${filler}#tag ABC-12 𝐀𝐁 zzz 192.168.0.1 ${filler}`
    const expected = reference(specs, text)
    expect(expected).toContain("[EMAIL] ")
    expect(expected).toContain("[TAG] [CODE] [MATH] [W] [IP]")
    expect(engine.redact(text).text).toBe(expected)
    for (const size of [1, 7, 64, 2_000, 100_000]) {
      const stream = engine.stream()
      let out = ""
      for (let i = 0; i < text.length; i += size) out += stream.push(text.slice(i, i + size))
      expect(out + stream.end(), String(size)).toBe(expected)
    }
  })
})
