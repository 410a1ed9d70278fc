/**
 * Tool calls through the whole Gateway against the in-process simulator (openai profile): the
 * `tools` scenarios stream calls split in pieces (parallel calls one after the other, id and
 * name in the first fragment only), the gateway assembles them into `ToolCall`s decoded with
 * the tools' Schemas, then answers with text once the results come back. What reached the wire,
 * the cache replay, the audit entry, redaction of arguments and hostile arguments are checked.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  AuditLog,
  ContextWindow,
  CostMeter,
  Gateway,
  type Part,
  ResponseCache,
  SafetyFilter,
  Tool,
  Transport
} from "@llm-gateway/core"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type * as Scenario from "../src/Scenario.js"
import * as SimulatorApp from "../src/SimulatorApp.js"
import * as SimulatorLayer from "../src/SimulatorLayer.js"

const getWeather = Tool.make({
  name: "get_weather",
  description: "The weather of a city",
  parameters: Schema.Struct({ city: Schema.String, unit: Schema.Literal("C", "F") })
})
const getTime = Tool.make({
  name: "get_time",
  parameters: Schema.Struct({ zone: Schema.String })
})

const scenarios: ReadonlyArray<Scenario.Scenario> = [
  {
    name: "pii-arguments",
    toolCalls: [{ name: "get_weather", arguments: { city: "write to jane.doe@example.com", unit: "C", phone: 2125550123 } }]
  },
  { name: "malformed-arguments", toolCalls: [{ name: "get_weather", arguments: "{\"city\": \"Par" }] },
  { name: "invalid-arguments", toolCalls: [{ name: "get_weather", arguments: { city: 42, unit: "kelvin" } }] },
  { name: "undeclared-tool", toolCalls: [{ name: "launch_rocket", arguments: {} }] },
  { name: "split-tools", toolCalls: "all", split: { mode: "random", maxBytes: 5 }, seed: 7 }
]

const gatewayLayer = (profile: Transport.Profile) =>
  Gateway.layer({ profile }).pipe(
    Layer.provideMerge(Layer.mergeAll(
      SafetyFilter.layerDefault,
      ContextWindow.layer(),
      ResponseCache.layerMemory({ capacity: 10, timeToLive: "1 minute" }),
      CostMeter.layerMemory({}),
      AuditLog.layerMemory
    )),
    Layer.provideMerge(SimulatorLayer.layer({ profile, scenarios }))
  )

const collect = (request: Gateway.Service extends { stream: (r: infer R) => unknown } ? R : never) =>
  Effect.map(Stream.runCollect(Gateway.stream(request)), Chunk.toReadonlyArray)

const ofTag = <T extends Part.Part["_tag"]>(parts: ReadonlyArray<Part.Part>, tag: T) =>
  parts.filter((p): p is Extract<Part.Part, { _tag: T }> => p._tag === tag)

const chatBodies = Effect.flatMap(SimulatorApp.Simulator, (sim) => sim.requests).pipe(
  Effect.map((all) => all.filter((r) => r.path.endsWith("/chat/completions")).map((r) => r.body as Record<string, any>))
)

const question = { role: "user" as const, content: "Weather and time in Paris?" }

describe("tool calls against the simulator", () => {
  it.effect("two parallel calls stream in pieces, decode with their Schemas, and the results round gets text", () =>
    Effect.gen(function*() {
      const first = yield* collect({
        model: "sim:tools-parallel",
        messages: [question],
        tools: [getWeather, getTime],
        toolChoice: "auto"
      })
      const deltas = ofTag(first, "ToolCallDelta")
      const calls = ofTag(first, "ToolCall")
      expect(calls.map((c) => c.name)).toEqual(["get_weather", "get_time"])
      // The Schema decoded the arguments: the example the simulator built from the parameters.
      expect(calls[0]!.arguments).toEqual({ city: "You said: Weather and time in Paris?", unit: "C" })
      expect(calls[1]!.arguments).toEqual({ zone: "You said: Weather and time in Paris?" })
      // id and name came with the first fragment of each call only; the pieces add up to the arguments.
      for (const call of calls) {
        const mine = deltas.filter((d) => d.index === call.index)
        expect(mine.length).toBeGreaterThan(2)
        expect(mine.filter((d) => d.id !== undefined).map((d) => d.id)).toEqual([call.id])
        expect(mine.filter((d) => d.name !== undefined).map((d) => d.name)).toEqual([call.name])
        expect(mine.map((d) => d.argumentsDelta).join("")).toBe(call.rawArguments)
      }
      const finish = first[first.length - 1]!
      expect(finish._tag === "Finish" && finish.reason).toBe("tool_calls")

      // Round two: the assistant's calls and the results, as history.
      const second = yield* collect({
        model: "sim:tools-parallel",
        tools: [getWeather, getTime],
        messages: [
          question,
          { role: "assistant", content: "", toolCalls: calls.map((c) => ({ id: c.id, name: c.name, arguments: c.rawArguments })) },
          { role: "tool", toolCallId: calls[0]!.id, content: "{\"celsius\":21}" },
          { role: "tool", toolCallId: calls[1]!.id, content: "{\"time\":\"14:05\"}" }
        ]
      })
      expect(ofTag(second, "TextDelta").map((t) => t.text).join("")).toBe("Tool results: {\"celsius\":21}; {\"time\":\"14:05\"}")
      expect(ofTag(second, "ToolCall")).toEqual([])

      const [body1, body2] = yield* chatBodies
      expect(body1!["tools"]).toEqual([
        { type: "function", function: { name: "get_weather", description: "The weather of a city", parameters: getWeather.parameters } },
        { type: "function", function: { name: "get_time", parameters: getTime.parameters } }
      ])
      expect(body1!["tool_choice"]).toBe("auto")
      expect(body2!["messages"].slice(1)).toEqual([
        {
          role: "assistant",
          content: null,
          tool_calls: calls.map((c) => ({ id: c.id, type: "function", function: { name: c.name, arguments: c.rawArguments } }))
        },
        { role: "tool", content: "{\"celsius\":21}", tool_call_id: calls[0]!.id },
        { role: "tool", content: "{\"time\":\"14:05\"}", tool_call_id: calls[1]!.id }
      ])

      const entries = yield* Effect.flatMap(AuditLog.MemoryAuditLog, (log) => log.entries)
      expect(entries[0]).toMatchObject({
        tools: ["get_weather", "get_time"],
        toolCalls: { count: 2, failed: 0, names: ["get_weather", "get_time"] },
        finishReason: "tool_calls"
      })
      expect(JSON.stringify(entries)).not.toContain("You said")
    }).pipe(Effect.provide(gatewayLayer("openai"))))

  it.effect("the same calls come back from the cache, decoded again", () =>
    Effect.gen(function*() {
      const request = { model: "sim:tools", messages: [question], tools: [getWeather] }
      const live = yield* collect(request)
      const cached = yield* collect(request)
      const finish = cached[cached.length - 1]!
      expect(finish._tag === "Finish" && finish.cached).toBe(true)
      expect(ofTag(cached, "ToolCall")).toEqual(ofTag(live, "ToolCall"))
      expect(ofTag(cached, "ToolCall")[0]!.arguments).toEqual({ city: "You said: Weather and time in Paris?", unit: "C" })
      expect((yield* chatBodies).length).toBe(1)
      // Other tools, another key: asked again.
      yield* collect({ ...request, tools: [getWeather, getTime] })
      yield* collect({ ...request, toolChoice: { name: "get_weather" } })
      expect((yield* chatBodies).length).toBe(3)
    }).pipe(Effect.provide(gatewayLayer("openai"))))

  it.effect("arguments split at random byte offsets assemble to the same calls", () =>
    Effect.gen(function*() {
      const split = yield* collect({ model: "sim:split-tools", messages: [question], tools: [getWeather, getTime] })
      const whole = yield* collect({ model: "sim:tools-parallel", messages: [question], tools: [getWeather, getTime] })
      const strip = (parts: ReadonlyArray<Part.Part>) => ofTag(parts, "ToolCall").map(({ arguments: a, name, rawArguments }) => ({ a, name, rawArguments }))
      expect(strip(split)).toEqual(strip(whole))
    }).pipe(Effect.provide(gatewayLayer("openai"))))

  it.effect("PII in streamed arguments is redacted by value: the JSON stays valid and nothing raw reaches a part", () =>
    Effect.gen(function*() {
      const parts = yield* collect({
        model: "sim:pii-arguments",
        messages: [question],
        tools: [Tool.make({ name: "get_weather", parameters: Schema.Struct({ city: Schema.String, unit: Schema.String, phone: Schema.String }) })]
      })
      const text = JSON.stringify(parts)
      expect(text).not.toContain("jane.doe")
      expect(text).not.toContain("2125550123")
      const [call] = ofTag(parts, "ToolCall")
      expect(call!.arguments).toEqual({ city: "write to [EMAIL]", unit: "C", phone: "[PHONE]" })
      expect(JSON.parse(call!.rawArguments)).toEqual(call!.arguments)
      const notice = ofTag(parts, "RedactionNotice").find((n) => n.direction === "output")
      expect(notice?.redactions.map((r) => r.kind).sort()).toEqual(["email", "phone"])
    }).pipe(Effect.provide(gatewayLayer("openai"))))

  it.effect("malformed, invalid and undeclared calls are ToolCallError parts, the reply still finishes", () =>
    Effect.gen(function*() {
      const run = (model: string) =>
        Effect.map(collect({ model, messages: [question], tools: [getWeather] }), (parts) => ({
          errors: ofTag(parts, "ToolCallError"),
          finish: parts[parts.length - 1]!
        }))
      const malformed = yield* run("sim:malformed-arguments")
      expect(malformed.errors.map((e) => [e.reason, e.name, e.issues])).toEqual([["malformed", "get_weather", []]])
      expect(malformed.finish._tag).toBe("Finish")
      const invalid = yield* run("sim:invalid-arguments")
      expect(invalid.errors[0]!.reason).toBe("invalid")
      expect(invalid.errors[0]!.issues).toEqual(["city: does not match the tool's Schema", "unit: does not match the tool's Schema"])
      // Issues name paths, never values.
      expect(invalid.errors[0]!.message).not.toContain("kelvin")
      expect(invalid.errors[0]!.issues.join()).not.toContain("42")
      const undeclared = yield* run("sim:undeclared-tool")
      expect(undeclared.errors.map((e) => e.reason)).toEqual(["unknownTool"])
      const entries = yield* Effect.flatMap(AuditLog.MemoryAuditLog, (log) => log.entries)
      expect(entries[2]!.toolCalls).toEqual({ count: 1, failed: 1, names: ["(undeclared)"] })
    }).pipe(Effect.provide(gatewayLayer("openai"))))

  it.effect("the gateway profile refuses tools and tool history with InvalidRequest, before any call", () =>
    Effect.gen(function*() {
      const refused = yield* Effect.flip(Gateway.complete({ model: "sim:tools", messages: [question], tools: [getWeather] }))
      expect(refused._tag).toBe("InvalidRequest")
      expect(refused.message).toContain("gateway profile")
      const history = yield* Effect.flip(Gateway.complete({
        model: "sim:tools",
        messages: [question, { role: "assistant", content: "", toolCalls: [{ id: "call_1", name: "get_weather", arguments: "{}" }] }, {
          role: "tool",
          toolCallId: "call_1",
          content: "{}"
        }, { role: "user", content: "And now?" }]
      }))
      expect(history._tag).toBe("InvalidRequest")
      const sim = yield* SimulatorApp.Simulator
      expect((yield* sim.requests).filter((r) => r.path === SimulatorApp.defaultGatewayPath)).toEqual([])
    }).pipe(Effect.provide(gatewayLayer("gateway"))))

  it.effect("duplicate names, a choice of an undeclared tool and tool calls on a user message are InvalidRequest", () =>
    Effect.gen(function*() {
      const issues = (request: Parameters<typeof Gateway.complete>[0]) =>
        Effect.map(Effect.flip(Gateway.complete(request)), (e) => (e._tag === "InvalidRequest" ? e.issues : [e._tag]))
      expect(yield* issues({ model: "sim:tools", messages: [question], tools: [getWeather, getWeather] })).toEqual([
        "tools.1.name: the same name as tools.0"
      ])
      expect(yield* issues({ model: "sim:tools", messages: [question], tools: [getWeather], toolChoice: { name: "get_time" } }))
        .toEqual(["toolChoice.name: names no tool of the request"])
      expect(yield* issues({ model: "sim:tools", messages: [question], toolChoice: "required" })).toEqual([
        "toolChoice: a tool choice needs tools"
      ])
      expect(yield* issues({ model: "sim:tools", messages: [question], tools: [{ name: "bad name!" }] })).toContain(
        "tools.0.name: a tool name must be 1 to 64 letters, digits, '_' or '-'"
      )
      expect(yield* issues({ model: "sim:tools", messages: [question], tools: [Tool.make({ name: "bad name!", parameters: Schema.Struct({}) })] }))
        .toContain("tools.0.name: a tool name must be 1 to 64 letters, digits, '_' or '-'")
      expect(
        yield* issues({
          model: "sim:tools",
          messages: [{ ...question, toolCalls: [{ id: "c", name: "get_weather", arguments: "{}" }] }]
        })
      ).toContain("messages.0.toolCalls: only an assistant message may carry tool calls")
    }).pipe(Effect.provide(gatewayLayer("openai"))))
})
