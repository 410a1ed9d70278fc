import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import { Tiktoken } from "js-tiktoken/lite"
import * as Tokenizer from "../src/internal/tokenizer.js"

// ASCII pre-tokens are looked up in place in a hash table of the ASCII tokens; these texts make
// most pieces ASCII: words that are one token, words that are not, long words past the table's
// length, case changes, contractions, digits, punctuation runs, and a few non-ASCII neighbours.
const pieces = [
  "the", " the", "The", " THE", "ing", " quick", " brown", "fox", "'s", "'ll", "'VE", "don't", " 12", "345", "2024",
  ".", ",", "...", "!?", "--", " (", ")", "{", "}", "=>", "//", "\n", "\r\n", "  ", "\t", " ", "a", "Z",
  "supercalifragilisticexpialidocious", "antidisestablishmentarianism" + "x".repeat(20), "qzxv", "xkcdq", "ABCdefGHI",
  "camelCaseWord", "snake_case_word", "kebab-case", "http://example.com/a?b=c", "é", "ü", "日本", "😀", "\u0301"
]
const textArb = FastCheck.array(FastCheck.constantFrom(...pieces), { maxLength: 120 }).map((parts) => parts.join(""))

describe("tokenizer on ASCII text", () => {
  for (const encoding of ["cl100k_base", "o200k_base"] as const) {
    it.effect(`${encoding}: counts equal js-tiktoken's encode`, () =>
      Effect.gen(function*() {
        const ours = yield* Effect.promise(() => Tokenizer.load(encoding))
        const ref = yield* Effect.promise(() =>
          (encoding === "o200k_base" ? import("js-tiktoken/ranks/o200k_base") : import("js-tiktoken/ranks/cl100k_base"))
            .then((m) => new Tiktoken(m.default))
        )
        FastCheck.assert(
          FastCheck.property(textArb, (text) => {
            expect(ours.count(text)).toBe(ref.encode(text, [], []).length)
          }),
          { numRuns: 500 }
        )
        const printable = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join("")
        for (const text of [printable, printable.repeat(3), "x".repeat(31), "x".repeat(32), "x".repeat(33)]) {
          expect(ours.count(text), text).toBe(ref.encode(text, [], []).length)
        }
      }))
  }
})
