/**
 * Core's Conversation tool loop over the whole Gateway and real sockets, against the simulator's
 * HTTP server on 127.0.0.1 (openai profile): replies with two parallel tool calls split across
 * events (exact bytes, and the simulator's own tool scenario), then the answer. Checks what
 * reached the wire in each round: the tools declared, the assistant's calls and the tool
 * results with matching ids.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import {
  AuditLog,
  Auth,
  ContextWindow,
  Conversation,
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
import * as SimulatorServer from "../src/SimulatorServer.js"

const EMAIL = "desk.paris@example.com"

/** One chunk of a streamed tool-call reply, as the OpenAI wire format sends it. */
const event = (delta: Record<string, unknown>, finish: string | null = null) =>
  `data: ${
    JSON.stringify({
      id: "chatcmpl-tools",
      object: "chat.completion.chunk",
      created: 1_700_000_000,
      model: "sim:scripted-tools",
      choices: [{ index: 0, delta, finish_reason: finish }]
    })
  }\n\n`

/** Two parallel calls, each call's arguments split over several events, as real gateways send them. */
const toolCallsReply = [
  event({ role: "assistant", content: null, tool_calls: [{ index: 0, id: "call_paris", type: "function", function: { name: "get_weather", arguments: "" } }] }),
  event({ tool_calls: [{ index: 0, function: { arguments: "{\"ci" } }] }),
  event({ tool_calls: [{ index: 0, function: { arguments: "ty\": \"Par" } }] }),
  event({ tool_calls: [{ index: 1, id: "call_oslo", type: "function", function: { name: "get_weather", arguments: "{\"city\"" } }] }),
  event({ tool_calls: [{ index: 0, function: { arguments: "is\"}" } }] }),
  event({ tool_calls: [{ index: 1, function: { arguments: ": \"Oslo\"}" } }] }),
  event({}, "tool_calls"),
  "data: [DONE]\n\n"
].join("")

/**
 * Exact bytes, the fragments of the two calls interleaved: the first request of a body is
 * answered with the tool calls (a scripted attempt with status 200); the handler then swaps the
 * scenario for the answer, so the second round gets text.
 */
const firstRound: Scenario.Scenario = {
  name: "scripted-tools",
  attempts: [{ status: 200, contentType: "text/event-stream", body: toolCallsReply }]
}
const secondRound: Scenario.Scenario = { name: "scripted-tools", reply: "Paris is sunny and Oslo is cold." }

const getWeather = Tool.make({
  name: "get_weather",
  description: "The current weather of a city",
  parameters: Schema.Struct({ city: Schema.String })
})

/** The whole gateway over real sockets to `server` (openai profile). */
const gatewayOver = (server: SimulatorServer.Service) =>
  Gateway.layer({ profile: "openai" }).pipe(
    Layer.provideMerge(Layer.mergeAll(
      SafetyFilter.layerDefault,
      ContextWindow.layer(),
      ResponseCache.layerMemory({ capacity: 10, timeToLive: "1 hour" }),
      CostMeter.layerMemory({}),
      AuditLog.layerMemory
    )),
    Layer.provide(
      Transport.layer({ profile: "openai", baseUrl: server.openAiBaseUrl }).pipe(
        Layer.provide(Auth.layerStatic(SimulatorApp.defaultApiKey)),
        Layer.provide(NodeHttpClient.layerUndici)
      )
    )
  )

/** The chat requests that reached the server, as parsed JSON bodies. */
const wireBodies = (server: SimulatorServer.Service) =>
  Effect.map(server.requests, (all) => all.filter((r) => r.path === "/v1/chat/completions").map((r) => r.body as any))

describe("Conversation tool loop against the simulator server (openai profile, real sockets)", () => {
  it.effect("two rounds: the calls, then the results with matching ids, then the answer", () =>
    Effect.gen(function*() {
      const server = yield* SimulatorServer.SimulatorServer
      const handled: Array<Conversation.ToolCallInfo & { city: string }> = []
      const weather = Conversation.handler(getWeather, ({ city }, call) =>
        Effect.gen(function*() {
          handled.push({ ...call, city })
          yield* server.register(secondRound)
          return { city, sky: city === "Paris" ? "sunny" : "cold", desk: EMAIL }
        }))
      const { history, parts } = yield* Effect.gen(function*() {
        const conversation = yield* Conversation.make({ model: "sim:scripted-tools", system: "Use the tools." })
        const parts = yield* Stream.runCollect(
          conversation.sendWithTools("Weather in Paris and Oslo?", { handlers: [weather], concurrency: "unbounded" })
        ).pipe(Effect.map(Chunk.toArray))
        return { history: yield* conversation.messages, parts }
      }).pipe(Effect.provide(gatewayOver(server)))

      // The arguments, assembled from the split deltas and decoded with the Schema.
      expect(handled.map(({ city, id, name }) => ({ city, id, name }))).toEqual([
        { city: "Paris", id: "call_paris", name: "get_weather" },
        { city: "Oslo", id: "call_oslo", name: "get_weather" }
      ])
      const finishes = parts.filter((p): p is Part.Finish => p._tag === "Finish").map((p) => p.reason)
      expect(finishes).toEqual(["tool_calls", "stop"])

      const wire = yield* wireBodies(server)
      expect(wire).toHaveLength(2)
      // Round 1: the tool declared, the system instruction and the question.
      expect(wire[0].tools).toEqual([{ type: "function", function: expect.objectContaining({ name: "get_weather" }) }])
      expect(wire[0].messages.map((m: any) => m.role)).toEqual(["system", "user"])
      // Round 2: the assistant's calls as sent, then one tool message per call, ids matching.
      const messages = wire[1].messages
      expect(messages.map((m: any) => m.role)).toEqual(["system", "user", "assistant", "tool", "tool"])
      const calls = messages[2].tool_calls
      expect(calls.map((c: any) => [c.id, c.type, c.function.name, JSON.parse(c.function.arguments)])).toEqual([
        ["call_paris", "function", "get_weather", { city: "Paris" }],
        ["call_oslo", "function", "get_weather", { city: "Oslo" }]
      ])
      expect(messages.slice(3).map((m: any) => m.tool_call_id)).toEqual(["call_paris", "call_oslo"])
      expect(JSON.parse(messages[3].content)).toEqual({ city: "Paris", sky: "sunny", desk: "[EMAIL]" })
      expect(JSON.stringify(wire)).not.toContain(EMAIL)

      // The history is the turn as sent, and the answer.
      expect(history.map((m) => m.role)).toEqual(["user", "assistant", "tool", "tool", "assistant"])
      expect(history[1]!.toolCalls!.map((c) => c.id)).toEqual(["call_paris", "call_oslo"])
      expect(history.slice(2, 4).map((m) => m.toolCallId)).toEqual(["call_paris", "call_oslo"])
      expect(history[4]!.content).toBe("Paris is sunny and Oslo is cold.")
    }).pipe(Effect.provide(SimulatorServer.layerServer({ scenarios: [firstRound] }))))

  it.effect("with the simulator's tool scenario: its call ids come back on the results, round after round", () =>
    Effect.gen(function*() {
      const server = yield* SimulatorServer.SimulatorServer
      const weather = Conversation.handler(getWeather, ({ city }) => Effect.succeed(`${city}: 21 °C`))
      const history = yield* Effect.gen(function*() {
        const conversation = yield* Conversation.make({ model: "sim:weather-calls" })
        yield* Stream.runDrain(conversation.sendWithTools("Weather in Paris and Oslo?", { handlers: [weather] }))
        // A second turn: the first one goes along as recorded.
        yield* Stream.runDrain(conversation.sendWithTools("And tomorrow?", { handlers: [weather] }))
        return yield* conversation.messages
      }).pipe(Effect.provide(gatewayOver(server)))

      const wire = yield* wireBodies(server)
      expect(wire).toHaveLength(4)
      for (const [round, body] of wire.entries()) {
        expect(body.tools.map((t: any) => t.function.name)).toEqual(["get_weather"])
        // Every assistant message's calls are answered by tool messages with the same ids, in order.
        const messages = body.messages
        messages.forEach((m: any, i: number) => {
          if (m.role !== "assistant" || m.tool_calls === undefined) return
          const ids = m.tool_calls.map((c: any) => c.id)
          expect(messages.slice(i + 1, i + 1 + ids.length).map((r: any) => [r.role, r.tool_call_id])).toEqual(
            ids.map((id: string) => ["tool", id])
          )
        })
        expect(messages.at(-1).role, `round ${round}`).toBe(round % 2 === 0 ? "user" : "tool")
      }
      // Round 2 answers the calls streamed in round 1.
      const calls = wire[1].messages.at(-3).tool_calls
      expect(calls.map((c: any) => JSON.parse(c.function.arguments).city)).toEqual(["Paris", "Oslo"])
      expect(wire[1].messages.slice(-2).map((m: any) => m.content)).toEqual(["Paris: 21 °C", "Oslo: 21 °C"])
      // The recorded history is what the last request carried, and the answer.
      expect(history.map((m) => m.role)).toEqual([
        "user", "assistant", "tool", "tool", "assistant", "user", "assistant", "tool", "tool", "assistant"
      ])
      expect(wire[3].messages.slice(0, 5).map((m: any) => m.role)).toEqual(["user", "assistant", "tool", "tool", "assistant"])
      expect(wire[3].messages.slice(0, 5).map((m: any) => m.content ?? "")).toEqual(history.slice(0, 5).map((m) => m.content))
      expect(history[4]!.content).toBe("Both cities are mild.")
    }).pipe(Effect.provide(SimulatorServer.layerServer({
      scenarios: [{
        name: "weather-calls",
        toolCalls: [{ name: "get_weather", arguments: { city: "Paris" } }, { name: "get_weather", arguments: { city: "Oslo" } }],
        reply: "Both cities are mild."
      }]
    }))))
})
