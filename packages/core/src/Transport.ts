/**
 * The transport (the "Http" concern): sends an `OutboundRequest` and streams back decoded
 * `ChatChunk`s. Retries, timeouts and re-authentication live here.
 *
 * Two wire profiles share one pipeline:
 *
 * - `gateway` (default): `POST {apiBase}/api/v2/ai/llm/gateway/invoke` with
 *   `{modelId, messages, stream, temperature, systemInstruction}`. This contract is the one our
 *   users specified; Genesys Cloud's published API has no such endpoint, so the path is
 *   configurable.
 * - `openai`: `POST {baseUrl}/chat/completions` with
 *   `{model, messages, stream: true, stream_options: {include_usage: true}}`, for any
 *   OpenAI-compatible gateway.
 *
 * Only the exchange that opens the response (status and headers) is retried; once the first
 * byte of the body has arrived, a failure ends the stream with a typed error marked
 * `partial: true`, so no token ever reaches the caller twice.
 *
 * @since 0.1.0
 */
import * as Headers from "@effect/platform/Headers"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Chunk from "effect/Chunk"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { Auth } from "./Auth.js"
import type { ChatMessage, OutboundRequest } from "./Chat.js"
import type { ChatChunk } from "./ChatChunk.js"
import * as Environment from "./Environment.js"
import {
  RequestTimeout,
  type StreamProtocolError as StreamProtocolErrorType,
  type StreamTruncated,
  type TimeoutPhase,
  type TransportError,
  type UpstreamError
} from "./GatewayError.js"
import * as BodyDecoder from "./internal/bodyDecoder.js"
import * as HttpErrors from "./internal/httpErrors.js"
import * as Sanitize from "./internal/sanitize.js"
import * as SseParsing from "./internal/sseParser.js"
import * as Observe from "./internal/telemetry.js"
import * as Timers from "./internal/transportTimers.js"
import * as RetryPolicy from "./RetryPolicy.js"
import * as StructuredOutput from "./StructuredOutput.js"

/**
 * Sends an outbound request to the gateway (with retries of the handshake) and streams the decoded
 * chunks of its reply.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Service {
  /**
   * Streams the reply's chunks. The stream ends after the chunk that carried a finish reason
   * and the usage chunk, or fails with a typed error; it never ends silently short.
   */
  readonly stream: (request: OutboundRequest) => Stream.Stream<ChatChunk, TransportError>
  /** The wire profile, when the transport has one (what `Gateway.prepare` checks requests against). */
  readonly profile?: Profile | undefined
}

/**
 * The transport service.
 *
 * @since 0.1.0
 * @category Services
 */
export class GatewayTransport extends Context.Tag("@llm-gateway/core/GatewayTransport")<
  GatewayTransport,
  Service
>() {}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/**
 * The wire profile: the gateway contract (`gateway`) or OpenAI-compatible chat completions
 * (`openai`).
 *
 * @since 0.1.0
 * @category Models
 */
export type Profile = "gateway" | "openai"

/**
 * The default path of each profile, appended to the base URL.
 *
 * @since 0.1.0
 * @category Config
 */
export const defaultPath: Readonly<Record<Profile, string>> = {
  gateway: "/api/v2/ai/llm/gateway/invoke",
  openai: "/chat/completions"
}

/**
 * The four deadlines of a request.
 *
 * - `handshake`: from sending the request until the response headers, per attempt; running
 *   out is retryable (`RequestTimeout{phase: "handshake"}`).
 * - `firstToken`: from the response headers until the first text arrives.
 * - `idle`: between two server-sent events once the first has arrived; keep-alive comments do
 *   not count as progress, and time the consumer spends with an event does not count as idle.
 * - `total`: the whole request, retries and body included.
 *
 * `Duration.infinity` turns one off. The body deadlines end a stalled read by aborting the
 * request, so a custom `HttpClient` must honour the `AbortSignal` it is given (every
 * @effect/platform client does).
 *
 * @since 0.1.0
 * @category Config
 */
export interface Timeouts {
  readonly handshake: Duration.DurationInput
  readonly firstToken: Duration.DurationInput
  readonly idle: Duration.DurationInput
  readonly total: Duration.DurationInput
}

/**
 * Default deadlines: handshake 30 s, first token 60 s, idle 30 s, total 10 minutes.
 *
 * @since 0.1.0
 * @category Config
 */
export const defaultTimeouts: Timeouts = {
  handshake: Duration.seconds(30),
  firstToken: Duration.seconds(60),
  idle: Duration.seconds(30),
  total: Duration.minutes(10)
}

/**
 * What decodes a response body: the SSE size limit, and what to do with an event whose data
 * is not a chat chunk (`"fail"`, the default, or `"skip"` it and count it in `onSkip`).
 *
 * @since 0.1.0
 * @category Config
 */
export interface DecodeOptions {
  readonly maxEventSize?: number | undefined
  readonly onMalformedJson?: "fail" | "skip" | undefined
  readonly onSkip?: ((count: number) => void) | undefined
}

/**
 * Settings of the HTTP transport.
 *
 * - `profile`: `"gateway"` (default) or `"openai"`.
 * - `baseUrl`: where the gateway lives, e.g. `https://api.mypurecloud.de` or
 *   `https://api.openai.com/v1`. For the gateway profile `environment` may be given instead
 *   (the API host of that Genesys Cloud region). https is required unless the host is
 *   loopback (127.0.0.0/8, localhost, [::1]).
 * - `path`: overrides the profile's `defaultPath`.
 * - `headers`: extra request headers; they cannot replace `Authorization`, `Accept` or
 *   `Content-Type`.
 * - `retry`: the retry policy of the handshake, as `RetryPolicy` options or any `Schedule`
 *   over `TransportError`s (default `RetryPolicy.defaults`).
 * - `timeouts`: overrides of `defaultTimeouts`.
 * - plus the body `DecodeOptions`.
 *
 * @since 0.1.0
 * @category Config
 */
export interface Options extends DecodeOptions {
  readonly profile?: Profile | undefined
  readonly baseUrl?: string | URL | undefined
  readonly environment?: string | undefined
  readonly path?: string | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
  readonly retry?: RetryPolicy.Options<TransportError> | Schedule.Schedule<unknown, TransportError> | undefined
  readonly timeouts?: Partial<Timeouts> | undefined
}

// ---------------------------------------------------------------------------------------------
// Body decoding, shared with the simulator
// ---------------------------------------------------------------------------------------------

/**
 * Decodes a response body, as bytes, into chat chunks: SSE parsing (size-limited), `[DONE]`,
 * in-stream error objects, malformed data and truncation. This is the exact decoder the
 * transport uses, exported so other servers' bodies (the simulator's) decode the same way.
 *
 * @since 0.1.0
 * @category Decoding
 */
export const decodeBody = (options: DecodeOptions = {}) =>
<E, R>(
  self: Stream.Stream<Uint8Array, E, R>
): Stream.Stream<ChatChunk, E | StreamProtocolErrorType | UpstreamError | StreamTruncated, R> =>
  Stream.pipeThroughChannel(
    self,
    BodyDecoder.channel<E, E | BodyDecoder.Failure>(bodyOptions(options, Sanitize.basic), {
      upstreamError: identity,
      decodeError: identity
    })
  )

const identity = <A>(a: A): A => a

const bodyOptions = (options: DecodeOptions, sanitize: Sanitize.Sanitize): BodyDecoder.BodyOptions => ({
  maxEventSize: SseParsing.limitOf(options.maxEventSize),
  onMalformedJson: options.onMalformedJson ?? "fail",
  ...(options.onSkip !== undefined ? { onSkip: options.onSkip } : {}),
  sanitize
})

// ---------------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------------

const wireMessage = (message: ChatMessage) =>
  message.name === undefined
    ? { role: message.role, content: message.content }
    : { role: message.role, content: message.content, name: message.name }

/** A message in the OpenAI shape: an assistant's `tool_calls` (content `null` when empty), a tool's `tool_call_id`. */
const openAiMessage = (message: ChatMessage): Record<string, unknown> => {
  const wire: Record<string, unknown> = wireMessage(message)
  if (message.toolCalls !== undefined && message.toolCalls.length > 0) {
    if (message.content.length === 0) wire["content"] = null
    wire["tool_calls"] = message.toolCalls.map((call) => ({
      id: call.id,
      type: "function",
      function: { name: call.name, arguments: call.arguments }
    }))
  }
  if (message.toolCallId !== undefined) wire["tool_call_id"] = message.toolCallId
  return wire
}

/** The OpenAI `tools` and `tool_choice` fields of a request, when it declares tools. */
const openAiTools = (request: OutboundRequest): Record<string, unknown> => {
  if (request.tools === undefined || request.tools.length === 0) return {}
  const tools = request.tools.map((tool) => ({
    type: "function",
    function: {
      name: tool.name,
      ...(tool.description === undefined ? {} : { description: tool.description }),
      parameters: tool.parameters ?? { type: "object", properties: {} }
    }
  }))
  const choice = request.toolChoice
  return {
    tools,
    ...(choice === undefined
      ? {}
      : { tool_choice: typeof choice === "string" ? choice : { type: "function", function: { name: choice.name } } })
  }
}

/**
 * Why a request cannot go out on a profile, or `undefined`: the gateway profile's body
 * (`{modelId, messages, stream, temperature, systemInstruction}`) has no tools, no tool calls
 * and no tool results. `Gateway.prepare` refuses such a request with `InvalidRequest` before
 * any network call.
 *
 * @since 0.1.0
 * @category Encoding
 */
export const unsupportedBy = (profile: Profile, request: {
  readonly tools?: ReadonlyArray<unknown> | undefined
  readonly messages: ReadonlyArray<ChatMessage>
}): string | undefined => {
  if (profile !== "gateway") return undefined
  if (request.tools !== undefined && request.tools.length > 0) {
    return "tools: the gateway profile's body {modelId, messages, stream, temperature, systemInstruction} has no tools; use the openai profile"
  }
  const i = request.messages.findIndex((m) => m.toolCalls !== undefined || m.toolCallId !== undefined)
  return i === -1
    ? undefined
    : `messages.${i}: the gateway profile's body has no tool calls or tool results; use the openai profile`
}

/**
 * The JSON body of each profile. The gateway profile keeps the system text out of `messages`
 * and sends it as `systemInstruction` (a stray system message in `messages` is folded into it,
 * after `request.system`); the OpenAI profile sends it as the first message, with `tools`,
 * `tool_choice`, assistant `tool_calls` and tool `tool_call_id`s. The gateway profile has no
 * tools (see `unsupportedBy`).
 *
 * @since 0.1.0
 * @category Encoding
 */
export const requestBody = (profile: Profile, request: OutboundRequest): Record<string, unknown> => {
  if (profile === "gateway") {
    const system: Array<string> = request.system === undefined ? [] : [request.system]
    const messages: Array<ReturnType<typeof wireMessage>> = []
    for (const message of request.messages) {
      if (message.role === "system") system.push(message.content)
      else messages.push(wireMessage(message))
    }
    // The body has no response_format: the schema goes as an instruction, after all the rest.
    if (request.responseFormat !== undefined) system.push(StructuredOutput.instruction(request.responseFormat))
    return {
      modelId: request.model,
      messages,
      stream: true,
      ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
      ...(system.length > 0 ? { systemInstruction: system.join("\n\n") } : {})
    }
  }
  const messages = request.messages.map(openAiMessage)
  return {
    model: request.model,
    messages: request.system === undefined ? messages : [{ role: "system", content: request.system }, ...messages],
    stream: true,
    stream_options: { include_usage: true },
    ...(request.responseFormat === undefined
      ? {}
      : { response_format: StructuredOutput.openAiResponseFormat(request.responseFormat) }),
    ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
    ...(request.maxTokens !== undefined ? { max_tokens: request.maxTokens } : {}),
    ...openAiTools(request)
  }
}

// ---------------------------------------------------------------------------------------------
// URL validation
// ---------------------------------------------------------------------------------------------

const isLoopbackHost = (host: string): boolean =>
  host === "localhost" || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)

/**
 * Joins and checks the endpoint URL: absolute, https unless the host is loopback, no
 * credentials, query or fragment in the base.
 *
 * @since 0.1.0
 * @category Utils
 */
export const endpointUrl = (baseUrl: string | URL, path: string): Either.Either<string, string> => {
  let url: URL
  try {
    url = new URL(String(baseUrl).trim())
  } catch {
    return Either.left("it is not an absolute URL such as https://api.mypurecloud.com")
  }
  if (url.username !== "" || url.password !== "") return Either.left("it must not contain credentials")
  if (url.search !== "" || url.hash !== "") return Either.left("it must not have a query or fragment")
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    return Either.left(`the scheme ${url.protocol}// is not supported`)
  }
  if (url.protocol === "http:" && !isLoopbackHost(url.hostname)) {
    return Either.left("it must use https unless the host is loopback (127.0.0.0/8, localhost, [::1])")
  }
  const base = `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, "")}`
  const suffix = path.trim()
  return Either.right(suffix === "" ? base : `${base}${suffix.startsWith("/") ? "" : "/"}${suffix}`)
}

// ---------------------------------------------------------------------------------------------
// The transport
// ---------------------------------------------------------------------------------------------

interface Resolved {
  readonly profile: Profile
  readonly url: string
  readonly headers: Headers.Headers
  readonly retry: Schedule.Schedule<unknown, TransportError>
  readonly handshake: Duration.Duration
  readonly firstToken: Duration.Duration
  readonly idle: Duration.Duration
  readonly total: Duration.Duration
  readonly decode: DecodeOptions
}

/** Names used in construction errors: the option names, or the environment variables. */
interface Names {
  readonly baseUrl: string
  readonly environment: string
  readonly maxEventSize: string
}

const optionNames: Names = { baseUrl: "baseUrl", environment: "environment", maxEventSize: "maxEventSize" }

const resolve = (options: Options, names: Names): Either.Either<Resolved, ConfigError.ConfigError> => {
  const profile = options.profile ?? "gateway"
  let baseUrl: string | URL
  let baseName = names.baseUrl
  if (options.baseUrl !== undefined) {
    baseUrl = options.baseUrl
  } else if (profile === "gateway" && options.environment !== undefined) {
    const env = Environment.resolve(options.environment)
    if (Either.isLeft(env)) return Either.left(ConfigError.InvalidData([names.environment], env.left.message))
    baseUrl = Environment.apiBaseUrl(env.right)
    baseName = names.environment
  } else {
    return Either.left(
      ConfigError.MissingData(
        [names.baseUrl],
        profile === "gateway"
          ? `Give the gateway's base URL (${names.baseUrl}) or the Genesys Cloud environment (${names.environment}).`
          : `Give the base URL of the OpenAI-compatible API (${names.baseUrl}), e.g. https://api.openai.com/v1.`
      )
    )
  }
  const url = endpointUrl(baseUrl, options.path ?? defaultPath[profile])
  if (Either.isLeft(url)) return Either.left(ConfigError.InvalidData([baseName], `The base URL is unusable: ${url.left}.`))
  if (options.maxEventSize !== undefined && !(Number.isInteger(options.maxEventSize) && options.maxEventSize > 0)) {
    return Either.left(ConfigError.InvalidData([names.maxEventSize], "Expected a positive whole number of characters."))
  }
  const timeouts = { ...defaultTimeouts, ...options.timeouts }
  const retry = options.retry === undefined
    ? RetryPolicy.defaults
    : Schedule.isSchedule(options.retry)
    ? options.retry as Schedule.Schedule<unknown, TransportError>
    : RetryPolicy.make(options.retry as RetryPolicy.Options<TransportError>)
  return Either.right({
    profile,
    url: url.right,
    headers: Headers.fromInput(options.headers ?? {}),
    retry,
    handshake: Duration.decode(timeouts.handshake),
    firstToken: Duration.decode(timeouts.firstToken),
    idle: Duration.decode(timeouts.idle),
    total: Duration.decode(timeouts.total),
    decode: {
      maxEventSize: options.maxEventSize,
      onMalformedJson: options.onMalformedJson,
      onSkip: options.onSkip
    }
  })
}

type Exchange =
  | {
    readonly _tag: "Open"
    readonly response: HttpClientResponse.HttpClientResponse
    /** Closing it aborts the connection. */
    readonly connection: Scope.CloseableScope
    /** Sanitizes the body's error text; it knows the bearer token this exchange sent. */
    readonly sanitize: Sanitize.Sanitize
  }
  | { readonly _tag: "Unauthorized"; readonly error: TransportError }

const timeout = (phase: TimeoutPhase, after: Duration.Duration, partial: boolean) =>
  new RequestTimeout({ phase, after, partial })

const hasText = (chunk: ChatChunk): boolean => {
  for (const choice of chunk.choices) {
    const delta = choice.delta
    if (
      (delta.content !== undefined && delta.content !== null && delta.content !== "") ||
      (delta.refusal !== undefined && delta.refusal !== null && delta.refusal !== "") ||
      (delta.tool_calls !== undefined && delta.tool_calls.length > 0)
    ) return true
  }
  return false
}

const makeService = (config: Resolved, client: HttpClient.HttpClient, auth: Auth["Type"]): Service => {
  const scopedClient = HttpClient.withScope(Sanitize.hideHeaderValuesInSpans(client))
  const fixedHeaders = Headers.merge(config.headers, Headers.fromInput({ accept: "text/event-stream" }))

  const stream = (request: OutboundRequest): Stream.Stream<ChatChunk, TransportError> => {
    const payload = requestBody(config.profile, request)
    return Stream.unwrapScoped(Effect.gen(function*() {
      const scope = yield* Effect.scope
      const clock = yield* Effect.clock
      const policy = yield* Sanitize.PolicyRedaction
      const startedAt = clock.unsafeCurrentTimeMillis()
      const progress = Timers.makeProgress()
      const tokenFailures = new WeakSet<object>()
      let reauthenticated = false
      const observed = yield* Observe.CurrentRequest

      const token = auth.token.pipe(Effect.tapError((error) => Effect.sync(() => tokenFailures.add(error))))

      // One HTTP exchange, up to the response headers (and a bounded error body). Its
      // connection lives in a child scope: closed (aborted) at once unless the body is used.
      const exchange = (bearer: Redacted.Redacted<string>): Effect.Effect<Exchange, TransportError> =>
        Effect.flatMap(Scope.fork(scope, ExecutionStrategy.sequential), (connection) =>
          Effect.gen(function*() {
            // Everything the server says back is cleaned of the token it was just sent.
            const sanitize = Sanitize.make([bearer], policy)
            const httpRequest = HttpClientRequest.post(config.url).pipe(
              HttpClientRequest.setHeaders(fixedHeaders),
              HttpClientRequest.bearerToken(bearer),
              HttpClientRequest.bodyUnsafeJson(payload)
            )
            const response = yield* scopedClient.execute(httpRequest).pipe(
              Effect.mapError((error) => HttpErrors.fromRequestError(error, sanitize))
            )
            if (response.status >= 200 && response.status < 300) {
              const contentType = response.headers["content-type"]
              if (contentType !== undefined && !HttpErrors.isEventStream(contentType)) {
                return yield* Effect.fail(HttpErrors.fromContentType(contentType, sanitize))
              }
              return { _tag: "Open", response, connection, sanitize } as const
            }
            // The status decides the error; a body that is slow to arrive only loses its detail
            // (waiting for it would turn a 403 into a retried handshake timeout).
            const text = yield* readErrorBody(response).pipe(
              Effect.timeoutTo({
                duration: Duration.min(Duration.seconds(2), Duration.times(config.handshake, 0.5)),
                onTimeout: () => undefined,
                onSuccess: (body) => body
              })
            )
            const error = HttpErrors.fromStatus({
              status: response.status,
              headers: response.headers,
              body: text,
              now: clock.unsafeCurrentTimeMillis(),
              sanitize
            })
            if (response.status === 401) return { _tag: "Unauthorized", error } as const
            return yield* Effect.fail(error)
          }).pipe(
            // Counted in time this process could run (at most 4x on the clock): under CPU load a
            // wall-clock timer aborts and re-sends requests whose reply is waiting unread.
            (effect) =>
              Timers.responsiveTimeout(effect, config.handshake, () => timeout("handshake", config.handshake, false)),
            Scope.extend(connection),
            Effect.onExit((exit) =>
              Exit.isSuccess(exit) && exit.value._tag === "Open" ? Effect.void : Scope.close(connection, Exit.void)
            ),
            (effect) => Observe.handshake(effect, config)
          ))

      // A 401 invalidates the token that was refused and tries once more with a new one; a
      // second 401 (or the same token again, e.g. a static key) is final.
      const attempt = Effect.gen(function*() {
        const bearer = yield* token
        const first = yield* exchange(bearer)
        if (first._tag === "Open") return first
        if (reauthenticated) return yield* Effect.fail(first.error)
        reauthenticated = true
        yield* auth.invalidate(bearer)
        const fresh = yield* token
        if (Redacted.value(fresh) === Redacted.value(bearer)) return yield* Effect.fail(first.error)
        const second = yield* exchange(fresh)
        if (second._tag === "Open") return second
        return yield* Effect.fail(second.error)
      }).pipe(
        Effect.tapError((error) =>
          Effect.logDebug("gateway request attempt failed").pipe(
            Effect.annotateLogs({ error: error._tag, ...("status" in error ? { status: error.status } : {}) })
          )
        )
      )

      // Only the exchange is retried; token failures were already retried by Auth.
      const opened = yield* Effect.retry(attempt, {
        schedule: config.retry,
        while: (error) => !tokenFailures.has(error)
      }).pipe(
        Effect.timeoutFail({ duration: config.total, onTimeout: () => timeout("total", config.total, false) })
      )

      yield* Effect.forkIn(
        Timers.watchdog({
          progress,
          clock,
          deadlines: config,
          startedAt,
          openedAt: clock.unsafeCurrentTimeMillis(),
          abort: Scope.close(opened.connection, Exit.void)
        }),
        scope
      )

      // One stage per network read: decoding and the watchdog's bookkeeping fused (see
      // internal/bodyDecoder.ts). Keep-alive comments are not events, so they are no progress;
      // the time the consumer holds a chunk is not idle time.
      const sanitize = opened.sanitize
      return Observe.body(observed, Stream.pipeThroughChannel(
        opened.response.stream,
        BodyDecoder.channel(bodyOptions(config.decode, sanitize), {
          // After a deadline aborted the connection, whatever the read failed with is that timeout.
          upstreamError: (error): TransportError =>
            progress.timedOut ?? HttpErrors.fromBodyError(error, progress.bodyStarted, sanitize),
          decodeError: (error): TransportError => progress.timedOut ?? error,
          onRead: (bytes) => {
            if (!progress.bodyStarted && Chunk.some(bytes, (b) => b.length > 0)) progress.bodyStarted = true
          },
          onEvents: () => {
            progress.waitingSince = undefined
            progress.sawEvent = true
          },
          onWait: () => {
            progress.waitingSince = clock.unsafeCurrentTimeMillis()
          },
          onChunks: (chunks) => {
            if (!progress.sawText && chunks.some(hasText)) progress.sawText = true
            if (observed !== undefined) Observe.chunks(observed, chunks)
          },
          onEnd: () => {
            progress.waitingSince = undefined
          }
        })
      ))
    }))
  }

  return { stream, profile: config.profile }
}

/** Reads at most `maxErrorBodyBytes` of an error response; a body that fails to arrive is skipped. */
const readErrorBody = (response: HttpClientResponse.HttpClientResponse): Effect.Effect<string | undefined> =>
  response.stream.pipe(
    Stream.runFoldWhile(
      { parts: [] as Array<Uint8Array>, size: 0 },
      (acc) => acc.size < HttpErrors.maxErrorBodyBytes,
      (acc, bytes) => {
        acc.parts.push(bytes)
        acc.size += bytes.length
        return acc
      }
    ),
    Effect.map(({ parts }) => {
      const decoder = new TextDecoder("utf-8")
      let text = ""
      for (const part of parts) text += decoder.decode(part, { stream: true })
      text += decoder.decode()
      return text.slice(0, HttpErrors.maxErrorBodyBytes)
    }),
    Effect.orElseSucceed(() => undefined)
  )

/**
 * Builds the HTTP transport from `options`, on the `HttpClient` and `Auth` in context. An
 * unusable base URL (not https on a non-loopback host, credentials in it, not absolute), a
 * missing base URL or an invalid `maxEventSize` fails with a `ConfigError` naming the option.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = (
  options: Options
): Effect.Effect<Service, ConfigError.ConfigError, HttpClient.HttpClient | Auth> =>
  Effect.gen(function*() {
    const config = yield* resolve(options, optionNames)
    const client = yield* HttpClient.HttpClient
    const auth = yield* Auth
    return makeService(config, client, auth)
  })

/**
 * The HTTP transport as a Layer (see `make` and `Options`).
 *
 * @example
 * ```ts
 * import { NodeHttpClient } from "@effect/platform-node"
 * import * as Layer from "effect/Layer"
 * import * as Redacted from "effect/Redacted"
 * import { Auth, Transport } from "@llm-gateway/core"
 *
 * const TransportLive = Transport.layer({
 *   profile: "openai",
 *   baseUrl: "https://api.openai.com/v1",
 *   timeouts: { idle: "20 seconds" }
 * }).pipe(
 *   Layer.provide(Auth.layerStatic(Redacted.make("sk-..."))),
 *   Layer.provide(NodeHttpClient.layerUndici)
 * )
 * ```
 *
 * @since 0.1.0
 * @category Layers
 */
export const layer = (
  options: Options
): Layer.Layer<GatewayTransport, ConfigError.ConfigError, HttpClient.HttpClient | Auth> =>
  Layer.effect(GatewayTransport, make(options))

const positiveDuration = (name: string) =>
  Config.option(
    Config.duration(name).pipe(
      Config.validate({
        message: "Expected a positive duration such as \"30 seconds\" or \"500 millis\"",
        validation: (d) => Duration.greaterThan(d, Duration.zero)
      })
    )
  )

/**
 * The configuration `layerConfig` reads, with every variable it knows:
 * `LLM_GATEWAY_PROFILE` (`gateway` | `openai`, default `gateway`), `LLM_GATEWAY_BASE_URL`,
 * `LLM_GATEWAY_PATH`, `GENESYS_ENVIRONMENT` (the gateway profile's API host when no base URL
 * is set), `LLM_GATEWAY_HANDSHAKE_TIMEOUT`, `LLM_GATEWAY_FIRST_TOKEN_TIMEOUT`,
 * `LLM_GATEWAY_IDLE_TIMEOUT`, `LLM_GATEWAY_TOTAL_TIMEOUT` (durations such as `30 seconds`),
 * `LLM_GATEWAY_MAX_EVENT_SIZE` (characters), `LLM_GATEWAY_MAX_ATTEMPTS` and
 * `LLM_GATEWAY_RETRY_DEADLINE`.
 *
 * @since 0.1.0
 * @category Config
 */
export const config: Config.Config<Options> = Config.all({
  // No default here: an unset variable leaves the profile to the overrides, then `gateway`.
  profile: Config.option(Config.literal("gateway", "openai")("LLM_GATEWAY_PROFILE")),
  baseUrl: Config.option(Config.string("LLM_GATEWAY_BASE_URL")),
  path: Config.option(Config.string("LLM_GATEWAY_PATH")),
  environment: Config.option(Config.string("GENESYS_ENVIRONMENT")),
  handshake: positiveDuration("LLM_GATEWAY_HANDSHAKE_TIMEOUT"),
  firstToken: positiveDuration("LLM_GATEWAY_FIRST_TOKEN_TIMEOUT"),
  idle: positiveDuration("LLM_GATEWAY_IDLE_TIMEOUT"),
  total: positiveDuration("LLM_GATEWAY_TOTAL_TIMEOUT"),
  maxEventSize: Config.option(
    Config.integer("LLM_GATEWAY_MAX_EVENT_SIZE").pipe(
      Config.validate({ message: "Expected a positive whole number of characters", validation: (n) => n > 0 })
    )
  ),
  maxAttempts: Config.option(
    Config.integer("LLM_GATEWAY_MAX_ATTEMPTS").pipe(
      Config.validate({ message: "Expected a whole number of attempts, at least 1", validation: (n) => n >= 1 })
    )
  ),
  retryDeadline: positiveDuration("LLM_GATEWAY_RETRY_DEADLINE")
}).pipe(Config.map((c): Options => {
  const some = <A>(o: Option.Option<A>) => Option.getOrUndefined(o)
  const timeouts: Partial<Timeouts> = {
    ...(Option.isSome(c.handshake) ? { handshake: c.handshake.value } : {}),
    ...(Option.isSome(c.firstToken) ? { firstToken: c.firstToken.value } : {}),
    ...(Option.isSome(c.idle) ? { idle: c.idle.value } : {}),
    ...(Option.isSome(c.total) ? { total: c.total.value } : {})
  }
  return {
    profile: some(c.profile),
    baseUrl: some(c.baseUrl),
    environment: some(c.environment),
    path: some(c.path),
    timeouts,
    maxEventSize: some(c.maxEventSize),
    ...(Option.isSome(c.maxAttempts) || Option.isSome(c.retryDeadline)
      ? {
        retry: {
          maxAttempts: some(c.maxAttempts),
          deadline: some(c.retryDeadline)
        }
      }
      : {})
  }
}))

const configNames: Names = {
  baseUrl: "LLM_GATEWAY_BASE_URL",
  environment: "GENESYS_ENVIRONMENT",
  maxEventSize: "LLM_GATEWAY_MAX_EVENT_SIZE"
}

/**
 * The HTTP transport configured from the environment (see `config` for the variables).
 * `overrides` supply what the environment cannot (extra headers, a custom retry `Schedule`,
 * `onSkip`); values read from the environment win over them. A missing or invalid variable
 * fails the Layer at start-up with a `ConfigError` naming it.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerConfig = (
  overrides: Options = {}
): Layer.Layer<GatewayTransport, ConfigError.ConfigError, HttpClient.HttpClient | Auth> =>
  Layer.effect(
    GatewayTransport,
    Effect.gen(function*() {
      const { retry: envRetry, timeouts: envTimeouts, ...fromEnv } = yield* config
      const retry = envRetry === undefined || Schedule.isSchedule(overrides.retry)
        ? overrides.retry
        : { ...overrides.retry, ...definedOnly(envRetry as RetryPolicy.Options<TransportError>) }
      const merged: Options = {
        ...overrides,
        ...definedOnly(fromEnv),
        timeouts: { ...overrides.timeouts, ...envTimeouts },
        retry
      }
      const resolved = yield* resolve(merged, configNames)
      return makeService(resolved, yield* HttpClient.HttpClient, yield* Auth)
    })
  )

const definedOnly = <A extends object>(a: A): Partial<A> => {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(a)) if (value !== undefined) out[key] = value
  return out as Partial<A>
}
