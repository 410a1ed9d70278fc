/**
 * Bounded, crash-free inputs: whatever a caller hands the gateway (deep nesting, hostile
 * objects, megabytes of text, odd model ids, odd template variables) ends in a typed error or
 * a correct answer, before anything scans or tokenizes it, and with one audit entry.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Stream from "effect/Stream"
import * as AuditLog from "../src/AuditLog.js"
import type { ChatRequestInput, InputLimits, OutboundRequest } from "../src/Chat.js"
import type { ChatChunk } from "../src/ChatChunk.js"
import * as ContextWindow from "../src/ContextWindow.js"
import * as CostMeter from "../src/CostMeter.js"
import * as Gateway from "../src/Gateway.js"
import type { GatewayError } from "../src/GatewayError.js"
import * as ResponseCache from "../src/ResponseCache.js"
import * as SafetyFilter from "../src/SafetyFilter.js"
import { GatewayTransport } from "../src/Transport.js"

const EMAIL = "jane.doe@example.com"

const reply: ReadonlyArray<ChatChunk> = [
  { choices: [{ index: 0, delta: { content: "ok" } }] },
  { choices: [{ index: 0, delta: {}, finish_reason: "stop" }] }
]

/** The real services, with counters on the stages that scan or tokenize the prompt. */
const setup = (options: { limits?: Partial<InputLimits>; systemInstruction?: string } = {}) => {
  const calls: Array<OutboundRequest> = []
  const scans = { guard: 0, fit: 0 }
  const transport = Layer.succeed(GatewayTransport, {
    stream: (request) =>
      Stream.suspend(() => {
        calls.push(request)
        return Stream.fromIterable(reply)
      })
  })
  const safety = Layer.effect(
    SafetyFilter.SafetyFilter,
    Effect.map(SafetyFilter.make(), (real) => ({
      ...real,
      guardInput: (input: Parameters<typeof real.guardInput>[0]) =>
        Effect.suspend(() => {
          scans.guard++
          return real.guardInput(input)
        })
    }))
  )
  const contextWindow = Layer.effect(
    ContextWindow.ContextWindow,
    Effect.map(ContextWindow.make(), (real) => ({
      ...real,
      fit: (input: Parameters<typeof real.fit>[0]) =>
        Effect.suspend(() => {
          scans.fit++
          return real.fit(input)
        })
    }))
  )
  const layer = Gateway.layer({
    ...(options.limits === undefined ? {} : { limits: options.limits }),
    ...(options.systemInstruction === undefined ? {} : { systemInstruction: options.systemInstruction })
  }).pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        safety,
        Layer.orDie(contextWindow),
        ResponseCache.layerMemory({ capacity: 100, timeToLive: "1 hour" }),
        CostMeter.layerMemory({}),
        AuditLog.layerMemory
      )
    ),
    Layer.provide(transport)
  )
  const requirements = Layer.mergeAll(
    safety,
    Layer.orDie(contextWindow),
    ResponseCache.layerMemory({ capacity: 100, timeToLive: "1 hour" }),
    CostMeter.layerMemory({}),
    AuditLog.layerMemory,
    transport
  )
  return { calls, scans, layer, requirements }
}

const auditEntries = Effect.flatMap(AuditLog.MemoryAuditLog, (log) => log.entries)

/** Runs a request and returns its typed failure; a defect or a success fails the test. */
const failure = (request: unknown) =>
  Effect.gen(function*() {
    const exit = yield* Effect.exit(Gateway.complete(request as ChatRequestInput))
    if (Exit.isSuccess(exit)) throw new Error("expected a failure")
    const error = Cause.failureOption(exit.cause)
    if (error._tag === "None") throw new Error(`expected a typed failure, got ${Cause.pretty(exit.cause)}`)
    return error.value as GatewayError
  })

const user = (content: string) => ({ role: "user" as const, content })

const deep = (depth: number, inner: unknown): unknown => {
  let value = inner
  for (let i = 0; i < depth; i++) value = [value]
  return value
}

describe("Gateway input", () => {
  it.effect("a request nested 10,000 deep is an InvalidRequest naming the field", () => {
    const { calls, layer } = setup()
    return Effect.gen(function*() {
      const nested = [
        { model: "gpt-4o", messages: deep(10_000, user(EMAIL)) },
        { model: "gpt-4o", messages: [{ role: "user", content: deep(10_000, EMAIL) }] },
        { model: "gpt-4o", prompt: { template: "$a", variables: { a: deep(10_000, EMAIL) } } },
        { model: deep(10_000, "gpt-4o"), messages: [user("hi")] },
        { model: "gpt-4o", messages: [user("hi")], temperature: deep(10_000, 1) }
      ]
      const fields = ["messages.0", "messages.0.content", "prompt.variables.a", "model", "temperature"]
      for (const [i, request] of nested.entries()) {
        const error = yield* failure(request)
        expect(error._tag).toBe("InvalidRequest")
        expect(error.message).toContain(fields[i])
        expect(error.message).not.toContain(EMAIL)
      }
      expect(calls).toHaveLength(0)
      expect(yield* auditEntries).toHaveLength(nested.length)
    }).pipe(Effect.provide(layer))
  })

  it.effect("throwing getters, throwing proxies and throwing toString are InvalidRequest, never a defect", () => {
    const { calls, layer } = setup()
    return Effect.gen(function*() {
      const boom = () => {
        throw new Error(`boom ${EMAIL}`)
      }
      const hostile = new Proxy({}, { get: boom, has: boom, ownKeys: boom, getOwnPropertyDescriptor: boom, getPrototypeOf: boom })
      const revoked = Proxy.revocable({}, {})
      revoked.revoke()
      const unprintable = { toString: boom, valueOf: boom, [Symbol.toPrimitive]: boom }
      const getter = (key: string, base: object) => Object.defineProperty({ ...base }, key, { get: boom, enumerable: true })
      const requests: ReadonlyArray<readonly [unknown, string]> = [
        [hostile, "model"],
        [revoked.proxy, "model"],
        [getter("model", { messages: [user("hi")] }), "model"],
        [{ model: "gpt-4o", messages: hostile }, "messages"],
        [{ model: "gpt-4o", messages: new Proxy([user("hi")], { get: boom }) }, "messages"],
        [{ model: "gpt-4o", messages: [hostile] }, "messages.0"],
        [{ model: "gpt-4o", messages: [getter("content", { role: "user" })] }, "messages.0.content"],
        [{ model: unprintable, messages: [user("hi")] }, "model"],
        [{ model: "gpt-4o", messages: [{ role: unprintable, content: "hi" }] }, "messages.0.role"],
        [{ model: "gpt-4o", messages: [user("hi")], maxTokens: unprintable }, "maxTokens"],
        [{ model: "gpt-4o", prompt: { template: "$a", variables: hostile } }, "prompt.variables"],
        [{ model: "gpt-4o", prompt: { template: "$a", variables: getter("a", {}) } }, "prompt.variables.a"],
        [{ model: "gpt-4o", prompt: { template: "$a", variables: new Proxy(new Map([["a", "b"]]), {}) } }, "prompt.variables"],
        [{ model: "gpt-4o", prompt: getter("template", { variables: {} }) }, "prompt.template"]
      ]
      for (const [request, field] of requests) {
        const error = yield* failure(request)
        expect(error._tag, field).toBe("InvalidRequest")
        expect(error.message, field).toContain(field)
        expect(error.message).not.toContain(EMAIL)
        expect(error.message).not.toContain("boom")
      }
      expect(calls).toHaveLength(0)
      const entries = yield* auditEntries
      expect(entries).toHaveLength(requests.length)
      expect(entries.every((e) => e.errorTag === "InvalidRequest")).toBe(true)
    }).pipe(Effect.provide(layer))
  })

  it.effect("size limits are checked before anything scans or tokenizes, and the error names the limit", () => {
    const limits = { maxMessageChars: 1_000, maxPromptChars: 2_500, maxMessages: 5, maxVariables: 3 }
    const { calls, layer, scans } = setup({ limits, systemInstruction: "s".repeat(600) })
    return Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [unknown, string]> = [
        [{ model: "gpt-4o", messages: [user(`${EMAIL} ${"x".repeat(1_000)}`)] }, "maxMessageChars"],
        [{ model: "gpt-4o", messages: [user("x"), user("x"), user("x"), user("x"), user("x"), user("x")] }, "maxMessages"],
        [{ model: "gpt-4o", messages: [user("x".repeat(900)), user("x".repeat(900)), user("x".repeat(900))] }, "maxPromptChars"],
        // The gateway's own system instruction counts too: 600 + 2 × 990 > 2,500.
        [{ model: "gpt-4o", messages: [user("x".repeat(990)), user("x".repeat(990))] }, "maxPromptChars"],
        [{ model: "gpt-4o", systemInstruction: "x".repeat(1_001), messages: [user("hi")] }, "maxMessageChars"],
        [{ model: "gpt-4o", prompt: { template: "x".repeat(1_001), variables: {} } }, "maxMessageChars"],
        [{ model: "gpt-4o", prompt: { template: "$a", variables: { a: "x".repeat(1_001) } } }, "maxMessageChars"],
        // 500 placeholders × 900 characters would render 450,000 characters: refused unrendered.
        [{ model: "gpt-4o", prompt: { template: "$a".repeat(500), variables: { a: "x".repeat(900) } } }, "maxMessageChars"],
        [{ model: "gpt-4o", prompt: { template: "$a", variables: { a: "1", b: "2", c: "3", d: "4" } } }, "maxVariables"]
      ]
      for (const [request, limit] of cases) {
        const error = yield* failure(request)
        expect(error._tag, limit).toBe("InvalidRequest")
        expect(error.message, limit).toContain(limit)
        expect(error.message).not.toContain(EMAIL)
      }
      expect(scans).toEqual({ guard: 0, fit: 0 })
      expect(calls).toHaveLength(0)
      expect(yield* auditEntries).toHaveLength(cases.length)
      // Within the limits the same gateway answers.
      const ok = yield* Gateway.complete({ model: "gpt-4o", messages: [user("x".repeat(900))] })
      expect(ok.text).toBe("ok")
    }).pipe(Effect.provide(layer))
  })

  it.effect("reports a bounded number of issues, and refuses limits that are not positive integers", () => {
    const { layer } = setup()
    return Effect.gen(function*() {
      const messages = Array.from({ length: 50 }, () => ({ role: "nobody", content: EMAIL }))
      const error = yield* failure({ model: "gpt-4o", messages })
      expect(error._tag).toBe("InvalidRequest")
      if (error._tag !== "InvalidRequest") return
      expect(error.issues.length).toBeLessThanOrEqual(21)
      expect(error.message).toContain("messages.0.role")
      expect(error.message).not.toContain(EMAIL)
      for (const limits of [{ maxMessages: 0 }, { maxPromptChars: 1.5 }, { maxVariables: Number.NaN }]) {
        const exit = yield* Effect.exit(Layer.build(setup({ limits }).layer).pipe(Effect.scoped))
        expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
        if (Exit.isFailure(exit)) expect(Cause.pretty(exit.cause)).toContain(`limits.${Object.keys(limits)[0]}`)
      }
    }).pipe(Effect.provide(layer))
  })

  it.effect("limits come from the environment with layerConfig; code wins; a bad value names the variable", () =>
    Effect.gen(function*() {
      const { requirements } = setup()
      const fromEnv = (vars: ReadonlyArray<readonly [string, string]>, limits?: Partial<InputLimits>) =>
        Gateway.layerConfig(limits === undefined ? {} : { limits }).pipe(
          Layer.provide(requirements),
          Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(vars))))
        )
      const long = { model: "gpt-4o", messages: [user("x".repeat(50))] }
      const tooLong = yield* failure(long).pipe(Effect.provide(fromEnv([["LLM_GATEWAY_MAX_MESSAGE_CHARS", "40"]])))
      expect(tooLong.message).toContain("50 characters exceed the limit of 40 (maxMessageChars)")
      const codeWins = yield* Gateway.complete(long).pipe(
        Effect.provide(fromEnv([["LLM_GATEWAY_MAX_MESSAGE_CHARS", "40"]], { maxMessageChars: 100 }))
      )
      expect(codeWins.text).toBe("ok")
      const tooMany = yield* failure({ model: "gpt-4o", messages: [user("a"), user("b")] }).pipe(
        Effect.provide(fromEnv([["LLM_GATEWAY_MAX_MESSAGES", "1"]]))
      )
      expect(tooMany.message).toContain("(maxMessages)")
      const bad = yield* Effect.flip(
        Layer.build(fromEnv([["LLM_GATEWAY_MAX_PROMPT_CHARS", "0"]])).pipe(Effect.scoped)
      )
      expect(String(bad)).toContain("LLM_GATEWAY_MAX_PROMPT_CHARS")
    }))

  it.effect("a 10 MB prompt fails at once under the default limits", () => {
    const { layer, scans } = setup()
    return Effect.gen(function*() {
      const error = yield* failure({ model: "gpt-4o", messages: [user("lorem ipsum ".repeat(900_000))] })
      expect(error._tag).toBe("InvalidRequest")
      expect(error.message).toContain("10800000 characters exceed the limit of 1048576 (maxMessageChars)")
      expect(scans).toEqual({ guard: 0, fit: 0 })
    }).pipe(Effect.provide(layer))
  })

  it.effect("model ids are bounded and validated, never logged or audited raw, never cached", () => {
    const { calls, layer } = setup()
    return Effect.gen(function*() {
      const lines: Array<string> = []
      const capture = Logger.make((options) => {
        lines.push(Logger.logfmtLogger.log(options))
      })
      const forged = "gpt-4o\r\ntimestamp=2026-01-01 level=ERROR message=forged"
      const big = "m".repeat(1 << 20)
      const heapBefore = process.memoryUsage().heapUsed
      for (let i = 0; i < 1_000; i++) {
        const error = yield* failure({ model: `${big}-${i}`, messages: [user("hi")] })
        expect(error._tag).toBe("InvalidRequest")
        if (i === 0) {
          expect(error.message).toContain("model: must be at most 256 characters (maxModelIdLength)")
          expect(error.message.length).toBeLessThan(400)
        }
      }
      const heapGrowth = process.memoryUsage().heapUsed - heapBefore
      // Holding the ids (as a per-id cache did) would take about 1 GB.
      expect(heapGrowth).toBeLessThan(100 * 1024 * 1024)
      const crlf = yield* failure({ model: forged, messages: [user("hi")] }).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, capture)),
        Logger.withMinimumLogLevel(LogLevel.Debug)
      )
      expect(crlf._tag).toBe("InvalidRequest")
      expect(crlf.message).not.toContain("forged")
      for (const line of lines) expect(line).not.toMatch(/[\r\n]/)
      const entries = yield* auditEntries
      expect(entries).toHaveLength(1_001)
      expect(entries.every((e) => e.model === "")).toBe(true)
      // Real ids of the kinds providers use pass.
      for (const model of ["gpt-4o-mini-2024-07-18", "ft:gpt-4o-mini:org::abc", "anthropic.claude-3-5-sonnet-20240620-v1:0"]) {
        expect((yield* Gateway.complete({ model, messages: [user("hi")] })).text).toBe("ok")
      }
      expect(calls).toHaveLength(3)
    }).pipe(Effect.provide(layer))
  }, 60_000)

  it.effect("unknown model ids do not grow the warning cache, and the warning quotes odd ids", () =>
    Effect.gen(function*() {
      const cw = yield* ContextWindow.make()
      const warnings: Array<string> = []
      const capture = Logger.make((options) => {
        warnings.push(Logger.logfmtLogger.log(options))
      })
      const big = "m".repeat(1 << 20)
      const heapBefore = process.memoryUsage().heapUsed
      for (let i = 0; i < 1_000; i++) {
        yield* cw.countText(`${big}${i}`, "hi").pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
      }
      expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(100 * 1024 * 1024)
      yield* cw.countText("acme\r\nlevel=ERROR forged", "hi").pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
      for (const line of warnings) {
        expect(line).not.toMatch(/[\r\n]/)
        expect(line.length).toBeLessThan(1_000)
      }
    }), 60_000)

  it.effect("template variables: __proto__ as an own property and a Map both work", () => {
    const { calls, layer } = setup()
    return Effect.gen(function*() {
      const viaJson = yield* Gateway.complete({
        model: "gpt-4o",
        prompt: JSON.parse(`{"template":"Hello $__proto__ and $name","variables":{"__proto__":"proto","name":"Ann"}}`)
      })
      expect(viaJson.text).toBe("ok")
      expect(calls[0]!.messages.at(-1)!.content).toBe("Hello proto and Ann")
      const defined = Object.defineProperty({}, "__proto__", { value: "own", enumerable: true })
      yield* Gateway.complete({ model: "gpt-4o", prompt: { template: "x $__proto__", variables: defined } })
      expect(calls[1]!.messages.at(-1)!.content).toBe("x own")
      yield* Gateway.complete({
        model: "gpt-4o",
        prompt: { template: "Hi $name, $constructor", variables: new Map([["name", "Bo"], ["constructor", "c"]]) }
      })
      expect(calls[2]!.messages.at(-1)!.content).toBe("Hi Bo, c")
      // Inherited properties are not variables.
      const missing = yield* failure({ model: "gpt-4o", prompt: { template: "$toString", variables: {} } })
      expect(missing._tag).toBe("TemplateError")
      const notString = yield* failure({ model: "gpt-4o", prompt: { template: "$a", variables: new Map([["a", 1]]) } })
      expect(notString._tag).toBe("InvalidRequest")
      expect(notString.message).toContain("prompt.variables.a: must be a string")
    }).pipe(Effect.provide(layer))
  })

  it.effect("maxTokens far beyond the window says the real numbers", () => {
    const { calls, layer } = setup()
    return Effect.gen(function*() {
      const error = yield* failure({ model: "gpt-4o", messages: [user("hi")], maxTokens: 1e9 })
      expect(error._tag).toBe("ContextWindowExceeded")
      expect(error.message).toContain("context window of gpt-4o is 128000 tokens, of which 1000000000 are reserved")
      expect(error.message).not.toContain("allows 0")
      expect(calls).toHaveLength(0)
    }).pipe(Effect.provide(layer))
  })
})
