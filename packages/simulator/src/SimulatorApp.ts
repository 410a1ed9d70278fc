/**
 * The simulated gateway as one `HttpApp`: the Genesys token endpoint, the gateway-profile
 * endpoint, the OpenAI-compatible endpoints, request recording and fault scenarios. The HTTP
 * server (`SimulatorServer`) and the in-process Layer (`SimulatorLayer`) both run this app, so
 * they answer alike; latencies are `Effect.sleep`s on the Effect `Clock`, so tests drive them
 * with `TestClock`.
 *
 * Endpoints:
 * - `POST /oauth/token`: client credentials exactly as Genesys Cloud takes them
 *   (`Authorization: Basic base64(id:secret)`, form body `grant_type=client_credentials`).
 * - `POST /api/v2/ai/llm/gateway/invoke` (configurable): the gateway profile, body
 *   `{modelId, messages, stream, temperature, systemInstruction?}`, Genesys error bodies.
 * - `POST /v1/chat/completions`: OpenAI-compatible, streaming or not; the usage chunk
 *   (`choices: []`) is sent only when `stream_options.include_usage` is true.
 * - `GET /v1/models`: one model per scenario, `sim:<name>` (bearer token required).
 *
 * The scenario of a request is the `x-simulator-scenario` header, else the `sim:<name>` model
 * id, else the default scenario (`echo`). A scenario's scripted failing attempts are counted per
 * scenario and request body: the retries of one request walk through them to the reply, after
 * which the count starts again; a different request (another prompt) has its own count.
 *
 * @since 0.1.0
 */
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Encoding from "effect/Encoding"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as StructuredOutput from "@llm-gateway/core/StructuredOutput"
import { createHash, randomBytes, timingSafeEqual } from "node:crypto"
import * as Prng from "./internal/prng.js"
import * as Scenario from "./Scenario.js"
import * as Script from "./Script.js"

/**
 * An OAuth client the token endpoint accepts.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ClientCredentials {
  readonly clientId: string
  readonly clientSecret: Redacted.Redacted<string>
}

/**
 * The client the simulator accepts when no `clients` are configured: id `simulator-client`,
 * secret `simulator-secret`. Only for local testing.
 *
 * @since 0.1.0
 * @category Config
 */
export const defaultClient: ClientCredentials = {
  clientId: "simulator-client",
  clientSecret: Redacted.make("simulator-secret")
}

/**
 * The API key the simulator accepts as a bearer token when no `apiKeys` are configured.
 *
 * @since 0.1.0
 * @category Config
 */
export const defaultApiKey: Redacted.Redacted<string> = Redacted.make("sim-api-key")

/**
 * The default path of the gateway-profile endpoint.
 *
 * @since 0.1.0
 * @category Config
 */
export const defaultGatewayPath = "/api/v2/ai/llm/gateway/invoke"

/**
 * Options of the simulator.
 *
 * - `scenarios`: added to the built-in ones (`Scenario.builtins`); a scenario of the same
 *   name replaces the built-in.
 * - `defaultScenario`: the scenario for model ids without `sim:` (default `echo`).
 * - `clients`: the accepted OAuth clients (default `defaultClient`).
 * - `tokenLifetime`: the `expires_in` of issued tokens (default 86400 s, the platform's
 *   default); tokens expire on the Effect `Clock`.
 * - `tokenAttempts`: scripted failures of the token endpoint before each token it issues
 *   (OAuth error bodies by default), e.g. `[{ status: 503 }]`; the credential placeholders of
 *   `Scenario.Attempt` are filled from the token request (`Scenario.echoSecretsTokenAttempt`).
 * - `apiKeys`: static bearer tokens the chat endpoints accept besides issued tokens
 *   (default `[defaultApiKey]`).
 * - `rateLimit`: requests allowed per bearer token per window on the chat endpoints; more get
 *   429 with `Retry-After` and the `inin-ratelimit-*` headers. Off by default.
 * - `gatewayPath`: the gateway-profile path (default `defaultGatewayPath`).
 * - `maxRecorded`: how many requests are kept for assertions (default 10 000, oldest dropped).
 *
 * @since 0.1.0
 * @category Config
 */
export interface Options {
  readonly scenarios?: Iterable<Scenario.Scenario> | undefined
  readonly defaultScenario?: string | undefined
  readonly clients?: ReadonlyArray<ClientCredentials> | undefined
  readonly tokenLifetime?: Duration.DurationInput | undefined
  readonly tokenAttempts?: ReadonlyArray<Scenario.Attempt> | undefined
  readonly apiKeys?: ReadonlyArray<Redacted.Redacted<string>> | undefined
  readonly rateLimit?: { readonly limit: number; readonly window: Duration.DurationInput } | undefined
  readonly gatewayPath?: string | undefined
  readonly maxRecorded?: number | undefined
}

/**
 * One request as the simulator received it, for assertions. Credentials never appear:
 * `authorization` keeps only its scheme (`Bearer <redacted>`), cookies and API-key headers
 * are replaced, and secret form fields (`client_secret`, `password`, tokens) are replaced.
 * `body` is the parsed JSON, the form fields, or the text when it is neither. `at` is the
 * Effect `Clock` time in epoch milliseconds; `status` is what the simulator answered.
 *
 * @since 0.1.0
 * @category Models
 */
export interface RecordedRequest {
  readonly at: number
  readonly method: string
  readonly path: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: unknown
  readonly status: number
  readonly scenario: string | undefined
  readonly attempt: number | undefined
}

/**
 * The simulator: its `HttpApp` and the state tests assert on.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Service {
  /** The app; it needs only the `HttpServerRequest`. */
  readonly app: HttpApp.Default
  /** Every request so far (since the last `reset`), oldest first. */
  readonly requests: Effect.Effect<ReadonlyArray<RecordedRequest>>
  /**
   * How many requests arrived within the last `window` (Effect `Clock`), all of them when no
   * window is given; only those to `path` when given.
   */
  readonly countRequests: (
    options?: { readonly window?: Duration.DurationInput | undefined; readonly path?: string | undefined }
  ) => Effect.Effect<number>
  /** Forgets recorded requests, attempt counters and rate-limit windows (issued tokens stay valid). */
  readonly reset: Effect.Effect<void>
  /** Makes every issued token invalid, as if all had expired: the next use gets 401. */
  readonly revokeTokens: Effect.Effect<void>
  /** Adds or replaces a scenario while running. */
  readonly register: (scenario: Scenario.Scenario) => Effect.Effect<void>
  /** The scenarios served, built-ins included. */
  readonly scenarios: Effect.Effect<ReadonlyArray<Scenario.Scenario>>
}

/**
 * The simulator: its app and the state behind it.
 *
 * @since 0.1.0
 * @category Services
 */
export class Simulator extends Context.Tag("@llm-gateway/simulator/Simulator")<Simulator, Service>() {}

/**
 * How a dropped connection is carried out. In memory the body stream fails (the reader sees a
 * broken body); the HTTP server replaces this to close the socket without the terminating
 * chunk. Either way the client sees the body break off.
 *
 * @since 0.1.0
 * @category Services
 */
export class ConnectionDropper extends Context.Reference<ConnectionDropper>()(
  "@llm-gateway/simulator/ConnectionDropper",
  {
    defaultValue: (): {
      readonly drop: (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<never, Error>
    } => ({ drop: () => Effect.fail(new Error("connection dropped by the simulator")) })
  }
) {}

const redactedHeaders = new Set(["authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"])
const redactedFields = new Set([
  "client_secret",
  "password",
  "access_token",
  "refresh_token",
  "assertion",
  "client_assertion",
  "code"
])
const REDACTED = "<redacted>"

const redactHeaders = (headers: Readonly<Record<string, string>>): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [key, value] of Object.entries(headers)) {
    const name = key.toLowerCase()
    if (!redactedHeaders.has(name)) {
      out[name] = value
      continue
    }
    const scheme = name.endsWith("authorization") ? /^\s*([A-Za-z][A-Za-z0-9_-]*)\s/.exec(value)?.[1] : undefined
    out[name] = scheme === undefined ? REDACTED : `${scheme} ${REDACTED}`
  }
  return out
}

const WireMessage = Schema.Struct({
  role: Schema.String,
  content: Schema.optional(Schema.NullOr(Schema.Union(
    Schema.String,
    Schema.Array(Schema.Struct({ type: Schema.String, text: Schema.optional(Schema.String) }))
  ))),
  name: Schema.optional(Schema.String),
  tool_call_id: Schema.optional(Schema.String),
  tool_calls: Schema.optional(Schema.NullOr(Schema.Array(Schema.Struct({
    id: Schema.String,
    type: Schema.optional(Schema.String),
    function: Schema.Struct({ name: Schema.String, arguments: Schema.String })
  }))))
})

const WireTool = Schema.Struct({
  type: Schema.Literal("function"),
  function: Schema.Struct({
    name: Schema.String,
    description: Schema.optional(Schema.String),
    parameters: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
  })
})

const GatewayBody = Schema.Struct({
  modelId: Schema.NonEmptyString,
  messages: Schema.Array(WireMessage),
  stream: Schema.optional(Schema.Boolean),
  temperature: Schema.optional(Schema.Number),
  systemInstruction: Schema.optional(Schema.String),
  stream_options: Schema.optional(Schema.Struct({ include_usage: Schema.optional(Schema.Boolean) })),
  max_tokens: Schema.optional(Schema.Int.pipe(Schema.positive()))
})

const OpenAiBody = Schema.Struct({
  model: Schema.NonEmptyString,
  messages: Schema.Array(WireMessage),
  stream: Schema.optional(Schema.NullOr(Schema.Boolean)),
  stream_options: Schema.optional(Schema.NullOr(Schema.Struct({
    include_usage: Schema.optional(Schema.NullOr(Schema.Boolean))
  }))),
  n: Schema.optional(Schema.NullOr(Schema.Int.pipe(Schema.between(1, 128)))),
  max_tokens: Schema.optional(Schema.NullOr(Schema.Int.pipe(Schema.positive()))),
  max_completion_tokens: Schema.optional(Schema.NullOr(Schema.Int.pipe(Schema.positive()))),
  response_format: Schema.optional(Schema.NullOr(Schema.Struct({
    type: Schema.String,
    json_schema: Schema.optional(Schema.Struct({ schema: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown })) }))
  }))),
  tools: Schema.optional(Schema.NullOr(Schema.Array(WireTool))),
  tool_choice: Schema.optional(Schema.NullOr(Schema.Union(
    Schema.Literal("auto", "none", "required"),
    Schema.Struct({ type: Schema.Literal("function"), function: Schema.Struct({ name: Schema.String }) })
  )))
})

const contentText = (content: typeof WireMessage.Type["content"]): string =>
  content === undefined || content === null
    ? ""
    : typeof content === "string"
    ? content
    : content.map((part) => part.text ?? "").join("")

const messagesOf = (messages: typeof WireMessage.Type[]): Array<Script.ScriptMessage> =>
  messages.map((m) => ({
    role: m.role,
    content: contentText(m.content),
    ...(m.name === undefined ? {} : { name: m.name }),
    ...(m.tool_call_id === undefined ? {} : { toolCallId: m.tool_call_id }),
    ...(m.tool_calls === undefined || m.tool_calls === null
      ? {}
      : { toolCalls: m.tool_calls.map((call) => ({ id: call.id, name: call.function.name })) })
  }))

/**
 * What the OpenAI API says of a conversation whose tool messages do not answer the calls
 * before them: every call of an assistant message must be answered by a `tool` message with
 * its id right after it, and a `tool` message must answer such a call.
 */
const toolSequenceIssue = (messages: ReadonlyArray<Script.ScriptMessage>): string | undefined => {
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]!
    if (m.role === "tool") {
      return `messages.${i}: messages with role 'tool' must be a response to a preceding message with 'tool_calls'`
    }
    if (m.toolCalls === undefined || m.toolCalls.length === 0) continue
    const open = new Set(m.toolCalls.map((call) => call.id))
    let j = i + 1
    for (; j < messages.length && messages[j]!.role === "tool"; j++) {
      const id = messages[j]!.toolCallId
      if (id === undefined || !open.delete(id)) {
        return `messages.${j}: tool_call_id does not answer a call of messages.${i}`
      }
    }
    if (open.size > 0) {
      return `messages.${i}: an assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'`
    }
    i = j - 1
  }
  return undefined
}

// Field paths only: the values are the caller's prompt.
const describeIssues = (error: ParseResult.ParseError): string =>
  ParseResult.ArrayFormatter.formatErrorSync(error)
    .map((issue) => `${issue.path.length === 0 ? "body" : issue.path.join(".")}: ${issue._tag === "Missing" ? "is missing" : "is invalid"}`)
    .join("; ")

const maxAttemptKeys = 10_000

interface Issued {
  readonly expiresAt: number
}

const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex")

const equalSecret = (given: string, expected: string): boolean => {
  const a = Buffer.from(sha256(given), "hex")
  const b = Buffer.from(sha256(expected), "hex")
  return timingSafeEqual(a, b)
}

const jsonResponse = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  HttpServerResponse.unsafeJson(body, { status, headers })

/**
 * Builds a simulator. Its state (issued tokens, attempt counters, recorded requests) lives in
 * the returned service; every request runs `Script.render` on the chosen scenario and plays the
 * script with `Effect.sleep`.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options: Options = {}): Effect.Effect<Service> =>
  Effect.sync(() => {
    const registry = new Map<string, Scenario.Scenario>()
    for (const scenario of Scenario.builtins) registry.set(scenario.name, scenario)
    for (const scenario of options.scenarios ?? []) registry.set(scenario.name, scenario)
    const defaultScenario = options.defaultScenario ?? Scenario.defaultScenarioName
    const clients = options.clients ?? [defaultClient]
    const apiKeys = (options.apiKeys ?? [defaultApiKey]).map(Redacted.value)
    const tokenLifetimeSeconds = Math.max(1, Math.round(Duration.toSeconds(options.tokenLifetime ?? Duration.days(1))))
    const tokenAttempts = options.tokenAttempts ?? []
    const gatewayPath = options.gatewayPath ?? defaultGatewayPath
    const maxRecorded = options.maxRecorded ?? 10_000
    const rateLimit = options.rateLimit === undefined
      ? undefined
      : { limit: options.rateLimit.limit, windowMs: Duration.toMillis(options.rateLimit.window) }

    // Mutable state, touched only inside `Effect.sync` blocks (one JavaScript thread, so each
    // block is atomic).
    const issued = new Map<string, Issued>()
    let recorded: Array<RecordedRequest> = []
    const attempts = new Map<string, number>()
    const windows = new Map<string, Array<number>>()
    let tokenAttempt = 0
    let sequence = 0

    const record = (entry: RecordedRequest) => {
      recorded.push(entry)
      if (recorded.length > maxRecorded) recorded = recorded.slice(recorded.length - maxRecorded)
    }

    // A correlation id for responses not rendered from a scenario (auth failures, 404s).
    const nextCorrelationId = () => Prng.uuid(Prng.make(Prng.mix(0xc0ffee, ++sequence)))

    // ---- token endpoint ------------------------------------------------------------------

    const oauthError = (status: number, error: string, description: string, headers: Record<string, string> = {}) =>
      jsonResponse(status, { error, error_description: description }, { "cache-control": "no-store", ...headers })

    const tokenEndpoint = (
      request: HttpServerRequest.HttpServerRequest,
      text: string,
      now: number
    ): { readonly response: HttpServerResponse.HttpServerResponse; readonly status: number } => {
      const authorization = request.headers["authorization"] ?? ""
      const basic = /^Basic ([A-Za-z0-9+/=]+)$/.exec(authorization)
      const decoded = basic === null ? undefined : Either.getOrUndefined(Encoding.decodeBase64String(basic[1]!))
      const colon = decoded?.indexOf(":") ?? -1
      const id = decoded !== undefined && colon > 0 ? decoded.slice(0, colon) : undefined
      const secret = decoded !== undefined && colon > 0 ? decoded.slice(colon + 1) : undefined
      const client = id === undefined ? undefined : clients.find((c) => c.clientId === id)
      if (client === undefined || secret === undefined || !equalSecret(secret, Redacted.value(client.clientSecret))) {
        return {
          status: 401,
          response: oauthError(401, "invalid_client", "Client authentication failed.", {
            "www-authenticate": "Basic realm=\"oauth\""
          })
        }
      }
      const contentType = (request.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase()
      if (contentType !== "application/x-www-form-urlencoded") {
        return {
          status: 400,
          response: oauthError(400, "invalid_request", "The body must be application/x-www-form-urlencoded.")
        }
      }
      const grant = new URLSearchParams(text).get("grant_type")
      if (grant === null || grant === "") {
        return { status: 400, response: oauthError(400, "invalid_request", "Missing grant_type.") }
      }
      if (grant !== "client_credentials") {
        return {
          status: 400,
          response: oauthError(400, "unsupported_grant_type", "This client may only use the client_credentials grant.")
        }
      }
      const total = tokenAttempts.reduce((sum, a) => sum + (a.times ?? 1), 0)
      if (tokenAttempt < total) {
        let index = tokenAttempt++
        const fault = Script.fillCredentials(
          tokenAttempts.find((a) => {
            const times = a.times ?? 1
            if (index < times) return true
            index -= times
            return false
          })!,
          authorization
        )
        const headers: Record<string, string> = {}
        if (fault.retryAfter !== undefined) headers["retry-after"] = String(fault.retryAfter)
        Object.assign(headers, fault.headers ?? {})
        const body = fault.body ?? {
          error: fault.status === 429 ? "too_many_requests" : fault.status >= 500 ? "temporarily_unavailable" : "invalid_request",
          error_description: `The token endpoint answered ${fault.status} (simulated).`
        }
        return {
          status: fault.status,
          response: typeof body === "string"
            ? HttpServerResponse.text(body, { status: fault.status, headers, contentType: fault.contentType ?? "text/plain" })
            : jsonResponse(fault.status, body, headers)
        }
      }
      tokenAttempt = 0
      const token = randomBytes(24).toString("base64url")
      issued.set(token, { expiresAt: now + tokenLifetimeSeconds * 1000 })
      return {
        status: 200,
        response: jsonResponse(
          200,
          { access_token: token, token_type: "bearer", expires_in: tokenLifetimeSeconds },
          { "cache-control": "no-store", pragma: "no-cache" }
        )
      }
    }

    // ---- chat endpoints ------------------------------------------------------------------

    const errorFor = (profile: Script.Profile, status: number, message?: string, code?: string) => {
      const correlationId = nextCorrelationId()
      return profile === "gateway"
        ? jsonResponse(status, Script.genesysErrorBody(status, correlationId, { message, code }), {
          "inin-correlation-id": correlationId
        })
        : jsonResponse(status, Script.openAiErrorBody(status, { message, code }))
    }

    type Authorized = { readonly _tag: "Ok"; readonly token: string } | {
      readonly _tag: "Denied"
      readonly response: HttpServerResponse.HttpServerResponse
    }

    const authorize = (profile: Script.Profile, authorization: string | undefined, now: number): Authorized => {
      const bearer = /^Bearer (\S+)$/i.exec(authorization ?? "")?.[1]
      if (bearer === undefined) {
        return {
          _tag: "Denied",
          response: profile === "gateway"
            ? errorFor(
              profile,
              401,
              "No authentication bearer token specified in authorization header.",
              "authentication.required"
            )
            : errorFor(profile, 401, "You didn't provide an API key.", "missing_api_key")
        }
      }
      if (apiKeys.some((key) => equalSecret(bearer, key))) return { _tag: "Ok", token: bearer }
      const entry = issued.get(bearer)
      if (entry === undefined || now >= entry.expiresAt) {
        if (entry !== undefined) issued.delete(bearer)
        return { _tag: "Denied", response: errorFor(profile, 401) }
      }
      return { _tag: "Ok", token: bearer }
    }

    const rateLimited = (profile: Script.Profile, token: string, now: number) => {
      if (rateLimit === undefined) return undefined
      const key = sha256(token)
      const kept = (windows.get(key) ?? []).filter((t) => t > now - rateLimit.windowMs)
      if (kept.length >= rateLimit.limit) {
        windows.set(key, kept)
        const retryAfter = Math.max(1, Math.ceil((kept[0]! + rateLimit.windowMs - now) / 1000))
        const correlationId = nextCorrelationId()
        const headers: Record<string, string> = {
          "retry-after": String(retryAfter),
          "inin-ratelimit-count": String(kept.length + 1),
          "inin-ratelimit-allowed": String(rateLimit.limit),
          "inin-ratelimit-reset": String(retryAfter),
          "inin-correlation-id": correlationId
        }
        const windowSeconds = Math.round(rateLimit.windowMs / 1000)
        const message = `Rate limit exceeded the maximum. [${rateLimit.limit}] requests for [${windowSeconds}] seconds`
        const body = profile === "gateway"
          ? {
            ...Script.genesysErrorBody(429, correlationId, { message }),
            limit: { key: "token.rate.per.minute", namespace: "platform.api", value: rateLimit.limit }
          }
          : Script.openAiErrorBody(429, { message })
        return jsonResponse(429, body, headers)
      }
      kept.push(now)
      windows.set(key, kept)
      return undefined
    }

    interface Routed {
      readonly status: number
      readonly response: Effect.Effect<HttpServerResponse.HttpServerResponse>
      readonly scenario?: string | undefined
      readonly attempt?: number | undefined
    }

    const immediate = (response: HttpServerResponse.HttpServerResponse, extra?: Partial<Routed>): Routed => ({
      status: response.status,
      response: Effect.succeed(response),
      ...extra
    })

    const chatEndpoint = (
      profile: Script.Profile,
      request: HttpServerRequest.HttpServerRequest,
      text: string,
      json: Either.Either<unknown, string>,
      now: number
    ): Routed => {
      const auth = authorize(profile, request.headers["authorization"], now)
      if (auth._tag === "Denied") return immediate(auth.response)
      if (Either.isLeft(json)) return immediate(errorFor(profile, 400, `The request body is not JSON: ${json.left}`))
      let scriptRequest: Script.ScriptRequest
      if (profile === "gateway") {
        const body = Schema.decodeUnknownEither(GatewayBody)(json.right)
        if (Either.isLeft(body)) return immediate(errorFor(profile, 400, `Invalid request body: ${describeIssues(body.left)}`))
        const b = body.right
        scriptRequest = {
          profile,
          model: b.modelId,
          messages: messagesOf([...b.messages]),
          system: b.systemInstruction,
          stream: b.stream ?? false,
          includeUsage: b.stream_options?.include_usage ?? true,
          n: undefined,
          maxTokens: b.max_tokens,
          responseSchema: b.systemInstruction === undefined ? undefined : StructuredOutput.schemaOfInstruction(b.systemInstruction)
        }
      } else {
        const body = Schema.decodeUnknownEither(OpenAiBody)(json.right)
        if (Either.isLeft(body)) return immediate(errorFor(profile, 400, `Invalid request body: ${describeIssues(body.left)}`))
        const b = body.right
        const messages = messagesOf([...b.messages])
        const toolIssue = toolSequenceIssue(messages)
        if (toolIssue !== undefined) return immediate(errorFor(profile, 400, `Invalid request body: ${toolIssue}`))
        scriptRequest = {
          profile,
          model: b.model,
          messages,
          tools: (b.tools ?? []).map((tool) => ({
            name: tool.function.name,
            ...(tool.function.parameters === undefined ? {} : { parameters: tool.function.parameters })
          })),
          toolsAllowed: b.tool_choice !== "none",
          system: undefined,
          stream: b.stream === true,
          includeUsage: b.stream_options?.include_usage === true,
          n: b.n ?? undefined,
          maxTokens: b.max_completion_tokens ?? b.max_tokens ?? undefined,
          responseSchema: b.response_format?.type === "json_schema" ? b.response_format.json_schema?.schema : undefined
        }
      }
      const limited = rateLimited(profile, auth.token, now)
      if (limited !== undefined) return immediate(limited)

      const header = request.headers["x-simulator-scenario"]
      const name = header !== undefined && header !== ""
        ? header
        : scriptRequest.model.startsWith("sim:")
        ? scriptRequest.model.slice(4)
        : defaultScenario
      const scenario = registry.get(name)
      if (scenario === undefined) {
        return immediate(
          errorFor(
            profile,
            404,
            `The model ${JSON.stringify(scriptRequest.model)} does not exist: the simulator has no scenario named ${
              JSON.stringify(name)
            }.`,
            profile === "gateway" ? "not.found" : "model_not_found"
          ),
          { scenario: name }
        )
      }
      // Attempts are counted per scenario and request body, so the retries of one request walk
      // through the scripted failures while other requests start afresh; the count restarts
      // after the reply.
      const key = `${scenario.name}\u0000${sha256(text)}`
      const attempt = attempts.get(key) ?? 0
      const script = Script.render(
        Script.withCredentials(scenario, request.headers["authorization"]),
        scriptRequest,
        attempt
      )
      if (script.outcome === "reply") {
        attempts.delete(key)
      } else {
        attempts.set(key, attempt + 1)
        // Requests that never reach their reply (permanent faults) must not grow this forever.
        if (attempts.size > maxAttemptKeys) attempts.delete(attempts.keys().next().value!)
      }
      if (script.revokeToken) issued.delete(auth.token)
      return {
        status: script.status,
        response: play(script, request),
        scenario: scenario.name,
        attempt
      }
    }

    const models = (): Routed => {
      const data = [...registry.values()].map((scenario) => ({
        id: `sim:${scenario.name}`,
        object: "model",
        created: 1_700_000_000,
        owned_by: "llm-gateway-simulator"
      }))
      return immediate(jsonResponse(200, { object: "list", data }))
    }

    const route = (
      request: HttpServerRequest.HttpServerRequest,
      path: string,
      text: string,
      json: Either.Either<unknown, string>,
      now: number
    ): Routed => {
      const known: Record<string, string> = {
        "/oauth/token": "POST",
        [gatewayPath]: "POST",
        "/v1/chat/completions": "POST",
        "/v1/models": "GET"
      }
      const allowed = known[path]
      if (allowed === undefined) {
        return immediate(jsonResponse(404, { message: `No route for ${path}.`, code: "not.found", status: 404 }))
      }
      if (request.method !== allowed) {
        return immediate(
          jsonResponse(405, { message: `Use ${allowed} for ${path}.`, code: "method.not.allowed", status: 405 }, {
            allow: allowed
          })
        )
      }
      if (path === "/oauth/token") {
        const { response, status } = tokenEndpoint(request, text, now)
        return { status, response: Effect.succeed(response) }
      }
      if (path === "/v1/models") {
        const auth = authorize("openai", request.headers["authorization"], now)
        return auth._tag === "Denied" ? immediate(auth.response) : models()
      }
      return chatEndpoint(path === gatewayPath ? "gateway" : "openai", request, text, json, now)
    }

    const parseBody = (request: HttpServerRequest.HttpServerRequest, text: string) => {
      const contentType = (request.headers["content-type"] ?? "").toLowerCase()
      if (text === "") return { recorded: undefined as unknown, json: Either.left("the body is empty") }
      if (contentType.startsWith("application/x-www-form-urlencoded")) {
        const fields: Record<string, string> = {}
        for (const [key, value] of new URLSearchParams(text)) fields[key] = redactedFields.has(key) ? REDACTED : value
        return { recorded: fields as unknown, json: Either.left("the body is a form") }
      }
      try {
        const parsed = JSON.parse(text) as unknown
        return { recorded: parsed, json: Either.right(parsed) }
      } catch (cause) {
        return { recorded: text as unknown, json: Either.left(cause instanceof Error ? cause.message : String(cause)) }
      }
    }

    const app: HttpApp.Default = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const text = yield* Effect.orElseSucceed(request.text, () => "")
      const now = yield* Clock.currentTimeMillis
      const path = new URL(request.url, "http://simulator.invalid").pathname
      const routed = yield* Effect.sync(() => {
        const body = parseBody(request, text)
        const result = route(request, path, text, body.json, now)
        record({
          at: now,
          method: request.method,
          path,
          headers: redactHeaders(request.headers),
          body: body.recorded,
          status: result.status,
          scenario: result.scenario,
          attempt: result.attempt
        })
        return result
      })
      return yield* routed.response
    })

    return {
      app,
      requests: Effect.sync(() => recorded.slice()),
      countRequests: (query) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const since = query?.window === undefined ? -Infinity : now - Duration.toMillis(query.window)
          return recorded.filter((r) => r.at >= since && (query?.path === undefined || r.path === query.path)).length
        }),
      reset: Effect.sync(() => {
        recorded = []
        attempts.clear()
        windows.clear()
        tokenAttempt = 0
      }),
      revokeTokens: Effect.sync(() => issued.clear()),
      register: (scenario) => Effect.sync(() => void registry.set(scenario.name, scenario)),
      scenarios: Effect.sync(() => [...registry.values()])
    } satisfies Service
  })

// An endless body: without an interval it yields between writes, so the server stays responsive.
const repeat = (bytes: Uint8Array, intervalMs: number): Stream.Stream<Uint8Array> =>
  Stream.repeatEffect(
    intervalMs > 0 ? Effect.as(Effect.sleep(Duration.millis(intervalMs)), bytes) : Effect.as(Effect.yieldNow(), bytes)
  )

/**
 * Plays a script: waits `headersDelayMs`, answers with its status and headers, then sends each
 * chunk after its delay and ends the body as the script says.
 *
 * @since 0.1.0
 * @category Utils
 */
export const play = (
  script: Script.Script,
  request: HttpServerRequest.HttpServerRequest
): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
  Effect.gen(function*() {
    if (script.headersDelayMs > 0) yield* Effect.sleep(Duration.millis(script.headersDelayMs))
    const options = { status: script.status, headers: script.headers }
    if (!script.chunked) {
      return script.chunks.length === 0
        ? HttpServerResponse.empty(options)
        : HttpServerResponse.uint8Array(Script.bodyBytes(script), options)
    }
    const dropper = yield* ConnectionDropper
    const end: Stream.Stream<Uint8Array, Error> = script.end._tag === "Close"
      ? Stream.empty
      : script.end._tag === "Drop"
      ? Stream.fromEffect(
        Effect.zipRight(Effect.sleep(Duration.millis(script.end.delayMs)), dropper.drop(request))
      )
      : script.end._tag === "Repeat"
      ? repeat(script.end.bytes, script.end.intervalMs)
      : script.end.keepAlive === undefined
      ? Stream.never
      : Stream.repeatEffect(
        Effect.as(Effect.sleep(Duration.millis(script.end.keepAlive.intervalMs)), script.end.keepAlive.bytes)
      )
    const body = Stream.fromIterable(script.chunks).pipe(
      Stream.mapEffect((chunk) =>
        chunk.delayMs > 0 ? Effect.as(Effect.sleep(Duration.millis(chunk.delayMs)), chunk.bytes) : Effect.succeed(chunk.bytes)
      ),
      Stream.concat(end)
    )
    return HttpServerResponse.stream(body, options)
  })

/**
 * A Layer of the simulator service.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options?: Options): Layer.Layer<Simulator> => Layer.effect(Simulator, make(options))
