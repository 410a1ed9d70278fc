import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as AuditLog from "../src/AuditLog.js"
import type { OutboundRequest } from "../src/Chat.js"
import type { ChatChunk } from "../src/ChatChunk.js"
import * as ContextWindow from "../src/ContextWindow.js"
import * as Conversation from "../src/Conversation.js"
import * as CostMeter from "../src/CostMeter.js"
import * as Gateway from "../src/Gateway.js"
import { ConnectionError, type TransportError } from "../src/GatewayError.js"
import type { Part } from "../src/Part.js"
import * as ResponseCache from "../src/ResponseCache.js"
import * as SafetyFilter from "../src/SafetyFilter.js"
import { GatewayTransport } from "../src/Transport.js"

const EMAIL = "jane.doe@example.com"

const replyChunks = (tokens: ReadonlyArray<string>): Array<ChatChunk> => [
  ...tokens.map((content) => ({ choices: [{ index: 0, delta: { content } }] })),
  { choices: [{ index: 0, delta: {}, finish_reason: "stop" }] }
]

/** A transport that answers with `reply(request)` and records every request. */
const scripted = (reply: (request: OutboundRequest) => Stream.Stream<ChatChunk, TransportError>) => {
  const calls: Array<OutboundRequest> = []
  const layer = Layer.succeed(GatewayTransport, {
    stream: (request) =>
      Stream.suspend(() => {
        calls.push(request)
        return reply(request)
      })
  })
  return { calls, layer }
}

/** A small window (2,000 tokens, 500 for the reply) so a few turns need trimming. */
const small = { "tiny-model": { contextWindow: 2_000, maxOutputTokens: 500, encoding: "o200k_base" as const } }

const gatewayWith = (transport: Layer.Layer<GatewayTransport>) =>
  Gateway.layer().pipe(
    Layer.provideMerge(Layer.mergeAll(
      SafetyFilter.layerDefault,
      ContextWindow.layer({ models: small }),
      ResponseCache.layerMemory({ capacity: 100, timeToLive: "1 hour" }),
      CostMeter.layerMemory({}),
      AuditLog.layerMemory
    )),
    Layer.provide(transport)
  )

/** Echoes the newest user message back. */
const makeEcho = () =>
  scripted((request) => {
    const last = request.messages[request.messages.length - 1]!
    return Stream.fromIterable(replyChunks(["You said: ", last.content]))
  })

const run = (conversation: Conversation.Conversation, input: Conversation.Input, options?: Conversation.SendOptions) =>
  Stream.runCollect(conversation.send(input, options)).pipe(Effect.map(Chunk.toArray))

const textOf = (parts: ReadonlyArray<Part>) => parts.flatMap((p) => (p._tag === "TextDelta" ? [p.text] : [])).join("")

describe("Conversation", () => {
  it.effect("appends each clean turn as sent: the user text and the reply redacted", () => {
    const echo = makeEcho()
    return Effect.gen(function*() {
      const conversation = yield* Conversation.make({ model: "gpt-4o-mini", system: "Be brief.", id: "c-1" })
      const parts = yield* run(conversation, `Mail me at ${EMAIL}`)
      expect(textOf(parts)).toBe("You said: Mail me at [EMAIL]")
      yield* run(conversation, { template: "And $what?", variables: { what: "tomorrow" } })
      const messages = yield* conversation.messages
      expect(messages).toEqual([
        { role: "user", content: "Mail me at [EMAIL]" },
        { role: "assistant", content: "You said: Mail me at [EMAIL]" },
        { role: "user", content: "And tomorrow?" },
        { role: "assistant", content: "You said: And tomorrow?" }
      ])
      // The second request carried the first turn as recorded.
      expect(echo.calls[1]!.messages.slice(0, 2)).toEqual(messages.slice(0, 2))
      expect(echo.calls[1]!.system).toBe("Be brief.")
      expect(JSON.stringify(yield* conversation.data)).not.toContain(EMAIL)
      expect((yield* conversation.data).id).toBe("c-1")
    }).pipe(Effect.provide(gatewayWith(echo.layer)))
  })

  it.effect("a failed or interrupted send leaves the history as it was", () => {
    let fail = false
    const transport = scripted((request) =>
      fail
        ? Stream.concat(
          Stream.fromIterable(replyChunks(["partial"]).slice(0, 1)),
          Stream.fail(new ConnectionError({ reason: "reset", partial: true }))
        )
        : Stream.fromIterable(replyChunks(["ok ", request.messages[request.messages.length - 1]!.content]))
    )
    return Effect.gen(function*() {
      const conversation = yield* Conversation.make({ model: "gpt-4o-mini" })
      yield* run(conversation, "one")
      fail = true
      const failed = yield* Effect.exit(run(conversation, "two"))
      expect(Exit.isFailure(failed)).toBe(true)
      fail = false
      // A consumer that stops before Finish: the turn is not recorded.
      yield* conversation.send("three").pipe(Stream.take(1), Stream.runDrain)
      yield* run(conversation, "four")
      expect((yield* conversation.messages).map((m) => m.content)).toEqual(["one", "ok one", "four", "ok four"])
    }).pipe(Effect.provide(gatewayWith(transport.layer)))
  })

  it.effect("concurrent sends run one after the other, each seeing the turn before it", () => {
    const transport = scripted((request) =>
      Stream.fromIterable(replyChunks([`after ${request.messages.length - 1} messages`]))
    )
    return Effect.gen(function*() {
      const conversation = yield* Conversation.make({ model: "gpt-4o-mini" })
      const started = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      // The first send holds the conversation, mid-reply, until the gate opens.
      const first = yield* conversation.send("first").pipe(
        Stream.tap(() => Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(gate))),
        Stream.runDrain,
        Effect.fork
      )
      yield* Deferred.await(started)
      const second = yield* Effect.fork(Stream.runDrain(conversation.send("second")))
      yield* Effect.repeatN(Effect.yieldNow(), 20)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(first)
      yield* Fiber.join(second)
      expect((yield* conversation.messages).map((m) => m.content)).toEqual([
        "first",
        "after 0 messages",
        "second",
        "after 2 messages"
      ])
    }).pipe(Effect.provide(gatewayWith(transport.layer)))
  })

  it.effect("a send waiting for the conversation can be interrupted, and the conversation stays usable", () => {
    const transport = scripted((request) => Stream.fromIterable(replyChunks([`after ${request.messages.length - 1}`])))
    return Effect.gen(function*() {
      const conversation = yield* Conversation.make({ model: "gpt-4o-mini" })
      const started = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      const first = yield* conversation.send("first").pipe(
        Stream.tap(() => Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(gate))),
        Stream.runDrain,
        Effect.fork
      )
      yield* Deferred.await(started)
      const waiting = yield* Effect.fork(Stream.runDrain(conversation.send("never sent")))
      yield* Effect.repeatN(Effect.yieldNow(), 20)
      yield* Fiber.interrupt(waiting)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(first)
      yield* Stream.runDrain(conversation.send("third"))
      expect((yield* conversation.messages).map((m) => m.content)).toEqual(["first", "after 0", "third", "after 2"])
      expect(transport.calls).toHaveLength(2)
    }).pipe(Effect.provide(gatewayWith(transport.layer)))
  })

  it.effect("leaves out the oldest whole turns that do not fit, reports them, keeps them in the history", () => {
    const echo = makeEcho()
    const long = (i: number) => `Turn ${i}: ` + "lorem ipsum dolor sit amet ".repeat(20)
    return Effect.gen(function*() {
      const conversation = yield* Conversation.make({ model: "tiny-model", system: "Be brief." })
      const trims: Array<number> = []
      for (let i = 0; i < 12; i++) {
        const parts = yield* run(conversation, long(i))
        for (const p of parts) if (p._tag === "ContextTrimmed") trims.push(p.droppedMessages)
      }
      const history = yield* conversation.messages
      expect(history).toHaveLength(24)
      // Later turns dropped earlier ones, reported every time, whole turns only.
      expect(trims.length).toBeGreaterThan(0)
      expect(trims.every((n) => n % 2 === 0)).toBe(true)
      const sent = echo.calls[echo.calls.length - 1]!
      const dropped = trims[trims.length - 1]!
      expect(sent.messages).toEqual([...history.slice(dropped, 22), { role: "user", content: long(11) }])
      const contextWindow = yield* ContextWindow.ContextWindow
      expect(yield* contextWindow.countPrompt("tiny-model", "Be brief.", sent.messages)).toBeLessThanOrEqual(1_500)
      // One more turn would not have fitted.
      expect(yield* contextWindow.countPrompt("tiny-model", "Be brief.", [...history.slice(dropped - 2, 22), sent.messages.at(-1)!]))
        .toBeGreaterThan(1_500)
    }).pipe(Effect.provide(gatewayWith(echo.layer)))
  })

  it.effect("counts incrementally: tokens equals a full count of the history", () =>
    Effect.gen(function*() {
      const conversation = yield* Conversation.make({ model: "gpt-4o-mini", system: "Be brief." })
      for (const text of ["Hello there, how are you doing today?", "Short", "Ünïcödé 東京 🙂"]) {
        yield* run(conversation, text)
        const contextWindow = yield* ContextWindow.ContextWindow
        const full = yield* contextWindow.countPrompt("gpt-4o-mini", "Be brief.", yield* conversation.messages)
        expect(yield* conversation.tokens()).toBe(full)
      }
    }).pipe(Effect.provide(gatewayWith(makeEcho().layer))))

  it.effect("rejects invalid options with InvalidRequest naming the field", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Conversation.make({ model: "gpt-4o-mini", id: "" }))
      expect(error._tag).toBe("InvalidRequest")
      expect(error.issues.join()).toMatch(/^id: /)
      const bad = yield* Effect.flip(Conversation.make({ model: "no spaces allowed" }))
      expect(bad.issues.join()).toMatch(/^model: /)
      const system = yield* Effect.flip(Conversation.make({ model: "gpt-4o-mini", messages: [{ role: "system", content: "x" }] }))
      expect(system.issues.join()).toMatch(/^messages\.0\.role: /)
    }).pipe(Effect.provide(gatewayWith(makeEcho().layer))))

  it("firstSent picks the oldest whole turn that fits", () => {
    // costs 10, 20, 30, 40 → prefix 0, 10, 30, 60, 100; user messages at 0 and 2
    const prefix = [0, 10, 30, 60, 100]
    expect(Conversation.firstSent(prefix, [0, 2], 4, 100)).toBe(0)
    expect(Conversation.firstSent(prefix, [0, 2], 4, 70)).toBe(2)
    expect(Conversation.firstSent(prefix, [0, 2], 4, 69)).toBe(4)
    expect(Conversation.firstSent([0], [], 0, 0)).toBe(0)
  })
})
