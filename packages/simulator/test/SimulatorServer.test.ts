import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import OpenAI from "openai"
import * as Scenario from "../src/Scenario.js"
import * as Script from "../src/Script.js"
import * as SimulatorApp from "../src/SimulatorApp.js"
import * as SimulatorServer from "../src/SimulatorServer.js"

const secret = "s3cr3t-client-secret-value"
const clients = [{ clientId: "test-client", clientSecret: Redacted.make(secret) }]
const basic = (id: string, pass: string) => `Basic ${Buffer.from(`${id}:${pass}`).toString("base64")}`

/** A server started inside the test, so its handlers run on the test's Clock (TestClock). */
const withServer = <A, E>(
  use: (server: SimulatorServer.Service) => Effect.Effect<A, E>,
  options: SimulatorServer.ServerOptions = {}
) =>
  Effect.flatMap(SimulatorServer.SimulatorServer, use).pipe(
    Effect.provide(SimulatorServer.layerServer({ clients, ...options }))
  )

const fetchRaw = (url: string, init?: RequestInit) =>
  Effect.promise(async () => {
    const response = await fetch(url, init)
    const parts: Array<Uint8Array> = []
    let error: unknown = undefined
    const reader = response.body!.getReader()
    try {
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        parts.push(value)
      }
    } catch (cause) {
      error = cause
    }
    const bytes = Buffer.concat(parts)
    return { status: response.status, headers: response.headers, bytes, text: bytes.toString("utf8"), error }
  })

const token = (server: SimulatorServer.Service) =>
  fetchRaw(`${server.baseUrl}/oauth/token`, {
    method: "POST",
    headers: { authorization: basic("test-client", secret), "content-type": "application/x-www-form-urlencoded" },
    body: "grant_type=client_credentials"
  }).pipe(Effect.map((r) => JSON.parse(r.text) as { access_token: string; token_type: string; expires_in: number }))

const invoke = (server: SimulatorServer.Service, bearer: string, modelId: string, content = "Hello") =>
  fetchRaw(server.gatewayUrl, {
    method: "POST",
    headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" },
    body: JSON.stringify({ modelId, messages: [{ role: "user", content }], stream: true })
  })

describe("SimulatorServer with the official openai package", () => {
  it.effect("streams a chat completion and reads its text and usage (stream_options.include_usage)", () =>
    withServer((server) =>
      Effect.promise(async () => {
        const client = new OpenAI({ apiKey: "sim-api-key", baseURL: server.openAiBaseUrl, maxRetries: 0 })
        const stream = await client.chat.completions.create({
          model: "sim:hello",
          messages: [{ role: "user", content: "Hi" }],
          stream: true,
          stream_options: { include_usage: true }
        })
        let text = ""
        let usage: OpenAI.CompletionUsage | null | undefined
        let finish: string | null | undefined
        for await (const chunk of stream) {
          text += chunk.choices[0]?.delta.content ?? ""
          finish ??= chunk.choices[0]?.finish_reason
          if (chunk.usage) usage = chunk.usage
        }
        expect(text).toBe("Hello! How can I help you today?")
        expect(finish).toBe("stop")
        expect(usage).toEqual({ prompt_tokens: 7, completion_tokens: 9, total_tokens: 16 })

        const without = await client.chat.completions.create({
          model: "sim:hello",
          messages: [{ role: "user", content: "Hi" }],
          stream: true
        })
        let sawUsage = false
        for await (const chunk of without) if (chunk.usage) sawUsage = true
        expect(sawUsage).toBe(false)
      })
    ))

  it.effect("answers a non-streaming call, lists the scenarios as models, and rejects a wrong key", () =>
    withServer((server) =>
      Effect.promise(async () => {
        const client = new OpenAI({ apiKey: "sim-api-key", baseURL: server.openAiBaseUrl, maxRetries: 0 })
        const completion = await client.chat.completions.create({
          model: "gpt-4o-mini",
          messages: [{ role: "system", content: "Translate." }, { role: "user", content: "Bonjour" }]
        })
        expect(completion.choices[0]!.message.content).toBe("You said: Bonjour")
        expect(completion.usage?.completion_tokens).toBe(5)
        const models = await client.models.list()
        expect(models.data.map((m) => m.id)).toContain("sim:echo")
        const wrong = new OpenAI({ apiKey: "nope", baseURL: server.openAiBaseUrl, maxRetries: 0 })
        const error = await wrong.chat.completions.create({ model: "x", messages: [] }).catch((e: unknown) => e)
        expect(error).toBeInstanceOf(OpenAI.AuthenticationError)
        const limited = await client.chat.completions.create({ model: "sim:rate-limited", messages: [] })
          .catch((e: unknown) => e)
        expect(limited).toBeInstanceOf(OpenAI.RateLimitError)
      })
    ))
})

describe("SimulatorServer token endpoint", () => {
  const post = (server: SimulatorServer.Service, headers: Record<string, string>, body: string) =>
    fetchRaw(`${server.baseUrl}/oauth/token`, { method: "POST", headers, body }).pipe(
      Effect.map((r) => ({ status: r.status, body: JSON.parse(r.text) as Record<string, unknown> }))
    )
  const form = { "content-type": "application/x-www-form-urlencoded" }

  it.effect("issues bearer tokens for Basic client credentials and rejects everything else as the platform does", () =>
    withServer((server) =>
      Effect.gen(function*() {
        const good = yield* post(server, { authorization: basic("test-client", secret), ...form }, "grant_type=client_credentials")
        expect(good.status).toBe(200)
        expect(good.body).toMatchObject({ token_type: "bearer", expires_in: 86400 })
        expect(typeof good.body.access_token).toBe("string")

        const wrongSecret = yield* post(server, { authorization: basic("test-client", "nope"), ...form }, "grant_type=client_credentials")
        expect(wrongSecret).toEqual({ status: 401, body: { error: "invalid_client", error_description: "Client authentication failed." } })
        const unknown = yield* post(server, { authorization: basic("other", secret), ...form }, "grant_type=client_credentials")
        expect(unknown.status).toBe(401)
        const inBody = yield* post(server, form, `grant_type=client_credentials&client_id=test-client&client_secret=${secret}`)
        expect([inBody.status, inBody.body.error]).toEqual([401, "invalid_client"])
        const grant = yield* post(server, { authorization: basic("test-client", secret), ...form }, "grant_type=password")
        expect([grant.status, grant.body.error]).toEqual([400, "unsupported_grant_type"])
        const noGrant = yield* post(server, { authorization: basic("test-client", secret), ...form }, "")
        expect([noGrant.status, noGrant.body.error]).toEqual([400, "invalid_request"])
        const json = yield* post(
          server,
          { authorization: basic("test-client", secret), "content-type": "application/json" },
          JSON.stringify({ grant_type: "client_credentials" })
        )
        expect([json.status, json.body.error]).toEqual([400, "invalid_request"])
      })
    ))

  it.effect("tokens expire on the Clock after expires_in; the gateway then answers 401 in the Genesys shape", () =>
    withServer((server) =>
      Effect.gen(function*() {
        const issued = yield* token(server)
        expect(issued.expires_in).toBe(300)
        expect((yield* invoke(server, issued.access_token, "sim:hello")).status).toBe(200)
        yield* TestClock.adjust("299 seconds")
        expect((yield* invoke(server, issued.access_token, "sim:hello")).status).toBe(200)
        yield* TestClock.adjust("1 second")
        const expired = yield* invoke(server, issued.access_token, "sim:hello")
        expect(expired.status).toBe(401)
        const body = JSON.parse(expired.text)
        expect(body).toMatchObject({ code: "bad.credentials", status: 401 })
        expect(body.contextId).toBe(expired.headers.get("inin-correlation-id"))
        const missing = yield* fetchRaw(server.gatewayUrl, { method: "POST", body: "{}" })
        expect(JSON.parse(missing.text)).toMatchObject({ code: "authentication.required", status: 401 })
      }), { tokenLifetime: "300 seconds" }))

  it.effect("scripted token-endpoint failures come before the token", () =>
    withServer((server) =>
      Effect.gen(function*() {
        const headers = { authorization: basic("test-client", secret), ...form }
        const first = yield* post(server, headers, "grant_type=client_credentials")
        expect([first.status, first.body.error]).toEqual([503, "temporarily_unavailable"])
        const second = yield* post(server, headers, "grant_type=client_credentials")
        expect(second.status).toBe(200)
      }), { tokenAttempts: [{ status: 503 }] }))
})

describe("SimulatorServer faults on the wire", () => {
  it.effect("429 with Retry-After and Genesys headers, then 200 for the same request", () =>
    withServer((server) =>
      Effect.gen(function*() {
        const { access_token } = yield* token(server)
        const first = yield* invoke(server, access_token, "sim:rate-limited")
        expect(first.status).toBe(429)
        expect(first.headers.get("retry-after")).toBe("2")
        expect(first.headers.get("inin-ratelimit-allowed")).toBe("300")
        const body = JSON.parse(first.text)
        expect(body).toMatchObject({ code: "too.many.requests", status: 429, limit: { value: 300 } })
        expect(body.contextId).toBe(first.headers.get("inin-correlation-id"))
        const second = yield* invoke(server, access_token, "sim:rate-limited")
        expect(second.status).toBe(200)
        expect(second.headers.get("content-type")).toBe("text/event-stream; charset=utf-8")
        expect(second.text.endsWith("data: [DONE]\n\n")).toBe(true)
        // A different request starts its own sequence.
        expect((yield* invoke(server, access_token, "sim:rate-limited", "other")).status).toBe(429)
        const recorded = yield* server.requests
        expect(recorded.filter((r) => r.scenario === "rate-limited").map((r) => [r.status, r.attempt])).toEqual([
          [429, 0],
          [200, 1],
          [429, 0]
        ])
      })
    ))

  it.effect("drops the connection after the bytes of N tokens", () =>
    withServer((server) =>
      Effect.gen(function*() {
        const { access_token } = yield* token(server)
        const dropped = yield* invoke(server, access_token, "sim:drop")
        expect(dropped.status).toBe(200)
        expect(dropped.error).toBeDefined()
        expect(dropped.text.match(/"content":"[^"]+"/g)).toEqual([
          "\"content\":\"This\"",
          "\"content\":\" reply\"",
          "\"content\":\" is\""
        ])
        expect(dropped.text).not.toContain("[DONE]")
      })
    ))

  it.effect("sends an error object mid-stream, no [DONE], malformed JSON, CRLF framing", () =>
    withServer((server) =>
      Effect.gen(function*() {
        const { access_token } = yield* token(server)
        const error = yield* invoke(server, access_token, "sim:error-mid-stream")
        expect(error.error).toBeUndefined()
        expect(error.text).toContain("data: {\"error\":{\"message\":\"The model is overloaded.\"")
        expect(error.text).not.toContain("[DONE]")
        const noDone = yield* invoke(server, access_token, "sim:no-done")
        expect(noDone.text).toContain("\"usage\":")
        expect(noDone.text).not.toContain("[DONE]")
        const malformed = yield* invoke(server, access_token, "sim:malformed")
        expect(malformed.text).toContain("\"delta\":{\"content\":\n\n")
        const crlf = yield* invoke(server, access_token, "sim:crlf")
        expect(crlf.text.endsWith("data: [DONE]\r\n\r\n")).toBe(true)
      })
    ))

  it.effect("sends exactly the script's bytes, the same for the same seed (random splits inside UTF-8)", () =>
    withServer((server) =>
      Effect.gen(function*() {
        const { access_token } = yield* token(server)
        const a = yield* invoke(server, access_token, "sim:utf8")
        const b = yield* invoke(server, access_token, "sim:utf8")
        expect(a.bytes.equals(b.bytes)).toBe(true)
        const expected = Script.render(Scenario.builtins.find((s) => s.name === "utf8")!, {
          profile: "gateway",
          model: "sim:utf8",
          messages: [{ role: "user", content: "Hello" }],
          system: undefined,
          stream: true,
          includeUsage: true,
          n: undefined,
          maxTokens: undefined
        }, 0)
        expect(a.bytes.equals(Buffer.from(Script.bodyBytes(expected)))).toBe(true)
        expect(a.headers.get("inin-correlation-id")).toBe(expected.headers["inin-correlation-id"])
      })
    ))

  it.effect("chooses the scenario by header, then by sim: model, else the default; unknown names are 404", () =>
    withServer((server) =>
      Effect.gen(function*() {
        const { access_token } = yield* token(server)
        const byHeader = yield* fetchRaw(server.gatewayUrl, {
          method: "POST",
          headers: {
            authorization: `Bearer ${access_token}`,
            "content-type": "application/json",
            "x-simulator-scenario": "mine"
          },
          body: JSON.stringify({ modelId: "gpt-4o", messages: [{ role: "user", content: "x" }], stream: true })
        })
        expect(byHeader.text).toContain("\"content\":\"Mine\"")
        expect((yield* invoke(server, access_token, "gpt-4o", "Hi")).text).toContain("\"content\":\" Hi\"")
        const unknown = yield* invoke(server, access_token, "sim:nope")
        expect(unknown.status).toBe(404)
        expect(JSON.parse(unknown.text)).toMatchObject({ code: "not.found", status: 404 })
        yield* server.register({ name: "late", reply: ["Late"] })
        expect((yield* invoke(server, access_token, "sim:late")).text).toContain("\"content\":\"Late\"")
        const notFound = yield* fetchRaw(`${server.baseUrl}/nowhere`)
        expect(notFound.status).toBe(404)
        const wrongMethod = yield* fetchRaw(`${server.baseUrl}/v1/chat/completions`)
        expect([wrongMethod.status, wrongMethod.headers.get("allow")]).toEqual([405, "POST"])
        const badBody = yield* fetchRaw(server.gatewayUrl, {
          method: "POST",
          headers: { authorization: `Bearer ${access_token}`, "content-type": "application/json" },
          body: JSON.stringify({ modelId: "sim:hello" })
        })
        expect(badBody.status).toBe(400)
        expect(JSON.parse(badBody.text).message).toContain("messages: is missing")
      }), { scenarios: [{ name: "mine", reply: ["Mine"] }] }))
})

describe("SimulatorServer records and counts requests", () => {
  it.effect("recorded requests never contain the client secret, the Basic credentials or a bearer token", () =>
    withServer((server) =>
      Effect.gen(function*() {
        const { access_token } = yield* token(server)
        yield* invoke(server, access_token, "sim:hello", "Translate this")
        yield* fetchRaw(`${server.baseUrl}/oauth/token`, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded", cookie: "session=abc" },
          body: `grant_type=client_credentials&client_id=test-client&client_secret=${secret}`
        })
        yield* fetchRaw(`${server.openAiBaseUrl}/chat/completions`, {
          method: "POST",
          headers: { authorization: "Bearer sim-api-key", "x-api-key": "sim-api-key", "content-type": "application/json" },
          body: JSON.stringify({ model: "sim:hello", messages: [] })
        })
        const recorded = yield* server.requests
        const dump = JSON.stringify(recorded)
        for (const forbidden of [secret, Buffer.from(`test-client:${secret}`).toString("base64"), access_token, "sim-api-key", "abc"]) {
          expect(dump).not.toContain(forbidden)
        }
        expect(recorded[0]!.headers.authorization).toBe("Basic <redacted>")
        expect(recorded[1]!.headers.authorization).toBe("Bearer <redacted>")
        expect(recorded[1]!.body).toMatchObject({ modelId: "sim:hello", messages: [{ content: "Translate this" }] })
        expect(recorded[2]!.body).toEqual({
          grant_type: "client_credentials",
          client_id: "test-client",
          client_secret: "<redacted>"
        })
      })
    ))

  it.effect("counts requests per time window on the Clock, and enforces an optional per-token rate limit", () =>
    withServer((server) =>
      Effect.gen(function*() {
        const { access_token } = yield* token(server)
        expect((yield* invoke(server, access_token, "sim:hello")).status).toBe(200)
        yield* TestClock.adjust("30 seconds")
        expect((yield* invoke(server, access_token, "sim:hello")).status).toBe(200)
        const limited = yield* invoke(server, access_token, "sim:hello")
        expect(limited.status).toBe(429)
        expect(limited.headers.get("retry-after")).toBe("30")
        expect(limited.headers.get("inin-ratelimit-allowed")).toBe("2")
        expect(JSON.parse(limited.text)).toMatchObject({ code: "too.many.requests", limit: { value: 2 } })
        expect(yield* server.countRequests({ window: "10 seconds", path: server.gatewayUrl.slice(server.baseUrl.length) }))
          .toBe(2)
        expect(yield* server.countRequests()).toBe(4)
        yield* TestClock.adjust("30 seconds")
        expect((yield* invoke(server, access_token, "sim:hello")).status).toBe(200)
        yield* server.reset
        expect(yield* server.countRequests()).toBe(0)
      }), { rateLimit: { limit: 2, window: "1 minute" } }))
})

describe("SimulatorServer start-up", () => {
  it.effect("a taken port is a typed ServerStartError", () =>
    withServer((server) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(
          Effect.provide(SimulatorServer.SimulatorServer, SimulatorServer.layerServer({ port: server.port }))
        )
        expect(error._tag).toBe("ServerStartError")
        expect(error.message).toContain(String(server.port))
      })
    ))

  it.live("shutting down does not wait for a stalled response; its client sees the connection end", () =>
    Effect.gen(function*() {
      const pending = yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* SimulatorServer.SimulatorServer
        const response = yield* Effect.promise(() =>
          fetch(`${server.openAiBaseUrl}/chat/completions`, {
            method: "POST",
            headers: { authorization: "Bearer sim-api-key", "content-type": "application/json" },
            body: JSON.stringify({ model: "sim:stall", messages: [], stream: true })
          })
        )
        const reader = response.body!.getReader()
        const first = yield* Effect.promise(() => reader.read())
        expect(first.done).toBe(false)
        return reader
      }).pipe(Effect.provide(SimulatorServer.layerServer())))
      // The server is gone; the stalled body ends with an error instead of hanging.
      const rest = yield* Effect.promise(async () => {
        try {
          for (;;) if ((await pending.read()).done) return "ended"
        } catch {
          return "broken"
        }
      })
      expect(rest).toBe("broken")
    }))

  it.effect("serve and loadScenarioFile name the problem of a bad scenario file", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "sim-scenarios-"))
      const bad = join(dir, "bad.json")
      writeFileSync(bad, JSON.stringify([{ name: "x", faults: { dropAfter: "three" } }]))
      const error = yield* Effect.flip(SimulatorServer.serve({ scenarioFile: bad }))
      expect(error._tag).toBe("ScenarioFileError")
      expect(error.message).toContain("bad.json")
      expect(error.message).toContain("dropAfter")
      const missing = yield* Effect.flip(SimulatorServer.serve({ scenarioFile: join(dir, "missing.json") }))
      expect(missing.message).toContain("cannot be read")
      const good = join(dir, "good.json")
      writeFileSync(good, JSON.stringify({ scenarios: [{ name: "x", reply: "y" }], defaultScenario: "x" }))
      const set = yield* SimulatorServer.loadScenarioFile(good).pipe(
        Effect.provide((yield* Effect.promise(() => import("@effect/platform-node/NodeFileSystem"))).layer)
      )
      expect(set).toEqual({ scenarios: [{ name: "x", reply: "y" }], defaultScenario: "x" })
    }))

  it("defaults are documented values", () => {
    expect(SimulatorApp.defaultClient.clientId).toBe("simulator-client")
    expect(Redacted.value(SimulatorApp.defaultApiKey)).toBe("sim-api-key")
  })
})
