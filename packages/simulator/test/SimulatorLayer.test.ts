import { describe, expect, it } from "@effect/vitest"
import type { OutboundRequest } from "@llm-gateway/core/Chat"
import type { ChatChunk } from "@llm-gateway/core/ChatChunk"
import { GatewayTransport } from "@llm-gateway/core/Transport"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as SimulatorApp from "../src/SimulatorApp.js"
import * as SimulatorLayer from "../src/SimulatorLayer.js"

const request = (model: string, content = "Hello"): OutboundRequest => ({
  model,
  system: undefined,
  messages: [{ role: "user", content }],
  temperature: undefined,
  maxTokens: undefined
})

const textOf = (chunks: Iterable<ChatChunk>) =>
  [...chunks].flatMap((c) => c.choices.filter((x) => x.index === 0).map((x) => x.delta.content ?? "")).join("")

/** Runs the stream in a fiber, moves the TestClock far enough for every sleep, and returns its exit. */
const runWithClock = (model: string, advance: Duration.DurationInput = "15 minutes") =>
  Effect.gen(function*() {
    const transport = yield* GatewayTransport
    const seen = yield* Ref.make<Array<ChatChunk>>([])
    const fiber = yield* transport.stream(request(model)).pipe(
      Stream.tap((chunk) => Ref.update(seen, (all) => [...all, chunk])),
      Stream.runDrain,
      Effect.fork
    )
    yield* TestClock.adjust(advance)
    const exit = yield* Fiber.await(fiber)
    return { exit, chunks: yield* Ref.get(seen) }
  })

const invokes = Effect.map(
  SimulatorApp.Simulator,
  (sim) => Effect.map(sim.requests, (all) => all.filter((r) => r.path === SimulatorApp.defaultGatewayPath))
).pipe(Effect.flatten)

const failureOf = <A>(exit: Exit.Exit<A, unknown>): any => {
  expect(Exit.isFailure(exit)).toBe(true)
  return Exit.isFailure(exit) ? exit.cause.pipe((cause) => (cause._tag === "Fail" ? cause.error : cause)) : undefined
}

describe("SimulatorLayer with core's Transport and Auth (gateway profile)", () => {
  it.effect("streams the echo reply with the gateway's usage, after a client-credentials token", () =>
    Effect.gen(function*() {
      const transport = yield* GatewayTransport
      const chunks = yield* Stream.runCollect(transport.stream(request("gpt-4o", "Bonjour")))
      expect(textOf(chunks)).toBe("You said: Bonjour")
      const usage = [...chunks].find((c) => c.usage != null)!.usage!
      expect(usage.completion_tokens).toBe(5)
      const sim = yield* SimulatorApp.Simulator
      const paths = (yield* sim.requests).map((r) => `${r.method} ${r.path} ${r.status}`)
      expect(paths).toEqual(["POST /oauth/token 200", `POST ${SimulatorApp.defaultGatewayPath} 200`])
    }).pipe(Effect.provide(SimulatorLayer.layer())))

  it.effect("plays latencies on the Effect Clock: nothing before the first-token time, then one token per tick", () =>
    Effect.gen(function*() {
      const transport = yield* GatewayTransport
      const seen = yield* Ref.make("")
      const fiber = yield* transport.stream(request("sim:timed")).pipe(
        Stream.runForEach((c) => Ref.update(seen, (s) => s + textOf([c]))),
        Effect.fork
      )
      yield* TestClock.adjust("999 millis")
      expect(yield* Ref.get(seen)).toBe("")
      yield* TestClock.adjust("1 millis")
      expect(yield* Ref.get(seen)).toBe("a")
      yield* TestClock.adjust("100 millis")
      expect(yield* Ref.get(seen)).toBe("ab")
      yield* TestClock.adjust("100 millis")
      expect(yield* Ref.get(seen)).toBe("abc")
      yield* Fiber.join(fiber)
    }).pipe(Effect.provide(SimulatorLayer.layer({
      scenarios: [{ name: "timed", reply: ["a", "b", "c"], timing: { firstTokenMs: 1000, tokenMs: 100 } }]
    }))))

  it.effect("honours Retry-After: the retry leaves 2 s (Clock time) after the 429", () =>
    Effect.gen(function*() {
      const { exit, chunks } = yield* runWithClock("sim:rate-limited")
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(textOf(chunks)).toBe("Served after a rate limit.")
      const calls = yield* invokes
      expect(calls.map((c) => c.status)).toEqual([429, 200])
      expect(calls[1]!.at - calls[0]!.at).toBe(2000)
    }).pipe(Effect.provide(SimulatorLayer.layer())))

  it.effect("a scripted 401 revokes the token: Auth fetches a new one and the request succeeds", () =>
    Effect.gen(function*() {
      const { exit, chunks } = yield* runWithClock("sim:unauthorized")
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(textOf(chunks)).toBe("Served with a fresh token.")
      const sim = yield* SimulatorApp.Simulator
      const all = yield* sim.requests
      expect(all.map((r) => `${r.path === "/oauth/token" ? "token" : "invoke"} ${r.status}`)).toEqual([
        "token 200",
        "invoke 401",
        "token 200",
        "invoke 200"
      ])
    }).pipe(Effect.provide(SimulatorLayer.layer())))

  it.effect("expired tokens are refused on the Clock; revoked tokens are replaced through one refresh", () =>
    Effect.gen(function*() {
      const transport = yield* GatewayTransport
      const sim = yield* SimulatorApp.Simulator
      yield* Stream.runDrain(transport.stream(request("sim:hello")))
      yield* sim.revokeTokens
      yield* Stream.runDrain(transport.stream(request("sim:hello")))
      expect((yield* sim.requests).map((r) => r.status)).toEqual([200, 200, 401, 200, 200])
      // Auth refreshes 10 % before the 300 s lifetime ends, so the server never sees an expired token.
      yield* TestClock.adjust("280 seconds")
      yield* Stream.runDrain(transport.stream(request("sim:hello")))
      expect((yield* sim.requests).slice(5).map((r) => `${r.path} ${r.status}`)).toEqual([
        "/oauth/token 200",
        `${SimulatorApp.defaultGatewayPath} 200`
      ])
    }).pipe(Effect.provide(SimulatorLayer.layer({ tokenLifetime: "300 seconds" }))))

  it.effect("a drop after the first bytes is final and partial: no retry, the text so far was seen", () =>
    Effect.gen(function*() {
      const { exit, chunks } = yield* runWithClock("sim:drop")
      const error = failureOf(exit)
      expect(error._tag).toBe("ConnectionError")
      expect(error.partial).toBe(true)
      expect(textOf(chunks)).toBe("This reply is")
      expect((yield* invokes).length).toBe(1)
    }).pipe(Effect.provide(SimulatorLayer.layer())))

  it.effect("a stall ends in the idle timeout, and keep-alive comments do not count as progress", () =>
    Effect.gen(function*() {
      for (const model of ["sim:stall", "sim:stall-keep-alive"]) {
        const { exit } = yield* runWithClock(model, "31 seconds")
        const error = failureOf(exit)
        expect(error._tag).toBe("RequestTimeout")
        expect(error.phase).toBe("idle")
        expect(error.partial).toBe(true)
      }
    }).pipe(Effect.provide(SimulatorLayer.layer())))

  it.effect("maps the in-stream faults to typed errors", () =>
    Effect.gen(function*() {
      const cases: Array<[string, string, boolean]> = [
        ["sim:error-mid-stream", "UpstreamError", true],
        ["sim:malformed", "StreamProtocolError", true],
        ["sim:truncated", "StreamTruncated", true],
        ["sim:endless-line", "StreamProtocolError", true],
        ["sim:html-200", "StreamProtocolError", false]
      ]
      for (const [model, tag, partial] of cases) {
        const { exit } = yield* runWithClock(model)
        const error = failureOf(exit)
        expect([model, error._tag, error.partial]).toEqual([model, tag, partial])
      }
    }).pipe(Effect.provide(SimulatorLayer.layer({ transport: { maxEventSize: 64 * 1024 } }))))

  it.effect("maps statuses: 403 is final, 503 is retried until the attempts run out, 400 is not retried", () =>
    Effect.gen(function*() {
      const sim = yield* SimulatorApp.Simulator
      const forbidden = failureOf((yield* runWithClock("sim:forbidden")).exit)
      expect(forbidden._tag).toBe("PermissionDenied")
      expect(forbidden.code).toBe("missing.permissions")
      expect(forbidden.correlationId).toBeDefined()
      expect(forbidden.contextId).toBe(forbidden.correlationId)
      expect((yield* invokes).length).toBe(1)
      yield* sim.reset
      const unavailable = failureOf((yield* runWithClock("sim:unavailable")).exit)
      expect([unavailable._tag, unavailable.status, unavailable.partial]).toEqual(["UpstreamError", 503, false])
      expect((yield* invokes).length).toBe(4)
      yield* sim.reset
      const bad = failureOf((yield* runWithClock("sim:bad-request")).exit)
      expect(bad._tag).toBe("BadRequest")
      expect((yield* invokes).length).toBe(1)
      yield* sim.reset
      const unknown = failureOf((yield* runWithClock("sim:no-such-scenario")).exit)
      expect([unknown._tag, unknown.status]).toEqual(["BadRequest", 404])
    }).pipe(Effect.provide(SimulatorLayer.layer())))

  it.effect("a slow handshake ends in handshake timeouts, retried on the Clock", () =>
    Effect.gen(function*() {
      const { exit } = yield* runWithClock("sim:slow-handshake")
      const error = failureOf(exit)
      expect([error._tag, error.phase, error.partial]).toEqual(["RequestTimeout", "handshake", false])
      expect((yield* invokes).length).toBeGreaterThan(1)
    }).pipe(Effect.provide(SimulatorLayer.layer())))

  it.effect("a wrong client secret surfaces as the token endpoint's invalid_client", () =>
    Effect.gen(function*() {
      const { exit } = yield* runWithClock("sim:hello")
      const error = failureOf(exit)
      expect([error._tag, error.error, error.status]).toEqual(["AuthError", "invalid_client", 401])
    }).pipe(Effect.provide(SimulatorLayer.layer({
      credentials: { clientId: "simulator-client", clientSecret: Redacted.make("wrong") }
    }))))
})

describe("SimulatorLayer, OpenAI profile", () => {
  it.effect("streams with the static API key and gets the usage chunk it asked for", () =>
    Effect.gen(function*() {
      const transport = yield* GatewayTransport
      const chunks = yield* Stream.runCollect(transport.stream(request("sim:n3")))
      expect(textOf(chunks)).toBe("The first answer.")
      const usage = [...chunks].find((c) => c.usage != null)
      expect(usage?.choices).toEqual([])
      const sim = yield* SimulatorApp.Simulator
      const [recorded] = yield* sim.requests
      expect(recorded!.path).toBe("/v1/chat/completions")
      expect(recorded!.headers.authorization).toBe("Bearer <redacted>")
      expect(recorded!.body).toMatchObject({ model: "sim:n3", stream: true, stream_options: { include_usage: true } })
    }).pipe(Effect.provide(SimulatorLayer.layer({ profile: "openai" }))))
})
