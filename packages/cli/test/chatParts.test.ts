import { describe, expect, it } from "@effect/vitest"
import { CostMeter, GatewayError, Models, Transport } from "@llm-gateway/core"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as AppLayer from "../src/AppLayer.js"
import * as Backend from "../src/Backend.js"
import { forTag } from "../src/internal/exitCodes.js"
import * as Spinner from "../src/internal/spinner.js"

const withEnv = (env: Record<string, string>) => Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

describe("unknown models", () => {
  it.effect("a catalog model with a price assumes nothing", () =>
    Effect.gen(function*() {
      const assumed = yield* AppLayer.assumptions("gpt-4o-mini-2024-07-18").pipe(withEnv({}))
      expect(assumed).toEqual({ models: {}, pricing: {}, note: undefined })
    }))

  it.effect("an unknown model is registered with the fallback and said in one line", () =>
    Effect.gen(function*() {
      const assumed = yield* AppLayer.assumptions("house-model-7").pipe(withEnv({}))
      expect(assumed.models).toEqual({ "house-model-7": Models.defaultFallback })
      expect(assumed.pricing).toEqual({ "house-model-7": CostMeter.unknownModelPrice })
      expect(assumed.note).toBe(
        "model house-model-7 is not in the catalog; assuming a context window of 8,192 tokens, at most 4,096 reply tokens, o200k_base and $30.00 / $60.00 per million tokens in / out (see 'llm-gateway models'; register it with LLM_GATEWAY_MODELS and LLM_GATEWAY_PRICING)"
      )
    }))

  it.effect("LLM_GATEWAY_MODELS and LLM_GATEWAY_PRICING make it known", () =>
    Effect.gen(function*() {
      const assumed = yield* AppLayer.assumptions("house-model-7").pipe(withEnv({
        LLM_GATEWAY_MODELS: `{"house-model-7":{"contextWindow":32768,"maxOutputTokens":4096,"encoding":"cl100k_base"}}`,
        LLM_GATEWAY_PRICING: `{"house-model":{"promptPerMillion":1,"completionPerMillion":2}}`
      }))
      expect(assumed.note).toBeUndefined()
      expect(assumed.pricing).toEqual({})
      const priceOnly = yield* AppLayer.assumptions("house-model-7").pipe(withEnv({
        LLM_GATEWAY_PRICING: `{"house-model":{"promptPerMillion":1,"completionPerMillion":2}}`
      }))
      expect(priceOnly.note).toMatch(/assuming a context window of 8,192 tokens.*register it with LLM_GATEWAY_MODELS\)$/)
    }))
})

describe("spinner", () => {
  it("draws and erases on a terminal, and writes nothing to a pipe", () => {
    const written: Array<string> = []
    const spinner = Spinner.start({ isTTY: true, write: (t) => written.push(t) }, "waiting")
    spinner.stop()
    spinner.stop()
    expect(written).toEqual(["\r⠋ waiting", "\r\u001b[K"])
    const piped: Array<string> = []
    Spinner.start({ isTTY: false, write: (t) => piped.push(t) }, "waiting").stop()
    expect(piped).toEqual([])
  })
})

describe("exit codes and advice", () => {
  it("maps each error class to its exit code", () => {
    expect(forTag("BudgetExceeded")).toBe(5)
    expect(forTag("SafetyViolation")).toBe(6)
    expect(forTag("AuthError")).toBe(4)
    expect(forTag("UpstreamError")).toBe(7)
    expect(forTag("RequestTimeout")).toBe(8)
    expect(forTag("TemplateError")).toBe(9)
    expect(forTag("ConfigError")).toBe(3)
    expect(forTag("SomethingNew")).toBe(1)
  })

  it("every error of the GatewayError union has a class of its own, not the catch-all 1", () => {
    const tags = GatewayError.GatewayError.members.map((member) => (member as unknown as { _tag: string })._tag)
    expect(tags.length).toBeGreaterThan(10)
    for (const tag of tags) expect(forTag(tag), tag).not.toBe(1)
  })

  it("a refused static API key gets advice about the key, not about an OAuth client", () => {
    const backend: Backend.Backend = { _tag: "Static", description: "gateway at https://llm.example.com/v1" }
    const advised = Backend.advise(backend, {
      _tag: "AuthError",
      message: "Authentication failed with invalid_token (HTTP 401). Check the client id, secret and environment of the OAuth client."
    })
    expect(advised.message).toMatch(/^The gateway at https:\/\/llm\.example\.com\/v1 refused the API key\. Check LLM_GATEWAY_API_KEY/)
    expect(advised.message).toContain("The gateway said: Authentication failed with invalid_token (HTTP 401).")
    expect(advised.message).not.toContain("OAuth client")
    const genesys: Backend.Backend = { _tag: "Genesys", description: "Genesys Cloud (mypurecloud.de)" }
    expect(Backend.advise(genesys, { _tag: "AuthError", message: "m" })).toEqual({ _tag: "AuthError", message: "m" })
  })
})

describe("the embedded simulator backend", () => {
  const simulator: Backend.Backend = { _tag: "Simulator", description: "the embedded simulator" }
  const stalled = Effect.gen(function*() {
    const transport = yield* Transport.GatewayTransport
    const fiber = yield* Stream.runDrain(transport.stream({
      model: "sim:stall",
      system: undefined,
      messages: [{ role: "user", content: "hi" }],
      temperature: undefined,
      maxTokens: undefined
    })).pipe(Effect.fork)
    yield* TestClock.adjust("5 seconds")
    return yield* Fiber.poll(fiber)
  })

  it.scoped("takes the transport's timeout variables, like any gateway", () =>
    Effect.gen(function*() {
      const withIdle = yield* stalled.pipe(
        Effect.provide(Backend.layer(simulator)),
        withEnv({ LLM_GATEWAY_IDLE_TIMEOUT: "1 second" })
      )
      expect(Option.isSome(withIdle) && Exit.isFailure(withIdle.value)).toBe(true)
      const error = Option.isSome(withIdle) && Exit.isFailure(withIdle.value) ? Cause.failureOption(withIdle.value.cause) : Option.none()
      expect(Option.map(error, (e) => e._tag)).toEqual(Option.some("RequestTimeout"))
      // Without it the default idle timeout (30 s) has not run out after 5 s.
      const byDefault = yield* stalled.pipe(Effect.provide(Backend.layer(simulator)), withEnv({}))
      expect(Option.isNone(byDefault)).toBe(true)
    }))

  it.effect("speaks the profile --profile or LLM_GATEWAY_PROFILE names", () =>
    Effect.gen(function*() {
      const paths = yield* Effect.gen(function*() {
        const transport = yield* Transport.GatewayTransport
        yield* Stream.runDrain(transport.stream({
          model: "sim:hello",
          system: undefined,
          messages: [{ role: "user", content: "hi" }],
          temperature: undefined,
          maxTokens: undefined
        }))
        const recorded = yield* Effect.flatMap(Backend.simulatorService, (s) => Option.getOrThrow(s).requests)
        return recorded.map((r) => r.path)
      }).pipe(Effect.provide(Backend.layer(simulator)), withEnv({ LLM_GATEWAY_PROFILE: "openai" }))
      expect(paths).toEqual(["/v1/chat/completions"])
    }))
})
