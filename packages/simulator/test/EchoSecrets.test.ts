/**
 * A gateway that echoes the caller's credentials and an email address in every field it can
 * (the `echo-secrets*` scenarios and `echoSecretsTokenAttempt`), served by the simulator's HTTP
 * server on 127.0.0.1 and met by the whole production pipeline: Gateway, real Transport and
 * Auth over sockets. For each field: a typed error whose field still says something, and
 * neither the secret nor the raw address in anything observable (the error, `Cause.pretty`,
 * Debug logs, spans, the audit entry).
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import {
  AuditLog,
  Auth,
  ContextWindow,
  CostMeter,
  Gateway,
  type GatewayError,
  ResponseCache,
  SafetyFilter,
  Transport
} from "@llm-gateway/core"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Encoding from "effect/Encoding"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import { inspect } from "node:util"
import * as Scenario from "../src/Scenario.js"
import * as SimulatorServer from "../src/SimulatorServer.js"

const client = { clientId: "echo-client", clientSecret: Redacted.make("echo-client-secret-7f3a9c2e51") }
const basicCredentials = Encoding.encodeBase64(`${client.clientId}:${Redacted.value(client.clientSecret)}`)
const apiKey = "sk-echo-0b4f8e2a9d7c6b5a4f3e2d1c"
const email = Scenario.echoedEmail

interface Observed {
  readonly error: GatewayError.GatewayError
  /** Everything a caller, an operator or a collector could see, as one text. */
  readonly everything: string
  readonly auditLines: ReadonlyArray<string>
  /** The bearer token or API key the transport sent (the last one, for Genesys). */
  readonly bearer: string
}

/** A tracer that keeps every span's name, attributes, events and failure for the assertions. */
const recordingTracer = (out: Array<string>): Tracer.Tracer => {
  let count = 0
  return Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const attributes = new Map<string, unknown>()
      const events: Array<unknown> = []
      return {
        _tag: "Span",
        name,
        spanId: `span-${++count}`,
        traceId: "trace",
        parent,
        context,
        status: { _tag: "Started", startTime },
        attributes,
        links,
        sampled: true,
        kind,
        end: (_endTime, exit) => {
          out.push(inspect({ name, attributes: [...attributes], events }, { depth: 10 }))
          if (Exit.isFailure(exit)) out.push(Cause.pretty(exit.cause))
        },
        attribute: (key, value) => void attributes.set(key, value),
        event: (eventName, _time, eventAttributes) => void events.push([eventName, eventAttributes]),
        addLinks: () => undefined
      }
    },
    context: (f) => f()
  })
}

/**
 * Sends one request through the Gateway to the simulator server with scenario `scenario`
 * (chosen by header, so the model id is an ordinary one), and collects what it left behind.
 */
const observe = (options: {
  readonly scenario: string
  readonly auth: "static" | "genesys"
  readonly profile?: Transport.Profile
  readonly tokenAttempts?: ReadonlyArray<Scenario.Attempt>
  readonly scenarios?: ReadonlyArray<Scenario.Scenario>
  readonly safety?: Layer.Layer<SafetyFilter.SafetyFilter>
}) =>
  Effect.gen(function*() {
    const server = yield* SimulatorServer.SimulatorServer
    const profile = options.profile ?? "gateway"
    const authLayer = options.auth === "static"
      ? Auth.layerStatic(Redacted.make(apiKey))
      : Auth.layerGenesys({ ...client, environment: "localhost", loginUrl: server.baseUrl })
    const transport = Transport.layer({
      profile,
      baseUrl: profile === "gateway" ? server.baseUrl : server.openAiBaseUrl,
      headers: { "x-simulator-scenario": options.scenario },
      retry: { initialDelay: "5 millis", maxDelay: "20 millis", maxAttempts: 2, deadline: "5 seconds" }
    }).pipe(Layer.provideMerge(authLayer), Layer.provide(NodeHttpClient.layerUndici))
    const layer = Gateway.layer().pipe(
      Layer.provideMerge(Layer.mergeAll(
        options.safety ?? SafetyFilter.layerDefault,
        ContextWindow.layer(),
        ResponseCache.layerMemory({ capacity: 10, timeToLive: "1 minute" }),
        CostMeter.layerMemory({ budgetUsd: 5 }),
        AuditLog.layerMemory
      )),
      Layer.provideMerge(transport)
    )

    const logs: Array<string> = []
    const spans: Array<string> = []
    const logger = Logger.make((entry) => void logs.push(Logger.logfmtLogger.log(entry)))

    return yield* Effect.gen(function*() {
      const exit = yield* Gateway.stream({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Hello" }] }).pipe(
        Stream.runDrain,
        Effect.withSpan("test.request"),
        Effect.exit
      )
      if (Exit.isSuccess(exit)) return yield* Effect.dieMessage("the request should have failed")
      const error = Cause.squash(exit.cause) as GatewayError.GatewayError
      const auditLines = yield* Effect.flatMap(AuditLog.MemoryAuditLog, (memory) => memory.lines)
      const bearer = options.auth === "static"
        ? apiKey
        : yield* Effect.flatMap(Auth.Auth, (auth) => auth.token).pipe(
          Effect.map(Redacted.value),
          Effect.orElseSucceed(() => "")
        )
      const everything = [
        error.message,
        JSON.stringify(error),
        inspect(error, { depth: 10 }),
        String(error),
        Cause.pretty(exit.cause),
        ...logs,
        ...spans,
        ...auditLines
      ].join("\n")
      return { error, everything, auditLines, bearer } satisfies Observed
    }).pipe(
      Effect.provide(layer),
      Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
      Logger.withMinimumLogLevel(LogLevel.All),
      Effect.withTracer(recordingTracer(spans))
    )
  }).pipe(
    Effect.provide(SimulatorServer.layerServer({
      clients: [client],
      apiKeys: [Redacted.make(apiKey)],
      ...(options.scenarios === undefined ? {} : { scenarios: options.scenarios }),
      ...(options.tokenAttempts === undefined ? {} : { tokenAttempts: options.tokenAttempts })
    }))
  )

/** Nothing of the secrets or the address anywhere, and the one audit entry names the failure. */
const expectClean = (observed: Observed, secrets: ReadonlyArray<string>) => {
  expect(observed.bearer.length).toBeGreaterThan(10)
  for (const secret of [observed.bearer, ...secrets]) {
    expect(observed.everything).not.toContain(secret)
    // Nor a long piece of it (a partial echo).
    expect(observed.everything).not.toContain(secret.slice(0, 17))
  }
  expect(observed.everything).not.toContain(email)
  expect(observed.everything).not.toContain("jane.doe")
  expect(observed.everything).not.toContain("example.com")
  // No line breaks smuggled into the error's own text.
  expect(observed.error.message).not.toMatch(/[\r\n]/)
  expect(observed.auditLines).toHaveLength(1)
  expect(JSON.parse(observed.auditLines[0]!).errorTag).toBe(observed.error._tag)
}

/** The field was echoed, then cleaned: it keeps its label, loses the secret and the address. */
const expectScrubbed = (field: string | undefined, label: string) => {
  expect(field).toBeDefined()
  expect(field).toContain(label)
  expect(field).toContain("<redacted>")
  expect(field).toContain("[EMAIL]")
}

describe("a gateway that echoes the caller's secrets (simulator server, real sockets)", () => {
  it.live("400: message, code, contextId and correlation header, with an API key", () =>
    Effect.gen(function*() {
      const observed = yield* observe({ scenario: "echo-secrets", auth: "static" })
      const error = observed.error
      expect(error._tag).toBe("BadRequest")
      if (error._tag !== "BadRequest") return
      expectScrubbed(error.detail, "message:")
      expectScrubbed(error.code, "code:")
      expectScrubbed(error.contextId, "contextId:")
      expectScrubbed(error.correlationId, "correlation:")
      expectClean(observed, [])
    }))

  it.live("400 on the OpenAI profile", () =>
    Effect.gen(function*() {
      const observed = yield* observe({ scenario: "echo-secrets", auth: "static", profile: "openai" })
      const error = observed.error
      expect(error._tag).toBe("BadRequest")
      if (error._tag !== "BadRequest") return
      expectScrubbed(error.detail, "message:")
      expectScrubbed(error.correlationId, "correlation:")
      expectClean(observed, [])
    }))

  it.live("401 from the gateway with a Genesys token: AuthError after one refresh", () =>
    Effect.gen(function*() {
      const observed = yield* observe({ scenario: "echo-secrets-401", auth: "genesys" })
      const error = observed.error
      expect(error._tag).toBe("AuthError")
      if (error._tag !== "AuthError") return
      expectScrubbed(error.error, "code:")
      expectScrubbed(error.description, "message:")
      expectClean(observed, [Redacted.value(client.clientSecret), basicCredentials])
    }))

  it.live("429: the rate-limit headers", () =>
    Effect.gen(function*() {
      const observed = yield* observe({ scenario: "echo-secrets-429", auth: "genesys" })
      const error = observed.error
      expect(error._tag).toBe("RateLimited")
      if (error._tag !== "RateLimited") return
      expectScrubbed(error.rateLimit?.count, "count:")
      expectScrubbed(error.rateLimit?.allowed, "allowed:")
      expectScrubbed(error.rateLimit?.reset, "reset:")
      expectClean(observed, [])
    }))

  it.live("an error inside a 200 stream", () =>
    Effect.gen(function*() {
      const observed = yield* observe({ scenario: "echo-secrets-stream", auth: "static", profile: "openai" })
      const error = observed.error
      expect(error._tag).toBe("UpstreamError")
      if (error._tag !== "UpstreamError") return
      expect(error.partial).toBe(true)
      expectScrubbed(error.detail, "message:")
      expectScrubbed(error.code, "code:")
      expectClean(observed, [])
    }))

  it.live("the Content-Type of a 200 that is not an event stream", () =>
    Effect.gen(function*() {
      const observed = yield* observe({ scenario: "echo-secrets-content-type", auth: "genesys" })
      const error = observed.error
      expect(error._tag).toBe("StreamProtocolError")
      if (error._tag !== "StreamProtocolError") return
      expectScrubbed(error.reason, "text/html")
      expectClean(observed, [])
    }))

  it.live("401 from the token endpoint: OAuth error and error_description echo the Basic credentials", () =>
    Effect.gen(function*() {
      const observed = yield* observe({
        scenario: "echo",
        auth: "genesys",
        tokenAttempts: [Scenario.echoSecretsTokenAttempt]
      })
      const error = observed.error
      expect(error._tag).toBe("AuthError")
      if (error._tag !== "AuthError") return
      expect(error.status).toBe(401)
      expectScrubbed(error.error, "error:")
      expectScrubbed(error.description, "description:")
      expectClean(observed, [Redacted.value(client.clientSecret), basicCredentials])
    }))

  it.live("the caller's policy redacts before the cut: a custom id straddling it is not half-shown", () =>
    Effect.gen(function*() {
      const customerId: SafetyFilter.Recognizer = {
        kind: "customer-id",
        marker: "[CUSTOMER]",
        pattern: /\bCUST-\d{8}\b/,
        maxLength: 14,
        alphabet: /[A-Z0-9\-]/,
        start: /C/
      }
      const safety = Layer.orDie(SafetyFilter.layer({ recognizers: [customerId] }))
      // Cut raw at 500 characters, 490 and 495 would show "CUST-123…"; 470 leaves room for the marker.
      for (const at of [470, 490, 495]) {
        const observed = yield* observe({
          scenario: "custom-id",
          auth: "static",
          safety,
          scenarios: [{
            name: "custom-id",
            attempts: [{ status: 400, times: 10, body: { message: `${"x".repeat(at)} CUST-12345678 {{credential}}` } }]
          }]
        })
        expect(observed.error._tag).toBe("BadRequest")
        if (observed.error._tag !== "BadRequest") return
        expect(observed.error.detail).toMatch(/^x+ /)
        if (at === 470) expect(observed.error.detail).toContain("[CUSTOMER] <redacted>")
        expect(observed.everything).not.toContain("CUST-")
        expectClean(observed, [])
      }
    }))
})
