/**
 * The Gateway's reply limits with an in-process transport (one concern replaced): where a reply
 * is cut, what is counted, what reaches the caller, and that the transport is released.
 * The same limits over real sockets: `simulator/test/GatewayHardening.test.ts`.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as AuditLog from "../src/AuditLog.js"
import type { ChatChunk } from "../src/ChatChunk.js"
import * as ContextWindow from "../src/ContextWindow.js"
import * as CostMeter from "../src/CostMeter.js"
import * as Gateway from "../src/Gateway.js"
import { StreamTruncated, type TransportError } from "../src/GatewayError.js"
import type { Part } from "../src/Part.js"
import * as ResponseCache from "../src/ResponseCache.js"
import * as SafetyFilter from "../src/SafetyFilter.js"
import { GatewayTransport } from "../src/Transport.js"

/** A transport playing `body` for every call, counting calls and how many were released. */
const transportOf = (body: () => Stream.Stream<ChatChunk, TransportError>) => {
  const counts = { calls: 0, released: 0 }
  const layer = Layer.succeed(GatewayTransport, {
    stream: () =>
      Stream.suspend(() => {
        counts.calls++
        return body()
      }).pipe(Stream.ensuring(Effect.sync(() => void counts.released++)))
  })
  return { counts, layer }
}

const content = (text: string, index = 0): ChatChunk => ({ choices: [{ index, delta: { content: text } }] })

const endless = (text: string, index = 0) => Stream.repeatValue(content(text, index))

const gatewayWith = (transport: Layer.Layer<GatewayTransport>, options: Gateway.Options = {}) =>
  Gateway.layer(options).pipe(
    Layer.provideMerge(Layer.mergeAll(
      SafetyFilter.layerDefault,
      ContextWindow.layer(),
      ResponseCache.layerMemory({ capacity: 10, timeToLive: "1 hour" }),
      CostMeter.layerMemory({ budgetUsd: 1 }),
      AuditLog.layerMemory
    )),
    Layer.provide(transport)
  )

const run = (request: Parameters<typeof Gateway.stream>[0]) =>
  Effect.gen(function*() {
    const parts: Array<Part> = []
    const exit = yield* Gateway.stream(request).pipe(
      Stream.runForEach((part) => Effect.sync(() => void parts.push(part))),
      Effect.exit
    )
    const text = parts.flatMap((p) => (p._tag === "TextDelta" ? [p.text] : [])).join("")
    const entries = yield* Effect.flatMap(AuditLog.MemoryAuditLog, (log) => log.entries)
    return { exit, parts, text, entries }
  })

const ask = (extra: Record<string, unknown> = {}) => ({
  model: "gpt-4o-mini",
  messages: [{ role: "user" as const, content: "Talk." }],
  ...extra
})

describe("Gateway reply limits", () => {
  it.effect("ends a reply at exactly the reserved completion tokens with finish reason length", () => {
    const transport = transportOf(() => endless(" word"))
    return Effect.gen(function*() {
      const { entries, exit, parts, text } = yield* run(ask({ maxTokens: 10 }))
      expect(Exit.isSuccess(exit)).toBe(true)
      const finish = parts.at(-1)
      expect(finish).toMatchObject({ _tag: "Finish", reason: "length", usageSource: "tokenizer" })
      expect(text).toBe(" word".repeat(10))
      expect(finish?._tag === "Finish" && finish.usage.completionTokens).toBe(10)
      expect(transport.counts).toEqual({ calls: 1, released: 1 })
      expect(entries).toHaveLength(1)
      expect(entries[0]).toMatchObject({ outcome: "success", finishReason: "length" })
      // A reply the client cut is not stored: the same request goes upstream again.
      yield* run(ask({ maxTokens: 10 }))
      expect(transport.counts.calls).toBe(2)
    }).pipe(Effect.provide(gatewayWith(transport.layer)))
  })

  it.effect("counts a long reply in slices as it streams, the same as counting it whole", () => {
    const words = Array.from({ length: 3_000 }, (_, i) => ` w${i % 97} and, then`)
    const transport = transportOf(() =>
      Stream.fromIterable([...words.map((w) => content(w)), { choices: [{ index: 0, delta: {}, finish_reason: "stop" }] }])
    )
    return Effect.gen(function*() {
      const { parts, text } = yield* run(ask())
      const whole = yield* Effect.flatMap(ContextWindow.ContextWindow, (cw) => cw.countText("gpt-4o-mini", words.join("")))
      const finish = parts.at(-1)
      expect(text).toBe(words.join(""))
      expect(finish?._tag === "Finish" && finish.usage.completionTokens).toBe(whole)
    }).pipe(Effect.provide(gatewayWith(transport.layer)))
  })

  it.effect("text, refusal and alternatives together are bounded by maxReplyChars: ReplyTooLarge, partial", () =>
    Effect.forEach([endless("abcdefghij"), endless("abcdefghij", 1), Stream.repeatValue<ChatChunk>({ choices: [{ index: 0, delta: { refusal: "no " } }] })], (body) => {
      const transport = transportOf(() => body)
      return Effect.gen(function*() {
        const { entries, exit, text } = yield* run(ask())
        const error = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
        expect(Option.getOrUndefined(error)).toMatchObject({ _tag: "ReplyTooLarge", partial: true, limitChars: 1_000 })
        expect(text.length).toBeLessThanOrEqual(1_000)
        expect(transport.counts).toEqual({ calls: 1, released: 1 })
        expect(entries).toHaveLength(1)
        expect(entries[0]).toMatchObject({ outcome: "failure", errorTag: "ReplyTooLarge" })
        const summary = yield* Effect.flatMap(CostMeter.CostMeter, (m) => m.summary)
        expect(summary).toMatchObject({ requests: 1, reservedUsd: 0 })
        expect(summary.completionTokens).toBeGreaterThan(0)
      }).pipe(Effect.provide(gatewayWith(transport.layer, { maxReplyChars: 1_000 })))
    }, { discard: true }))

  it.effect("a failure withholds the redactor's tail (a half address) and accounts for it", () => {
    const transport = transportOf(() =>
      Stream.concat(
        Stream.fromIterable([content("Mail "), content("ann.lee@examp")]),
        Stream.fail(new StreamTruncated({ partial: true }))
      )
    )
    return Effect.gen(function*() {
      const { entries, exit, parts, text } = yield* run(ask())
      expect(Exit.isFailure(exit)).toBe(true)
      expect(text).toBe("Mail ")
      expect(parts.at(-1)).toMatchObject({
        _tag: "RedactionNotice",
        direction: "output",
        redactions: [{ kind: "withheld", count: "ann.lee@examp".length }]
      })
      expect(JSON.stringify([parts, entries])).not.toContain("ann.lee")
      expect(entries[0]).toMatchObject({ outcome: "failure", outputRedactions: [{ kind: "withheld", count: 13 }] })
    }).pipe(Effect.provide(gatewayWith(transport.layer)))
  })

  it.effect("a usage report that is no real count falls back to the tokenizer", () => {
    const transport = transportOf(() =>
      Stream.fromIterable<ChatChunk>([
        content("Hello there"),
        { choices: [{ index: 0, delta: {}, finish_reason: "stop" }] },
        { choices: [], usage: { prompt_tokens: 1, completion_tokens: 2 ** 60, total_tokens: 2 ** 60 } }
      ])
    )
    return Effect.gen(function*() {
      const { parts } = yield* run(ask())
      expect(parts.at(-1)).toMatchObject({ _tag: "Finish", usageSource: "tokenizer", usage: { completionTokens: 2 } })
    }).pipe(Effect.provide(gatewayWith(transport.layer)))
  })

  it.effect("maxReplyChars outside 1 to 1e9 is refused at start-up", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Layer.build(gatewayWith(transportOf(() => Stream.empty).layer, { maxReplyChars: 0 })))
      expect(Exit.isFailure(exit) && Cause.pretty(exit.cause)).toContain("maxReplyChars")
    }).pipe(Effect.scoped))
})
