/**
 * Core's Conversation over the whole Gateway and the in-process simulator (openai profile),
 * with faults injected per send by the scenario its model names, and tool loops whose handler
 * answers or fails after the first round: for any sequence of sends, the history is exactly the
 * sequence of clean turns, as sent (redacted).
 */
import { describe, expect, it } from "@effect/vitest"
import { AuditLog, ContextWindow, Conversation, CostMeter, Gateway, ResponseCache, SafetyFilter, Tool } from "@llm-gateway/core"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import type * as Scenario from "../src/Scenario.js"
import * as SimulatorApp from "../src/SimulatorApp.js"
import * as SimulatorLayer from "../src/SimulatorLayer.js"

const EMAIL = "sam.fault@example.com"

/** Every scenario echoes the newest user message ("You said: …"), some with a fault. */
const scenarios: ReadonlyArray<Scenario.Scenario> = [
  { name: "unavailable", attempts: [{ status: 503, times: 1_000 }] },
  { name: "retried", attempts: [{ status: 503 }] },
  { name: "bad-request", attempts: [{ status: 400, times: 1_000 }] },
  { name: "drop", faults: { dropAfter: 2 } },
  { name: "error-mid", faults: { errorAfter: { tokens: 1 } } },
  { name: "truncated", faults: { endAfter: 1 } },
  { name: "malformed", faults: { malformedAfter: 1 } },
  { name: "stall", faults: { stallAfter: 1 } },
  { name: "lookup-tools", toolCalls: [{ name: "lookup", arguments: { q: "x" } }], reply: "Found it." }
]

const lookup = Tool.make({ name: "lookup", parameters: Schema.Struct({ q: Schema.String }) })

class LookupFailed extends Schema.TaggedError<LookupFailed>()("LookupFailed", {}) {}

/**
 * What happens to one send: a scenario, a consumer that stops after the first part, an
 * interrupt mid-reply, or a tool loop whose handler answers (`tools`) or fails in round 2.
 */
type Fate =
  | "clean"
  | "template"
  | "retried"
  | "unavailable"
  | "bad-request"
  | "drop"
  | "error-mid"
  | "truncated"
  | "malformed"
  | "stall"
  | "stop-early"
  | "interrupt"
  | "tools"
  | "tool-fails"
const cleanFates: ReadonlyArray<Fate> = ["clean", "template", "retried", "tools"]

const layer = Gateway.layer({ profile: "openai" }).pipe(
  Layer.provideMerge(Layer.mergeAll(
    SafetyFilter.layerDefault,
    ContextWindow.layer(),
    ResponseCache.layerMemory({ capacity: 100, timeToLive: "1 hour" }),
    CostMeter.layerMemory({}),
    AuditLog.layerMemory
  )),
  Layer.provideMerge(SimulatorLayer.layer({
    profile: "openai",
    scenarios,
    transport: {
      retry: { initialDelay: "10 millis", maxDelay: "20 millis", maxAttempts: 2, deadline: "1 minute" },
      timeouts: { handshake: "5 seconds", firstToken: "5 seconds", idle: "5 seconds", total: "1 minute" }
    }
  }))
)

const word = FastCheck.constantFrom("alpha", "beta", "gamma", "delta", "order", "#4411", EMAIL)
const send = FastCheck.record({
  words: FastCheck.array(word, { minLength: 1, maxLength: 6 }),
  fate: FastCheck.constantFrom<Fate>(
    "clean", "template", "retried", "unavailable", "bad-request", "drop", "error-mid", "truncated", "malformed", "stall",
    "stop-early", "interrupt", "tools", "tool-fails"
  )
})

/** Runs one send to its end, moving the TestClock past every retry pause and timeout. */
const runSend = (conversation: Conversation.Conversation, text: string, fate: Fate) =>
  Effect.gen(function*() {
    const model = fate === "clean" || fate === "template" || fate === "stop-early"
      ? "sim:echo"
      : fate === "interrupt"
      ? "sim:stall"
      : `sim:${fate}`
    const input: Conversation.Input = fate === "template" ? { template: "$text", variables: { text } } : text
    const handler = Conversation.handler(lookup, () => fate === "tools" ? Effect.succeed("result") : Effect.fail(new LookupFailed()))
    const stream = fate === "tools" || fate === "tool-fails"
      ? conversation.sendWithTools(input, { model: "sim:lookup-tools", cache: false, handlers: [handler] })
      : conversation.send(input, { model, cache: false })
    const simulator = yield* SimulatorApp.Simulator
    const before = yield* simulator.countRequests()
    const fiber = yield* Effect.fork(Stream.runDrain(fate === "stop-early" ? Stream.take(stream, 1) : stream))
    if (fate === "interrupt") {
      // Interrupted once the request reached the server, mid-reply.
      while ((yield* simulator.countRequests()) === before) yield* Effect.yieldNow()
      yield* Fiber.interrupt(fiber)
      return yield* Fiber.await(fiber)
    }
    yield* TestClock.adjust("10 minutes")
    return yield* Fiber.await(fiber)
  })

describe("Conversation under faults (in-process simulator, openai profile)", () => {
  it.effect.prop(
    "the history equals the sequence of clean turns, as sent",
    [FastCheck.array(send, { minLength: 1, maxLength: 7 })],
    ([sends]) =>
      Effect.gen(function*() {
        const conversation = yield* Conversation.make({ model: "sim:echo", system: "Be brief." })
        const expected: Array<Record<string, unknown>> = []
        for (const { fate, words } of sends) {
          const text = words.join(" ")
          const exit = yield* runSend(conversation, text, fate)
          const asSent = text.replaceAll(EMAIL, "[EMAIL]")
          if (fate === "tools") {
            expect(Exit.isSuccess(exit)).toBe(true)
            expected.push(
              { role: "user", content: asSent },
              {
                role: "assistant",
                content: "",
                toolCalls: [{ id: expect.any(String), name: "lookup", arguments: expect.stringMatching(/"q"\s*:\s*"x"/) }]
              },
              { role: "tool", toolCallId: expect.any(String), content: "result" },
              { role: "assistant", content: "Found it." }
            )
          } else if (cleanFates.includes(fate)) {
            expect(Exit.isSuccess(exit)).toBe(true)
            expected.push({ role: "user", content: asSent }, { role: "assistant", content: `You said: ${asSent}` })
          } else if (fate !== "stop-early") {
            expect(Exit.isSuccess(exit)).toBe(false)
          }
          const history = yield* conversation.messages
          expect(history).toEqual(expected)
          // Every tool result answers the call before it.
          history.forEach((m, i) => {
            if (m.role === "tool") expect(m.toolCallId).toBe(history[i - 1]!.toolCalls![0]!.id)
          })
        }
        expect(JSON.stringify(yield* conversation.data)).not.toContain(EMAIL)
      }).pipe(Effect.provide(layer)),
    { fastCheck: { numRuns: 25 } }
  )
})
