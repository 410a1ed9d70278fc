/**
 * Telemetry end to end through the in-process simulator: the gateway's spans recorded by an
 * in-memory tracer (the tree, the attribute names and values) and its metrics read from
 * Effect's registry, for a clean reply, a cache hit, a 429 retried twice, a mid-stream failure
 * and an interruption; and nothing at all without the `Telemetry` service.
 */
import { describe, expect, it } from "@effect/vitest"
import { AuditLog, ContextWindow, CostMeter, Gateway, ResponseCache, SafetyFilter, Telemetry } from "@llm-gateway/core"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Tracer from "effect/Tracer"
import * as SimulatorLayer from "../src/SimulatorLayer.js"

/** A span as the in-memory exporter keeps it. */
class RecordedSpan implements Tracer.Span {
  readonly _tag = "Span"
  readonly traceId: string
  readonly sampled = true
  status: Tracer.SpanStatus
  readonly attributes = new Map<string, unknown>()
  readonly events: Array<{ readonly name: string; readonly attributes: Record<string, unknown> }> = []
  readonly links: Array<Tracer.SpanLink> = []
  constructor(
    readonly name: string,
    readonly parent: Option.Option<Tracer.AnySpan>,
    readonly context: Context.Context<never>,
    readonly spanId: string,
    startTime: bigint,
    readonly kind: Tracer.SpanKind
  ) {
    this.traceId = Option.isSome(parent) ? parent.value.traceId : `trace-${spanId}`
    this.status = { _tag: "Started", startTime }
  }
  end(endTime: bigint, exit: Exit.Exit<unknown, unknown>) {
    this.status = { _tag: "Ended", startTime: this.status.startTime, endTime, exit }
  }
  attribute(key: string, value: unknown) {
    this.attributes.set(key, value)
  }
  event(name: string, _startTime: bigint, attributes?: Record<string, unknown>) {
    this.events.push({ name, attributes: attributes ?? {} })
  }
  addLinks(links: ReadonlyArray<Tracer.SpanLink>) {
    this.links.push(...links)
  }
}

const recorder = () => {
  const spans: Array<RecordedSpan> = []
  const tracer = Tracer.make({
    span: (name, parent, context, _links, startTime, kind) => {
      const span = new RecordedSpan(name, parent, context, `s${spans.length + 1}`, startTime, kind)
      spans.push(span)
      return span
    },
    context: (f) => f()
  })
  /** The span tree under `root` as indented names (platform `http.client` spans left out). */
  const tree = (root: RecordedSpan, depth = 0): Array<string> => [
    `${"  ".repeat(depth)}${root.name}`,
    ...spans
      .filter((s) => Option.isSome(s.parent) && s.parent.value.spanId === root.spanId && !s.name.startsWith("http.client"))
      .flatMap((child) => tree(child, depth + 1))
  ]
  const named = (name: string) => spans.filter((s) => s.name === name)
  return { spans, tracer, tree, named }
}

const models = Object.fromEntries(
  ["sim:hello", "sim:twice-429", "sim:error-mid-stream", "sim:stall", "sim:echo"].map((id) => [
    id,
    { contextWindow: 128_000, maxOutputTokens: 4_096, encoding: "o200k_base" as const }
  ])
)

const gatewayLayer = (telemetry: Telemetry.Options | false) =>
  Gateway.layer().pipe(
    Layer.provideMerge(Layer.mergeAll(
      SafetyFilter.layerDefault,
      ContextWindow.layer({ models }),
      ResponseCache.layerMemory({ capacity: 10, timeToLive: "1 hour" }),
      CostMeter.layerMemory({
        pricing: { "sim:": { promptPerMillion: 1_000, completionPerMillion: 2_000 } },
        budgetUsd: 100
      }),
      AuditLog.layerMemory,
      telemetry === false ? Layer.empty : Telemetry.layer(telemetry)
    )),
    Layer.provideMerge(SimulatorLayer.layer({
      scenarios: [{
        name: "twice-429",
        reply: "Served after two rate limits.",
        attempts: [{ status: 429, retryAfter: 1 }, { status: 429, retryAfter: 2 }]
      }]
    })),
    Layer.orDie
  )

/** Sum of a metric's counter counts or histogram counts/sums over the series with `tags`. */
const metricOf = (name: string, tags: Record<string, string> = {}) =>
  Effect.map(Metric.snapshot, (pairs) => {
    let count = 0
    let sum = 0
    for (const { metricKey, metricState } of pairs) {
      if (metricKey.name !== name) continue
      if (!Object.entries(tags).every(([k, v]) => metricKey.tags.some((t) => t.key === k && t.value === v))) continue
      if (MetricState.isCounterState(metricState)) count += Number(metricState.count)
      else if (MetricState.isHistogramState(metricState)) {
        count += metricState.count
        sum += metricState.sum
      } else if (MetricState.isGaugeState(metricState)) sum = Number(metricState.value)
    }
    return { count, sum }
  })

/** Runs `program` with the recording tracer, moving the TestClock until it ends. */
const traced = <A, E, R>(program: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const rec = recorder()
    const fiber = yield* Effect.fork(Effect.withTracer(Effect.exit(program), rec.tracer))
    yield* TestClock.adjust("1 minute")
    const exit = yield* Fiber.join(fiber)
    return { exit, ...rec }
  })

const request = (model: string, content = "Hello there") => ({ model, messages: [{ role: "user" as const, content }] })

const rootOf = (spans: ReadonlyArray<RecordedSpan>, name: string) => {
  const roots = spans.filter((s) => s.name === name)
  expect(roots, `one ${name} span`).toHaveLength(1)
  return roots[0]!
}

describe("Telemetry", () => {
  it.effect("a clean reply: the chat span tree, its GenAI attributes and the metrics", () =>
    Effect.gen(function*() {
      const tokensBefore = yield* metricOf("gen_ai.client.token.usage", { "gen_ai.request.model": "sim:hello" })
      const successBefore = yield* metricOf("llm_gateway.requests", { "llm_gateway.outcome": "success" })
      const missBefore = yield* metricOf("llm_gateway.cache.requests", { "llm_gateway.cache.result": "miss" })
      const redactedBefore = yield* metricOf("llm_gateway.redactions", { "llm_gateway.redaction.kind": "email" })
      const costBefore = yield* metricOf("llm_gateway.cost", { "gen_ai.request.model": "sim:hello" })
      const { exit, spans, tree } = yield* traced(
        Gateway.complete({ ...request("sim:hello", "Mail jane.doe@example.com please"), temperature: 0.2, maxTokens: 50 })
      )
      expect(Exit.isSuccess(exit)).toBe(true)
      const root = rootOf(spans, "chat sim:hello")
      expect(root.kind).toBe("client")
      expect(tree(root)).toEqual([
        "chat sim:hello",
        "  Gateway.prepare",
        "    SafetyFilter.guardInput",
        "    ContextWindow.fit",
        "  Auth.fetchToken",
        "  Transport.handshake",
        "  Transport.body"
      ])
      const a = Object.fromEntries(root.attributes)
      expect(a).toMatchObject({
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "genesys_cloud",
        "gen_ai.request.model": "sim:hello",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 50,
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": expect.any(Number),
        "gen_ai.usage.output_tokens": expect.any(Number),
        "server.address": "127.0.0.1",
        "server.port": expect.any(Number),
        "llm_gateway.outcome": "success",
        "llm_gateway.cache.hit": false,
        "llm_gateway.cache.joined": false,
        "llm_gateway.retries": 0,
        "llm_gateway.redactions.input.email": 1,
        "llm_gateway.context.dropped_messages": 0,
        "llm_gateway.usage.source": "gateway",
        "llm_gateway.time_to_first_token_ms": expect.any(Number),
        "llm_gateway.budget.remaining_usd": expect.any(Number)
      })
      expect(a["gen_ai.response.id"]).toMatch(/^[A-Za-z0-9._:-]+$/)
      expect(a["llm_gateway.cost.usd"]).toBeGreaterThan(0)
      expect(a["llm_gateway.budget.remaining_usd"]).toBeCloseTo(100 - (a["llm_gateway.cost.usd"] as number), 9)
      expect(a["error.type"]).toBeUndefined()
      expect(root.status._tag === "Ended" && Exit.isSuccess(root.status.exit)).toBe(true)
      // No content by default: neither the prompt nor the address appears anywhere.
      expect(root.events.filter((e) => e.name === Telemetry.contentEvent)).toEqual([])
      const everything = JSON.stringify(spans.map((s) => [s.name, [...s.attributes], s.events]))
      expect(everything).not.toContain("jane.doe")
      expect(everything).not.toContain("Mail")
      const handshake = spans.find((s) => s.name === "Transport.handshake")!
      expect(Object.fromEntries(handshake.attributes)).toMatchObject({
        "llm_gateway.attempt": 1,
        "http.response.status_code": 200
      })
      expect(handshake.kind).toBe("client")

      const tokens = yield* metricOf("gen_ai.client.token.usage", { "gen_ai.request.model": "sim:hello" })
      expect(tokens.count - tokensBefore.count).toBe(2)
      expect(tokens.sum - tokensBefore.sum).toBe(
        (a["gen_ai.usage.input_tokens"] as number) + (a["gen_ai.usage.output_tokens"] as number)
      )
      const input = yield* metricOf("gen_ai.client.token.usage", {
        "gen_ai.request.model": "sim:hello",
        "gen_ai.token.type": "input",
        "gen_ai.provider.name": "genesys_cloud",
        "server.address": "127.0.0.1"
      })
      expect(input.count).toBeGreaterThanOrEqual(1)
      expect((yield* metricOf("llm_gateway.requests", { "llm_gateway.outcome": "success" })).count - successBefore.count)
        .toBe(1)
      expect((yield* metricOf("llm_gateway.cache.requests", { "llm_gateway.cache.result": "miss" })).count - missBefore.count)
        .toBe(1)
      expect(
        (yield* metricOf("llm_gateway.redactions", { "llm_gateway.redaction.kind": "email" })).count - redactedBefore.count
      ).toBe(1)
      expect((yield* metricOf("llm_gateway.cost", { "gen_ai.request.model": "sim:hello" })).count - costBefore.count)
        .toBeCloseTo(a["llm_gateway.cost.usd"] as number, 12)
      expect((yield* metricOf("gen_ai.client.operation.duration", { "gen_ai.request.model": "sim:hello" })).count)
        .toBeGreaterThanOrEqual(1)
      expect((yield* metricOf("gen_ai.client.operation.time_to_first_chunk", { "gen_ai.request.model": "sim:hello" })).count)
        .toBeGreaterThanOrEqual(1)
      expect((yield* metricOf("llm_gateway.budget.remaining")).sum).toBeCloseTo(a["llm_gateway.budget.remaining_usd"] as number, 9)
    }).pipe(Effect.provide(gatewayLayer({}))))

  it.effect("a cache hit: cache attributes, no upstream spans, a hit counted, no cost", () =>
    Effect.gen(function*() {
      yield* traced(Gateway.complete(request("sim:echo", "cache me")))
      const hitsBefore = yield* metricOf("llm_gateway.cache.requests", { "llm_gateway.cache.result": "hit" })
      const { exit, spans, tree } = yield* traced(Gateway.complete(request("sim:echo", "cache me")))
      expect(Exit.isSuccess(exit)).toBe(true)
      const root = rootOf(spans, "chat sim:echo")
      expect(tree(root)).toEqual([
        "chat sim:echo",
        "  Gateway.prepare",
        "    SafetyFilter.guardInput",
        "    ContextWindow.fit"
      ])
      expect(Object.fromEntries(root.attributes)).toMatchObject({
        "llm_gateway.cache.hit": true,
        "llm_gateway.cache.joined": false,
        "llm_gateway.cost.usd": 0,
        "llm_gateway.outcome": "success",
        "gen_ai.provider.name": "llm_gateway"
      })
      expect(root.attributes.has("server.address")).toBe(false)
      expect(root.attributes.has("llm_gateway.budget.remaining_usd")).toBe(false)
      expect((yield* metricOf("llm_gateway.cache.requests", { "llm_gateway.cache.result": "hit" })).count - hitsBefore.count)
        .toBe(1)
    }).pipe(Effect.provide(gatewayLayer({}))))

  it.effect("two identical requests at once: one leads upstream, the other joins it (single-flight)", () =>
    Effect.gen(function*() {
      const joinedBefore = yield* metricOf("llm_gateway.cache.requests", { "llm_gateway.cache.result": "joined" })
      const { exit, spans } = yield* traced(Effect.all([
        Gateway.complete(request("sim:hello", "together")),
        Gateway.complete(request("sim:hello", "together"))
      ], { concurrency: 2 }))
      expect(Exit.isSuccess(exit)).toBe(true)
      const roots = spans.filter((s) => s.name === "chat sim:hello")
      expect(roots.map((s) => s.attributes.get("llm_gateway.cache.joined")).sort()).toEqual([false, true])
      const joiner = roots.find((s) => s.attributes.get("llm_gateway.cache.joined") === true)!
      expect(joiner.attributes.get("llm_gateway.cache.hit")).toBe(true)
      expect(spans.filter((s) => s.name === "Transport.handshake")).toHaveLength(1)
      expect(
        (yield* metricOf("llm_gateway.cache.requests", { "llm_gateway.cache.result": "joined" })).count - joinedBefore.count
      ).toBe(1)
    }).pipe(Effect.provide(gatewayLayer({}))))

  it.effect("a 429 retried twice: three handshake spans with status and wait, retries by reason", () =>
    Effect.gen(function*() {
      const retriesBefore = yield* metricOf("llm_gateway.retries", { "llm_gateway.retry.reason": "429" })
      const { exit, spans, tree } = yield* traced(Gateway.complete(request("sim:twice-429")))
      expect(Exit.isSuccess(exit)).toBe(true)
      const root = rootOf(spans, "chat sim:twice-429")
      expect(tree(root)).toEqual([
        "chat sim:twice-429",
        "  Gateway.prepare",
        "    SafetyFilter.guardInput",
        "    ContextWindow.fit",
        "  Auth.fetchToken",
        "  Transport.handshake",
        "  Transport.handshake",
        "  Transport.handshake",
        "  Transport.body"
      ])
      const attempts = spans.filter((s) => s.name === "Transport.handshake").map((s) => Object.fromEntries(s.attributes))
      expect(attempts).toEqual([
        { "llm_gateway.attempt": 1, "http.response.status_code": 429, "error.type": "RateLimited" },
        { "llm_gateway.attempt": 2, "llm_gateway.wait_before_ms": 1_000, "http.response.status_code": 429, "error.type": "RateLimited" },
        { "llm_gateway.attempt": 3, "llm_gateway.wait_before_ms": 2_000, "http.response.status_code": 200 }
      ])
      expect(root.attributes.get("llm_gateway.retries")).toBe(2)
      expect(root.attributes.get("llm_gateway.outcome")).toBe("success")
      expect((yield* metricOf("llm_gateway.retries", { "llm_gateway.retry.reason": "429" })).count - retriesBefore.count)
        .toBe(2)
    }).pipe(Effect.provide(gatewayLayer({}))))

  it.effect("a mid-stream failure: error.type on the chat span, the body span failed, a failure counted", () =>
    Effect.gen(function*() {
      const failuresBefore = yield* metricOf("llm_gateway.requests", { "llm_gateway.outcome": "failure" })
      const { exit, spans, tree } = yield* traced(Gateway.complete(request("sim:error-mid-stream")))
      expect(Exit.isFailure(exit)).toBe(true)
      const root = rootOf(spans, "chat sim:error-mid-stream")
      expect(tree(root)).toEqual([
        "chat sim:error-mid-stream",
        "  Gateway.prepare",
        "    SafetyFilter.guardInput",
        "    ContextWindow.fit",
        "  Auth.fetchToken",
        "  Transport.handshake",
        "  Transport.body"
      ])
      const a = Object.fromEntries(root.attributes)
      expect(a).toMatchObject({ "error.type": "UpstreamError", "llm_gateway.outcome": "failure", "llm_gateway.retries": 0 })
      expect(a["gen_ai.usage.input_tokens"]).toBeUndefined()
      expect(a["llm_gateway.time_to_first_token_ms"]).toEqual(expect.any(Number))
      const body = spans.find((s) => s.name === "Transport.body")!
      expect(body.status._tag === "Ended" && Exit.isFailure(body.status.exit)).toBe(true)
      expect(root.status._tag === "Ended" && Exit.isFailure(root.status.exit)).toBe(true)
      expect(
        (yield* metricOf("llm_gateway.requests", { "llm_gateway.outcome": "failure", "error.type": "UpstreamError" })).count -
          failuresBefore.count
      ).toBe(1)
    }).pipe(Effect.provide(gatewayLayer({}))))

  it.effect("an interruption: the chat span ends interrupted, an interrupted request counted", () =>
    Effect.gen(function*() {
      const before = yield* metricOf("llm_gateway.requests", { "llm_gateway.outcome": "interrupted" })
      const rec = recorder()
      const fiber = yield* Effect.fork(Effect.withTracer(
        Gateway.stream(request("sim:stall")).pipe(Stream.runDrain),
        rec.tracer
      ))
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(fiber)
      const root = rootOf(rec.spans, "chat sim:stall")
      expect(root.status._tag).toBe("Ended")
      expect(root.status._tag === "Ended" && Exit.isInterrupted(root.status.exit)).toBe(true)
      expect(Object.fromEntries(root.attributes)).toMatchObject({ "llm_gateway.outcome": "interrupted" })
      expect(root.attributes.has("error.type")).toBe(false)
      const body = rec.spans.find((s) => s.name === "Transport.body")!
      expect(body.status._tag).toBe("Ended")
      expect((yield* metricOf("llm_gateway.requests", { "llm_gateway.outcome": "interrupted" })).count - before.count).toBe(1)
    }).pipe(Effect.provide(gatewayLayer({}))))

  it.effect("content capture records the redacted prompt and reply only, as one span event", () =>
    Effect.gen(function*() {
      const { spans } = yield* traced(Gateway.complete(request("sim:echo", "Write to jane.doe@example.com")))
      const root = rootOf(spans, "chat sim:echo")
      // Log lines inside a span become span events too; the content is in one event of its own.
      const events = root.events.filter((e) => e.name.startsWith("gen_ai."))
      expect(events.map((e) => e.name)).toEqual([Telemetry.contentEvent])
      const event = events[0]!.attributes
      const input = JSON.parse(event["gen_ai.input.messages"] as string)
      const output = JSON.parse(event["gen_ai.output.messages"] as string)
      expect(input).toEqual([{ role: "user", parts: [{ type: "text", content: expect.stringContaining("Write to [") }] }])
      expect(output[0]).toMatchObject({ role: "assistant", finish_reason: "stop" })
      expect(JSON.stringify(event)).not.toContain("jane.doe")
    }).pipe(Effect.provide(gatewayLayer({ captureContent: true }))))

  it.effect("without the Telemetry service: no span of ours and no metric", () =>
    Effect.gen(function*() {
      const before = yield* metricOf("llm_gateway.requests")
      const { exit, spans } = yield* traced(Gateway.complete(request("sim:hello")))
      expect(Exit.isSuccess(exit)).toBe(true)
      const ours = spans.filter((s) => /^(chat|Gateway\.|Transport\.|SafetyFilter\.)/.test(s.name))
      expect(ours).toEqual([])
      expect((yield* metricOf("llm_gateway.requests")).count).toBe(before.count)
    }).pipe(Effect.provide(gatewayLayer(false))))
})
