import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Auth from "../src/Auth.js"
import type { OutboundRequest } from "../src/Chat.js"
import type { ChatChunk } from "../src/ChatChunk.js"
import type { TransportError } from "../src/GatewayError.js"
import * as Transport from "../src/Transport.js"
import * as Server from "./support/gatewayServer.js"

// ---------------------------------------------------------------------------------------------
// A fake network for TestClock-driven unit tests
// ---------------------------------------------------------------------------------------------

type BodyPart = string | { readonly stall: true } | { readonly reset: true }

type Reply =
  | {
    readonly status?: number
    readonly headers?: Record<string, string>
    readonly body?: ReadonlyArray<BodyPart> | string
  }
  | { readonly refuse: true }
  | { readonly hang: true }

interface Call {
  readonly url: string
  readonly method: string
  readonly headers: Record<string, string>
  readonly json: any
  readonly signal: AbortSignal
}

const encoder = new TextEncoder()
const event = (data: string) => `data: ${data}\n\n`
const stall = { stall: true } as const
const reset = { reset: true } as const

/** A body that yields one part per read; `stall` never yields again, `reset` errors the read. */
const bodyStream = (parts: ReadonlyArray<BodyPart>, signal: AbortSignal) => {
  let i = 0
  return new ReadableStream<Uint8Array>({
    start(controller) {
      signal.addEventListener("abort", () => {
        try {
          controller.error(new Error("aborted"))
        } catch {
          // already closed
        }
      })
    },
    pull(controller) {
      const part = parts[i++]
      if (part === undefined) return controller.close()
      if (typeof part === "string") return controller.enqueue(encoder.encode(part))
      if ("stall" in part) return new Promise<void>(() => {})
      controller.error(Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }))
    }
  })
}

const fakeHttp = (replies: ReadonlyArray<Reply>) => {
  const calls: Array<Call> = []
  const client = HttpClient.make((request: HttpClientRequest.HttpClientRequest, url, signal) =>
    Effect.suspend(() => {
      const reply = replies[calls.length] ?? { status: 500 }
      const body = request.body._tag === "Uint8Array" ? new TextDecoder().decode(request.body.body) : ""
      calls.push({ url: url.toString(), method: request.method, headers: { ...request.headers }, json: JSON.parse(body), signal })
      if ("refuse" in reply) {
        return Effect.fail(
          new HttpClientError.RequestError({
            request,
            reason: "Transport",
            cause: Object.assign(new Error("connect ECONNREFUSED 10.0.0.1:443"), { code: "ECONNREFUSED" })
          })
        )
      }
      if ("hang" in reply) return Effect.never
      const status = reply.status ?? 200
      const headers = reply.headers ?? (status === 200 ? { "content-type": "text/event-stream" } : {})
      const source = typeof reply.body === "string"
        ? reply.body
        : reply.body === undefined
        ? null
        : bodyStream(reply.body, signal)
      return Effect.succeed(HttpClientResponse.fromWeb(request, new Response(source, { status, headers })))
    })
  )
  return { calls, layer: Layer.succeed(HttpClient.HttpClient, client) }
}

/** An Auth whose n-th token is `token-n`; `invalidate` of the current token moves to the next. */
const countingAuth = () => {
  const state = { current: 1, fetches: 0, invalidated: [] as Array<string> }
  const layer = Layer.succeed(Auth.Auth, {
    token: Effect.sync(() => {
      state.fetches++
      return Redacted.make(`token-${state.current}`)
    }),
    invalidate: (stale) =>
      Effect.sync(() => {
        state.invalidated.push(Redacted.value(stale))
        if (Redacted.value(stale) === `token-${state.current}`) state.current++
      })
  })
  return { state, layer }
}

const request: OutboundRequest = {
  model: "gpt-4o-mini",
  system: "You are terse.",
  messages: [{ role: "user", content: "Say hi" }],
  temperature: 0.2,
  maxTokens: 50
}

const chunk = (text: string) =>
  JSON.stringify({ id: "c", object: "chat.completion.chunk", choices: [{ index: 0, delta: { content: text } }] })
const finish = JSON.stringify({ id: "c", choices: [{ index: 0, delta: {}, finish_reason: "stop" }] })
const usage = JSON.stringify({ id: "c", choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } })
const reply = (tokens: ReadonlyArray<string>) => [...tokens.map((t) => event(chunk(t))), event(finish), event(usage), event("[DONE]")]

const textOf = (chunks: Iterable<ChatChunk>) =>
  [...chunks].map((c) => c.choices.map((ch) => ch.delta.content ?? "").join("")).join("")

const fastRetry = { initialDelay: "100 millis", jitter: false, maxAttempts: 4 } as const

const baseOptions: Transport.Options = { baseUrl: "https://gateway.example.com", retry: fastRetry }

/** Runs `request` through a transport over `replies`, advancing the TestClock by `advance`. */
const run = (
  replies: ReadonlyArray<Reply>,
  options: Partial<Transport.Options> = {},
  advance: Duration.DurationInput = "10 minutes"
) =>
  Effect.gen(function*() {
    const http = fakeHttp(replies)
    const auth = countingAuth()
    const seen: Array<ChatChunk> = []
    const fiber = yield* Effect.gen(function*() {
      const transport = yield* Transport.GatewayTransport
      return yield* Stream.runForEach(transport.stream(request), (c) => Effect.sync(() => seen.push(c)))
    }).pipe(
      Effect.provide(Transport.layer({ ...baseOptions, ...options }).pipe(Layer.provide([http.layer, auth.layer]))),
      Effect.fork
    )
    yield* TestClock.adjust(advance)
    const exit = yield* Fiber.await(fiber)
    return { exit, seen, text: textOf(seen), calls: http.calls, auth: auth.state }
  })

/** A `status` with `Retry-After: seconds`, then a reply: the retry comes exactly then. */
const retriedExactlyAfter = (status: number, seconds: number) =>
  Effect.gen(function*() {
    const http = fakeHttp([{ status, headers: { "retry-after": String(seconds) } }, { body: reply(["ok"]) }])
    const fiber = yield* Effect.gen(function*() {
      const transport = yield* Transport.GatewayTransport
      return yield* Stream.runCollect(transport.stream(request))
    }).pipe(
      Effect.provide(Transport.layer(baseOptions).pipe(Layer.provide([http.layer, countingAuth().layer]))),
      Effect.fork
    )
    yield* TestClock.adjust(Duration.millis(seconds * 1000 - 1))
    expect(http.calls).toHaveLength(1)
    yield* TestClock.adjust("1 millis")
    expect(textOf(yield* Fiber.join(fiber))).toBe("ok")
    expect(http.calls).toHaveLength(2)
  })

const failureOf = <A>(exit: Exit.Exit<A, unknown>): any => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  const failure = exit.cause._tag === "Fail" ? exit.cause.error : undefined
  if (failure === undefined) throw new Error(`expected a typed failure, got ${String(exit.cause)}`)
  return failure
}

// ---------------------------------------------------------------------------------------------
// Unit tests
// ---------------------------------------------------------------------------------------------

describe("Transport (unit, TestClock)", () => {
  it.effect("gateway profile: POST /api/v2/ai/llm/gateway/invoke with systemInstruction apart", () =>
    Effect.gen(function*() {
      const { calls, exit, text } = yield* run([{ body: reply(["Hel", "lo"]) }], {
        headers: { "x-tenant": "acme", authorization: "Basic nope", accept: "text/html" }
      })
      expect(exit).toEqual(Exit.void)
      expect(text).toBe("Hello")
      expect(calls).toHaveLength(1)
      const call = calls[0]!
      expect(call.method).toBe("POST")
      expect(call.url).toBe("https://gateway.example.com/api/v2/ai/llm/gateway/invoke")
      expect(call.headers["accept"]).toBe("text/event-stream")
      expect(call.headers["authorization"]).toBe("Bearer token-1")
      expect(call.headers["content-type"]).toBe("application/json")
      expect(call.headers["x-tenant"]).toBe("acme")
      expect(call.json).toEqual({
        modelId: "gpt-4o-mini",
        messages: [{ role: "user", content: "Say hi" }],
        stream: true,
        temperature: 0.2,
        systemInstruction: "You are terse."
      })
    }))

  it.effect("openai profile: POST {base}/chat/completions, system first, include_usage", () =>
    Effect.gen(function*() {
      const { calls, text } = yield* run([{ body: reply(["ok"]) }], {
        profile: "openai",
        baseUrl: "https://api.openai.example/v1/"
      })
      expect(text).toBe("ok")
      expect(calls[0]!.url).toBe("https://api.openai.example/v1/chat/completions")
      expect(calls[0]!.json).toEqual({
        model: "gpt-4o-mini",
        messages: [{ role: "system", content: "You are terse." }, { role: "user", content: "Say hi" }],
        stream: true,
        stream_options: { include_usage: true },
        temperature: 0.2,
        max_tokens: 50
      })
    }))

  it("gateway body folds stray system messages into systemInstruction", () => {
    const body = Transport.requestBody("gateway", {
      model: "m",
      system: undefined,
      messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "q", name: "ann" }],
      temperature: undefined,
      maxTokens: undefined
    })
    expect(body).toEqual({
      modelId: "m",
      messages: [{ role: "user", content: "q", name: "ann" }],
      stream: true,
      systemInstruction: "Be brief."
    })
  })

  it.effect("refuses plain http to a non-loopback host at construction, naming the option", () =>
    Effect.gen(function*() {
      const build = (options: Transport.Options) =>
        Transport.make(options).pipe(Effect.provide([fakeHttp([]).layer, countingAuth().layer]), Effect.either)
      const bad = yield* build({ baseUrl: "http://gateway.example.com" })
      expect(Either.isLeft(bad) && String(bad.left)).toContain("baseUrl")
      expect(Either.isLeft(bad) && String(bad.left)).toContain("https")
      expect(Either.isLeft(yield* build({ baseUrl: "https://user:pw@gateway.example.com" }))).toBe(true)
      expect(Either.isLeft(yield* build({ baseUrl: "gateway.example.com" }))).toBe(true)
      expect(Either.isLeft(yield* build({ profile: "openai" }))).toBe(true)
      expect(Either.isLeft(yield* build({ environment: "mypurecloud.example" }))).toBe(true)
      expect(Either.isLeft(yield* build({ baseUrl: "https://x.example", maxEventSize: 0 }))).toBe(true)
      for (const ok of ["http://127.0.0.1:8080", "http://127.9.8.7", "http://localhost:3000", "http://[::1]:9000"]) {
        expect(Either.isRight(yield* build({ baseUrl: ok })), ok).toBe(true)
      }
      expect(Transport.endpointUrl("http://[::1]:9000/base/", "/chat/completions")).toEqual(
        Either.right("http://[::1]:9000/base/chat/completions")
      )
    }))

  it.effect("derives the gateway URL from a Genesys environment", () =>
    Effect.gen(function*() {
      const { calls } = yield* run([{ body: reply(["x"]) }], { baseUrl: undefined, environment: "mypurecloud.de" })
      expect(calls[0]!.url).toBe("https://api.mypurecloud.de/api/v2/ai/llm/gateway/invoke")
      const custom = yield* run([{ body: reply(["x"]) }], { path: "llm/v3/invoke" })
      expect(custom.calls[0]!.url).toBe("https://gateway.example.com/llm/v3/invoke")
    }))

  it.effect("503 then success: retried after the backoff delay", () =>
    Effect.gen(function*() {
      const { calls, exit, text } = yield* run([{ status: 503, body: "" }, { status: 502 }, { body: reply(["ok"]) }])
      expect(exit).toEqual(Exit.void)
      expect(text).toBe("ok")
      expect(calls).toHaveLength(3)
    }))

  it.effect("retries are spaced by the policy: nothing is sent again before the delay", () =>
    Effect.gen(function*() {
      const http = fakeHttp([{ status: 503 }, { body: reply(["ok"]) }])
      const fiber = yield* Effect.gen(function*() {
        const transport = yield* Transport.GatewayTransport
        return yield* Stream.runCollect(transport.stream(request))
      }).pipe(
        Effect.provide(
          Transport.layer({ ...baseOptions, retry: { ...fastRetry, initialDelay: "1 second" } }).pipe(
            Layer.provide([http.layer, countingAuth().layer])
          )
        ),
        Effect.fork
      )
      yield* TestClock.adjust("999 millis")
      expect(http.calls).toHaveLength(1)
      yield* TestClock.adjust("1 millis")
      const chunks = yield* Fiber.join(fiber)
      expect(http.calls).toHaveLength(2)
      expect(textOf(chunks)).toBe("ok")
    }))

  it.effect("a 403 whose error body stalls is still PermissionDenied, after one attempt", () =>
    Effect.gen(function*() {
      const { calls, exit } = yield* run([{ status: 403, body: ['{"message":"no', { stall: true }] }])
      expect(calls).toHaveLength(1)
      expect(failureOf(exit)?._tag).toBe("PermissionDenied")
    }))

  it.effect("tool-call events count as the first token", () =>
    Effect.gen(function*() {
      const toolCall = `data: ${JSON.stringify({ choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: "{" } }] } }] })}\n\n`
      // After a tool-call fragment the stream stalls: the deadline that fires is the idle one,
      // because the first-token deadline was met by the tool call.
      const { exit } = yield* run([{ body: [toolCall, { stall: true }] }], {
        timeouts: { firstToken: "1 second", idle: "5 seconds" }
      })
      expect(failureOf(exit)?._tag).toBe("RequestTimeout")
      expect(failureOf(exit)?.phase).toBe("idle")
    }))

  it.effect("honours Retry-After on a 503 as well", () => retriedExactlyAfter(503, 7))

  it.effect("honours Retry-After on 429, and fails fast with RateLimited when it is too long", () =>
    Effect.gen(function*() {
      yield* retriedExactlyAfter(429, 5)

      const long = yield* run(
        [
          {
            status: 429,
            headers: {
              "retry-after": "3600",
              "inin-correlation-id": "corr-1",
              "inin-ratelimit-count": "301",
              "inin-ratelimit-allowed": "300",
              "inin-ratelimit-reset": "42"
            },
            body: JSON.stringify({ message: "Rate limit exceeded", code: "too.many.requests", status: 429, contextId: "ctx-9" })
          }
        ],
        {},
        "1 millis"
      )
      expect(long.calls).toHaveLength(1)
      const error = failureOf(long.exit)
      expect(error._tag).toBe("RateLimited")
      expect(error.retryAfter).toEqual(Duration.hours(1))
      expect(error.code).toBe("too.many.requests")
      expect(error.contextId).toBe("ctx-9")
      expect(error.correlationId).toBe("corr-1")
      expect(error.rateLimit).toEqual({ count: "301", allowed: "300", reset: "42" })
    }))

  it.effect("a 429 whose code says the quota is spent is QuotaExhausted, not retried", () =>
    Effect.gen(function*() {
      const { calls, exit } = yield* run([
        { status: 429, body: JSON.stringify({ error: { message: "You exceeded your quota", type: "insufficient_quota" } }) }
      ])
      expect(calls).toHaveLength(1)
      expect(failureOf(exit)._tag).toBe("QuotaExhausted")
    }))

  it.effect("403, 400, 404, 413, 422 are fatal; the token never appears in the error", () =>
    Effect.gen(function*() {
      const cases = [[403, "PermissionDenied"], [400, "BadRequest"], [404, "BadRequest"], [413, "BadRequest"], [
        422,
        "BadRequest"
      ]] as const
      for (const [status, tag] of cases) {
        const { calls, exit } = yield* run([
          {
            status,
            headers: { "content-type": "application/json", "inin-correlation-id": "c-1" },
            body: JSON.stringify({ message: "bad token token-1 here", code: "some.code", status, contextId: "ctx" })
          }
        ])
        expect(calls).toHaveLength(1)
        const error = failureOf(exit)
        expect(error._tag).toBe(tag)
        expect(error.status).toBe(status)
        expect(error.code).toBe("some.code")
        expect(error.contextId).toBe("ctx")
        expect(error.correlationId).toBe("c-1")
        expect(error.message).not.toContain("token-1")
        expect(JSON.stringify(error)).not.toContain("token-1")
      }
    }))

  it.effect("401: invalidates that token, re-authenticates once and succeeds", () =>
    Effect.gen(function*() {
      const { auth, calls, exit, text } = yield* run([{ status: 401 }, { body: reply(["ok"]) }])
      expect(exit).toEqual(Exit.void)
      expect(text).toBe("ok")
      expect(auth.invalidated).toEqual(["token-1"])
      expect(calls.map((c) => c.headers["authorization"])).toEqual(["Bearer token-1", "Bearer token-2"])
    }))

  it.effect("a second 401 is an AuthError, and 401 is not retried by the policy", () =>
    Effect.gen(function*() {
      const { auth, calls, exit } = yield* run([{ status: 401 }, { status: 401 }, { body: reply(["never"]) }])
      expect(calls).toHaveLength(2)
      expect(auth.invalidated).toEqual(["token-1"])
      const error = failureOf(exit)
      expect(error._tag).toBe("AuthError")
      expect(error.status).toBe(401)
    }))

  it.effect("a 401 with a static key (the same token again) is final after one request", () =>
    Effect.gen(function*() {
      const http = fakeHttp([{ status: 401 }, { body: reply(["never"]) }])
      const exit = yield* Effect.gen(function*() {
        const transport = yield* Transport.GatewayTransport
        return yield* Stream.runDrain(transport.stream(request))
      }).pipe(
        Effect.provide(
          Transport.layer(baseOptions).pipe(Layer.provide([http.layer, Auth.layerStatic(Redacted.make("sk-static-key"))]))
        ),
        Effect.exit
      )
      expect(http.calls).toHaveLength(1)
      expect(failureOf(exit)._tag).toBe("AuthError")
    }))

  it.effect("connection refused is retried, then surfaces as ConnectionError", () =>
    Effect.gen(function*() {
      const ok = yield* run([{ refuse: true }, { body: reply(["ok"]) }])
      expect(ok.text).toBe("ok")
      const failed = yield* run([{ refuse: true }, { refuse: true }, { refuse: true }, { refuse: true }])
      expect(failed.calls).toHaveLength(4)
      const error = failureOf(failed.exit)
      expect(error._tag).toBe("ConnectionError")
      expect(error.partial).toBe(false)
      expect(error.reason).toContain("ECONNREFUSED")
    }))

  it.effect("a non-SSE 200 is a StreamProtocolError and is not retried", () =>
    Effect.gen(function*() {
      const { calls, exit } = yield* run([
        { status: 200, headers: { "content-type": "application/json" }, body: "{}" },
        { body: reply(["x"]) }
      ])
      expect(calls).toHaveLength(1)
      const error = failureOf(exit)
      expect(error._tag).toBe("StreamProtocolError")
      expect(error.partial).toBe(false)
    }))

  it.effect("handshake timeout: the hung attempt is aborted and retried", () =>
    Effect.gen(function*() {
      const { calls, exit, text } = yield* run([{ hang: true }, { body: reply(["ok"]) }], {
        timeouts: { handshake: "2 seconds" }
      })
      expect(exit).toEqual(Exit.void)
      expect(text).toBe("ok")
      expect(calls[0]!.signal.aborted).toBe(true)
      const all = yield* run([{ hang: true }, { hang: true }, { hang: true }, { hang: true }], {
        timeouts: { handshake: "2 seconds" }
      })
      const error = failureOf(all.exit)
      expect(error._tag).toBe("RequestTimeout")
      expect(error.phase).toBe("handshake")
      expect(error.partial).toBe(false)
      expect(all.calls).toHaveLength(4)
    }))

  it.effect("first-token timeout: events without text do not count", () =>
    Effect.gen(function*() {
      const roleOnly = JSON.stringify({ id: "c", choices: [{ index: 0, delta: { role: "assistant" } }] })
      const { calls, exit, seen } = yield* run([{ body: [event(roleOnly), stall] }], {
        timeouts: { firstToken: "5 seconds", idle: "1 hour" }
      })
      expect(calls).toHaveLength(1)
      expect(seen).toHaveLength(1)
      const error = failureOf(exit)
      expect(error._tag).toBe("RequestTimeout")
      expect(error.phase).toBe("firstToken")
      expect(error.after).toEqual(Duration.seconds(5))
      expect(error.partial).toBe(true)
      expect(calls[0]!.signal.aborted).toBe(true)
    }))

  it.effect("idle timeout after the first token; keep-alive comments are not progress", () =>
    Effect.gen(function*() {
      const keepAlives = Array.from({ length: 50 }, () => ": keep-alive\n\n")
      const { calls, exit, text } = yield* run([{ body: [event(chunk("Hi")), ...keepAlives, stall] }], {
        timeouts: { idle: "3 seconds" }
      })
      expect(text).toBe("Hi")
      const error = failureOf(exit)
      expect(error._tag).toBe("RequestTimeout")
      expect(error.phase).toBe("idle")
      expect(error.after).toEqual(Duration.seconds(3))
      expect(error.partial).toBe(true)
      expect(calls).toHaveLength(1)
      expect(calls[0]!.signal.aborted).toBe(true)
    }))

  it.effect("a slow consumer is not an idle server", () =>
    Effect.gen(function*() {
      const http = fakeHttp([{ body: reply(["a", "b", "c"]) }])
      const seen: Array<ChatChunk> = []
      const fiber = yield* Effect.gen(function*() {
        const transport = yield* Transport.GatewayTransport
        yield* Stream.runForEach(transport.stream(request), (c) =>
          Effect.sleep("10 seconds").pipe(Effect.zipRight(Effect.sync(() => seen.push(c)))))
      }).pipe(
        Effect.provide(
          Transport.layer({ ...baseOptions, timeouts: { idle: "3 seconds", firstToken: "5 seconds" } }).pipe(
            Layer.provide([http.layer, countingAuth().layer])
          )
        ),
        Effect.fork
      )
      yield* TestClock.adjust("2 minutes")
      expect(yield* Fiber.await(fiber)).toEqual(Exit.void)
      expect(textOf(seen)).toBe("abc")
    }))

  it.effect("idle timer is not armed before the first event", () =>
    Effect.gen(function*() {
      const { exit } = yield* run([{ body: [stall] }], { timeouts: { idle: "1 second", firstToken: "30 seconds" } })
      const error = failureOf(exit)
      expect(error.phase).toBe("firstToken")
      expect(error.partial).toBe(false)
    }))

  it.effect("total timeout covers retries and the body", () =>
    Effect.gen(function*() {
      const slow = Array.from({ length: 100 }, (_, i) => event(chunk(String(i))))
      const { exit } = yield* run([{ status: 503 }, { body: [...slow.slice(0, 3), stall] }], {
        timeouts: { total: "10 seconds", idle: "1 hour", firstToken: "1 hour" }
      })
      const error = failureOf(exit)
      expect(error._tag).toBe("RequestTimeout")
      expect(error.phase).toBe("total")
      expect(error.partial).toBe(true)
    }))

  it.effect("a reset mid-body ends the stream with partial ConnectionError, never retried", () =>
    Effect.gen(function*() {
      const { calls, exit, text } = yield* run([{ body: [event(chunk("a")), event(chunk("b")), reset] }, {
        body: reply(["a", "b", "c"])
      }])
      expect(text).toBe("ab")
      expect(calls).toHaveLength(1)
      const error = failureOf(exit)
      expect(error._tag).toBe("ConnectionError")
      expect(error.partial).toBe(true)
      expect(error.isRetryable).toBe(false)
    }))

  it.effect("an error object inside a started stream is a partial UpstreamError", () =>
    Effect.gen(function*() {
      const { calls, exit, text } = yield* run([
        { body: [event(chunk("a")), event(JSON.stringify({ error: { message: "overloaded", code: 503 } }))] },
        { body: reply(["a"]) }
      ])
      expect(text).toBe("a")
      expect(calls).toHaveLength(1)
      expect(failureOf(exit)).toMatchObject({ _tag: "UpstreamError", partial: true })
    }))

  it.effect("a body cut short without [DONE] or a finish reason is StreamTruncated", () =>
    Effect.gen(function*() {
      const { exit, text } = yield* run([{ body: [event(chunk("a"))] }])
      expect(text).toBe("a")
      expect(failureOf(exit)._tag).toBe("StreamTruncated")
    }))

  it.effect("an oversized event is a StreamProtocolError", () =>
    Effect.gen(function*() {
      const { exit } = yield* run([{ body: [event(chunk("x".repeat(500)))] }], { maxEventSize: 100 })
      expect(failureOf(exit)._tag).toBe("StreamProtocolError")
    }))

  it.effect("onMalformedJson: skip drops bad events and counts them", () =>
    Effect.gen(function*() {
      const skipped: Array<number> = []
      const { exit, text } = yield* run([{ body: [event("not json"), ...reply(["ok"])] }], {
        onMalformedJson: "skip",
        onSkip: (n) => skipped.push(n)
      })
      expect(exit).toEqual(Exit.void)
      expect(text).toBe("ok")
      expect(skipped).toEqual([1])
    }))

  it.effect("accepts a user-built Schedule as the retry policy", () =>
    Effect.gen(function*() {
      const { calls, exit } = yield* run([{ status: 503 }, { status: 503 }, { body: reply(["ok"]) }], {
        retry: Schedule.recurs(1)
      })
      expect(calls).toHaveLength(2)
      expect(failureOf(exit)._tag).toBe("UpstreamError")
    }))

  it.effect.prop(
    "no token reaches the caller twice, whatever the faults",
    [
      FastCheck.array(
        FastCheck.constantFrom<Reply>(
          { status: 503 },
          { status: 429, headers: { "retry-after": "1" } },
          { status: 500 },
          { refuse: true },
          { hang: true }
        ),
        { maxLength: 5 }
      ),
      FastCheck.integer({ min: 0, max: 6 }),
      FastCheck.constantFrom<"complete" | "reset" | "stall" | "error">("complete", "reset", "stall", "error")
    ],
    ([faults, cut, ending]) =>
      Effect.gen(function*() {
        const tokens = ["T0 ", "T1 ", "T2 ", "T3 ", "T4 ", "T5 "]
        const full = tokens.join("")
        const head = tokens.slice(0, cut).map((t) => event(chunk(t)))
        const final: Reply = ending === "complete"
          ? { body: reply(tokens) }
          : ending === "reset"
          ? { body: [...head, reset] }
          : ending === "stall"
          ? { body: [...head, stall] }
          : { body: [...head, event(JSON.stringify({ error: { message: "boom" } }))] }
        // Every later attempt would stream the whole reply again: a retry after the body
        // started would show up as repeated tokens.
        const replies: Array<Reply> = [...faults, final, ...Array.from({ length: 5 }, () => ({ body: reply(tokens) }))]
        const { calls, exit, text } = yield* run(replies, { timeouts: { handshake: "2 seconds", idle: "5 seconds" } })
        expect(full.startsWith(text)).toBe(true)
        const bodies = calls.filter((_, i) => i >= faults.length)
        expect(bodies.length).toBeLessThanOrEqual(1)
        if (Exit.isSuccess(exit)) {
          expect(text).toBe(full)
        } else {
          // Once text has reached the caller, the failure says the reply is incomplete.
          const error = failureOf(exit) as TransportError
          if (text !== "") expect((error as { partial?: boolean }).partial).toBe(true)
        }
      }),
    { fastCheck: { numRuns: 150 } }
  )

  it.effect("decodeBody is the transport's own decoder, for any byte source", () =>
    Effect.gen(function*() {
      const bytes = Stream.fromIterable(reply(["Hé", "llo"]).join("").split("").map((c) => encoder.encode(c)))
      const chunks = yield* Stream.runCollect(bytes.pipe(Transport.decodeBody()))
      expect(textOf(chunks)).toBe("Héllo")
      expect(Chunk.size(chunks)).toBe(4)
    }))
})

describe("Transport.layerConfig", () => {
  const build = (env: Record<string, string>) =>
    Layer.build(Transport.layerConfig()).pipe(
      Effect.provide([fakeHttp([]).layer, countingAuth().layer]),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))),
      Effect.scoped,
      Effect.either
    )

  it.effect("reads the profile, base URL, path and timeouts", () =>
    Effect.gen(function*() {
      const http = fakeHttp([{ body: reply(["ok"]) }])
      const text = yield* Effect.gen(function*() {
        const transport = yield* Transport.GatewayTransport
        return textOf(yield* Stream.runCollect(transport.stream(request)))
      }).pipe(
        Effect.provide(Transport.layerConfig().pipe(Layer.provide([http.layer, countingAuth().layer]))),
        Effect.withConfigProvider(
          ConfigProvider.fromMap(
            new Map([
              ["LLM_GATEWAY_PROFILE", "openai"],
              ["LLM_GATEWAY_BASE_URL", "http://127.0.0.1:4010/v1"],
              ["LLM_GATEWAY_IDLE_TIMEOUT", "5 seconds"]
            ])
          )
        )
      )
      expect(text).toBe("ok")
      expect(http.calls[0]!.url).toBe("http://127.0.0.1:4010/v1/chat/completions")
    }))

  it.effect("an unset LLM_GATEWAY_PROFILE leaves the profile to the overrides", () =>
    Effect.gen(function*() {
      const http = fakeHttp([{ body: reply(["ok"]) }])
      yield* Effect.gen(function*() {
        const transport = yield* Transport.GatewayTransport
        return yield* Stream.runCollect(transport.stream(request))
      }).pipe(
        Effect.provide(
          Transport.layerConfig({ profile: "openai", baseUrl: "http://127.0.0.1:4010/v1" }).pipe(
            Layer.provide([http.layer, countingAuth().layer])
          )
        ),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))
      )
      expect(http.calls[0]!.url).toBe("http://127.0.0.1:4010/v1/chat/completions")
    }))

  it.effect("GENESYS_ENVIRONMENT gives the gateway profile's host", () =>
    Effect.gen(function*() {
      expect(Either.isRight(yield* build({ GENESYS_ENVIRONMENT: "usw2.pure.cloud" }))).toBe(true)
    }))

  it.effect("a bad value fails at start-up naming the variable", () =>
    Effect.gen(function*() {
      const cases: Array<[Record<string, string>, string]> = [
        [{ LLM_GATEWAY_BASE_URL: "http://gateway.example.com" }, "LLM_GATEWAY_BASE_URL"],
        [{ LLM_GATEWAY_PROFILE: "grpc", LLM_GATEWAY_BASE_URL: "https://x.example" }, "LLM_GATEWAY_PROFILE"],
        [{ LLM_GATEWAY_BASE_URL: "https://x.example", LLM_GATEWAY_IDLE_TIMEOUT: "soon" }, "LLM_GATEWAY_IDLE_TIMEOUT"],
        [{ LLM_GATEWAY_BASE_URL: "https://x.example", LLM_GATEWAY_TOTAL_TIMEOUT: "0 seconds" }, "LLM_GATEWAY_TOTAL_TIMEOUT"],
        [{ LLM_GATEWAY_BASE_URL: "https://x.example", LLM_GATEWAY_MAX_ATTEMPTS: "0" }, "LLM_GATEWAY_MAX_ATTEMPTS"],
        [{ GENESYS_ENVIRONMENT: "mypurecloud.example" }, "GENESYS_ENVIRONMENT"],
        [{ LLM_GATEWAY_PROFILE: "openai", GENESYS_ENVIRONMENT: "mypurecloud.com" }, "LLM_GATEWAY_BASE_URL"],
        [{}, "LLM_GATEWAY_BASE_URL"]
      ]
      for (const [env, name] of cases) {
        const result = yield* build(env)
        expect(Either.isLeft(result), name).toBe(true)
        if (Either.isLeft(result)) expect(String(result.left)).toContain(name)
      }
    }))
})

// ---------------------------------------------------------------------------------------------
// Integration: a real HTTP server on 127.0.0.1, the real Genesys Auth layer, NodeHttpClient
// ---------------------------------------------------------------------------------------------

const clients = [["node:http", NodeHttpClient.layer], ["undici", NodeHttpClient.layerUndici]] as const

for (const [clientName, httpLayer] of clients) {
  describe(`Transport over a real socket (${clientName})`, () => {
    const transportFor = (server: Server.GatewayServer, options: Partial<Transport.Options> = {}) =>
      Transport.layer({
        baseUrl: server.url,
        retry: { initialDelay: "5 millis", maxDelay: "20 millis", jitter: false, maxAttempts: 4, deadline: "5 seconds" },
        timeouts: { handshake: "2 seconds", firstToken: "2 seconds", idle: "2 seconds", total: "10 seconds" },
        ...options
      }).pipe(
        Layer.provide(
          Auth.layerGenesys({
            clientId: "client-id",
            clientSecret: Redacted.make("client-secret"),
            environment: server.environment
          })
        ),
        Layer.provide(httpLayer)
      )

    /** Streams one request, collecting what reached the caller even if the stream fails. */
    const consume = (server: Server.GatewayServer, options: Partial<Transport.Options> = {}) =>
      Effect.gen(function*() {
        const seen: Array<ChatChunk> = []
        const exit = yield* Effect.gen(function*() {
          const transport = yield* Transport.GatewayTransport
          yield* Stream.runForEach(transport.stream(request), (c) => Effect.sync(() => seen.push(c)))
        }).pipe(Effect.provide(transportFor(server, options)), Effect.exit)
        return { exit, text: textOf(seen) }
      })

    it.scopedLive("streams a reply with the token from the token endpoint", () =>
      Effect.gen(function*() {
        const server = yield* Server.make
        server.script(Server.sse(Server.replyEvents(["Hel", "lo"])))
        const { exit, text } = yield* consume(server)
        expect(exit).toEqual(Exit.void)
        expect(text).toBe("Hello")
        expect(server.requests[0]!.url).toBe("/api/v2/ai/llm/gateway/invoke")
        expect(server.requests[0]!.headers["authorization"]).toBe("Bearer token-1")
        expect(server.requests[0]!.headers["accept"]).toBe("text/event-stream")
        expect(server.requests[0]!.json).toMatchObject({ modelId: "gpt-4o-mini", systemInstruction: "You are terse." })
      }))

    it.scopedLive("429 several times, with and without Retry-After, then success", () =>
      Effect.gen(function*() {
        const server = yield* Server.make
        server.script(
          Server.status(429, { message: "slow down", code: "too.many.requests", status: 429 }, { "retry-after": "0" }),
          Server.status(429, { message: "slow down", status: 429 }),
          Server.status(429, {}, { "retry-after-ms": "10" }),
          Server.sse(Server.replyEvents(["ok"]))
        )
        const { exit, text } = yield* consume(server)
        expect(exit).toEqual(Exit.void)
        expect(text).toBe("ok")
        expect(server.requests).toHaveLength(4)
      }))

    it.scopedLive("429 asking for an hour fails fast with RateLimited", () =>
      Effect.gen(function*() {
        const server = yield* Server.make
        server.script(
          Server.status(429, { message: "slow down", status: 429, contextId: "ctx-1" }, {
            "retry-after": "3600",
            "inin-correlation-id": "corr-7"
          })
        )
        const { exit } = yield* consume(server)
        expect(server.requests).toHaveLength(1)
        expect(failureOf(exit)).toMatchObject({
          _tag: "RateLimited",
          retryAfter: Duration.hours(1),
          contextId: "ctx-1",
          correlationId: "corr-7"
        })
      }))

    it.scopedLive("503 then success", () =>
      Effect.gen(function*() {
        const server = yield* Server.make
        server.script(Server.status(503, { message: "unavailable", status: 503 }), Server.sse(Server.replyEvents(["ok"])))
        const { text } = yield* consume(server)
        expect(text).toBe("ok")
        expect(server.requests).toHaveLength(2)
      }))

    it.scopedLive("401 → invalidate → new token from the token endpoint → success", () =>
      Effect.gen(function*() {
        const server = yield* Server.make
        server.script(Server.status(401, { message: "expired", status: 401 }), Server.sse(Server.replyEvents(["ok"])))
        const { text } = yield* consume(server)
        expect(text).toBe("ok")
        expect(server.requests.map((r) => r.headers["authorization"])).toEqual(["Bearer token-1", "Bearer token-2"])
        expect(server.tokenRequests).toHaveLength(2)
      }))

    it.scopedLive("a second 401 is an AuthError", () =>
      Effect.gen(function*() {
        const server = yield* Server.make
        server.script(Server.status(401), Server.status(401), Server.sse(Server.replyEvents(["never"])))
        const { exit } = yield* consume(server)
        expect(failureOf(exit)._tag).toBe("AuthError")
        expect(server.requests).toHaveLength(2)
      }))

    it.scopedLive("403 is fatal", () =>
      Effect.gen(function*() {
        const server = yield* Server.make
        server.script(
          Server.status(403, { message: "missing permission", code: "missing.permissions", status: 403, contextId: "c" }),
          Server.sse(Server.replyEvents(["never"]))
        )
        const { exit } = yield* consume(server)
        expect(server.requests).toHaveLength(1)
        expect(failureOf(exit)).toMatchObject({ _tag: "PermissionDenied", status: 403, code: "missing.permissions" })
      }))

    it.scopedLive("a connection reset before the headers is retried", () =>
      Effect.gen(function*() {
        const server = yield* Server.make
        server.script(Server.resetBeforeHeaders, Server.sse(Server.replyEvents(["ok"])))
        const { text } = yield* consume(server)
        expect(text).toBe("ok")
        expect(server.requests).toHaveLength(2)
      }))

    it.scopedLive("a connection reset mid-stream is final and partial", () =>
      Effect.gen(function*() {
        const server = yield* Server.make
        server.script(
          Server.sseThenReset([Server.textChunk("a"), Server.textChunk("b")]),
          Server.sse(Server.replyEvents(["a", "b", "c"]))
        )
        const { exit, text } = yield* consume(server)
        expect(text).toBe("ab")
        expect(server.requests).toHaveLength(1)
        expect(failureOf(exit)).toMatchObject({ _tag: "ConnectionError", partial: true })
      }))

    it.scopedLive("a stall after the first token ends with an idle timeout, despite keep-alives", () =>
      Effect.gen(function*() {
        const server = yield* Server.make
        server.script(Server.sseThenStall([Server.textChunk("a")], { keepAliveMs: 10 }))
        const { exit, text } = yield* consume(server, {
          timeouts: { handshake: "2 seconds", firstToken: "2 seconds", idle: "60 millis", total: "10 seconds" }
        })
        expect(text).toBe("a")
        expect(failureOf(exit)).toMatchObject({ _tag: "RequestTimeout", phase: "idle", partial: true })
        expect(yield* Effect.promise(() => server.requests[0]!.closed)).toBe("aborted")
      }))

    it.scopedLive("interrupting the consumer closes the connection (the server sees it)", () =>
      Effect.gen(function*() {
        const server = yield* Server.make
        server.script(Server.sseThenStall([Server.textChunk("a")]))
        const first = yield* Deferred.make<void>()
        const fiber = yield* Effect.gen(function*() {
          const transport = yield* Transport.GatewayTransport
          yield* Stream.runForEach(transport.stream(request), () => Deferred.succeed(first, undefined))
        }).pipe(Effect.provide(transportFor(server)), Effect.fork)
        yield* Deferred.await(first)
        yield* Fiber.interrupt(fiber)
        expect(yield* Effect.promise(() => server.requests[0]!.closed)).toBe("aborted")
      }))

    it.scopedLive("taking part of the stream also closes the connection", () =>
      Effect.gen(function*() {
        const server = yield* Server.make
        server.script(Server.sseThenStall([Server.textChunk("a"), Server.textChunk("b")]))
        const chunks = yield* Effect.gen(function*() {
          const transport = yield* Transport.GatewayTransport
          return yield* Stream.runCollect(Stream.take(transport.stream(request), 1))
        }).pipe(Effect.provide(transportFor(server)))
        expect(textOf(chunks)).toBe("a")
        expect(yield* Effect.promise(() => server.requests[0]!.closed)).toBe("aborted")
      }))

    it.scopedLive("no token twice under a mix of faults", () =>
      Effect.gen(function*() {
        const server = yield* Server.make
        server.script(
          Server.resetBeforeHeaders,
          Server.status(503),
          Server.status(429, {}, { "retry-after": "0" }),
          Server.sseThenReset([Server.textChunk("a"), Server.textChunk("b")]),
          Server.sse(Server.replyEvents(["a", "b", "c"]))
        )
        const { exit, text } = yield* consume(server)
        expect(text).toBe("ab")
        expect(server.requests).toHaveLength(4)
        expect(failureOf(exit)).toMatchObject({ _tag: "ConnectionError", partial: true })
      }))
  })
}
