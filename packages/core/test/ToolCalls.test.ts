/**
 * Tool calls in core, below the Gateway: assembly of streamed `tool_calls` deltas (any split of
 * the deltas gives the same calls; the official OpenAI SDK's recorded streams decode to the same
 * calls), hostile arguments (typed error parts and bounded memory), redaction of arguments in
 * both directions, the wire body, and the context window keeping a tool call with its results.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { readFileSync } from "node:fs"
import type { ChatMessage } from "../src/Chat.js"
import type { ChatChunk } from "../src/ChatChunk.js"
import * as ContextWindow from "../src/ContextWindow.js"
import * as ReplyAssembler from "../src/internal/replyAssembler.js"
import type { Part, ToolCall, ToolCallDelta, ToolCallError } from "../src/Part.js"
import * as SafetyFilter from "../src/SafetyFilter.js"
import * as Tool from "../src/Tool.js"
import * as Transport from "../src/Transport.js"
import { splitAt } from "./support/bytes.js"

const filter = Effect.runSync(SafetyFilter.make())

/** Feeds `reads` (groups of chunks, one per network read) to a fresh assembler, then closes it. */
const assemble = (
  reads: ReadonlyArray<ReadonlyArray<ChatChunk>>,
  options: { readonly tools?: ReadonlyArray<Tool.AnyTool>; readonly maxReplyChars?: number } = {}
) => {
  const reply = ReplyAssembler.make({
    count: (text) => text.length,
    redactor: Effect.runSync(filter.outputRedactor),
    redact: (text) => filter.redact(text).text,
    maxCompletionTokens: 10_000_000,
    maxReplyChars: options.maxReplyChars ?? 1_000_000,
    tools: options.tools
  })
  const parts: Array<Part> = []
  for (const read of reads) {
    if (reply.stopped() !== undefined) break
    const missing = reply.missing(read)
    if (missing > 0) reply.supply(Array.from({ length: missing }, () => Effect.runSync(filter.outputRedactor)))
    parts.push(...reply.push(read))
  }
  const stopped = reply.stopped()
  const closed = reply.close(stopped !== undefined && stopped !== "cut")
  return { parts: [...parts, ...closed.parts], stopped, finishReason: reply.finishReason() }
}

const calls = (parts: ReadonlyArray<Part>) => parts.filter((p): p is ToolCall => p._tag === "ToolCall")
const errors = (parts: ReadonlyArray<Part>) => parts.filter((p): p is ToolCallError => p._tag === "ToolCallError")
const deltas = (parts: ReadonlyArray<Part>) => parts.filter((p): p is ToolCallDelta => p._tag === "ToolCallDelta")

const chunk = (toolCalls: ReadonlyArray<unknown> | undefined, finish: string | null = null): ChatChunk => ({
  choices: [{ index: 0, delta: toolCalls === undefined ? {} : { tool_calls: toolCalls }, finish_reason: finish }]
})

/** The wire fragments of one call: id, type and name in the first only, the arguments cut at `cuts`. */
const fragments = (index: number, call: { id: string; name: string; args: string }, cuts: ReadonlyArray<number>) => {
  const pieces = splitText(call.args, cuts)
  return pieces.map((piece, i) =>
    i === 0
      ? { index, id: call.id, type: "function", function: { name: call.name, arguments: piece } }
      : { index, function: { arguments: piece } }
  )
}

const splitText = (text: string, cuts: ReadonlyArray<number>): Array<string> => {
  const at = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b)
  const out: Array<string> = []
  let from = 0
  for (const cut of at) {
    out.push(text.slice(from, cut))
    from = cut
  }
  out.push(text.slice(from))
  return out
}

const weather = Tool.make({
  name: "get_weather",
  parameters: Schema.Struct({ city: Schema.String, days: Schema.optional(Schema.Int) })
})

describe("assembling tool calls", () => {
  const jsonObject = FastCheck.dictionary(
    FastCheck.string({ maxLength: 6 }),
    FastCheck.jsonValue({ maxDepth: 3 }),
    { maxKeys: 5 }
  )
  const generated = FastCheck.array(
    FastCheck.record({ name: FastCheck.constantFrom("get_weather", "lookup", "x-1"), value: jsonObject, pretty: FastCheck.boolean() }),
    { minLength: 1, maxLength: 3 }
  )

  it.prop(
    "the calls are the same for any split of the deltas, any interleaving of parallel calls and any grouping into reads",
    [generated, FastCheck.array(FastCheck.nat(400), { maxLength: 30 }), FastCheck.array(FastCheck.nat(5), { maxLength: 60 }), FastCheck.nat()],
    ([specs, cuts, groups, seed]) => {
      const wire = specs.map((s, i) => ({ id: `call_${i}_x`, name: s.name, args: JSON.stringify(s.value, null, s.pretty ? 2 : 0) }))
      const whole = assemble([[...wire.map((call, i) => chunk(fragments(i, call, []))), chunk(undefined, "tool_calls")]])

      // Each call cut at its own points; calls interleaved by the seed, per-call order kept.
      const queues = wire.map((call, i) => fragments(i, call, cuts.map((c) => c * (i + 1))))
      const order: Array<unknown> = []
      let x = seed
      while (queues.some((q) => q.length > 0)) {
        x = (x * 1103515245 + 12345) % 2147483648
        const live = queues.filter((q) => q.length > 0)
        order.push(live[x % live.length]!.shift())
      }
      const chunks = [...order.map((f) => chunk([f])), chunk(undefined, "tool_calls")]
      const reads: Array<Array<ChatChunk>> = []
      let at = 0
      for (const g of groups) {
        if (at >= chunks.length) break
        reads.push(chunks.slice(at, at + g + 1))
        at += g + 1
      }
      if (at < chunks.length) reads.push(chunks.slice(at))
      const split = assemble(reads)

      expect(calls(split.parts)).toEqual(calls(whole.parts))
      expect(errors(split.parts)).toEqual(errors(whole.parts))
      expect(calls(split.parts).map((c) => c.name)).toEqual(wire.map((c) => c.name))
      for (const call of calls(split.parts)) {
        expect(JSON.parse(call.rawArguments)).toEqual(call.arguments)
        // The deltas of a call add up to its arguments' redacted text.
        expect(deltas(split.parts).filter((d) => d.index === call.index).map((d) => d.argumentsDelta).join(""))
          .toBe(filter.redact(wire[call.index]!.args).text)
      }
      expect(split.finishReason).toBe("tool_calls")
    },
    { fastCheck: { numRuns: 200 } }
  )

  it("decodes arguments with the tool's Schema, and reports a mismatch by path without values", () => {
    const good = assemble([[chunk(fragments(0, { id: "c1", name: "get_weather", args: "{\"city\":\"Oslo\",\"days\":3}" }, [5])), chunk(undefined, "tool_calls")]], { tools: [weather] })
    expect(calls(good.parts).map((c) => c.arguments)).toEqual([{ city: "Oslo", days: 3 }])
    const bad = assemble([[chunk(fragments(0, { id: "c1", name: "get_weather", args: "{\"city\":\"Oslo\",\"days\":\"seventeen\"}" }, [])), chunk(undefined, "tool_calls")]], { tools: [weather] })
    expect(errors(bad.parts).map((e) => [e.reason, e.issues])).toEqual([["invalid", ["days: does not match the tool's Schema"]]])
    expect(JSON.stringify(bad.parts.filter((p) => p._tag !== "ToolCallDelta"))).not.toContain("seventeen")
  })

  it("hostile calls end in error parts: not JSON, not an object, too deep, an invalid name, junk entries", () => {
    const one = (args: string, name = "get_weather") =>
      assemble([[chunk(fragments(0, { id: "c1", name, args }, [])), chunk(undefined, "tool_calls")]])
    expect(errors(one("{\"city\": \"Par").parts).map((e) => e.reason)).toEqual(["malformed"])
    expect(errors(one("[1, 2]").parts).map((e) => e.reason)).toEqual(["malformed"])
    expect(errors(one("\"text\"").parts).map((e) => e.reason)).toEqual(["malformed"])
    expect(errors(one("{\"a\":" + "[".repeat(5_000) + "]".repeat(5_000) + "}").parts).map((e) => e.reason)).toEqual(["malformed"])
    expect(errors(one("{}", "rm -rf /").parts).map((e) => [e.reason, e.name])).toEqual([["invalidName", ""]])
    // An empty arguments text is an empty object; no id gets one from the index.
    const bare = assemble([[chunk([{ index: 0, function: { name: "ping" } }]), chunk(undefined, "tool_calls")]])
    expect(calls(bare.parts).map((c) => [c.id, c.arguments, c.rawArguments])).toEqual([["call_0", {}, "{}"]])
    // Entries that are not objects, or have no usable fields, change nothing and throw nothing.
    const junk = assemble([[chunk([null, 7, "x", [], { index: -1 }, { index: 0, id: "c", function: { name: "f", arguments: "{}" } }]), chunk(undefined, "tool_calls")]])
    expect(calls(junk.parts).map((c) => c.name)).toEqual(["f"])
  })

  it("endless arguments and too many calls end in ReplyTooLarge, holding at most the reply limit", () => {
    const endless = Array.from({ length: 2_000 }, (_, i) => [chunk([i === 0 ? { index: 0, id: "c", function: { name: "f", arguments: "{\"a\":\"" } } : { index: 0, function: { arguments: "x".repeat(100) } }])])
    const run = assemble(endless, { maxReplyChars: 10_000 })
    expect(run.stopped).toMatchObject({ _tag: "ReplyTooLarge", limitChars: 10_000 })
    expect(calls(run.parts)).toEqual([])
    expect(deltas(run.parts).reduce((n, d) => n + d.argumentsDelta.length, 0)).toBeLessThanOrEqual(10_000)
    const many = assemble([Array.from({ length: 200 }, (_, i) => chunk([{ index: i, id: `c${i}`, function: { name: "f", arguments: "{}" } }]))])
    expect(many.stopped).toMatchObject({ _tag: "ReplyTooLarge" })
  })

  it("PII in arguments is redacted by value: valid JSON, the phone number as a string", () => {
    const args = JSON.stringify({ to: "jane.doe@example.com", phone: 2125550123, note: "call +44 20 7946 0958" })
    const run = assemble([[chunk(fragments(0, { id: "c", name: "notify", args }, [7, 19, 40])), chunk(undefined, "tool_calls")]])
    expect(calls(run.parts)[0]!.arguments).toEqual({ to: "[EMAIL]", phone: "[PHONE]", note: "call [PHONE]" })
    const text = JSON.stringify(run.parts)
    expect(text).not.toContain("jane.doe")
    expect(text).not.toContain("2125550123")
    expect(text).not.toContain("7946")
  })
})

interface Fixture {
  readonly name: string
  readonly input: { readonly stream: string }
  readonly expected: {
    readonly choices: ReadonlyArray<{
      readonly finish_reason: string
      readonly tool_calls: ReadonlyArray<{ index: number; id: string; name: string; arguments: string }>
    }>
  }
}

const recorded: ReadonlyArray<Fixture> = (JSON.parse(
  readFileSync(new URL("./fixtures/openai-recorded-streams.json", import.meta.url), "utf8")
) as ReadonlyArray<Fixture>).filter((f) => f.expected.choices[0]!.tool_calls.length > 0)

describe("the OpenAI SDK's recorded tool-call streams", () => {
  it("the fixtures hold a single and a parallel tool call", () => {
    expect(recorded.map((f) => f.expected.choices[0]!.tool_calls.length).sort()).toEqual([1, 2])
  })

  for (const fixture of recorded) {
    it.effect(`${fixture.name} decodes to the same calls however the bytes are cut`, () =>
      Effect.gen(function*() {
        const wire = new TextEncoder().encode(fixture.input.stream)
        for (const pieces of [[wire], splitAt(wire, Array.from({ length: wire.length }, (_, i) => i * 37))]) {
          const chunks = yield* Stream.fromIterable(pieces).pipe(Transport.decodeBody(), Stream.runCollect)
          // One network read per piece would be closer to the wire; per chunk is the harshest grouping.
          const run = assemble(Chunk.toReadonlyArray(chunks).map((c) => [c]))
          const expected = fixture.expected.choices[0]!
          expect(run.finishReason).toBe(expected.finish_reason)
          expect(calls(run.parts).map((c) => ({ index: c.index, id: c.id, name: c.name, arguments: c.rawArguments }))).toEqual(
            expected.tool_calls.map(({ arguments: a, id, index, name }) => ({ index, id, name, arguments: a }))
          )
          expect(calls(run.parts).map((c) => c.arguments)).toEqual(expected.tool_calls.map((c) => JSON.parse(c.arguments)))
        }
      }))
  }
})

describe("tool calls on the wire and in the history", () => {
  const history: ReadonlyArray<ChatMessage> = [
    { role: "user", content: "Weather in Oslo?" },
    { role: "assistant", content: "", toolCalls: [{ id: "call_1", name: "get_weather", arguments: "{\"city\":\"Oslo\"}" }] },
    { role: "tool", toolCallId: "call_1", content: "{\"celsius\":4}" }
  ]

  it("the openai body carries tools, tool_choice, tool_calls and tool_call_id", () => {
    const body = Transport.requestBody("openai", {
      model: "gpt-4o",
      system: undefined,
      messages: history,
      temperature: undefined,
      maxTokens: undefined,
      tools: [weather, { name: "plain" }],
      toolChoice: { name: "get_weather" }
    })
    expect(body["tools"]).toEqual([
      { type: "function", function: { name: "get_weather", parameters: weather.parameters } },
      { type: "function", function: { name: "plain", parameters: { type: "object", properties: {} } } }
    ])
    expect(body["tool_choice"]).toEqual({ type: "function", function: { name: "get_weather" } })
    expect(body["messages"]).toEqual([
      { role: "user", content: "Weather in Oslo?" },
      { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: "{\"city\":\"Oslo\"}" } }] },
      { role: "tool", content: "{\"celsius\":4}", tool_call_id: "call_1" }
    ])
    expect(weather.parameters["$schema"]).toBeUndefined()
    expect(weather.parameters["type"]).toBe("object")
    expect(Transport.unsupportedBy("gateway", { messages: history })).toContain("gateway profile")
    expect(Transport.unsupportedBy("openai", { messages: history, tools: [weather] })).toBeUndefined()
  })

  it.effect("the input guard redacts outgoing arguments by value and keeps them valid JSON", () =>
    Effect.gen(function*() {
      const guarded = yield* filter.guardInput({
        system: undefined,
        messages: [
          { role: "user", content: "Text Jane" },
          {
            role: "assistant",
            content: "",
            toolCalls: [{ id: "c", name: "sms", arguments: JSON.stringify({ to: 2125550123, body: "mail jane.doe@example.com" }) }]
          },
          { role: "tool", toolCallId: "c", content: "sent to jane.doe@example.com" }
        ]
      })
      const call = guarded.messages[1]!.toolCalls![0]!
      expect(JSON.parse(call.arguments)).toEqual({ to: "[PHONE]", body: "mail [EMAIL]" })
      expect(guarded.messages[2]!.content).toBe("sent to [EMAIL]")
      expect(guarded.redactions).toEqual(expect.arrayContaining([{ kind: "email", count: 2 }, { kind: "phone", count: 1 }]))
    }))
})

describe("the context window keeps a tool call with its results", () => {
  const MODEL = "tools-model"
  const service = ContextWindow.make({ models: { [MODEL]: { contextWindow: 2_000, maxOutputTokens: 100, encoding: "o200k_base" } } })

  /** A conversation of turns: a question, maybe an assistant calling tools and their results, maybe an answer. */
  const turn = FastCheck.record({
    question: FastCheck.lorem({ maxCount: 30 }),
    calls: FastCheck.array(FastCheck.lorem({ maxCount: 20 }), { maxLength: 3 }),
    answer: FastCheck.option(FastCheck.lorem({ maxCount: 30 }), { nil: undefined })
  })
  const conversation = FastCheck.array(turn, { minLength: 1, maxLength: 8 }).map((turns) => {
    const messages: Array<ChatMessage> = []
    turns.forEach((t, i) => {
      messages.push({ role: "user", content: t.question })
      if (t.calls.length > 0) {
        const ids = t.calls.map((_, k) => `call_${i}_${k}`)
        messages.push({
          role: "assistant",
          content: "",
          toolCalls: t.calls.map((args, k) => ({ id: ids[k]!, name: "lookup", arguments: JSON.stringify({ q: args }) }))
        })
        t.calls.forEach((result, k) => messages.push({ role: "tool", toolCallId: ids[k]!, content: result }))
      }
      if (t.answer !== undefined) messages.push({ role: "assistant", content: t.answer })
    })
    return messages
  })

  it.effect.prop(
    "fit never separates a tool call from its results, and counts tool calls",
    [conversation, FastCheck.integer({ min: 1_300, max: 1_990 })],
    ([messages, reserveForReply]) =>
      Effect.gen(function*() {
        const cw = yield* service
        const result = yield* Effect.either(cw.fit({ model: MODEL, system: undefined, messages, reserveForReply }))
        if (result._tag === "Left") return
        const kept = result.right.messages
        expect(result.right.promptTokens).toBe(yield* cw.countPrompt(MODEL, undefined, kept))
        for (let i = 0; i < kept.length; i++) {
          const m = kept[i]!
          if (m.toolCalls !== undefined) {
            // Every call is answered by the tool messages right after it.
            const answered = kept.slice(i + 1, i + 1 + m.toolCalls.length).map((r) => r.toolCallId)
            expect(answered).toEqual(m.toolCalls.map((c) => c.id))
          }
          if (m.role === "tool") {
            const caller = kept.slice(0, i).reverse().find((c) => c.role !== "tool")
            expect(caller?.toolCalls?.map((c) => c.id)).toContain(m.toolCallId)
          }
        }
      }),
    { fastCheck: { numRuns: 150 } }
  )

  it.effect("a tool call's arguments and the tool definitions cost prompt tokens", () =>
    Effect.gen(function*() {
      const cw = yield* service
      const bare: ChatMessage = { role: "assistant", content: "" }
      const calling: ChatMessage = { ...bare, toolCalls: [{ id: "c", name: "lookup", arguments: JSON.stringify({ q: "a long query ".repeat(20) }) }] }
      expect(yield* cw.countPrompt(MODEL, undefined, [calling])).toBeGreaterThan((yield* cw.countPrompt(MODEL, undefined, [bare])) + 40)
      const messages: ReadonlyArray<ChatMessage> = [{ role: "user", content: "hi" }]
      const without = yield* cw.fit({ model: MODEL, system: undefined, messages, reserveForReply: 0 })
      const withTools = yield* cw.fit({ model: MODEL, system: undefined, messages, reserveForReply: 0, tools: [weather] })
      expect(withTools.promptTokens).toBeGreaterThan(without.promptTokens + 10)
    }))
})
