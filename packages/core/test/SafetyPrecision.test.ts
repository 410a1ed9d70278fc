import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as SafetyFilter from "../src/SafetyFilter.js"

const redact = (text: string, policy: SafetyFilter.Policy = {}) =>
  Effect.runSync(SafetyFilter.make(policy)).redact(text).text

describe("SafetyFilter precision", () => {
  it("emails need an IANA top-level domain", () => {
    expect(redact("see icon@2x.png and logo@3x.jpeg")).toBe("see icon@2x.png and logo@3x.jpeg")
    expect(redact("write to jane@example.com or otto@firma.de")).toBe("write to [EMAIL] or [EMAIL]")
    expect(redact("mail анна@пример.рф or a@b.xn--p1ai")).toBe("mail [EMAIL] or [EMAIL]")
    expect(redact("ops@build.internal")).toBe("ops@build.internal")
    expect(redact("ops@build.internal", { topLevelDomains: ["internal"] })).toBe("[EMAIL]")
  })

  it("a bad extra top-level domain is a ConfigError naming the setting", () => {
    const exit = Effect.runSyncExit(SafetyFilter.make({ topLevelDomains: ["not a tld"] }))
    expect(exit._tag).toBe("Failure")
    expect(String(exit)).toContain("topLevelDomains")
  })

  it("North American numbers must be valid, not only phone-shaped", () => {
    expect(redact("call 123-456-7890 or 555-123-4567")).toBe("call 123-456-7890 or 555-123-4567")
    expect(redact("call (212) 555-0123 or 617-253-1000")).toBe("call [PHONE] or [PHONE]")
    expect(redact("dial +1 123 456 7890")).toBe("dial +1 123 456 7890")
    expect(redact("case 2024-000123 was closed")).toBe("case 2024-000123 was closed")
  })

  it("the 00 international prefix", () => {
    expect(redact("ring 0044 20 7946 0958 today")).toBe("ring [PHONE] today")
    expect(redact("ring 0033 6 12 34 56 78 today")).toBe("ring [PHONE] today")
  })

  it("SSNs: never-issued and advertised numbers stay, bare nine digits after SSN go", () => {
    for (const n of ["000-12-3456", "666-12-3456", "123-00-4567", "123-45-0000", "078-05-1120", "219-09-9999"]) {
      expect(redact(`number ${n} here`)).toBe(`number ${n} here`)
    }
    expect(redact("SSN 123456789")).toBe("SSN [SSN]")
    expect(redact("my SSN is 123456789.")).toBe("my SSN is [SSN].")
    expect(redact("Social security number: 123456789")).toBe("Social security number: [SSN]")
    expect(redact("order 123456789")).toBe("order 123456789")
  })

  it("ITINs are their own kind", () => {
    const safety = Effect.runSync(SafetyFilter.make())
    const result = safety.redact("ITIN 912-78-1234 and ITIN: 912701234, not 912-45-1234")
    expect(result.text).toBe("ITIN [ITIN] and ITIN: [ITIN], not 912-45-1234")
    expect(result.redactions).toEqual([{ kind: "itin", count: 2 }])
  })

  it("version-prefixed dotted quads are not IP addresses", () => {
    expect(redact("version 1.2.3.4 and build 10.0.19041.1")).toBe("version 1.2.3.4 and build 10.0.19041.1")
    expect(redact("Version: 2.0.0.1, v. 3.1.4.1")).toBe("Version: 2.0.0.1, v. 3.1.4.1")
    expect(redact("server 10.0.0.1 is down")).toBe("server [IP] is down")
  })

  it("redact returns findings with offsets into the input, never the value", () => {
    const safety = Effect.runSync(SafetyFilter.make())
    const markers: Record<string, string> = { email: "[EMAIL]", phone: "[PHONE]", ssn: "[SSN]", ip: "[IP]", itin: "[ITIN]" }
    for (
      const text of [
        "mail 😀 jane@example.com, call (212) 555-0123; SSN 123-45-6789 from 10.0.0.1 and ITIN 912-78-1234",
        "nothing here",
        ""
      ]
    ) {
      const result = safety.redact(text)
      let rebuilt = ""
      let at = 0
      for (const f of result.findings) {
        expect(Object.keys(f).sort()).toEqual(["end", "kind", "start"])
        expect(f.start).toBeGreaterThanOrEqual(at)
        rebuilt += text.slice(at, f.start) + markers[f.kind]
        at = f.end
      }
      expect(rebuilt + text.slice(at)).toBe(result.text)
      expect(result.findings.length).toBe(result.redactions.reduce((n, r) => n + r.count, 0))
    }
    const found = safety.redact("a jane@example.com b").findings
    expect(found).toEqual([{ kind: "email", start: 2, end: 18 }])
  })

  it("the fingerprint follows the phone regions and the extra top-level domains", () => {
    const fp = (policy: SafetyFilter.Policy) => Effect.runSync(SafetyFilter.make(policy)).fingerprint
    expect(fp({})).toBe(fp({}))
    expect(fp({ phoneRegions: ["GB"] })).not.toBe(fp({ phoneRegions: ["US"] }))
    expect(fp({ topLevelDomains: ["corp"] })).not.toBe(fp({}))
  })
})
