/**
 * Rendering of endless replies and of a gateway that ignores `max_tokens`.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Scenario from "../src/Scenario.js"
import * as Script from "../src/Script.js"

const decoder = new TextDecoder()

const request = (overrides: Partial<Script.ScriptRequest> = {}): Script.ScriptRequest => ({
  profile: "openai",
  model: "sim:test",
  messages: [{ role: "user", content: "Hello" }],
  system: undefined,
  stream: true,
  includeUsage: true,
  n: undefined,
  maxTokens: undefined,
  ...overrides
})

const builtin = (name: string) => Scenario.builtins.find((s) => s.name === name)!

const repeated = (script: Script.Script) => {
  if (script.end._tag !== "Repeat") throw new Error(`expected an endless body, got ${script.end._tag}`)
  return decoder.decode(script.end.bytes)
}

describe("Script: endless replies", () => {
  it("sends the reply's tokens again and again, with no finish reason, usage or [DONE]", () => {
    const script = Script.render(builtin("endless"), request(), 0)
    const body = decoder.decode(Script.bodyBytes(script)) + repeated(script)
    expect(body).not.toContain("[DONE]")
    expect(body).not.toContain("\"usage\"")
    expect(body).not.toMatch(/"finish_reason":"(stop|length)"/)
    expect(repeated(script)).toContain("\"content\":\"All\"")
  })

  it("an honoured max_tokens cuts it with length; ignores-max-tokens does not", () => {
    const honoured = Script.render(builtin("endless"), request({ maxTokens: 50 }), 0)
    expect(honoured.end._tag).toBe("Close")
    const body = decoder.decode(Script.bodyBytes(honoured))
    expect(body).toContain("\"finish_reason\":\"length\"")
    expect(body).toContain("\"completion_tokens\":50")
    const ignored = Script.render(builtin("ignores-max-tokens"), request({ maxTokens: 50 }), 0)
    expect(ignored.end._tag).toBe("Repeat")
  })

  it("an endless refusal or alternative streams as that delta of that choice", () => {
    expect(repeated(Script.render(builtin("endless-refusal"), request(), 0))).toContain("\"refusal\":\"All\"")
    const alternative = Script.render({ name: "alt", reply: "x y", n: 2, faults: { endless: { choice: 1 } } }, request(), 0)
    expect(repeated(alternative)).toContain("\"index\":1")
  })

  it("usage-oversized reports 10^15 completion tokens", () => {
    const body = decoder.decode(Script.bodyBytes(Script.render(builtin("usage-oversized"), request(), 0)))
    expect(body).toContain("\"completion_tokens\":1000000000000000")
  })

  it("a non-streaming endless reply opens a content string that never closes", () => {
    const script = Script.render(builtin("endless"), request({ stream: false }), 0)
    expect(decoder.decode(Script.bodyBytes(script))).toMatch(/"content":"$/)
    expect(repeated(script)).not.toContain("\"")
  })
})
