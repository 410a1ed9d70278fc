import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import { makeNumbering, makeRestorer, restoreAll } from "../src/internal/placeholders.js"
import * as SafetyFilter from "../src/SafetyFilter.js"

const filter = Effect.runSync(SafetyFilter.make())

const numbered = (text: string) => {
  const numbering = makeNumbering()
  return { numbering, text: numbering.apply(text, filter.redact(text).findings) }
}

describe("numbered placeholders and restore", () => {
  it("the same value gets the same placeholder within a request", () => {
    const { numbering, text } = numbered(
      "mail test@example.com, then bob@example.org, then test@example.com again; call (212) 555-0123"
    )
    expect(text).toBe("mail [EMAIL_1], then [EMAIL_2], then [EMAIL_1] again; call [PHONE_1]")
    expect(restoreAll(numbering, "Translated: [EMAIL_1] / [PHONE_1]")).toBe("Translated: test@example.com / (212) 555-0123")
  })

  it("restore never puts back a value the caller did not supply in this request", () => {
    const { numbering } = numbered("my email is test@example.com")
    const other = makeNumbering()
    expect(restoreAll(numbering, "[EMAIL_2] [PHONE_1] [EMAIL_1]")).toBe("[EMAIL_2] [PHONE_1] test@example.com")
    expect(restoreAll(other, "[EMAIL_1]")).toBe("[EMAIL_1]")
  })

  it("streaming restore equals whole-text restore for any split", () => {
    const { numbering } = numbered("a test@example.com b bob@example.org c (212) 555-0123 d SSN 123-45-6789")
    const piece = FastCheck.constantFrom("[EMAIL_1]", "[EMAIL_2]", "[PHONE_1]", "[SSN_1]", "[EMAIL_9]", "[", "]", "_", "EMAIL", "1", " ", "x", "[[", "é", "😀")
    FastCheck.assert(
      FastCheck.property(
        FastCheck.array(piece, { maxLength: 30 }),
        FastCheck.array(FastCheck.nat({ max: 400 }), { maxLength: 12 }),
        (pieces, points) => {
          const text = pieces.join("")
          const cuts = Array.from(new Set(points.map((p) => p % (text.length + 1)))).sort((a, b) => a - b)
          const restorer = makeRestorer(numbering)
          let out = ""
          let at = 0
          for (const c of cuts) {
            out += restorer.push(text.slice(at, c))
            at = c
          }
          out += restorer.push(text.slice(at)) + restorer.end()
          expect(out).toBe(restoreAll(numbering, text))
        }
      ),
      { numRuns: 500 }
    )
  })
})
