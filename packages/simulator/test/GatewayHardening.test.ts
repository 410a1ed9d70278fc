/**
 * Core's whole Gateway (real Auth, Transport, SafetyFilter, ContextWindow, CostMeter, cache and
 * audit log) over real sockets against the simulator server playing a hostile gateway: an
 * endless reply, a server that ignores max tokens, an absurd usage report, a failing upstream
 * under single-flight, a connection cut inside an address, and two safety policies sharing a
 * cache. Every case checks the typed outcome, the figure it is about, one audit entry per
 * request and that no raw PII is observable (parts, error, `Cause.pretty`, logs at Debug,
 * audit, cache).
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import {
  AuditLog,
  Auth,
  ContextWindow,
  CostMeter,
  Gateway,
  type Part,
  ResponseCache,
  SafetyFilter,
  Transport
} from "@llm-gateway/core"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import * as V8 from "node:v8"
import * as Vm from "node:vm"
import type * as Scenario from "../src/Scenario.js"
import * as SimulatorServer from "../src/SimulatorServer.js"

const clients = [{ clientId: "hardening-client", clientSecret: Redacted.make("hardening-secret-value") }]
const EMAIL = "jane.doe@example.com"
const LOCAL_PART = "jane.doe"
const piiReply = `Write to ${EMAIL} and mention order 12345, then wait for the answer. `

const scenarios: ReadonlyArray<Scenario.Scenario> = [
  { name: "endless-pii", reply: piiReply, faults: { endless: {} } },
  // Events of 1,000 characters: the per-event cost of the pipeline does not hide the memory.
  { name: "endless-pii-large-events", reply: Array(4).fill(piiReply.repeat(14).slice(0, 1_000)), faults: { endless: {} } },
  { name: "endless-refusal-pii", reply: piiReply, faults: { endless: { delta: "refusal" } } },
  { name: "endless-alternative-pii", reply: piiReply, n: 2, faults: { endless: { choice: 1 } } },
  { name: "unavailable-4", reply: "Served after four 503s.", attempts: [{ status: 503, times: 4 }] },
  { name: "contact", reply: `You can reach support at ${EMAIL} any day.` },
  {
    name: "drop-in-address",
    reply: ["Please ", "write ", "to ", "jane.doe@", "example.", "com ", "today."],
    faults: { dropAfter: 5 }
  }
]

type Profile = "gateway" | "openai"

interface Harness {
  readonly logs: Array<string>
  readonly run: <A, E>(
    options: GatewayOptions,
    use: Effect.Effect<A, E, Gateway.Gateway | AuditLog.MemoryAuditLog | CostMeter.CostMeter>
  ) => Effect.Effect<A, unknown>
}

interface GatewayOptions {
  readonly profile: Profile
  readonly budgetUsd?: number
  readonly maxReplyChars?: number
  readonly maxAttempts?: number
  readonly models?: Record<string, { contextWindow: number; maxOutputTokens: number; encoding: "o200k_base" }>
  readonly cache?: Layer.Layer<ResponseCache.ResponseCache>
  readonly policy?: SafetyFilter.Policy
}

/** Runs `use` against a fresh simulator server, logs at Debug captured into `logs`. */
const withSimulator = <A, E>(use: (server: SimulatorServer.Service, harness: Harness) => Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const server = yield* SimulatorServer.SimulatorServer
    const logs: Array<string> = []
    const logger = Logger.make(({ annotations, cause, logLevel, message }) => {
      logs.push(JSON.stringify({
        level: logLevel.label,
        message,
        annotations: Object.fromEntries(HashMap.toEntries(annotations)),
        cause: Cause.isEmpty(cause) ? undefined : Cause.pretty(cause)
      }))
    })
    const run: Harness["run"] = (options, use) => {
      const transport = Transport.layer({
        profile: options.profile,
        baseUrl: options.profile === "gateway" ? server.baseUrl : server.openAiBaseUrl,
        retry: {
          initialDelay: "5 millis",
          maxDelay: "20 millis",
          maxAttempts: options.maxAttempts ?? 4,
          deadline: "5 seconds"
        },
        timeouts: { handshake: "5 seconds", firstToken: "5 seconds", idle: "5 seconds", total: "60 seconds" }
      }).pipe(
        Layer.provide(Auth.layerGenesys({
          clientId: clients[0].clientId,
          clientSecret: clients[0].clientSecret,
          environment: "localhost",
          loginUrl: server.baseUrl
        })),
        Layer.provide(NodeHttpClient.layerUndici)
      )
      const services = Layer.mergeAll(
        SafetyFilter.layer(options.policy ?? {}),
        ContextWindow.layer(options.models === undefined ? {} : { models: options.models }),
        options.cache ?? ResponseCache.layerMemory({ capacity: 100, timeToLive: "1 hour" }),
        CostMeter.layerMemory(options.budgetUsd === undefined ? {} : { budgetUsd: options.budgetUsd }),
        AuditLog.layerMemory
      )
      const gateway = Gateway.layer({
        profile: options.profile,
        ...(options.maxReplyChars === undefined ? {} : { maxReplyChars: options.maxReplyChars })
      }).pipe(Layer.provideMerge(services), Layer.provide(transport))
      return use.pipe(
        Effect.provide(gateway),
        Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
        Logger.withMinimumLogLevel(LogLevel.Debug)
      )
    }
    return yield* use(server, { logs, run })
  }).pipe(Effect.provide(SimulatorServer.layerServer({ clients, scenarios })))

const invokeCount = (server: SimulatorServer.Service, profile: Profile) =>
  server.countRequests({ path: profile === "gateway" ? "/api/v2/ai/llm/gateway/invoke" : "/v1/chat/completions" })

/** Streams one request, keeping every part that reached the caller and how the stream ended. */
const consume = (request: Parameters<typeof Gateway.stream>[0]) =>
  Effect.gen(function*() {
    const parts: Array<Part.Part> = []
    const exit = yield* Gateway.stream(request).pipe(
      Stream.runForEach((part) => Effect.sync(() => void parts.push(part))),
      Effect.exit
    )
    const text = parts.flatMap((p) => (p._tag === "TextDelta" ? [p.text] : [])).join("")
    return { parts, exit, text }
  })

const auditEntries = Effect.flatMap(AuditLog.MemoryAuditLog, (log) => log.entries)

/** Asserts that nothing observable carries the raw address (or its local part). */
const expectNoPii = (...observables: ReadonlyArray<unknown>) => {
  for (const observable of observables) {
    const text = typeof observable === "string" ? observable : JSON.stringify(observable)
    expect(text).not.toContain(LOCAL_PART)
    expect(text).not.toContain(EMAIL)
  }
}

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Cause.failureOption(exit.cause).pipe((o) => (o._tag === "Some" ? o.value : undefined)) : undefined

const ask = (model: string, extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: "user" as const, content: "Tell me how to reach support." }],
  ...extra
})

describe("Gateway against a hostile simulator (real sockets)", () => {
  for (const profile of ["gateway", "openai"] as const) {
    for (const scenario of ["endless-pii", "endless-refusal-pii", "endless-alternative-pii"]) {
      it.live(`${profile}: ${scenario} ends in ReplyTooLarge (partial), settled and audited once, no PII`, () =>
        withSimulator((server, { logs, run }) =>
          run(
            {
              profile,
              maxReplyChars: 20_000,
              models: { [`sim:${scenario}`]: { contextWindow: 1_000_000, maxOutputTokens: 500_000, encoding: "o200k_base" } }
            },
            Effect.gen(function*() {
              const { exit, parts, text } = yield* consume(ask(`sim:${scenario}`))
              const error = failureOf(exit)
              expect(error?._tag).toBe("ReplyTooLarge")
              expect(error).toMatchObject({ partial: true, limitChars: 20_000 })
              expect(text.length).toBeLessThanOrEqual(20_000)
              if (scenario === "endless-pii") expect(text).toContain("[EMAIL]")
              const entries = yield* auditEntries
              expect(entries).toHaveLength(1)
              expect(entries[0]).toMatchObject({ outcome: "failure", errorTag: "ReplyTooLarge" })
              // The cut reply was settled with what streamed, counted as it arrived.
              const summary = yield* Effect.flatMap(CostMeter.CostMeter, (m) => m.summary)
              expect(summary.requests).toBe(1)
              expect(summary.completionTokens).toBeGreaterThan(1_000)
              expect(summary.reservedUsd).toBe(0)
              expect(yield* invokeCount(server, profile)).toBe(1)
              expectNoPii(parts, String(error), Cause.pretty(Exit.isFailure(exit) ? exit.cause : Cause.empty), logs, entries)
            })
          )
        ), 60_000)
    }

    it.live(`${profile}: 40 concurrent requests against a server ignoring max tokens spend at most the budget`, () =>
      withSimulator((server, { logs, run }) =>
        Effect.gen(function*() {
          const model = "sim:ignores-max-tokens"
          const request = ask(model, { maxTokens: 64, cache: false })
          // One request without a budget measures what a reservation holds (prompt + 64 tokens).
          const probe = yield* run({ profile }, Gateway.complete(request))
          expect(probe.finishReason).toBe("length")
          expect(probe.usage.completionTokens).toBeLessThanOrEqual(64)
          const priceOf = CostMeter.makePrice()
          const reservation = priceOf(model, { promptTokens: probe.usage.promptTokens, completionTokens: 64, totalTokens: 0 })
          const oneToken = priceOf(model, { promptTokens: 0, completionTokens: 1, totalTokens: 1 }).totalUsd
          const budgetUsd = reservation.totalUsd * 10.5
          yield* server.reset
          yield* run(
            { profile, budgetUsd },
            Effect.gen(function*() {
              const exits = yield* Effect.all(
                Array.from({ length: 40 }, () => Effect.exit(Gateway.complete(request))),
                { concurrency: "unbounded" }
              )
              const done = exits.flatMap((exit) => (Exit.isSuccess(exit) ? [exit.value] : []))
              const refused = exits.flatMap((exit) => {
                const error = failureOf(exit)
                return error === undefined ? [] : [error]
              })
              expect(done).toHaveLength(10)
              expect(refused.map((e) => e._tag)).toEqual(Array(30).fill("BudgetExceeded"))
              for (const reply of done) {
                expect(reply.finishReason).toBe("length")
                expect(reply.usage.completionTokens).toBeLessThanOrEqual(64)
              }
              const summary = yield* Effect.flatMap(CostMeter.CostMeter, (m) => m.summary)
              console.log(`${profile}: 40 requests spent ${(summary.totalUsd / budgetUsd).toFixed(3)} of the budget`)
              expect(summary.totalUsd).toBeLessThanOrEqual(budgetUsd + 40 * oneToken)
              expect(summary.reservedUsd).toBe(0)
              expect(yield* invokeCount(server, profile)).toBe(10)
              const entries = yield* auditEntries
              expect(entries).toHaveLength(40)
              expect(new Set(entries.map((e) => e.requestId)).size).toBe(40)
            })
          )
          expectNoPii(logs)
        })
      ), 60_000)

    it.live(`${profile}: a usage report of 1e15 tokens is recorded as reported, flagged, and cannot exhaust the meter`, () =>
      withSimulator((_server, { logs, run }) =>
        run(
          { profile, budgetUsd: 1 },
          Effect.gen(function*() {
            const request = ask("sim:usage-oversized", { maxTokens: 64, cache: false })
            const first = yield* Gateway.complete(request)
            expect(first.usageSource).toBe("gateway")
            expect(first.usage.completionTokens).toBe(1e15)
            const priceOf = CostMeter.makePrice()
            const held = priceOf("sim:usage-oversized", { promptTokens: 100, completionTokens: 64, totalTokens: 0 })
            expect(first.cost.totalUsd).toBeLessThan(held.totalUsd)
            const second = yield* Gateway.complete(request)
            expect(second.text).toBe(first.text)
            const summary = yield* Effect.flatMap(CostMeter.CostMeter, (m) => m.summary)
            expect(summary.totalUsd).toBeLessThan(2 * held.totalUsd)
            expect(summary.completionTokens).toBeLessThanOrEqual(2 * 64)
            const entries = yield* auditEntries
            expect(entries).toHaveLength(2)
            expect(entries.every((e) => e.usageOverReservation === true && e.outcome === "success")).toBe(true)
            expect(logs.filter((line) => line.includes("costs more than was reserved"))).toHaveLength(2)
          })
        )
      ), 60_000)
  }

  it.live("reading 10 MB of an endless reply holds memory flat (bounded by what is unread plus the redactor's window)", () =>
    withSimulator((_server, { run }) =>
      run(
        {
          profile: "gateway",
          maxReplyChars: 1e9,
          models: {
            "sim:endless-pii-large-events": { contextWindow: 1_000_000, maxOutputTokens: 100_000_000, encoding: "o200k_base" }
          }
        },
        Effect.gen(function*() {
          V8.setFlagsFromString("--expose-gc")
          const gc = Vm.runInNewContext("gc") as () => void
          const heap = () => {
            gc()
            return process.memoryUsage().heapUsed
          }
          let read = 0
          const t0 = Date.now()
          let start = 0
          const samples: Array<number> = []
          yield* Gateway.stream(ask("sim:endless-pii-large-events")).pipe(
            Stream.takeWhile(() => read < 10_000_000),
            Stream.runForEach((part) =>
              Effect.sync(() => {
                if (part._tag !== "TextDelta") return
                read += part.text.length
                if (start === 0 && read > 2_000_000) start = heap()
                else if (start !== 0 && samples.length < 4 && read > 2_000_000 * (samples.length + 2)) {
                  samples.push(heap() - start)
                }
              })
            )
          )
          const growth = Math.max(...samples)
          // Keeping the raw and the redacted reply whole would add at least 16 MB here.
          console.log(
            `heap growth while reading 2 MB → 10 MB of one reply: ${samples.map((b) => (b / 1e6).toFixed(2)).join(", ")} MB (${
              Date.now() - t0
            } ms)`
          )
          expect(samples.length).toBe(4)
          expect(growth).toBeLessThan(4_000_000)
          const entries = yield* auditEntries
          expect(entries).toHaveLength(1)
          expect(entries[0]!.outcome).toBe("interrupted")
        })
      )
    ), 120_000)

  for (const [scenario, expected] of [["unavailable-4", { calls: 5, succeeded: 99 }], ["unavailable", { calls: 8, succeeded: 0 }]] as const) {
    it.live(`100 identical requests against ${scenario}: the waiting requests share one new attempt`, () =>
      withSimulator((server, { logs, run }) =>
        run(
          { profile: "gateway" },
          Effect.gen(function*() {
            const exits = yield* Effect.all(
              Array.from({ length: 100 }, () => Effect.exit(Gateway.complete(ask(`sim:${scenario}`)))),
              { concurrency: "unbounded" }
            )
            const calls = yield* invokeCount(server, "gateway")
            console.log(`${scenario}: 100 identical requests made ${calls} upstream calls`)
            expect(calls).toBe(expected.calls)
            expect(exits.filter(Exit.isSuccess)).toHaveLength(expected.succeeded)
            for (const exit of exits.filter(Exit.isFailure)) {
              expect(failureOf(exit)).toMatchObject({ _tag: "UpstreamError", status: 503 })
            }
            expect(yield* auditEntries).toHaveLength(100)
            expectNoPii(logs)
          })
        )
      ), 60_000)
  }

  it.live("a connection cut inside an address withholds the redactor's tail and accounts for it", () =>
    withSimulator((_server, { logs, run }) =>
      run(
        { profile: "gateway" },
        Effect.gen(function*() {
          const { exit, parts, text } = yield* consume(ask("sim:drop-in-address"))
          const error = failureOf(exit)
          expect(error).toMatchObject({ partial: true })
          expect(text).toBe("Please write to ")
          const notice = parts.find((p) => p._tag === "RedactionNotice" && p.direction === "output")
          expect(notice).toMatchObject({ redactions: [{ kind: "withheld", count: "jane.doe@example.".length }] })
          const entries = yield* auditEntries
          expect(entries).toHaveLength(1)
          expect(entries[0]).toMatchObject({ outcome: "failure", outputRedactions: [{ kind: "withheld", count: 17 }] })
          expectNoPii(parts, String(error), logs, entries)
        })
      )
    ), 60_000)

  for (const store of ["memory", "file"] as const) {
    it.live(`a reply cached under a lenient policy is not replayed to a strict gateway (${store} cache)`, () =>
      withSimulator((server, { logs, run }) =>
        Effect.gen(function*() {
          const dir = yield* Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "llm-gateway-policy-")))
          const cacheLayer = store === "memory"
            ? ResponseCache.layerMemory({ capacity: 10, timeToLive: "1 hour" })
            : ResponseCache.layerFileSystem({ directory: dir, timeToLive: "1 hour" }).pipe(Layer.provide(NodeContext.layer), Layer.orDie)
          // One store, shared by both gateways, as two processes share a cache directory.
          const shared = yield* Layer.memoize(cacheLayer)
          const request = ask("sim:contact")
          const lenient = yield* run(
            { profile: "gateway", cache: shared, policy: { disable: ["email"] } },
            Effect.zip(Gateway.complete(request), Gateway.complete(request))
          )
          expect(lenient[0].text).toContain(EMAIL)
          expect(lenient[1].cached).toBe(true)
          const strict = yield* run({ profile: "gateway", cache: shared }, Gateway.complete(request))
          expect(strict.cached).toBe(false)
          expect(strict.text).toBe("You can reach support at [EMAIL] any day.")
          expect(strict.requestHash).not.toBe(lenient[0].requestHash)
          expect(yield* invokeCount(server, "gateway")).toBe(2)
          expectNoPii(logs)
          yield* Effect.promise(() => Fs.rm(dir, { recursive: true, force: true }))
        }).pipe(Effect.scoped)
      ), 60_000)
  }
})
