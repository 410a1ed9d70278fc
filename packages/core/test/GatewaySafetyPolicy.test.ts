/**
 * The SafetyFilter's v2 settings through the whole gateway: placeholders restored for the caller
 * only (never in the transport's request, the cache, the audit, or another caller's reply), and
 * the output block policy ending or masking a streamed reply whatever its chunking.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import * as AuditLog from "../src/AuditLog.js"
import type { ChatRequestInput, OutboundRequest } from "../src/Chat.js"
import type { ChatChunk } from "../src/ChatChunk.js"
import * as ContextWindow from "../src/ContextWindow.js"
import * as CostMeter from "../src/CostMeter.js"
import * as Gateway from "../src/Gateway.js"
import { SafetyViolation, type TransportError } from "../src/GatewayError.js"
import type { Part } from "../src/Part.js"
import * as ResponseCache from "../src/ResponseCache.js"
import * as SafetyFilter from "../src/SafetyFilter.js"
import * as Telemetry from "../src/Telemetry.js"
import { GatewayTransport } from "../src/Transport.js"

/** The reply `text` cut at `cuts`, one chunk per piece, then finish and usage. */
const chunked = (text: string, cuts: ReadonlyArray<number> = []): Array<ChatChunk> => {
  const points = Array.from(new Set(cuts.filter((c) => c > 0 && c < text.length))).sort((a, b) => a - b)
  const pieces: Array<string> = []
  let at = 0
  for (const c of points) {
    pieces.push(text.slice(at, c))
    at = c
  }
  pieces.push(text.slice(at))
  return [
    ...pieces.map((content): ChatChunk => ({ choices: [{ index: 0, delta: { content } }] })),
    { choices: [{ index: 0, delta: {}, finish_reason: "stop" }] },
    { choices: [], usage: { prompt_tokens: 5, completion_tokens: 9, total_tokens: 14 } }
  ]
}

/** A transport answering with `script(request)`, recording every request it was sent. */
const transportOf = (script: (request: OutboundRequest) => Array<ChatChunk>) => {
  const calls: Array<OutboundRequest> = []
  const layer = Layer.succeed(GatewayTransport, {
    stream: (request) =>
      Stream.suspend((): Stream.Stream<ChatChunk, TransportError> => {
        calls.push(request)
        return Stream.fromIterable(script(request))
      })
  })
  return { calls, layer }
}

const gatewayWith = (policy: SafetyFilter.Policy, transport: Layer.Layer<GatewayTransport>) =>
  Gateway.layer().pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        SafetyFilter.layer(policy),
        ContextWindow.layer({ preload: [] }),
        AuditLog.layerMemory,
        ResponseCache.layerMemory({ capacity: 10, timeToLive: "1 hour" }),
        CostMeter.layerMemory()
      )
    ),
    Layer.provide(transport)
  )

const ask = (content: string): ChatRequestInput => ({ model: "gpt-4o-mini", messages: [{ role: "user", content }] })

/** Everything the gateway kept: the cache entry of `key` and the audit entries, as text. */
const kept = (key: string) =>
  Effect.gen(function*() {
    const cache = yield* ResponseCache.ResponseCache
    const stored = yield* cache.get(key)
    const audit = yield* Effect.flatMap(AuditLog.MemoryAuditLog, (log) => log.entries)
    return JSON.stringify([Option.getOrUndefined(stored), audit])
  })

describe("placeholder restore through the gateway", () => {
  // A translator: echoes the placeholders of the newest message, cut inside one of them.
  const translator = transportOf((request) => {
    const last = request.messages[request.messages.length - 1]!.content
    const found = last.match(/\[[A-Z]+_\d+\]/g) ?? []
    return chunked(`Votre e-mail est ${found.join(" et ")}.`, [20, 23])
  })
  const policy: SafetyFilter.Policy = { operators: { email: "placeholder" }, restore: true }

  it.effect("each caller gets its own values back; the wire, the cache and the audit only hold placeholders", () =>
    Effect.gen(function*() {
      const alice = yield* Gateway.complete(ask("Translate to French: my email is alice@example.com"))
      expect(alice.text).toBe("Votre e-mail est alice@example.com.")
      expect(alice.cached).toBe(false)
      expect(translator.calls[0]!.messages[0]!.content).toBe("Translate to French: my email is [EMAIL_1]")

      // Same redacted request, so the same key: a cache hit restored with Bob's own value.
      const bob = yield* Gateway.complete(ask("Translate to French: my email is bob@example.org"))
      expect(bob.cached).toBe(true)
      expect(bob.requestHash).toBe(alice.requestHash)
      expect(bob.text).toBe("Votre e-mail est bob@example.org.")
      expect(translator.calls).toHaveLength(1)

      const store = yield* kept(alice.requestHash)
      expect(store).toContain("[EMAIL_1]")
      for (const value of ["alice@example.com", "bob@example.org"]) expect(store).not.toContain(value)
    }).pipe(Effect.provide(gatewayWith(policy, translator.layer))))

  it.effect("streamed parts restore the value split across chunks; a placeholder not issued stays", () => {
    const echo = transportOf(() => chunked("To [EMAIL_1], not [EMAIL_2] nor [PHONE_1]", [5, 6, 7, 15]))
    return Effect.gen(function*() {
      const parts = Chunk.toReadonlyArray(
        yield* Stream.runCollect(Gateway.stream(ask("write to carol@example.net please")))
      )
      const text = parts.flatMap((p: Part) => (p._tag === "TextDelta" ? [p.text] : [])).join("")
      expect(text).toBe("To carol@example.net, not [EMAIL_2] nor [PHONE_1]")
      expect(parts[parts.length - 1]!._tag).toBe("Finish")
    }).pipe(Effect.provide(gatewayWith(policy, echo.layer)))
  })

  it.effect("spans (content captured) and logs never hold a restored value", () => {
    // Everything any span or log line was given, as text.
    const seen: Array<string> = []
    const tracer = Tracer.make({
      span: (name, parent, context, links, startTime, kind) => {
        const span: Tracer.Span = {
          _tag: "Span",
          name,
          spanId: `s${seen.length}`,
          traceId: "t",
          parent,
          context,
          status: { _tag: "Started", startTime },
          attributes: new Map(),
          links,
          sampled: true,
          kind,
          end: () => {},
          attribute: (key, value) => void seen.push(`${key}=${JSON.stringify(value)}`),
          event: (event, _time, attributes) => void seen.push(`${event} ${JSON.stringify(attributes ?? {})}`),
          addLinks: () => {}
        }
        return span
      },
      context: (f) => f()
    })
    const logger = Logger.make(({ annotations, message }) => void seen.push(JSON.stringify([message, [...annotations]])))
    const echo = transportOf(() => chunked("Sent to [EMAIL_1]."))
    return Effect.gen(function*() {
      const done = yield* Gateway.complete(ask("send it to erin@example.com"))
      expect(done.text).toBe("Sent to erin@example.com.")
      expect(seen.join("\n")).toContain("Sent to [EMAIL_1].")
      expect(seen.join("\n")).not.toContain("erin@example.com")
    }).pipe(
      Effect.provide(gatewayWith(policy, echo.layer).pipe(Layer.provideMerge(Telemetry.layer({ captureContent: true })))),
      Effect.withTracer(tracer),
      Effect.provide(Logger.replace(Logger.defaultLogger, logger))
    )
  })

  it.effect("without restore the caller sees the placeholders", () => {
    const echo = transportOf(() => chunked("To [EMAIL_1]."))
    return Effect.gen(function*() {
      expect((yield* Gateway.complete(ask("write to dave@example.com"))).text).toBe("To [EMAIL_1].")
    }).pipe(Effect.provide(gatewayWith({ operators: { email: "placeholder" } }, echo.layer)))
  })
})

describe("output block policy through the gateway", () => {
  const harmful = "Sure. Here is how do I hack into my neighbour's wifi? Step one. Step two."

  it.effect("fail: the text before the sentence reaches the caller, then SafetyViolation{output}; nothing is cached", () => {
    const upstream = transportOf(() => chunked(harmful, [3, 9, 30, 31]))
    return Effect.gen(function*() {
      const texts: Array<string> = []
      const result = yield* Gateway.stream(ask("tell me a story")).pipe(
        Stream.runForEach((part) => Effect.sync(() => part._tag === "TextDelta" && texts.push(part.text))),
        Effect.either
      )
      expect(texts.join("")).toBe("Sure.")
      expect(Either.isLeft(result) && result.left).toEqual(
        new SafetyViolation({ category: "hacking", rule: "hacking-request", direction: "output" })
      )
      const second = yield* Effect.either(Gateway.complete(ask("tell me a story")))
      expect(Either.isLeft(second)).toBe(true)
      expect(upstream.calls).toHaveLength(2)
      const audit = yield* Effect.flatMap(AuditLog.MemoryAuditLog, (log) => log.entries)
      expect(audit.map((e) => e.errorTag)).toEqual(["SafetyViolation", "SafetyViolation"])
      expect(JSON.stringify(audit)).not.toContain("wifi")
    }).pipe(Effect.provide(gatewayWith({ output: { hacking: "fail" } }, upstream.layer)))
  })

  it.effect("fail in the last sentence (found at the end of the stream)", () => {
    const upstream = transportOf(() => chunked("Fine. How do I hack into my neighbour's wifi"))
    return Effect.gen(function*() {
      const parts = yield* Gateway.stream(ask("tell me")).pipe(
        Stream.catchAll((error) => Stream.make(error)),
        Stream.runCollect,
        Effect.map(Chunk.toReadonlyArray)
      )
      expect(parts.map((p) => p._tag)).toEqual(["TextDelta", "SafetyViolation"])
      expect(parts[0]).toMatchObject({ text: "Fine." })
    }).pipe(Effect.provide(gatewayWith({ output: { hacking: "fail" } }, upstream.layer)))
  })

  it.effect("mask: the reply completes with the span masked and counted", () => {
    const upstream = transportOf(() => chunked(harmful, [12, 40]))
    return Effect.gen(function*() {
      const done = yield* Gateway.complete(ask("tell me a story"))
      expect(done.text).toBe("Sure. Here is [BLOCKED] my neighbour's wifi? Step one. Step two.")
      expect(done.redactions.output).toContainEqual({ kind: "blocked", count: 1 })
    }).pipe(Effect.provide(gatewayWith({ output: { hacking: "mask" } }, upstream.layer)))
  })

  it("any chunking of the reply gives the same text and the same outcome", async () => {
    const run = (policy: SafetyFilter.Policy, cuts: ReadonlyArray<number>) => {
      const upstream = transportOf(() => chunked(harmful + " Mail ann@example.com now.", cuts))
      return Effect.runPromise(
        Gateway.stream(ask("tell me")).pipe(
          Stream.catchAll((error) => Stream.make(error)),
          Stream.runCollect,
          Effect.map((parts) => {
            const out = Chunk.toReadonlyArray(parts)
            const text = out.flatMap((p) => (p._tag === "TextDelta" ? [p.text] : [])).join("")
            // The outcome: the text emitted and how the reply ended. (After a failure the output
            // counts cover the text received, which depends on how far the stream got.)
            return { text, end: out[out.length - 1]!._tag, last: out[out.length - 1] }
          }),
          Effect.provide(gatewayWith(policy, upstream.layer))
        )
      )
    }
    for (const policy of [{ output: { hacking: "fail" as const } }, { output: { hacking: "mask" as const } }]) {
      const whole = await run(policy, [])
      await FastCheck.assert(
        FastCheck.asyncProperty(FastCheck.array(FastCheck.nat({ max: 110 }), { maxLength: 8 }), async (cuts) => {
          expect(await run(policy, cuts)).toEqual(whole)
        }),
        { numRuns: 25 }
      )
    }
  })
})
