/**
 * The gateway as a composition of stages: composed without a cache and without a meter (their
 * Tags are not required), with a user stage inserted, with the model fallback, and the dry run.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { pipe } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as AuditLog from "../src/AuditLog.js"
import type { ChatRequestInput, OutboundRequest } from "../src/Chat.js"
import type { ChatChunk } from "../src/ChatChunk.js"
import * as ContextWindow from "../src/ContextWindow.js"
import * as CostMeter from "../src/CostMeter.js"
import * as Gateway from "../src/Gateway.js"
import { ConnectionError, type TransportError, UpstreamError } from "../src/GatewayError.js"
import { type Part, TextDelta } from "../src/Part.js"
import * as ResponseCache from "../src/ResponseCache.js"
import * as SafetyFilter from "../src/SafetyFilter.js"
import * as Stage from "../src/Stage.js"
import { GatewayTransport } from "../src/Transport.js"

const reply = (text: string): Array<ChatChunk> => [
  { choices: [{ index: 0, delta: { content: text } }] },
  { choices: [{ index: 0, delta: {}, finish_reason: "stop" }] },
  { choices: [], usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 } }
]

/** A transport that answers with `script(request)`, recording every request it was sent. */
const transportOf = (script: (request: OutboundRequest) => Stream.Stream<ChatChunk, TransportError>) => {
  const calls: Array<OutboundRequest> = []
  const layer = Layer.succeed(GatewayTransport, {
    stream: (request) =>
      Stream.suspend(() => {
        calls.push(request)
        return script(request)
      })
  })
  return { calls, layer }
}

const ask = (content: string, extra: Partial<ChatRequestInput> = {}): ChatRequestInput => ({
  model: "gpt-4o-mini",
  messages: [{ role: "user", content }],
  ...extra
})

const auditEntries = Effect.flatMap(AuditLog.MemoryAuditLog, (log) => log.entries)

describe("Gateway stages", () => {
  it.effect("a gateway without a cache and without a meter requires neither Tag", () => {
    const transport = transportOf(() => Stream.fromIterable(reply("Hola")))
    // The type is the proof: neither ResponseCache nor CostMeter is among the requirements.
    const gateway: Layer.Layer<
      Gateway.Gateway,
      never,
      GatewayTransport | SafetyFilter.SafetyFilter | ContextWindow.ContextWindow | AuditLog.AuditLog
    > = Gateway.layerWith(Stage.upstreamUnmetered())
    return Effect.gen(function*() {
      const first = yield* Gateway.complete(ask("hi"))
      const second = yield* Gateway.complete(ask("hi"))
      expect([first.text, second.text]).toEqual(["Hola", "Hola"])
      // No cache: both went upstream. No meter: nothing priced.
      expect(transport.calls).toHaveLength(2)
      expect(second.cached).toBe(false)
      expect(first.cost.totalUsd).toBe(0)
      expect(yield* auditEntries).toHaveLength(2)
    }).pipe(
      Effect.provide(
        gateway.pipe(
          Layer.provideMerge(Layer.mergeAll(SafetyFilter.layerDefault, ContextWindow.layer(), AuditLog.layerMemory)),
          Layer.provide(transport.layer)
        )
      )
    )
  })

  it.effect("a user stage inserted inside the cache shapes what is stored and replayed", () => {
    const transport = transportOf(() => Stream.fromIterable(reply("hola mundo")))
    let seen = 0
    // Output moderation as a stage: upper-cases the text, counts the requests it handled.
    const shout: Stage.Stage = (next) => (request) =>
      Stream.suspend(() => {
        seen++
        return next(request).pipe(
          Stream.map((part): Part => part._tag === "TextDelta" ? new TextDelta({ text: part.text.toUpperCase() }) : part)
        )
      })
    const gateway = Gateway.layerWith(
      Effect.gen(function*() {
        return pipe(yield* Stage.upstream(), shout, yield* Stage.cache)
      })
    )
    return Effect.gen(function*() {
      const first = yield* Gateway.complete(ask("hi"))
      const replayed = yield* Gateway.complete(ask("hi"))
      expect(first.text).toBe("HOLA MUNDO")
      expect(replayed).toMatchObject({ text: "HOLA MUNDO", cached: true })
      // The replay came from the cache, outside the user stage.
      expect(seen).toBe(1)
      expect(transport.calls).toHaveLength(1)
      expect((yield* auditEntries).map((e) => e.cached)).toEqual([false, true])
    }).pipe(
      Effect.provide(
        gateway.pipe(
          Layer.provideMerge(Layer.mergeAll(
            SafetyFilter.layerDefault,
            ContextWindow.layer(),
            ResponseCache.layerMemory({ capacity: 10, timeToLive: "1 hour" }),
            CostMeter.layerMemory(),
            AuditLog.layerMemory
          )),
          Layer.provide(transport.layer)
        )
      )
    )
  })

  it.effect("model fallback: a 503 before the reply moves to the next model; budget and audit name it", () => {
    const transport = transportOf((request) =>
      request.model === "gpt-4o"
        ? Stream.fail(new UpstreamError({ status: 503, partial: false }))
        : request.model === "gpt-4.1"
        ? Stream.concat(Stream.fromIterable(reply("Half an ans").slice(0, 1)), Stream.fail(new ConnectionError({ reason: "reset", partial: true })))
        : Stream.fromIterable(reply(`answered by ${request.model}`))
    )
    const gateway = Gateway.layerWith(
      Effect.gen(function*() {
        return pipe(yield* Stage.upstream(), yield* Stage.modelFallback(["gpt-4o-mini"]))
      })
    )
    return Effect.gen(function*() {
      const parts = yield* Stream.runCollect(Gateway.stream(ask("hi", { model: "gpt-4o" })))
      const finish = [...parts].at(-1)
      expect(finish).toMatchObject({ _tag: "Finish", model: "gpt-4o-mini" })
      expect(transport.calls.map((c) => c.model)).toEqual(["gpt-4o", "gpt-4o-mini"])
      const [entry] = yield* auditEntries
      expect(entry).toMatchObject({ model: "gpt-4o-mini", outcome: "success" })
      // The failed attempt released its hold; the answer was billed at gpt-4o-mini's price.
      const meter = yield* CostMeter.CostMeter
      const summary = yield* meter.summary
      expect(summary.reservedUsd).toBe(0)
      expect(summary.totalUsd).toBeCloseTo(
        meter.price("gpt-4o-mini", { promptTokens: 5, completionTokens: 2, totalTokens: 7 }).totalUsd,
        12
      )
      // A failure after the reply started is final: no second model.
      const broken = yield* Effect.flip(Gateway.complete(ask("hi", { model: "gpt-4.1" })))
      expect(broken).toMatchObject({ _tag: "ConnectionError", partial: true })
      expect(transport.calls.map((c) => c.model)).toEqual(["gpt-4o", "gpt-4o-mini", "gpt-4.1"])
    }).pipe(
      Effect.provide(
        gateway.pipe(
          Layer.provideMerge(Layer.mergeAll(
            SafetyFilter.layerDefault,
            ContextWindow.layer(),
            CostMeter.layerMemory({ budgetUsd: 1 }),
            AuditLog.layerMemory
          )),
          Layer.provide(transport.layer)
        )
      )
    )
  })

  it.effect("Gateway.prepare is a dry run: the redacted, fitted request, its tokens, key and reservation", () => {
    const transport = transportOf(() => Stream.fromIterable(reply("ok")))
    const request = ask("Write to jane.doe@example.com", { maxTokens: 100 })
    return Effect.gen(function*() {
      const dry = yield* Gateway.prepare(request)
      expect(JSON.stringify(dry.outbound)).not.toContain("jane.doe")
      expect(dry.inputRedactions).toEqual([{ kind: "email", count: 1 }])
      expect(dry.promptTokens).toBeGreaterThan(0)
      expect(dry.maxCompletionTokens).toBe(100)
      expect(dry.reservation?.totalUsd).toBeGreaterThan(0)
      // Nothing was sent, held or audited.
      expect(transport.calls).toHaveLength(0)
      expect(yield* auditEntries).toHaveLength(0)
      expect((yield* Effect.flatMap(CostMeter.CostMeter, (m) => m.summary)).requests).toBe(0)
      // The real call sends what the dry run showed, under the same key.
      const done = yield* Gateway.complete(request)
      expect(done.requestHash).toBe(dry.requestHash)
      expect(transport.calls[0]).toEqual(dry.outbound)
    }).pipe(
      Effect.provide(
        Gateway.layer().pipe(
          Layer.provideMerge(Layer.mergeAll(
            SafetyFilter.layerDefault,
            ContextWindow.layer(),
            ResponseCache.layerMemory({ capacity: 10, timeToLive: "1 hour" }),
            CostMeter.layerMemory(),
            AuditLog.layerMemory
          )),
          Layer.provide(transport.layer)
        )
      )
    )
  })

  it.effect("request ids come from Gateway.RequestIds", () => {
    const transport = transportOf(() => Stream.fromIterable(reply("ok")))
    let n = 0
    return Effect.gen(function*() {
      yield* Gateway.complete(ask("one", { cache: false }))
      yield* Gateway.complete(ask("two", { cache: false }))
      expect((yield* auditEntries).map((e) => e.requestId)).toEqual(["trace-1", "trace-2"])
    }).pipe(
      Effect.provideService(Gateway.RequestIds, { next: () => `trace-${++n}` }),
      Effect.provide(
        Gateway.layerWith(Stage.upstreamUnmetered()).pipe(
          Layer.provideMerge(Layer.mergeAll(SafetyFilter.layerDefault, ContextWindow.layer(), AuditLog.layerMemory)),
          Layer.provide(transport.layer)
        )
      )
    )
  })
})
