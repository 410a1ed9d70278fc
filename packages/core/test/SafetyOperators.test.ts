// Operators (placeholder, mask, pseudonym), restore, and the output block policy of the SafetyFilter.
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { SafetyViolation } from "../src/GatewayError.js"
import * as SafetyFilter from "../src/SafetyFilter.js"

const key = Redacted.make("a-test-key-of-32-characters-long")
const make = (policy: SafetyFilter.Policy) => Effect.runSync(SafetyFilter.make(policy))
const guard = (filter: SafetyFilter.Service, ...contents: Array<string>) =>
  Effect.runSync(filter.guardInput({ system: undefined, messages: contents.map((content) => ({ role: "user", content })) }))

/** Pushes `text` cut at `cuts`, then ends; the text emitted and the violation, if any. */
const streamed = (filter: SafetyFilter.Service, text: string, cuts: ReadonlyArray<number>) => {
  const redactor = Effect.runSync(filter.outputRedactor)
  let out = ""
  let at = 0
  for (const c of [...cuts].sort((a, b) => a - b)) {
    if (c <= at || c >= text.length) continue
    out += redactor.push(text.slice(at, c))
    at = c
  }
  out += redactor.push(text.slice(at))
  out += redactor.end()
  return { out, violation: redactor.violation?.(), redactions: redactor.redactions() }
}

describe("operators", () => {
  it("mask keeps the last characters and the separators, with the configured character", () => {
    const filter = make({ operators: { card: "mask", ssn: { type: "mask", keepLast: 0, char: "#" } } })
    expect(filter.redact("card 4111 1111 1111 1111, ssn 123-45-6789").text).toBe("card **** **** **** 1111, ssn ###-##-####")
  })

  it("pseudonyms are stable per value and key, ignore separators, and never show the value", () => {
    const filter = make({ operators: { email: "pseudonym", phone: { type: "pseudonym", hexLength: 8 } }, pseudonymKey: key })
    const a = filter.redact("write to Jane.Doe@Example.com or (212) 555-0123").text
    const b = filter.redact("again jane.doe@example.com, 212.555.0123").text
    const email = /\[EMAIL:[0-9a-f]{16}\]/.exec(a)![0]
    const phone = /\[PHONE:[0-9a-f]{8}\]/.exec(a)![0]
    expect(b).toBe(`again ${email}, ${phone}`)
    expect(a).not.toContain("jane")
    const other = make({ operators: { email: "pseudonym" }, pseudonymKey: Redacted.make("another-key-of-32-characters-xyz") })
    expect(other.redact("jane.doe@example.com").text).not.toBe(email)
    expect(other.fingerprint).not.toBe(filter.fingerprint)
    // the fingerprint never holds the key
    expect(filter.fingerprint).not.toContain(Redacted.value(key))
  })

  it("placeholders number values per request in the prompt; the reply and redact get the marker", () => {
    const filter = make({ operators: { email: "placeholder" } })
    const guarded = guard(filter, "I am a@example.com, cc b@example.org", "again a@example.com, call (212) 555-0123")
    expect(guarded.messages.map((m) => m.content)).toEqual([
      "I am [EMAIL_1], cc [EMAIL_2]",
      "again [EMAIL_1], call [PHONE]"
    ])
    expect(guarded.restoration).toBeUndefined()
    // a new request numbers from 1 again
    expect(guard(filter, "b@example.org").messages[0]!.content).toBe("[EMAIL_1]")
    expect(filter.redact("a@example.com").text).toBe("[EMAIL]")
    expect(streamed(filter, "mail a@example.com", [3]).out).toBe("mail [EMAIL]")
  })

  it("the memo keeps numbering per request (a text seen before is numbered anew)", () => {
    const filter = make({ operators: { email: "placeholder" }, restore: true })
    const long = "please forward this to first@example.com and second@example.com today"
    const one = guard(filter, long)
    const two = guard(filter, "x@example.com is new here and longer than the memo minimum", long)
    expect(one.messages[0]!.content).toBe("please forward this to [EMAIL_1] and [EMAIL_2] today")
    expect(two.messages[1]!.content).toBe("please forward this to [EMAIL_2] and [EMAIL_3] today")
    expect(two.restoration!.restore("[EMAIL_1] [EMAIL_3]")).toBe("x@example.com second@example.com")
  })

  it("restore puts back only what this request supplied, and its restoration holds no data", () => {
    const filter = make({ operators: { email: "placeholder", phone: "placeholder" }, restore: true })
    const guarded = guard(filter, "my email is test@example.com")
    const restoration = guarded.restoration!
    expect(restoration.restore("Mon e-mail est [EMAIL_1], [EMAIL_2], [PHONE_1]")).toBe(
      "Mon e-mail est test@example.com, [EMAIL_2], [PHONE_1]"
    )
    expect(JSON.stringify(guarded)).not.toContain("test@example.com")
    expect(guard(filter, "nothing personal here").restoration).toBeUndefined()
  })

  it("placeholders already in the history (recorded as sent) keep their numbers from new values", () => {
    const filter = make({ operators: { email: "placeholder" }, restore: true })
    const guarded = Effect.runSync(filter.guardInput({
      system: undefined,
      messages: [
        { role: "user", content: "my email is [EMAIL_1]" },
        { role: "assistant", content: "Noted, [EMAIL_1]." },
        { role: "user", content: "and my partner's is bob@example.org" }
      ]
    }))
    expect(guarded.messages[2]!.content).toBe("and my partner's is [EMAIL_2]")
    // [EMAIL_1]'s value is not in this request: it stays a placeholder.
    expect(guarded.restoration!.restore("[EMAIL_1] and [EMAIL_2]")).toBe("[EMAIL_1] and bob@example.org")
  })

  it("restore never yields a value the caller did not supply in this request (property)", () => {
    const filter = make({ operators: { email: "placeholder" }, restore: true })
    const emails = ["a@example.com", "b@example.org", "c@example.net", "d@example.io"]
    FastCheck.assert(
      FastCheck.property(
        FastCheck.subarray(emails, { minLength: 1 }),
        FastCheck.array(FastCheck.constantFrom("[EMAIL_1]", "[EMAIL_2]", "[EMAIL_3]", "[EMAIL_4]", "[EMAIL_5]", " ", "x"), {
          maxLength: 20
        }),
        (supplied, reply) => {
          const restoration = guard(filter, supplied.join(" and "))
            .restoration!
          const out = restoration.restore(reply.join(""))
          for (const e of emails) if (!supplied.includes(e)) expect(out).not.toContain(e)
        }
      )
    )
  })

  it("streaming with pseudonyms and masks is split-invariant", () => {
    const filter = make({ operators: { email: "pseudonym", card: "mask", phone: "placeholder" }, pseudonymKey: key })
    const pieces = ["a@example.com", " ", "4111 1111 1111 1111", "(212) 555-0123", "x", ".", "\n", "b@ex.org"]
    FastCheck.assert(
      FastCheck.property(
        FastCheck.array(FastCheck.constantFrom(...pieces), { maxLength: 16 }),
        FastCheck.array(FastCheck.nat({ max: 300 }), { maxLength: 10 }),
        (parts, cuts) => {
          const text = parts.join("")
          expect(streamed(filter, text, cuts).out).toBe(filter.redact(text).text)
        }
      )
    )
  })

  it("bad operator settings fail with a ConfigError naming the setting", () => {
    const fails = (policy: SafetyFilter.Policy, path: string) => {
      const result = Effect.runSync(Effect.either(SafetyFilter.make(policy)))
      expect(Either.isLeft(result)).toBe(true)
      if (Either.isLeft(result)) expect(JSON.stringify(result.left)).toContain(path)
    }
    fails({ operators: { emial: "mask" } }, "emial")
    fails({ operators: { email: "pseudonym" } }, "pseudonymKey")
    fails({ operators: { email: "pseudonym" }, pseudonymKey: Redacted.make("short") }, "pseudonymKey")
    fails({ operators: { card: { type: "mask", char: "7" } } }, "char")
    fails({ operators: { card: { type: "mask", keepLast: -1 } } }, "keepLast")
    fails({ operators: { email: "hide" as never } }, "email")
    fails({ restore: true }, "restore")
    fails({ output: { hackin: "fail" } }, "hackin")
    fails({ output: { hacking: "stop" as never } }, "hacking")
  })

  it("the error of a short key never shows it", () => {
    const result = Effect.runSync(
      Effect.either(
        Layer.build(SafetyFilter.layerConfig()).pipe(
          Effect.scoped,
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["LLM_GATEWAY_SAFETY_PSEUDONYM_KEY", "tiny-secret"]])))
        )
      )
    )
    expect(Either.isLeft(result)).toBe(true)
    const text = JSON.stringify(result) + String(Either.isLeft(result) ? result.left : "")
    expect(text).toContain("LLM_GATEWAY_SAFETY_PSEUDONYM_KEY")
    expect(text).not.toContain("tiny-secret")
  })

  it("layerConfig reads the operators, key, restore and output policy", () => {
    const env = new Map([
      ["LLM_GATEWAY_SAFETY_PSEUDONYM_KEY", "an-environment-key-long-enough"],
      ["LLM_GATEWAY_SAFETY_OPERATORS", "email=pseudonym, card=mask, phone=placeholder"],
      ["LLM_GATEWAY_SAFETY_RESTORE", "true"],
      ["LLM_GATEWAY_SAFETY_OUTPUT", "hacking=fail"]
    ])
    const filter = Effect.runSync(
      SafetyFilter.SafetyFilter.pipe(
        Effect.provide(SafetyFilter.layerConfig()),
        Effect.withConfigProvider(ConfigProvider.fromMap(env))
      )
    )
    expect(filter.redact("4111 1111 1111 1111 a@example.com").text).toMatch(/^\*{4} \*{4} \*{4} 1111 \[EMAIL:[0-9a-f]{16}\]$/)
    expect(guard(filter, "call (212) 555-0123").restoration!.restore("[PHONE_1]")).toBe("(212) 555-0123")
    expect(streamed(filter, "Sure. How do I hack into my neighbour's wifi? Step one.", []).violation?.rule).toBe(
      "hacking-request"
    )
    const bad = Effect.runSync(
      Effect.either(
        SafetyFilter.SafetyFilter.pipe(
          Effect.provide(SafetyFilter.layerConfig()),
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["LLM_GATEWAY_SAFETY_OPERATORS", "email=pseudonym"]])))
        )
      )
    )
    expect(Either.isLeft(bad) && String(bad.left)).toContain("LLM_GATEWAY_SAFETY_OPERATORS")
  })
})

describe("output block policy", () => {
  const reply = "Here is the plan. Step one: how do I hack into my neighbour's wifi? Then relax.\nDone."

  it("fail: the reply ends before the matching sentence with SafetyViolation{direction: output}", () => {
    const filter = make({ output: { hacking: "fail" } })
    const { out, violation } = streamed(filter, reply, [])
    expect(out).toBe("Here is the plan.")
    expect(violation).toEqual(new SafetyViolation({ category: "hacking", rule: "hacking-request", direction: "output" }))
    expect(violation!.message).toContain("reply")
    expect(violation!.message).not.toContain("wifi")
  })

  it("mask: the matched span becomes [BLOCKED] and is counted", () => {
    const filter = make({ output: { "hacking-request": "mask" } })
    const { out, redactions, violation } = streamed(filter, reply, [])
    expect(violation).toBeUndefined()
    expect(out).toBe("Here is the plan. Step one: [BLOCKED] my neighbour's wifi? Then relax.\nDone.")
    expect(redactions).toContainEqual({ kind: "blocked", count: 1 })
  })

  it("a rule matching only the normalised view masks the whole sentence", () => {
    const filter = make({ output: { malware: "mask" } })
    expect(streamed(filter, "Fine. Now wr1te me a k e y l o g g e r please. Bye", []).out).toBe("Fine. [BLOCKED] Bye")
  })

  it("output rules judge only the reply; PII is redacted before judging", () => {
    const filter = make({ outputRules: [{ category: "policy", rule: "competitor", test: /\bAcme Corp\b/ }] })
    expect(Either.isRight(Effect.runSync(Effect.either(filter.guardInput({
      system: undefined,
      messages: [{ role: "user", content: "Compare with Acme Corp" }]
    }))))).toBe(true)
    expect(streamed(filter, "Mail a@example.com. Acme Corp is cheaper.", []).violation?.rule).toBe("competitor")
    expect(streamed(filter, "Mail a@example.com. Acme Corp is cheaper.", []).out).toBe("Mail [EMAIL].")
  })

  it("without output rules nothing is judged or held for sentences", () => {
    const filter = make({})
    const redactor = Effect.runSync(filter.outputRedactor)
    expect(redactor.push("How do I hack into my neighbour's wifi? ")).toBe("How do I hack into my neighbour's wifi? ")
    expect(redactor.violation?.()).toBeUndefined()
  })

  it("any split of the reply gives the same outcome (fail and mask)", () => {
    const pieces = [
      "How do I hack into my neighbour's wifi?",
      "write me a keylogger",
      "Sure",
      ". ",
      "!",
      "\n",
      " ",
      "a@example.com",
      "hack",
      " into ",
      "the wifi",
      "…",
      "。",
      "x".repeat(300),
      "😀"
    ]
    const failing = make({ output: { hacking: "fail", malware: "mask" } })
    const masking = make({ output: { hacking: "mask", malware: "mask" } })
    FastCheck.assert(
      FastCheck.property(
        FastCheck.array(FastCheck.constantFrom(...pieces), { maxLength: 14 }),
        FastCheck.array(FastCheck.nat({ max: 4000 }), { maxLength: 12 }),
        (parts, cuts) => {
          const text = parts.join("")
          for (const filter of [failing, masking]) {
            const whole = streamed(filter, text, [])
            const split = streamed(filter, text, cuts)
            expect(split.out).toBe(whole.out)
            expect(split.violation).toEqual(whole.violation)
            expect(split.redactions).toEqual(whole.redactions)
          }
        }
      ),
      { numRuns: 300 }
    )
  })

  it("the policy's output rules take part in the fingerprint", () => {
    expect(make({ output: { hacking: "fail" } }).fingerprint).not.toBe(make({}).fingerprint)
    expect(make({ output: { hacking: "fail" } }).fingerprint).not.toBe(make({ output: { hacking: "mask" } }).fingerprint)
    expect(make({ operators: { email: "placeholder" }, restore: true }).fingerprint).toBe(
      make({ operators: { email: "placeholder" } }).fingerprint
    )
  })
})
