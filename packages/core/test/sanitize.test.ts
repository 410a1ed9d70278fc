/**
 * The sanitizer for gateway and token-endpoint text: secrets removed (every encoded form and
 * long partial echoes), controls neutralised, PII redacted, then cut, in that order.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Headers from "@effect/platform/Headers"
import * as Duration from "effect/Duration"
import * as Encoding from "effect/Encoding"
import * as FastCheck from "effect/FastCheck"
import * as Redacted from "effect/Redacted"
import { BadRequest, mapServerText, RateLimited, UpstreamError } from "../src/GatewayError.js"
import * as HttpErrors from "../src/internal/httpErrors.js"
import * as Sanitize from "../src/internal/sanitize.js"

const token = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.Zk9xQ2V4YW1wbGVzaWduYXR1cmU"
const email = "jane.doe@example.com"
const sanitize = Sanitize.make([Redacted.make(token)])

describe("Sanitize.make", () => {
  it("removes the secret in every form it may come back in", () => {
    for (
      const echoed of [
        token,
        `Bearer ${token}`,
        Encoding.encodeBase64(token),
        Encoding.encodeBase64Url(token),
        encodeURIComponent(`${token}+/=`).slice(0, -9)
      ]
    ) {
      const out = sanitize(`you sent ${echoed}, which we do not accept`, 500)
      expect(out).not.toContain(token.slice(0, 17))
      expect(out).toContain("<redacted>")
      expect(out).toContain("which we do not accept")
    }
  })

  it("removes partial echoes of 17 characters or more: a prefix, a middle part, a suffix", () => {
    for (const piece of [token.slice(0, 20), token.slice(15, 40), token.slice(-18)]) {
      const out = sanitize(`key ${piece}… is invalid`, 500)
      expect(out).toBe("key <redacted>… is invalid")
    }
    // Short coincidences with the secret are ordinary text.
    expect(sanitize("eyJhbGciOi is a common start", 500)).toBe("eyJhbGciOi is a common start")
  })

  it("removes the secret before cutting, so a cut through it shows none of it", () => {
    const out = sanitize(`${"x".repeat(480)} ${token}`, 500)
    expect(out).toBe(`${"x".repeat(480)} <redacted>`)
  })

  it("redacts PII, then cuts: an address straddling the cut is never half-shown", () => {
    for (let at = 470; at < 505; at++) {
      const text = `${"a".repeat(at)} ${email} and more text after it`
      const out = sanitize(text, 500)
      expect(out.length).toBeLessThanOrEqual(500)
      expect(out).not.toContain("jane.doe")
      expect(out).not.toContain("@exa")
    }
  })

  it.prop(
    "no piece of an address survives, wherever the cut falls",
    [FastCheck.integer({ min: 0, max: 120 }), FastCheck.integer({ min: 10, max: 100 })],
    ([before, max]) => {
      const out = sanitize(`${"w ".repeat(before)}${email} tail`, max)
      expect(out.length).toBeLessThanOrEqual(max)
      expect(out).not.toMatch(/jane|doe@|@example/)
    }
  )

  it("text beyond the input bound is dropped, and half an address at the bound is not shown", () => {
    const head = "b ".repeat(Sanitize.maxInput / 2 - 5)
    const out = Sanitize.basic(`${head}${email} after`, Sanitize.maxInput * 2)
    expect(out).not.toContain("jane.doe")
    expect(out.endsWith("…")).toBe(true)
    expect(out.length).toBeLessThanOrEqual(Sanitize.maxInput + 1)
  })

  it("CR, LF and other controls cannot forge log lines; invisible characters cannot hide an address", () => {
    const out = sanitize(`bad\r\nlevel=ERROR message="forged"\u2028x\u0000 jane\u200b.doe@exa\u200dmple.com\u202e`, 500)
    expect(out).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200b-\u200f\u202a-\u202e]/)
    expect(out).toBe(`bad level=ERROR message="forged" x  [EMAIL]`)
  })

  it("never cuts a surrogate pair in half", () => {
    const out = Sanitize.basic(`${"a".repeat(8)}😀😀`, 10)
    expect(out).toBe(`${"a".repeat(8)}…`)
  })

  it("leaves identifiers alone", () => {
    for (const id of ["3f2b1c4e-9a8d-4e7f-b6c5-a4d3e2f1a0b9", "bad.request", "req_1234567812345678"]) {
      expect(sanitize(id, 200)).toBe(id)
    }
  })
})

describe("HttpErrors.fromStatus sanitizes every field the server wrote", () => {
  const headers = Headers.fromInput({
    "inin-correlation-id": `corr ${token} ${email}`,
    "inin-ratelimit-count": `count ${token}`,
    "inin-ratelimit-allowed": email,
    "inin-ratelimit-reset": "60",
    "retry-after": "1"
  })
  const body = JSON.stringify({
    message: `msg ${token} ${email}`,
    code: `code ${token}`,
    contextId: `ctx ${email}`,
    status: 429
  })

  it("429: detail, code, contextId, correlationId and rate-limit values", () => {
    const error = HttpErrors.fromStatus({ status: 429, headers, body, now: 0, sanitize })
    expect(error).toBeInstanceOf(RateLimited)
    const text = JSON.stringify(error) + error.message
    expect(text).not.toContain(token.slice(0, 17))
    expect(text).not.toContain(email)
    expect(error).toMatchObject({
      detail: "msg <redacted> [EMAIL]",
      code: "code <redacted>",
      contextId: "ctx [EMAIL]",
      correlationId: "corr <redacted> [EMAIL]",
      rateLimit: { count: "count <redacted>", allowed: "[EMAIL]", reset: "60" }
    })
  })

  it("401: the AuthError's error and description", () => {
    const error = HttpErrors.fromStatus({ status: 401, headers, body, now: 0, sanitize })
    expect(error._tag).toBe("AuthError")
    expect(error.message).not.toContain(token.slice(0, 17))
    expect(error.message).not.toContain(email)
    expect(error.message).toContain("code <redacted>")
  })

  it("a proxy's text body, with a long run of lines", () => {
    const error = HttpErrors.fromStatus({
      status: 502,
      headers: Headers.empty,
      body: `<html>\r\n${"<p>line</p>\r\n".repeat(100)}${email}</html>`,
      now: 0,
      sanitize
    })
    expect(error).toBeInstanceOf(UpstreamError)
    expect(error.message).not.toMatch(/[\r\n]/)
    expect(error.message).not.toContain("jane.doe")
  })

  it("a content type that is not an event stream", () => {
    const error = HttpErrors.fromContentType(`text/html; x="${token}\r\n${email}"`, sanitize)
    expect(error.reason).toBe(`expected a text/event-stream response but the gateway sent text/html; x="<redacted> [EMAIL]"`)
  })
})

describe("GatewayError.mapServerText", () => {
  it("maps every server-text field and keeps the class and the rest", () => {
    const error = new RateLimited({
      status: 429,
      code: "a",
      detail: "b",
      contextId: "c",
      correlationId: "d",
      rateLimit: { count: "e" },
      retryAfter: Duration.seconds(3)
    })
    const mapped = mapServerText(error, (text) => text.toUpperCase())
    expect(mapped).toBeInstanceOf(RateLimited)
    expect(mapped).toMatchObject({
      status: 429,
      code: "A",
      detail: "B",
      contextId: "C",
      correlationId: "D",
      rateLimit: { count: "E" }
    })
    expect(mapped.retryAfter).toEqual(Duration.seconds(3))
  })

  it("returns the same error when nothing changes", () => {
    const error = new BadRequest({ status: 400, detail: "fine" })
    expect(mapServerText(error, (text) => text)).toBe(error)
  })
})
