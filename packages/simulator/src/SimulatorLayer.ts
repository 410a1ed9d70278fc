/**
 * The simulator in process: an `HttpClient` that hands each request to the simulator's
 * `HttpApp` in memory instead of a socket. Core's real `Transport` and `Auth` Layers run on top
 * of it, so retries, status mapping, SSE decoding and timeouts are exactly those of production,
 * the bytes are exactly those the HTTP server sends, and every latency is an `Effect.sleep` on
 * the caller's `Clock` (a `TestClock` in tests).
 *
 * @since 0.1.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Auth from "@llm-gateway/core/Auth"
import * as Transport from "@llm-gateway/core/Transport"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import type * as Runtime from "effect/Runtime"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { concat } from "./internal/bytes.js"
import * as SimulatorApp from "./SimulatorApp.js"

const requestBody = (
  request: HttpClientRequest.HttpClientRequest
): Effect.Effect<BodyInit | undefined> => {
  const body = request.body
  switch (body._tag) {
    case "Empty":
      return Effect.succeed(undefined)
    case "Uint8Array":
      return Effect.succeed(body.body as BodyInit)
    case "Raw":
      return Effect.succeed(body.body as BodyInit)
    case "FormData":
      return Effect.succeed(body.formData)
    case "Stream":
      return Stream.toReadableStreamEffect(body.stream)
  }
}

/** Fails with `onAbort(reason)` once `signal` aborts. */
const whenAborted = <E>(signal: AbortSignal, onAbort: (reason: unknown) => E): Effect.Effect<never, E> =>
  Effect.async<never, E>((resume) => {
    const abort = () => resume(Effect.fail(onAbort(signal.reason)))
    if (signal.aborted) {
      abort()
      return
    }
    signal.addEventListener("abort", abort, { once: true })
    return Effect.sync(() => signal.removeEventListener("abort", abort))
  })

/**
 * The client's view of the app's response. A streamed body is handed over as the app's own
 * Effect stream (failures become `ResponseError`s, as a broken socket would), so the bytes and
 * their chunking are exactly those the server writes, every sleep of the body runs in the
 * reading fiber on its `Clock`, and a dropped connection surfaces only after every chunk sent
 * before it was read. Aborting `signal` (closing the connection) fails a pending read, as it
 * does for fetch. Like a real body it can be read once.
 */
const toClientResponse = (
  request: HttpClientRequest.HttpClientRequest,
  response: HttpServerResponse.HttpServerResponse,
  runtime: Runtime.Runtime<never>,
  signal: AbortSignal
): HttpClientResponse.HttpClientResponse => {
  const body = response.body
  if (body._tag !== "Stream") return HttpClientResponse.fromWeb(request, HttpServerResponse.toWeb(response, { runtime }))
  const base = HttpClientResponse.fromWeb(
    request,
    new Response(null, { status: response.status, headers: new globalThis.Headers(response.headers) })
  )
  let consumed = false
  const fail = (reason: "Decode" | "EmptyBody", cause: unknown, description?: string) =>
    new HttpClientError.ResponseError({
      request,
      response: self,
      reason,
      cause,
      ...(description === undefined ? {} : { description })
    })
  const stream: Stream.Stream<Uint8Array, HttpClientError.ResponseError> = Stream.suspend(() => {
    if (consumed) return Stream.fail(fail("EmptyBody", undefined, "the body was already read"))
    consumed = true
    return Stream.interruptWhen(
      Stream.mapError(body.stream, (cause) => fail("Decode", cause)),
      whenAborted(signal, (reason) => fail("Decode", reason))
    )
  })
  const arrayBuffer = Effect.map(
    Stream.runFold(stream, [] as Array<Uint8Array>, (parts, part) => {
      parts.push(part)
      return parts
    }),
    (parts) => concat(parts).buffer
  )
  const text = Effect.map(arrayBuffer, (buffer) => new TextDecoder().decode(buffer))
  const self: HttpClientResponse.HttpClientResponse = Object.create(base, {
    stream: { get: () => stream },
    arrayBuffer: { get: () => arrayBuffer },
    text: { get: () => text },
    json: {
      get: () =>
        Effect.flatMap(text, (t) =>
          Effect.try({ try: () => (t === "" ? null : JSON.parse(t)) as unknown, catch: (cause) => fail("Decode", cause) }))
    }
  })
  return self
}

/**
 * An `HttpClient` served by `app` in memory. The request becomes a web `Request`, the app's
 * response the client's response with the same status, headers and body chunks the HTTP
 * server sends. The app runs in the calling fiber, so every latency is a sleep on the caller's
 * `Clock`, and interrupting the caller cancels the body, like closing a socket.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeHttpClient = (app: SimulatorApp.Service["app"]): HttpClient.HttpClient =>
  HttpClient.make((request, url, signal) =>
    Effect.gen(function*() {
      const body = yield* requestBody(request)
      const webRequest = new Request(url, {
        method: request.method,
        headers: request.headers,
        signal,
        ...(body === undefined ? {} : { body, duplex: "half" } as RequestInit)
      })
      const response = yield* Effect.raceFirst(
        Effect.provideService(app, HttpServerRequest.HttpServerRequest, HttpServerRequest.fromWeb(webRequest)),
        whenAborted(signal, (cause) =>
          new HttpClientError.RequestError({ request, reason: "Transport", cause, description: "the request was aborted" }))
      )
      const runtime = yield* Effect.runtime<never>()
      return toClientResponse(request, response, runtime, signal)
    }).pipe(
      Effect.catchAllDefect((cause) =>
        Effect.fail(
          new HttpClientError.RequestError({
            request,
            reason: "Transport",
            cause,
            description: "the in-process simulator failed"
          })
        )
      )
    )
  )

/**
 * The in-process `HttpClient` of the `Simulator` in context.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerHttpClient: Layer.Layer<HttpClient.HttpClient, never, SimulatorApp.Simulator> = Layer.effect(
  HttpClient.HttpClient,
  Effect.map(SimulatorApp.Simulator, (simulator) => makeHttpClient(simulator.app))
)

/**
 * The base URL the in-process transport and Auth use. Any loopback URL would do: the requests
 * never leave the process.
 *
 * @since 0.1.0
 * @category Config
 */
export const baseUrl = "http://127.0.0.1"

/**
 * Options of the in-process Layer: the simulator's options, plus
 *
 * - `profile`: the wire profile the transport speaks (default `gateway`).
 * - `auth`: `genesys` (the default for the gateway profile) runs core's client-credentials
 *   Auth against the simulated token endpoint with the first configured client; `static`
 *   (the default for the OpenAI profile) uses the first API key.
 * - `credentials`: the client the Auth presents (default: the first accepted client), to
 *   test what a wrong secret does.
 * - `transport`: the remaining `Transport` options (retry, timeouts, decoding, headers, path).
 *
 * @since 0.1.0
 * @category Config
 */
export interface Options extends SimulatorApp.Options {
  readonly profile?: Transport.Profile | undefined
  readonly auth?: "genesys" | "static" | undefined
  readonly credentials?: SimulatorApp.ClientCredentials | undefined
  readonly transport?: Omit<Transport.Options, "profile" | "baseUrl" | "environment"> | undefined
}

/**
 * The in-process simulator for the whole transport: core's real `Transport.layer` and `Auth`
 * Layers on the in-memory `HttpClient`, plus the `Simulator` service for assertions
 * (`requests`, `countRequests`, `reset`, `register`). Nothing listens on a port; the Effect
 * `Clock` drives every latency, token lifetime and retry pause, so tests run on `TestClock`.
 * Fails only with a `ConfigError` from invalid `transport` options.
 *
 * @example
 * import * as Effect from "effect/Effect"
 * import * as Stream from "effect/Stream"
 * import { Transport } from "@llm-gateway/core"
 * import { SimulatorLayer } from "@llm-gateway/simulator"
 *
 * const program = Effect.gen(function*() {
 *   const transport = yield* Transport.GatewayTransport
 *   return yield* Stream.runCollect(transport.stream({
 *     model: "sim:rate-limited",
 *     system: undefined,
 *     messages: [{ role: "user", content: "Hello" }],
 *     temperature: undefined,
 *     maxTokens: undefined
 *   }))
 * }).pipe(Effect.provide(SimulatorLayer.layer()))
 *
 * @since 0.1.0
 * @category Layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<Transport.GatewayTransport | Auth.Auth | SimulatorApp.Simulator, ConfigError.ConfigError> => {
  const profile = options.profile ?? "gateway"
  const authKind = options.auth ?? (profile === "gateway" ? "genesys" : "static")
  const client = options.credentials ?? options.clients?.[0] ?? SimulatorApp.defaultClient
  const apiKey = options.apiKeys?.[0] ?? SimulatorApp.defaultApiKey
  const auth: Layer.Layer<Auth.Auth, never, HttpClient.HttpClient> = authKind === "genesys"
    ? Auth.layerGenesys({
      clientId: client.clientId,
      clientSecret: client.clientSecret,
      environment: "localhost",
      loginUrl: baseUrl
    }).pipe(Layer.orDie)
    : Auth.layerStatic(apiKey)
  const transport = Transport.layer({
    ...options.transport,
    profile,
    baseUrl: profile === "gateway" ? baseUrl : `${baseUrl}/v1`,
    ...(profile === "gateway" && options.gatewayPath !== undefined && options.transport?.path === undefined
      ? { path: options.gatewayPath }
      : {})
  })
  return transport.pipe(
    Layer.provideMerge(auth),
    Layer.provide(layerHttpClient),
    Layer.provideMerge(SimulatorApp.layer(options))
  )
}
