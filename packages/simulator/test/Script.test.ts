import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Schema from "effect/Schema"
import * as Scenario from "../src/Scenario.js"
import * as Script from "../src/Script.js"

const decoder = new TextDecoder()
const text = (script: Script.Script) => decoder.decode(Script.bodyBytes(script))

const request = (overrides: Partial<Script.ScriptRequest> = {}): Script.ScriptRequest => ({
  profile: "openai",
  model: "sim:test",
  messages: [{ role: "user", content: "Translate 'good morning' to French." }],
  system: undefined,
  stream: true,
  includeUsage: true,
  n: undefined,
  maxTokens: undefined,
  ...overrides
})

/** The `data:` payloads of an LF-framed SSE body, in order. */
const dataOf = (body: string): Array<string> =>
  body.split("\n\n").filter((block) => block.startsWith("data: ")).map((block) => block.slice(6))

const chunksOf = (body: string) =>
  dataOf(body).filter((d) => d !== "[DONE]").map((d) =>
    JSON.parse(d) as {
      choices?: Array<{ index: number; delta: { content?: string }; finish_reason: string | null }>
      usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number }
      error?: unknown
    }
  )

const contentOf = (body: string, index = 0) =>
  chunksOf(body).flatMap((c) => (c.choices ?? []).filter((x) => x.index === index).map((x) => x.delta.content ?? "")).join("")

const builtin = (name: string) => Scenario.builtins.find((s) => s.name === name)!

describe("Script.render", () => {
  it("streams the reply as OpenAI chunks: role chunk, tokens, finish, usage with choices [], [DONE]", () => {
    const body = text(Script.render({ name: "t", reply: "Bonjour tout le monde" }, request(), 0))
    const data = dataOf(body)
    expect(data[data.length - 1]).toBe("[DONE]")
    const chunks = chunksOf(body)
    expect(chunks[0]!.choices![0]!.delta).toEqual({ role: "assistant", content: "" })
    expect(contentOf(body)).toBe("Bonjour tout le monde")
    const finish = chunks.find((c) => c.choices?.[0]?.finish_reason != null)!
    expect(finish.choices![0]!.finish_reason).toBe("stop")
    const usage = chunks[chunks.length - 1]!
    expect(usage.choices).toEqual([])
    expect(usage.usage!.completion_tokens).toBe(5) // Bonj|our| tout| le| monde
    expect(usage.usage!.total_tokens).toBe(usage.usage!.prompt_tokens + 5)
  })

  it("sends the usage chunk only when asked, and never when the scenario omits it", () => {
    const without = text(Script.render({ name: "t", reply: "Hi" }, request({ includeUsage: false }), 0))
    expect(chunksOf(without).some((c) => c.usage !== undefined)).toBe(false)
    const omitted = text(Script.render({ name: "t", reply: "Hi", usage: "omit" }, request(), 0))
    expect(chunksOf(omitted).some((c) => c.usage !== undefined)).toBe(false)
    const given = text(
      Script.render({ name: "t", reply: "Hi", usage: { prompt_tokens: 10, completion_tokens: 20 } }, request(), 0)
    )
    expect(chunksOf(given).at(-1)!.usage).toEqual({ prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 })
  })

  it("echoes the newest user message by default and counts real prompt usage deterministically", () => {
    const req = request({
      messages: [
        { role: "system", content: "You translate." },
        { role: "user", content: "first" },
        { role: "assistant", content: "premier" },
        { role: "user", content: "second" }
      ]
    })
    const body = text(Script.render({ name: "echo" }, req, 0))
    expect(contentOf(body)).toBe("You said: second")
    // 3 to prime + (3 + tokens) per message; words longer than 6 characters are cut every 4:
    // "You translate." = You| tra|nsla|te|. = 5, "first" = 1, "premier" = prem|ier = 2, "second" = 1.
    expect(chunksOf(body).at(-1)!.usage!.prompt_tokens).toBe(3 + 4 * 3 + 5 + 1 + 2 + 1)
  })

  it("uses the exact tokens of a token list", () => {
    const body = text(Script.render({ name: "t", reply: ["Bon", "jour", " ✓"] }, request(), 0))
    const tokens = chunksOf(body).flatMap((c) => (c.choices ?? []).map((x) => x.delta.content)).filter((t) => t)
    expect(tokens).toEqual(["Bon", "jour", " ✓"])
  })

  it("interleaves n choices token by token and finishes each", () => {
    const body = text(Script.render(builtin("n3"), request(), 0))
    expect(contentOf(body, 0)).toBe("The first answer.")
    expect(contentOf(body, 1)).toBe("The second answer.")
    expect(contentOf(body, 2)).toBe("The third answer, a little longer than the others.")
    const indexes = chunksOf(body).flatMap((c) => (c.choices ?? []).filter((x) => x.delta.content).map((x) => x.index))
    expect(indexes.slice(0, 6)).toEqual([0, 1, 2, 0, 1, 2])
    const finishes = chunksOf(body).flatMap((c) => (c.choices ?? []).filter((x) => x.finish_reason).map((x) => x.index))
    expect(finishes).toEqual([0, 1, 2])
  })

  it("cuts the reply at max_tokens and reports length", () => {
    const body = text(Script.render({ name: "t", reply: ["a", "b", "c", "d"] }, request({ maxTokens: 2 }), 0))
    expect(contentOf(body)).toBe("ab")
    expect(chunksOf(body).find((c) => c.choices?.[0]?.finish_reason)!.choices![0]!.finish_reason).toBe("length")
    expect(chunksOf(body).at(-1)!.usage!.completion_tokens).toBe(2)
  })

  it("walks through the scripted attempts, then replies", () => {
    const scenario = builtin("server-error")
    const first = Script.render(scenario, request({ profile: "gateway" }), 0)
    const second = Script.render(scenario, request({ profile: "gateway" }), 1)
    const third = Script.render(scenario, request({ profile: "gateway" }), 2)
    expect([first.status, second.status, third.status]).toEqual([503, 502, 200])
    expect([first.outcome, second.outcome, third.outcome]).toEqual(["fault", "fault", "reply"])
    const body = JSON.parse(text(first))
    expect(body).toMatchObject({ code: "service.unavailable", status: 503 })
    expect(body.contextId).toBe(first.headers["inin-correlation-id"])
    expect(Script.faultAttempts(scenario)).toBe(2)
  })

  it("renders 429 with Retry-After and the platform's rate-limit headers", () => {
    const gateway = Script.render(builtin("rate-limited"), request({ profile: "gateway" }), 0)
    expect(gateway.status).toBe(429)
    expect(gateway.headers).toMatchObject({
      "retry-after": "2",
      "inin-ratelimit-allowed": "300",
      "inin-ratelimit-reset": "2",
      "content-type": "application/json"
    })
    expect(JSON.parse(text(gateway))).toMatchObject({
      code: "too.many.requests",
      status: 429,
      limit: { key: "token.rate.per.minute", namespace: "platform.api", value: 300 }
    })
    const openai = Script.render(builtin("rate-limited"), request(), 0)
    expect(JSON.parse(text(openai))).toMatchObject({ error: { code: "rate_limit_exceeded" } })
    expect(openai.headers["x-ratelimit-reset-requests"]).toBe("2s")
  })

  it("keeps custom attempt bodies and headers (a Genesys error with a correlation id)", () => {
    const script = Script.render({
      name: "t",
      attempts: [{
        status: 503,
        headers: { "ININ-Correlation-Id": "corr-1" },
        body: { message: "Down for maintenance", code: "service.unavailable", status: 503, contextId: "ctx-1" }
      }]
    }, request({ profile: "gateway" }), 0)
    expect(script.headers["inin-correlation-id"]).toBe("corr-1")
    expect(JSON.parse(text(script))).toEqual({
      message: "Down for maintenance",
      code: "service.unavailable",
      status: 503,
      contextId: "ctx-1"
    })
    expect(Script.render({ name: "t", attempts: [{ status: 401 }] }, request({ profile: "gateway" }), 0).revokeToken)
      .toBe(true)
  })

  it("puts an error object after N tokens and then closes without [DONE]", () => {
    const script = Script.render(builtin("error-mid-stream"), request(), 0)
    const data = dataOf(text(script))
    expect(data).not.toContain("[DONE]")
    expect(JSON.parse(data.at(-1)!)).toEqual({
      error: { message: "The model is overloaded.", type: "server_error", param: null, code: null }
    })
    expect(chunksOf(text(script)).filter((c) => c.choices?.[0]?.delta.content).length).toBe(3)
    expect(script.end._tag).toBe("Close")
  })

  it("drops, stalls or ends the body after N tokens", () => {
    const tokens = (script: Script.Script) => chunksOf(text(script)).filter((c) => c.choices?.[0]?.delta.content).length
    const drop = Script.render(builtin("drop"), request(), 0)
    expect(drop.end._tag).toBe("Drop")
    expect(tokens(drop)).toBe(3)
    const stall = Script.render(builtin("stall-keep-alive"), request(), 0)
    expect(stall.end).toMatchObject({ _tag: "Stall", keepAlive: { intervalMs: 1000 } })
    expect(tokens(stall)).toBe(3)
    const truncated = Script.render(builtin("truncated"), request(), 0)
    expect(truncated.end._tag).toBe("Close")
    expect(tokens(truncated)).toBe(3)
    expect(text(truncated)).not.toContain("finish_reason\":\"")
    expect(text(truncated)).not.toContain("[DONE]")
  })

  it("sends a malformed event, an oversized event, a missing [DONE] when asked", () => {
    const malformed = dataOf(text(Script.render(builtin("malformed"), request(), 0)))
    expect(malformed.filter((d) => {
      try {
        JSON.parse(d)
        return false
      } catch {
        return d !== "[DONE]"
      }
    })).toHaveLength(1)
    const oversized = Script.render(
      { name: "t", reply: "a b", faults: { oversized: { afterTokens: 1, bytes: 100_000 } } },
      request(),
      0
    )
    const lines = text(oversized).split("\n")
    expect(lines.some((line) => line.length === 100_000)).toBe(true)
    const endless = text(Script.render(builtin("endless-line"), request(), 0))
    expect(endless.endsWith("\"}")).toBe(true)
    const noDone = dataOf(text(Script.render(builtin("no-done"), request(), 0)))
    expect(noDone).not.toContain("[DONE]")
    expect(chunksOf(noDone.map((d) => `data: ${d}`).join("\n\n")).at(-1)!.usage).toBeDefined()
  })

  it("frames lines with CRLF or CR, leads with a retry field, and comments while waiting", () => {
    expect(text(Script.render(builtin("crlf"), request(), 0))).toContain("\r\n\r\ndata: ")
    const cr = text(Script.render(builtin("cr"), request(), 0))
    expect(cr).toContain("\r\rdata: ")
    expect(cr).not.toContain("\n")
    expect(text(Script.render(builtin("retry-field"), request(), 0)).startsWith("retry: 30000\n\n")).toBe(true)
    const keepAlive = Script.render(builtin("keep-alive"), request(), 0)
    const comments = keepAlive.chunks.filter((c) => decoder.decode(c.bytes) === ": keep-alive\n\n")
    expect(comments.map((c) => c.delayMs)).toEqual([1000, 1000, 1000, 1000])
  })

  it("times tokens from the headers: first token, then one per tokenMs", () => {
    const script = Script.render(
      { name: "t", reply: ["a", "b", "c"], timing: { headersMs: 50, firstTokenMs: 200, tokenMs: 30 } },
      request(),
      0
    )
    expect(script.headersDelayMs).toBe(50)
    expect(script.chunks.map((c) => c.delayMs)).toEqual([200, 0, 30, 30, 0, 0, 0])
  })

  it("answers a non-streaming request with one chat.completion body after the whole generation time", () => {
    const script = Script.render(
      { name: "t", reply: ["Bon", "jour"], timing: { firstTokenMs: 100, tokenMs: 10 } },
      request({ stream: false }),
      0
    )
    expect(script.chunked).toBe(false)
    expect(script.headersDelayMs).toBe(110)
    const body = JSON.parse(text(script))
    expect(body).toMatchObject({
      object: "chat.completion",
      choices: [{ index: 0, message: { role: "assistant", content: "Bonjour" }, finish_reason: "stop" }],
      usage: { completion_tokens: 2 }
    })
  })

  it("is deterministic: the same seed gives the same bytes, another seed other ids", () => {
    const scenario: Scenario.Scenario = {
      name: "t",
      seed: 7,
      reply: "Grüße 👋🏽 aus Köln",
      timing: { tokenMs: 5, jitterMs: 40 },
      split: { mode: "random", maxBytes: 5 }
    }
    const a = Script.render(scenario, request(), 0)
    const b = Script.render(scenario, request(), 0)
    expect(a).toEqual(b)
    const c = Script.render({ ...scenario, seed: 8 }, request(), 0)
    expect(text(c)).not.toBe(text(a))
  })

  it("splits inside multi-byte characters without changing the bytes", () => {
    FastCheck.assert(
      FastCheck.property(
        FastCheck.string({ unit: "grapheme", maxLength: 40 }),
        FastCheck.integer({ min: 1, max: 9 }),
        FastCheck.integer(),
        (reply, maxBytes, seed) => {
          const whole = Script.render({ name: "t", seed, reply }, request(), 0)
          const split = Script.render({ name: "t", seed, reply, split: { mode: "random", maxBytes } }, request(), 0)
          const fixed = Script.render({ name: "t", seed, reply, split: { mode: "fixed", bytes: maxBytes } }, request(), 0)
          expect(Script.bodyBytes(split)).toEqual(Script.bodyBytes(whole))
          expect(Script.bodyBytes(fixed)).toEqual(Script.bodyBytes(whole))
          expect(split.chunks.every((c) => c.bytes.length >= 1 && c.bytes.length <= maxBytes)).toBe(true)
          expect(contentOf(text(whole))).toBe(reply)
        }
      ),
      { numRuns: 100 }
    )
  })

  it("the utf8 scenario really cuts through UTF-8 sequences", () => {
    const script = Script.render(builtin("utf8"), request(), 0)
    const fatal = new TextDecoder("utf-8", { fatal: true })
    const broken = script.chunks.filter((c) => {
      try {
        fatal.decode(c.bytes)
        return false
      } catch {
        return true
      }
    })
    expect(broken.length).toBeGreaterThan(0)
  })
})

describe("Scenario", () => {
  it("every built-in scenario is valid and uniquely named", () => {
    for (const scenario of Scenario.builtins) {
      expect(Either.isRight(Schema.decodeUnknownEither(Scenario.Scenario)(scenario))).toBe(true)
    }
    expect(new Set(Scenario.builtins.map((s) => s.name)).size).toBe(Scenario.builtins.length)
  })

  it.effect("decodes a file of one scenario, a list, or {scenarios, defaultScenario}", () =>
    Effect.gen(function*() {
      const one = yield* Scenario.decodeFileText("one.json", JSON.stringify({ name: "a", reply: "x" }))
      expect(one.scenarios.map((s) => s.name)).toEqual(["a"])
      const list = yield* Scenario.decodeFileText("list.json", JSON.stringify([{ name: "a" }, { name: "b" }]))
      expect(list.scenarios.map((s) => s.name)).toEqual(["a", "b"])
      const set = yield* Scenario.decodeFileText(
        "set.json",
        JSON.stringify({ scenarios: [{ name: "a" }], defaultScenario: "a" })
      )
      expect(set.defaultScenario).toBe("a")
    }))

  it.effect("names the problem of a bad file", () =>
    Effect.gen(function*() {
      const notJson = yield* Effect.flip(Scenario.decodeFileText("bad.json", "{ nope"))
      expect(notJson._tag).toBe("ScenarioFileError")
      expect(notJson.message).toContain("bad.json")
      expect(notJson.message).toContain("not valid JSON")
      const badField = yield* Effect.flip(
        Scenario.decodeFileText("bad.json", JSON.stringify([{ name: "a", timing: { tokenMs: -1 } }]))
      )
      expect(badField.reason).toContain("tokenMs")
      const unknownField = yield* Effect.flip(
        Scenario.decodeFileText("bad.json", JSON.stringify({ name: "a", replly: "typo" }))
      )
      expect(unknownField.reason).toContain("replly")
      const duplicate = yield* Effect.flip(Scenario.decodeFileText("bad.json", JSON.stringify([{ name: "a" }, { name: "a" }])))
      expect(duplicate.reason).toContain("used twice")
      const badDefault = yield* Effect.flip(
        Scenario.decodeFileText("bad.json", JSON.stringify({ scenarios: [], defaultScenario: "nope" }))
      )
      expect(badDefault.reason).toContain("nope")
    }))
})
