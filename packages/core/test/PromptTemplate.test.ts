import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import { TemplateError } from "../src/GatewayError.js"
import * as PromptTemplate from "../src/PromptTemplate.js"

type Expected =
  | { readonly ok: string }
  | { readonly missing: string }
  | { readonly invalid: readonly [line: number, column: number] }

/** [template, safe_substitute, substitute, get_identifiers, is_valid] */
type Case = readonly [string, string, Expected, ReadonlyArray<string>, boolean]

// Expected values produced by CPython 3.11's string.Template (substitute, safe_substitute,
// get_identifiers, is_valid) with the variables below; KeyError gives `missing`, the
// "Invalid placeholder in string: line L, col C" ValueError gives `invalid`.
const variables = { name: "World", other: "O", na: "NA", names: "Ns", value: "$other", x: "${name}", "_": "U", Name: "N2", k: "kelvin", s: "long-s", empty: "" }

const cases: ReadonlyArray<Case> = [
  ["", "", { ok: "" }, [], true],
  ["plain text", "plain text", { ok: "plain text" }, [], true],
  ["$name", "World", { ok: "World" }, ["name"], true],
  ["${name}", "World", { ok: "World" }, ["name"], true],
  ["$$", "$", { ok: "$" }, [], true],
  ["$$name", "$name", { ok: "$name" }, [], true],
  ["$$$name", "$World", { ok: "$World" }, ["name"], true],
  ["$", "$", { invalid: [1, 1] }, [], false],
  ["abc$", "abc$", { invalid: [1, 4] }, [], false],
  ["$1", "$1", { invalid: [1, 1] }, [], false],
  ["$1a", "$1a", { invalid: [1, 1] }, [], false],
  ["${1a}", "${1a}", { invalid: [1, 1] }, [], false],
  ["${ name}", "${ name}", { invalid: [1, 1] }, [], false],
  ["${name }", "${name }", { invalid: [1, 1] }, [], false],
  ["${}", "${}", { invalid: [1, 1] }, [], false],
  ["${name", "${name", { invalid: [1, 1] }, [], false],
  ["$ {name}", "$ {name}", { invalid: [1, 1] }, [], false],
  ["${name}s", "Worlds", { ok: "Worlds" }, ["name"], true],
  ["$names", "Ns", { ok: "Ns" }, ["names"], true],
  ["$name_1x", "$name_1x", { missing: "name_1x" }, ["name_1x"], true],
  ["$_", "U", { ok: "U" }, ["_"], true],
  ["$_1", "$_1", { missing: "_1" }, ["_1"], true],
  ["$Name", "N2", { ok: "N2" }, ["Name"], true],
  ["$NAME", "$NAME", { missing: "NAME" }, ["NAME"], true],
  ["${na-me}", "${na-me}", { invalid: [1, 1] }, [], false],
  ["$na-me", "NA-me", { ok: "NA-me" }, ["na"], true],
  ["$n\u00e4me", "$n\u00e4me", { missing: "n" }, ["n"], true],
  ["$\u212a", "$\u212a", { invalid: [1, 1] }, [], false],
  ["$\u017f", "$\u017f", { invalid: [1, 1] }, [], false],
  ["${\u212a}", "${\u212a}", { invalid: [1, 1] }, [], false],
  ["$missing", "$missing", { missing: "missing" }, ["missing"], true],
  ["$name $missing $1", "World $missing $1", { missing: "missing" }, ["name", "missing"], false],
  ["$1 $missing", "$1 $missing", { invalid: [1, 1] }, ["missing"], false],
  ["line1\n  $1", "line1\n  $1", { invalid: [2, 3] }, [], false],
  ["a\r\nb\r\n$", "a\r\nb\r\n$", { invalid: [3, 1] }, [], false],
  ["a\rb\n\r$x", "a\rb\n\r${name}", { ok: "a\rb\n\r${name}" }, ["x"], true],
  ["\u2028$1", "\u2028$1", { invalid: [2, 1] }, [], false],
  ["\u0085 $1", "\u0085 $1", { invalid: [2, 2] }, [], false],
  ["\u000b\f$1", "\u000b\f$1", { invalid: [3, 1] }, [], false],
  ["\u001c\u001d\u001e$1", "\u001c\u001d\u001e$1", { invalid: [4, 1] }, [], false],
  ["\ud83d\ude00$1", "\ud83d\ude00$1", { invalid: [1, 2] }, [], false],
  ["\ud83d\ude00\n\ud83d\ude00\ud83d\ude00$", "\ud83d\ude00\n\ud83d\ude00\ud83d\ude00$", { invalid: [2, 3] }, [], false],
  ["a$$b$$", "a$b$", { ok: "a$b$" }, [], true],
  ["$value", "$other", { ok: "$other" }, ["value"], true],
  ["$x", "${name}", { ok: "${name}" }, ["x"], true],
  ["${name}${name}", "WorldWorld", { ok: "WorldWorld" }, ["name"], true],
  ["$name$name", "WorldWorld", { ok: "WorldWorld" }, ["name"], true],
  ["${name}}", "World}", { ok: "World}" }, ["name"], true],
  ["{$name}", "{World}", { ok: "{World}" }, ["name"], true],
  ["$${name}", "${name}", { ok: "${name}" }, [], true],
  ["${$name}", "${World}", { invalid: [1, 1] }, ["name"], false],
  ["$constructor", "$constructor", { missing: "constructor" }, ["constructor"], true],
  ["$__proto__", "$__proto__", { missing: "__proto__" }, ["__proto__"], true],
  ["$toString", "$toString", { missing: "toString" }, ["toString"], true],
  ["\t$1", "\t$1", { invalid: [1, 2] }, [], false],
  ["x\r\n\r\n$9", "x\r\n\r\n$9", { invalid: [3, 1] }, [], false],
  ["$name.", "World.", { ok: "World." }, ["name"], true],
  ["$name's", "World's", { ok: "World's" }, ["name"], true],
  ["$ends_with_digit9", "$ends_with_digit9", { missing: "ends_with_digit9" }, ["ends_with_digit9"], true],
  ["$9lives", "$9lives", { invalid: [1, 1] }, [], false],
  ["${_}", "U", { ok: "U" }, ["_"], true],
  ["$empty|", "|", { ok: "|" }, ["empty"], true],
  ["\u00e9\u00e9 $", "\u00e9\u00e9 $", { invalid: [1, 4] }, [], false],
  ["Dear $name,\nyour order ${other} ships.\nTotal: $$5 $$ ok", "Dear World,\nyour order O ships.\nTotal: $5 $ ok", { ok: "Dear World,\nyour order O ships.\nTotal: $5 $ ok" }, ["name", "other"], true],
  ["$\n", "$\n", { invalid: [1, 1] }, [], false],
  ["${\n}", "${\n}", { invalid: [1, 1] }, [], false],
  ["a\r\r\n$-", "a\r\r\n$-", { invalid: [3, 1] }, [], false],
  ["$name\u0301", "World\u0301", { ok: "World\u0301" }, ["name"], true],
  ["\ud83d\ude00\u0301 $?", "\ud83d\ude00\u0301 $?", { invalid: [1, 4] }, [], false],
  ["$$$", "$$", { invalid: [1, 3] }, [], false],
  ["$$$$", "$$", { ok: "$$" }, [], true],
  ["x\n$$\n$", "x\n$\n$", { invalid: [3, 1] }, [], false],
]

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runSync(Effect.either(effect))

describe("PromptTemplate", () => {
  describe("agrees with Python's string.Template", () => {
    for (const [template, safe, expected, identifiers, valid] of cases) {
      it(JSON.stringify(template), () => {
        expect(PromptTemplate.safeSubstitute(template, variables)).toBe(safe)
        expect(PromptTemplate.safeSubstitute(template, new Map(Object.entries(variables)))).toBe(safe)
        const result = run(PromptTemplate.substitute(template, variables))
        if ("ok" in expected) {
          expect(result).toEqual(Either.right(expected.ok))
        } else if ("missing" in expected) {
          const error = Either.getLeft(result).pipe((o) => o._tag === "Some" ? o.value : undefined)
          expect(error).toBeInstanceOf(TemplateError)
          expect(error?.reason).toBe("MissingVariable")
          expect(error?.key).toBe(expected.missing)
        } else {
          const error = Either.getLeft(result).pipe((o) => o._tag === "Some" ? o.value : undefined)
          expect(error).toBeInstanceOf(TemplateError)
          expect(error?.reason).toBe("InvalidPlaceholder")
          expect(error?.key).toBeUndefined()
          expect([error?.line, error?.column]).toEqual(expected.invalid)
        }
        expect(PromptTemplate.identifiers(template)).toEqual(identifiers)
        expect(PromptTemplate.isValid(template)).toBe(valid)
      })
    }
  })

  it.effect("reports where a missing variable is used", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(PromptTemplate.substitute("Hello $name,\n  see ${item}.", { name: "Ada" }))
      expect(error).toEqual(new TemplateError({ reason: "MissingVariable", key: "item", line: 2, column: 7 }))
      expect(error.message).toContain("$item")
      expect(error.message).toContain("line 2, column 7")
    }))

  it.effect("never looks variables up on the prototype", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(PromptTemplate.substitute("$hasOwnProperty", {}))
      expect(error.reason).toBe("MissingVariable")
      const own = JSON.parse("{\"__proto__\": \"P\"}") as Record<string, string>
      expect(yield* PromptTemplate.substitute("$__proto__", own)).toBe("P")
    }))

  it("does not expand substituted values again", () => {
    expect(PromptTemplate.safeSubstitute("$a $b", { a: "$b", b: "${a}" })).toBe("$b ${a}")
  })

  it("escape makes any text render to itself", () => {
    expect(PromptTemplate.escape("costs $5 or ${x}")).toBe("costs $$5 or $${x}")
  })

  describe("properties", () => {
    // Templates drawn from the characters that matter to the scanner.
    const pieces = FastCheck.constantFrom(
      "$", "$$", "{", "}", "a", "B", "_", "1", " ", "\n", "\r", "\r\n", "\u2028", "é", "😀", "name", "x", "-", "K"
    )
    const template = FastCheck.array(pieces, { maxLength: 30 }).map((parts) => parts.join(""))
    const vars = FastCheck.dictionary(FastCheck.constantFrom("name", "x", "a", "B", "_", "a1"), FastCheck.string(), {
      maxKeys: 4
    })

    it("renderedLength is the length of the rendered text, for objects and Maps", () => {
      FastCheck.assert(
        FastCheck.property(FastCheck.oneof(template, FastCheck.string()), vars, (t, v) => {
          expect(PromptTemplate.renderedLength(t, v)).toBe(PromptTemplate.safeSubstitute(t, v).length)
          const map = new Map(Object.entries(v))
          expect(PromptTemplate.renderedLength(t, map)).toBe(PromptTemplate.safeSubstitute(t, map).length)
        }),
        { numRuns: 2_000 }
      )
      // Without building it: a short template that would render to 10^10 characters.
      expect(PromptTemplate.renderedLength("$a".repeat(10_000), { a: "x".repeat(1_000_000) })).toBe(1e10)
    })

    it("safeSubstitute never throws", () => {
      FastCheck.assert(
        FastCheck.property(FastCheck.oneof(template, FastCheck.string()), vars, (t, v) => {
          expect(typeof PromptTemplate.safeSubstitute(t, v)).toBe("string")
        }),
        { numRuns: 2_000 }
      )
    })

    it("substitute equals safeSubstitute when every placeholder is valid and known", () => {
      FastCheck.assert(
        FastCheck.property(template, vars, (t, v) => {
          const result = run(PromptTemplate.substitute(t, v))
          const complete = PromptTemplate.isValid(t) &&
            PromptTemplate.identifiers(t).every((name) => Object.prototype.hasOwnProperty.call(v, name))
          if (complete) {
            expect(result).toEqual(Either.right(PromptTemplate.safeSubstitute(t, v)))
          } else {
            expect(Either.isLeft(result)).toBe(true)
          }
        }),
        { numRuns: 2_000 }
      )
    })

    it("escaped text renders back unchanged ($$ round trip)", () => {
      FastCheck.assert(
        FastCheck.property(FastCheck.oneof(template, FastCheck.string()), (text) => {
          const escaped = PromptTemplate.escape(text)
          expect(PromptTemplate.safeSubstitute(escaped, {})).toBe(text)
          expect(run(PromptTemplate.substitute(escaped, {}))).toEqual(Either.right(text))
          expect(PromptTemplate.identifiers(escaped)).toEqual([])
        }),
        { numRuns: 1_000 }
      )
    })

    it("safeSubstitute with no variables changes only $$", () => {
      FastCheck.assert(
        FastCheck.property(template, (t) => {
          // With nothing to substitute, only escapes change; undoing that gives the template back.
          const rendered = PromptTemplate.safeSubstitute(t, {})
          expect(rendered.length).toBeLessThanOrEqual(t.length)
          expect(rendered.replaceAll("$", "").length).toBe(t.replaceAll("$", "").length)
        }),
        { numRuns: 1_000 }
      )
    })
  })
})
