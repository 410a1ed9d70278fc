import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as AuditLog from "../src/AuditLog.js"
import type { ChatMessage } from "../src/Chat.js"
import * as ContextWindow from "../src/ContextWindow.js"
import * as Conversation from "../src/Conversation.js"
import * as Gateway from "../src/Gateway.js"
import { Finish, type Part, TextDelta, ToolCall, ToolCallDelta, ToolCallError } from "../src/Part.js"
import * as SafetyFilter from "../src/SafetyFilter.js"
import type * as Stage from "../src/Stage.js"
import * as Tool from "../src/Tool.js"

const EMAIL = "jane.doe@example.com"

const finish = (reason: "stop" | "tool_calls") =>
  new Finish({
    reason,
    usage: { promptTokens: 1, completionTokens: 1, totalTokens: 2 },
    usageSource: "gateway",
    cost: { promptUsd: 0, completionUsd: 0, totalUsd: 0 },
    cached: false,
    requestHash: "0".repeat(64),
    alternatives: []
  })

const call = (index: number, id: string, name: string, args: unknown): ReadonlyArray<Part> => {
  const rawArguments = JSON.stringify(args)
  return [
    new ToolCallDelta({ index, id, name, argumentsDelta: rawArguments }),
    new ToolCall({ index, id, name, arguments: args, rawArguments })
  ]
}

/**
 * A gateway whose upstream plays `script(round, request)`: the parts of each reply, as the
 * upstream stage emits them. Records every prepared request that reached it.
 */
const scripted = (
  script: (round: number, request: Stage.Prepared) => ReadonlyArray<Part>,
  contextWindow: Layer.Layer<ContextWindow.ContextWindow, ConfigError.ConfigError> = ContextWindow.layer()
) => {
  const requests: Array<Stage.Prepared> = []
  const handler: Stage.Handler = (request) =>
    Stream.suspend(() => {
      requests.push(request)
      return Stream.fromIterable(script(requests.length, request))
    })
  const layer = Gateway.layerWith(Effect.succeed(handler)).pipe(
    Layer.provideMerge(Layer.mergeAll(SafetyFilter.layerDefault, contextWindow, AuditLog.layerMemory))
  )
  return { requests, layer }
}

const getWeather = Tool.make({
  name: "get_weather",
  description: "The current weather of a city",
  parameters: Schema.Struct({ city: Schema.String })
})

class WeatherDown extends Schema.TaggedError<WeatherDown>()("WeatherDown", { city: Schema.String }) {
  override get message() {
    return `no weather for ${this.city}`
  }
}

const weather = Conversation.handler(getWeather, ({ city }) =>
  city === "Atlantis" ? Effect.fail(new WeatherDown({ city })) : Effect.succeed({ city, sky: "sunny", contact: EMAIL }))

/** Calls get_weather for each city of the newest user message until results are back, then answers. */
const weatherModel = (cities: ReadonlyArray<string>) =>
  scripted((_, request) => {
    const last = request.outbound.messages[request.outbound.messages.length - 1]!
    if (last.role === "tool") return [new TextDelta({ text: "Done: " + last.content.slice(0, 40) }), finish("stop")]
    return [...cities.flatMap((city, i) => call(i, `call_${i}`, "get_weather", { city })), finish("tool_calls")]
  })

const collect = <E, R>(stream: Stream.Stream<Part, E, R>) => Effect.map(Stream.runCollect(stream), Chunk.toArray)

describe("Conversation tool loop", () => {
  it.effect("runs the calls, sends the results with matching ids, records the whole turn as sent", () => {
    const model = weatherModel(["Paris", "Oslo"])
    return Effect.gen(function*() {
      const conversation = yield* Conversation.make({ model: "gpt-4o-mini" })
      const parts = yield* collect(conversation.sendWithTools("Weather in Paris and Oslo?", { handlers: [weather] }))
      expect(parts.filter((p) => p._tag === "Finish").map((p) => (p as Finish).reason)).toEqual(["tool_calls", "stop"])
      expect(model.requests).toHaveLength(2)
      // Both rounds declared the tool.
      expect(model.requests.every((r) => r.outbound.tools?.[0]?.name === "get_weather")).toBe(true)
      const second = model.requests[1]!.outbound.messages
      expect(second.map((m) => m.role)).toEqual(["user", "assistant", "tool", "tool"])
      expect(second[1]!.toolCalls!.map((c) => c.id)).toEqual(["call_0", "call_1"])
      expect(second.slice(2).map((m) => m.toolCallId)).toEqual(["call_0", "call_1"])
      // Results in the order of the calls; PII in a result redacted before it left.
      expect(JSON.parse(second[2]!.content)).toMatchObject({ city: "Paris", sky: "sunny", contact: "[EMAIL]" })
      expect(JSON.parse(second[3]!.content)).toMatchObject({ city: "Oslo" })
      const history = yield* conversation.messages
      expect(history).toEqual([...second, { role: "assistant", content: expect.stringContaining("Done: ") }])
      expect(JSON.stringify(history)).not.toContain(EMAIL)
      // The next turn carries the recorded one.
      yield* collect(conversation.sendWithTools("Thanks", { handlers: [weather] }))
      expect(model.requests[2]!.outbound.messages.slice(0, 5)).toEqual(history)
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("a reply that still calls tools after maxRounds is ToolRoundsExceeded; nothing is recorded", () => {
    const model = scripted((round) => [...call(0, `call_${round}`, "get_weather", { city: "Paris" }), finish("tool_calls")])
    return Effect.gen(function*() {
      const conversation = yield* Conversation.make({ model: "gpt-4o-mini" })
      const error = yield* Effect.flip(Stream.runDrain(
        conversation.sendWithTools("Loop", { handlers: [weather], maxRounds: 2 })
      ))
      expect(error._tag).toBe("ToolRoundsExceeded")
      expect(model.requests).toHaveLength(3)
      // Each round carried every earlier call and result of the turn.
      expect(model.requests[2]!.outbound.messages.map((m) => m.role)).toEqual(["user", "assistant", "tool", "assistant", "tool"])
      expect(yield* conversation.messages).toEqual([])
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("a failing handler fails the send with its own error by default, or is reported to the model", () => {
    const model = weatherModel(["Atlantis"])
    return Effect.gen(function*() {
      const conversation = yield* Conversation.make({ model: "gpt-4o-mini" })
      const failed = yield* Effect.exit(Stream.runDrain(conversation.sendWithTools("Atlantis?", { handlers: [weather] })))
      expect(failed).toEqual(Exit.fail(new WeatherDown({ city: "Atlantis" })))
      expect(yield* conversation.messages).toEqual([])
      yield* Stream.runDrain(conversation.sendWithTools("Atlantis?", { handlers: [weather], onFailure: "report" }))
      const history = yield* conversation.messages
      expect(history.map((m) => m.role)).toEqual(["user", "assistant", "tool", "assistant"])
      expect(JSON.parse(history[2]!.content)).toEqual({ error: "no weather for Atlantis" })
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("a call to an undeclared tool is ToolCallRejected, whatever onFailure says", () => {
    const model = scripted(() => [...call(0, "call_x", "launch_rocket", {}), finish("tool_calls")])
    return Effect.gen(function*() {
      const conversation = yield* Conversation.make({ model: "gpt-4o-mini" })
      for (const onFailure of ["fail", "report"] as const) {
        const error = yield* Effect.flip(Stream.runDrain(conversation.sendWithTools("Go", { handlers: [weather], onFailure })))
        expect(error).toMatchObject({ _tag: "ToolCallRejected", reason: "unknownTool", toolName: "launch_rocket", callId: "call_x" })
      }
      expect(yield* conversation.messages).toEqual([])
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("invalid arguments are ToolCallRejected, or reported with their issues so the model can retry", () => {
    const model = scripted((_, request) => {
      const last = request.outbound.messages.at(-1)!
      if (last.role === "tool") return [new TextDelta({ text: "Sorry." }), finish("stop")]
      return [
        new ToolCallDelta({ index: 0, id: "call_bad", name: "get_weather", argumentsDelta: "{\"town\":1}" }),
        new ToolCallError({ index: 0, id: "call_bad", name: "get_weather", reason: "invalid", issues: ["city: is missing"] }),
        finish("tool_calls")
      ]
    })
    return Effect.gen(function*() {
      const conversation = yield* Conversation.make({ model: "gpt-4o-mini" })
      const error = yield* Effect.flip(Stream.runDrain(conversation.sendWithTools("Go", { handlers: [weather] })))
      expect(error).toMatchObject({ _tag: "ToolCallRejected", reason: "invalid", issues: ["city: is missing"] })
      yield* Stream.runDrain(conversation.sendWithTools("Go", { handlers: [weather], onFailure: "report" }))
      const history: ReadonlyArray<ChatMessage> = yield* conversation.messages
      // The call as the model sent it, and the issue as its result.
      expect(history[1]!.toolCalls).toEqual([{ id: "call_bad", name: "get_weather", arguments: "{\"town\":1}" }])
      expect(history[2]!.content).toContain("city: is missing")
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("a turn whose calls and results no longer fit the window is ContextWindowExceeded, not sent cut", () => {
    const huge = Conversation.handler(getWeather, () => Effect.succeed("sunny ".repeat(3_000)))
    const model = scripted(
      (_, request) =>
        request.outbound.messages.at(-1)!.role === "tool"
          ? [new TextDelta({ text: "Sunny." }), finish("stop")]
          : [...call(0, "call_0", "get_weather", { city: "Paris" }), finish("tool_calls")],
      ContextWindow.layer({ models: { "tiny-model": { contextWindow: 2_000, maxOutputTokens: 500, encoding: "o200k_base" } } })
    )
    return Effect.gen(function*() {
      const conversation = yield* Conversation.make({ model: "tiny-model" })
      const error = yield* Effect.flip(Stream.runDrain(conversation.sendWithTools("Weather?", { handlers: [huge] })))
      expect(error._tag).toBe("ContextWindowExceeded")
      // Only the first round went out.
      expect(model.requests).toHaveLength(1)
      expect(yield* conversation.messages).toEqual([])
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("plain send records only the text of a reply that carries tool calls", () => {
    const model = scripted(() => [new TextDelta({ text: "Let me check." }), ...call(0, "c", "get_weather", { city: "Paris" }), finish("tool_calls")])
    return Effect.gen(function*() {
      const conversation = yield* Conversation.make({ model: "gpt-4o-mini" })
      yield* Stream.runDrain(conversation.send("Weather?"))
      expect(yield* conversation.messages).toEqual([
        { role: "user", content: "Weather?" },
        { role: "assistant", content: "Let me check." }
      ])
    }).pipe(Effect.provide(model.layer))
  })
})
