/**
 * Scripts: a scenario rendered for one request and one attempt into exactly what goes on the
 * wire: status, headers, the body as byte chunks with the delay before each, and how the body
 * ends (closed, dropped, stalled). `render` is pure and deterministic, and it is the only place
 * that turns scenarios into bytes: the HTTP server and the in-process Layer both play its
 * output, so they cannot disagree.
 *
 * @since 0.1.0
 */
import { concat } from "./internal/bytes.js"
import * as JsonExample from "./internal/jsonExample.js"
import * as Prng from "./internal/prng.js"
import * as Tokens from "./internal/tokens.js"
import type { Attempt, Reply, Scenario, ToolCallSpec } from "./Scenario.js"

/**
 * Which endpoint a request came to: the gateway profile (`POST /api/v2/ai/llm/gateway/invoke`,
 * Genesys error bodies) or the OpenAI-compatible profile (`POST /v1/chat/completions`).
 *
 * @since 0.1.0
 * @category Models
 */
export type Profile = "gateway" | "openai"

/**
 * One message as the simulator reads it from a request body.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ScriptMessage {
  readonly role: string
  readonly content: string
  readonly name?: string | undefined
  /** The id of the call a `tool` message answers. */
  readonly toolCallId?: string | undefined
  /** The calls of an assistant message. */
  readonly toolCalls?: ReadonlyArray<{ readonly id: string; readonly name: string }> | undefined
}

/**
 * A tool a request declared, as the simulator reads it.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ScriptTool {
  readonly name: string
  readonly parameters?: Readonly<Record<string, unknown>> | undefined
}

/**
 * The parts of a request that shape the reply, normalised across both profiles.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ScriptRequest {
  readonly profile: Profile
  readonly model: string
  readonly messages: ReadonlyArray<ScriptMessage>
  /** The gateway profile's `systemInstruction`. */
  readonly system: string | undefined
  readonly stream: boolean
  /** Whether a usage chunk is sent at the end of a stream. */
  readonly includeUsage: boolean
  readonly n: number | undefined
  readonly maxTokens: number | undefined
  /** The JSON Schema the reply must fit (structured output), when the request gave one. */
  readonly responseSchema?: Readonly<Record<string, unknown>> | undefined
  /** The tools the request declared, and whether it allows calling them (`tool_choice` not `none`). */
  readonly tools?: ReadonlyArray<ScriptTool> | undefined
  readonly toolsAllowed?: boolean | undefined
}

/**
 * A piece of the body and how long to wait before sending it.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ScriptChunk {
  readonly delayMs: number
  readonly bytes: Uint8Array
}

/**
 * How the body ends: `Close` (normally), `Drop` (the connection is cut `delayMs` after the last
 * chunk, with no terminating chunk), `Stall` (nothing more is sent, except a keep-alive
 * comment every `keepAlive.intervalMs` when set), or `Repeat` (`bytes` are sent again every
 * `intervalMs`, forever: an endless reply).
 *
 * @since 0.1.0
 * @category Models
 */
export type ScriptEnd =
  | { readonly _tag: "Close" }
  | { readonly _tag: "Drop"; readonly delayMs: number }
  | {
    readonly _tag: "Stall"
    readonly keepAlive: { readonly intervalMs: number; readonly bytes: Uint8Array } | undefined
  }
  | { readonly _tag: "Repeat"; readonly intervalMs: number; readonly bytes: Uint8Array }

/**
 * Everything the simulator sends for one request. `outcome` says whether this was a scripted
 * failing attempt or the reply; `revokeToken` asks the simulator to revoke the bearer token
 * that was presented (a scripted 401); `chunked` says whether the body is streamed
 * (chunked transfer encoding) rather than sent with a `content-length`.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Script {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly headersDelayMs: number
  readonly chunks: ReadonlyArray<ScriptChunk>
  readonly end: ScriptEnd
  readonly chunked: boolean
  readonly outcome: "fault" | "reply"
  readonly revokeToken: boolean
}

/**
 * The body bytes of a script, concatenated.
 *
 * @since 0.1.0
 * @category Utils
 */
export const bodyBytes = (script: Script): Uint8Array => concat(script.chunks.map((chunk) => chunk.bytes))

const PLACEHOLDER = /\{\{(authorization|credential)\}\}/g

const fillPlaceholders = (value: unknown, values: Readonly<Record<string, string>>): unknown => {
  if (typeof value === "string") {
    return value.includes("{{") ? value.replace(PLACEHOLDER, (_, name: string) => values[name] ?? "") : value
  }
  if (Array.isArray(value)) return value.map((item) => fillPlaceholders(item, values))
  if (typeof value === "object" && value !== null) {
    const out: Record<string, unknown> = {}
    for (const [key, item] of Object.entries(value)) out[key] = fillPlaceholders(item, values)
    return out
  }
  return value
}

/**
 * Fills the credential placeholders in `value` (a scenario's `attempts`, `headers` and
 * `faults`, or the simulator's `tokenAttempts`), so a scripted gateway can echo what the caller
 * sent, as a careless or hostile one does: `{{authorization}}` becomes the `Authorization`
 * header as received (`Bearer …`, `Basic …`), `{{credential}}` the part after its scheme (the
 * token, API key or base64 client credentials). Without the header both become empty.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const fillCredentials = <A>(value: A, authorization: string | undefined): A => {
  const header = authorization ?? ""
  const space = header.indexOf(" ")
  const credential = space < 0 ? header : header.slice(space + 1).trim()
  return fillPlaceholders(value, { authorization: header, credential }) as A
}

/**
 * The scenario with its credential placeholders filled for one request (see
 * `fillCredentials`); the reply text is left as written.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const withCredentials = (scenario: Scenario, authorization: string | undefined): Scenario => {
  if (scenario.attempts === undefined && scenario.headers === undefined && scenario.faults === undefined) {
    return scenario
  }
  return {
    ...scenario,
    ...(scenario.attempts === undefined ? {} : { attempts: fillCredentials(scenario.attempts, authorization) }),
    ...(scenario.headers === undefined ? {} : { headers: fillCredentials(scenario.headers, authorization) }),
    ...(scenario.faults === undefined ? {} : { faults: fillCredentials(scenario.faults, authorization) })
  }
}

/**
 * How many requests the attempts of a scenario answer before the reply (`times` included).
 *
 * @since 0.1.0
 * @category Utils
 */
export const faultAttempts = (scenario: Scenario): number =>
  (scenario.attempts ?? []).reduce((sum, attempt) => sum + (attempt.times ?? 1), 0)

/**
 * The prompt tokens of a request by the simulator's tokenizer: 3 per message (plus 1 and the
 * name's tokens when a name is given), the content's tokens, and 3 to prime the reply.
 *
 * @since 0.1.0
 * @category Utils
 */
export const promptTokens = (request: Pick<ScriptRequest, "messages" | "system">): number => {
  let total = 3
  if (request.system !== undefined) total += 3 + Tokens.count(request.system)
  for (const message of request.messages) {
    total += 3 + Tokens.count(message.content)
    if (message.name !== undefined) total += 1 + Tokens.count(message.name)
  }
  return total
}

/**
 * The reply of the default `echo` scenario for a request.
 *
 * @since 0.1.0
 * @category Utils
 */
export const echoReply = (messages: ReadonlyArray<ScriptMessage>): string => {
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i]!
    if (message.role === "user") return `You said: ${message.content}`
  }
  return "Hello from the llm-gateway simulator."
}

/**
 * The reply to a request that ends with tool results: `Tool results: …` quoting each of them.
 *
 * @since 0.1.0
 * @category Utils
 */
export const toolResultsReply = (messages: ReadonlyArray<ScriptMessage>): string => {
  const results: Array<string> = []
  for (let i = messages.length - 1; i >= 0 && messages[i]!.role === "tool"; i--) results.unshift(messages[i]!.content)
  return `Tool results: ${results.join("; ")}`
}

/**
 * The tool calls a scenario answers `request` with (id, name, arguments' JSON text), or
 * `undefined` when it answers with text: no `toolCalls` in the scenario, no tools (or
 * `tool_choice: "none"`) in the request, or a request that ends with tool results.
 *
 * @since 0.1.0
 * @category Scenarios
 */
export const toolCallsFor = (
  scenario: Scenario,
  request: Pick<ScriptRequest, "messages" | "tools" | "toolsAllowed">,
  prng: Prng.Prng
): ReadonlyArray<{ readonly id: string; readonly name: string; readonly arguments: string }> | undefined => {
  const spec = scenario.toolCalls
  const tools = request.tools ?? []
  const last = request.messages[request.messages.length - 1]
  if (spec === undefined || tools.length === 0 || request.toolsAllowed === false || last?.role === "tool") return undefined
  const echo = echoReply(request.messages)
  const specs = spec === "first" ? [{}] : spec === "all" ? tools.map(() => ({})) : spec
  return specs.map((call: ToolCallSpec, i) => {
    const tool = call.name === undefined ? tools[i % tools.length]! : tools.find((t) => t.name === call.name)
    const name = call.name ?? tool!.name
    const args = call.arguments === undefined
      ? JSON.stringify(JsonExample.example(tool?.parameters ?? { type: "object", properties: {} }, echo))
      : typeof call.arguments === "string"
      ? call.arguments
      : JSON.stringify(call.arguments)
    return { id: `call_${prng.hex8()}${prng.hex8()}`, name, arguments: args }
  })
}

/**
 * The Genesys Cloud error body for a status: `{message, code, status, contextId, details,
 * errors}`, plus `limit` on 429. `message` and `code` override the defaults.
 *
 * @since 0.1.0
 * @category Utils
 */
export const genesysErrorBody = (
  status: number,
  contextId: string,
  overrides?: { readonly message?: string | undefined; readonly code?: string | undefined }
): Record<string, unknown> => {
  const known = genesysErrors[status]
  const body: Record<string, unknown> = {
    message: overrides?.message ?? known?.[1] ?? `The request failed with status ${status}.`,
    code: overrides?.code ?? known?.[0] ?? "error",
    status,
    contextId,
    details: [],
    errors: []
  }
  if (status === 429) body.limit = { key: "token.rate.per.minute", namespace: "platform.api", value: 300 }
  return body
}

const genesysErrors: Record<number, readonly [string, string]> = {
  400: ["bad.request", "The request could not be understood by the server due to malformed syntax."],
  401: ["bad.credentials", "Invalid login credentials."],
  403: ["missing.permissions", "You are not authorized to perform the requested action."],
  404: ["not.found", "The requested resource was not found."],
  408: ["request.timeout", "The request timed out."],
  413: ["request.entity.too.large", "The request is too large."],
  429: ["too.many.requests", "Rate limit exceeded the maximum. [300] requests for [60] seconds"],
  500: ["internal.server.error", "The server encountered an unexpected condition which prevented it from fulfilling the request."],
  502: ["bad.gateway", "The server received an invalid response from an upstream server."],
  503: ["service.unavailable", "Service is currently unavailable. Please try again later."],
  504: ["gateway.timeout", "The server did not receive a timely response from an upstream server."]
}

/**
 * The OpenAI-style error body for a status: `{error: {message, type, param, code}}`.
 *
 * @since 0.1.0
 * @category Utils
 */
export const openAiErrorBody = (
  status: number,
  overrides?: { readonly message?: string | undefined; readonly code?: string | null | undefined }
): Record<string, unknown> => {
  const known = openAiErrors[status]
  return {
    error: {
      message: overrides?.message ?? known?.[2] ?? `The request failed with status ${status}.`,
      type: known?.[0] ?? (status >= 500 ? "server_error" : "invalid_request_error"),
      param: null,
      code: overrides?.code !== undefined ? overrides.code : known?.[1] ?? null
    }
  }
}

const openAiErrors: Record<number, readonly [string, string | null, string]> = {
  400: ["invalid_request_error", null, "The request is invalid."],
  401: ["invalid_request_error", "invalid_api_key", "Incorrect API key provided."],
  403: ["permission_error", "permission_denied", "You are not allowed to use this model."],
  404: ["invalid_request_error", "model_not_found", "The model does not exist."],
  429: ["requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."],
  500: ["server_error", null, "The server had an error while processing your request."],
  502: ["server_error", null, "Bad gateway."],
  503: ["server_error", null, "The engine is currently overloaded, please try again later."],
  504: ["server_error", null, "The server timed out."]
}

const encoder = new TextEncoder()

interface Segment {
  readonly at: number
  readonly bytes: Uint8Array
}

const tokensOf = (reply: Reply): ReadonlyArray<string> => typeof reply === "string" ? Tokens.tokenize(reply) : reply

/**
 * The reply of a `jsonReply` scenario: an example of the request's schema whose strings hold
 * the echo, or `{"reply": echo}` without a schema.
 *
 * @since 0.1.0
 * @category Scenarios
 */
export const jsonReply = (request: Pick<ScriptRequest, "messages" | "responseSchema">): string => {
  const echo = echoReply(request.messages)
  return JSON.stringify(request.responseSchema === undefined ? { reply: echo } : JsonExample.example(request.responseSchema, echo))
}

/**
 * Renders `scenario` for `request` as the answer to attempt number `attempt` (0-based) of the
 * same request. Attempts before `faultAttempts(scenario)` get the scripted failures in order,
 * later ones the reply. Pure: the same arguments always give the same bytes.
 *
 * @since 0.1.0
 * @category Rendering
 */
export const render = (scenario: Scenario, request: ScriptRequest, attempt: number): Script => {
  // The name takes part so that scenarios sharing a seed still get distinct ids.
  const prng = Prng.make(Prng.mix(Prng.mix(scenario.seed ?? 1, Prng.hashString(scenario.name)), attempt))
  const correlationId = Prng.uuid(prng)
  const baseHeaders: Record<string, string> = request.profile === "gateway"
    ? { "inin-correlation-id": correlationId }
    : { "x-request-id": `req_${prng.hex8()}${prng.hex8()}` }
  const fault = attemptAt(scenario, attempt)
  if (fault !== undefined) return renderFault(fault, request, baseHeaders, correlationId)
  return renderReply(scenario, request, prng, baseHeaders)
}

const attemptAt = (scenario: Scenario, attempt: number): Attempt | undefined => {
  let index = attempt
  for (const candidate of scenario.attempts ?? []) {
    const times = candidate.times ?? 1
    if (index < times) return candidate
    index -= times
  }
  return undefined
}

const renderFault = (
  fault: Attempt,
  request: ScriptRequest,
  baseHeaders: Record<string, string>,
  correlationId: string
): Script => {
  const headers: Record<string, string> = { ...baseHeaders }
  if (fault.retryAfter !== undefined) headers["retry-after"] = String(fault.retryAfter)
  if (fault.retryAfterMs !== undefined) headers["retry-after-ms"] = String(fault.retryAfterMs)
  if (fault.status === 429) {
    const reset = typeof fault.retryAfter === "number" ? String(Math.ceil(fault.retryAfter)) : "60"
    if (request.profile === "gateway") {
      headers["inin-ratelimit-count"] = "301"
      headers["inin-ratelimit-allowed"] = "300"
      headers["inin-ratelimit-reset"] = reset
    } else {
      headers["x-ratelimit-limit-requests"] = "300"
      headers["x-ratelimit-remaining-requests"] = "0"
      headers["x-ratelimit-reset-requests"] = `${reset}s`
    }
  }
  let body: Uint8Array
  if (typeof fault.body === "string") {
    body = encoder.encode(fault.body)
    headers["content-type"] = fault.contentType ?? "text/plain; charset=utf-8"
  } else {
    const json = fault.body ??
      (request.profile === "gateway" ? genesysErrorBody(fault.status, correlationId) : openAiErrorBody(fault.status))
    body = encoder.encode(JSON.stringify(json))
    headers["content-type"] = fault.contentType ?? "application/json"
  }
  Object.assign(headers, lowerKeys(fault.headers))
  return {
    status: fault.status,
    headers,
    headersDelayMs: fault.delayMs ?? 0,
    chunks: body.length === 0 ? [] : [{ delayMs: 0, bytes: body }],
    end: { _tag: "Close" },
    chunked: false,
    outcome: "fault",
    revokeToken: fault.status === 401 && request.profile === "gateway" && fault.revokeToken !== false
  }
}

const lowerKeys = (headers: Readonly<Record<string, string>> | undefined): Record<string, string> => {
  const out: Record<string, string> = {}
  if (headers === undefined) return out
  for (const [key, value] of Object.entries(headers)) out[key.toLowerCase()] = value
  return out
}

interface Choice {
  readonly index: number
  readonly tokens: ReadonlyArray<string>
  readonly finishReason: string
}

const renderReply = (
  scenario: Scenario,
  request: ScriptRequest,
  prng: Prng.Prng,
  baseHeaders: Record<string, string>
): Script => {
  const id = `chatcmpl-sim${prng.hex8()}${prng.hex8()}`
  const created = 1_700_000_000 + (Prng.mix(scenario.seed ?? 1, 0x5eed) % 10_000_000)
  const timing = scenario.timing ?? {}
  const headersMs = timing.headersMs ?? 0
  const firstTokenMs = timing.firstTokenMs ?? 0
  const tokenMs = timing.tokenMs ?? 0
  const jitterMs = timing.jitterMs ?? 0
  const faults = scenario.faults ?? {}

  // Choices: choice 0 is the reply (or the echo), the others the alternatives.
  const n = Math.max(request.n ?? 1, scenario.n ?? 1)
  const mainTokens = tokensOf(
    scenario.reply ??
      (scenario.jsonReply === true
        ? jsonReply(request)
        : request.messages[request.messages.length - 1]?.role === "tool"
        ? toolResultsReply(request.messages)
        : echoReply(request.messages))
  )
  const choices: Array<Choice> = []
  let cutByMaxTokens = false
  for (let index = 0; index < n; index++) {
    const alternative = index === 0 ? undefined : scenario.alternatives?.[index - 1]
    const base = alternative === undefined ? mainTokens : tokensOf(alternative)
    // An endless reply under an honoured max_tokens is its tokens repeated up to the cut.
    const all = faults.endless !== undefined && scenario.ignoreMaxTokens !== true && base.length > 0 &&
        request.maxTokens !== undefined && request.maxTokens < 1_000_000
      ? Array.from({ length: request.maxTokens + 1 }, (_, i) => base[i % base.length]!)
      : base
    const cut = request.maxTokens !== undefined && all.length > request.maxTokens && scenario.ignoreMaxTokens !== true
    if (cut) cutByMaxTokens = true
    choices.push({
      index,
      tokens: cut ? all.slice(0, request.maxTokens) : all,
      finishReason: cut ? "length" : scenario.finishReason ?? "stop"
    })
  }
  const completionTokens = choices.reduce((sum, choice) => sum + choice.tokens.length, 0)
  const usage = scenario.usage === "omit"
    ? undefined
    : scenario.usage === undefined || scenario.usage === "computed"
    ? usageOf(promptTokens(request), completionTokens)
    : usageOf(scenario.usage.prompt_tokens, scenario.usage.completion_tokens, scenario.usage.total_tokens)

  // Token order: interleaved across choices, as the platform streams n > 1.
  const order: Array<{ readonly choice: number; readonly token: string }> = []
  const longest = choices.reduce((max, choice) => Math.max(max, choice.tokens.length), 0)
  for (let step = 0; step < longest; step++) {
    for (const choice of choices) {
      const token = choice.tokens[step]
      if (token !== undefined) order.push({ choice: choice.index, token })
    }
  }
  // When each token is ready, relative to the response headers.
  const times: Array<number> = []
  let clock = firstTokenMs
  for (let k = 0; k < order.length; k++) {
    if (k > 0) clock += tokenMs
    if (jitterMs > 0) clock += prng.int(0, jitterMs)
    times.push(clock)
  }
  const doneAt = order.length === 0 ? firstTokenMs : times[times.length - 1]!

  const headers: Record<string, string> = {
    ...baseHeaders,
    "content-type": faults.contentType ?? (request.stream ? "text/event-stream; charset=utf-8" : "application/json"),
    ...(request.stream ? { "cache-control": "no-cache" } : {}),
    ...lowerKeys(scenario.headers)
  }

  const calls = toolCallsFor(scenario, request, prng)
  if (calls !== undefined) {
    return renderToolCalls({ scenario, request, prng, calls, id, created, headers, headersMs, firstTokenMs, tokenMs })
  }

  const terminal = terminalFault(faults)
  // An endless reply stops only where an honoured max_tokens cuts it, or at an earlier fault.
  const endless = faults.endless !== undefined && terminal === undefined && !cutByMaxTokens
    ? faults.endless
    : undefined
  const endlessTokens = mainTokens.length === 0 ? ["…"] : mainTokens
  if (!request.stream) {
    if (endless !== undefined) {
      // The JSON body opens a content string that never closes.
      const head = `{"id":"${id}","object":"chat.completion","created":${created},"model":${JSON.stringify(request.model)},"choices":[{"index":0,"message":{"role":"assistant","content":"`
      return {
        status: 200,
        headers,
        headersDelayMs: headersMs,
        chunks: [{ delayMs: 0, bytes: encoder.encode(head) }],
        end: {
          _tag: "Repeat",
          intervalMs: tokenMs * endlessTokens.length,
          bytes: encoder.encode(JSON.stringify(endlessTokens.join("")).slice(1, -1))
        },
        chunked: true,
        outcome: "reply",
        revokeToken: false
      }
    }
    return renderNonStreaming({ request, choices, usage, id, created, faults, terminal, headers, headersMs, doneAt })
  }

  const eol = scenario.lineEnding === "crlf" ? "\r\n" : scenario.lineEnding === "cr" ? "\r" : "\n"
  const block = (text: string) => encoder.encode(`${text}${eol}${eol}`)
  const data = (json: unknown) => block(`data: ${JSON.stringify(json)}`)
  const chunk = (choicesJson: ReadonlyArray<unknown>, extra?: Record<string, unknown>) => ({
    id,
    object: "chat.completion.chunk",
    created,
    model: request.model,
    system_fingerprint: "fp_simulator",
    choices: choicesJson,
    ...extra
  })
  const choiceJson = (index: number, delta: Record<string, unknown>, finishReason: string | null) => ({
    index,
    delta,
    logprobs: null,
    finish_reason: finishReason
  })

  const segments: Array<Segment> = []
  const push = (at: number, bytes: Uint8Array) => segments.push({ at, bytes })
  if (scenario.retryMs !== undefined) push(0, block(`retry: ${scenario.retryMs}`))

  let end: ScriptEnd = { _tag: "Close" }
  let ended = false
  const faultsAt = (position: number, at: number): boolean => {
    const atOrAfter = (after: number | undefined) =>
      after !== undefined && (after === position || (position === order.length && after > position))
    if (faults.oversized !== undefined && atOrAfter(faults.oversized.afterTokens ?? 0)) {
      const line = oversizedLine(faults.oversized.bytes)
      if (faults.oversized.terminated === false) {
        push(at, encoder.encode(line))
        return true
      }
      push(at, encoder.encode(`${line}${eol}${eol}`))
    }
    if (atOrAfter(faults.malformedAfter)) {
      push(at, block(`data: {"id":"${id}","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":`))
    }
    if (terminal !== undefined && atOrAfter(terminal.after)) {
      switch (terminal.kind) {
        case "error":
          push(at, data({ error: terminal.error }))
          break
        case "drop":
          end = { _tag: "Drop", delayMs: position === 0 ? firstTokenMs : tokenMs }
          break
        case "stall":
          end = stall(scenario.keepAliveMs, eol)
          break
        case "end":
          break
      }
      return true
    }
    return false
  }

  for (let k = 0; k <= order.length && !ended; k++) {
    const at = k === 0 ? firstTokenMs : times[k - 1]!
    if (faultsAt(k, at)) {
      ended = true
      break
    }
    if (k === order.length) break
    if (k === 0) {
      for (const choice of choices) push(times[0]!, data(chunk([choiceJson(choice.index, { role: "assistant", content: "" }, null)])))
    }
    const { choice, token } = order[k]!
    push(times[k]!, data(chunk([choiceJson(choice, { content: token }, null)])))
  }
  if (!ended && endless !== undefined) {
    const field = endless.delta ?? "content"
    const choice = endless.choice ?? 0
    end = {
      _tag: "Repeat",
      intervalMs: tokenMs * endlessTokens.length,
      bytes: concat(endlessTokens.map((token) => data(chunk([choiceJson(choice, { [field]: token }, null)]))))
    }
  } else if (!ended) {
    if (order.length === 0) {
      for (const choice of choices) push(doneAt, data(chunk([choiceJson(choice.index, { role: "assistant", content: "" }, null)])))
    }
    for (const choice of choices) push(doneAt, data(chunk([choiceJson(choice.index, {}, choice.finishReason)])))
    if (request.includeUsage && usage !== undefined) push(doneAt, data(chunk([], { usage })))
    if (faults.omitDone !== true) push(doneAt, block("data: [DONE]"))
  }

  const withKeepAlive = scenario.keepAliveMs === undefined ? segments : keepAlive(segments, scenario.keepAliveMs, eol)
  return {
    status: 200,
    headers,
    headersDelayMs: headersMs,
    chunks: split(withKeepAlive, scenario, prng),
    end,
    chunked: true,
    outcome: "reply",
    revokeToken: false
  }
}

/**
 * A reply of tool calls, as the OpenAI API streams it: a role chunk, then each call in turn,
 * its `id`, `type` and `name` in the first fragment only, its arguments' text cut into pieces
 * of 1 to 8 characters (with `tokenMs` between pieces), then `finish_reason: "tool_calls"`,
 * the usage chunk and `[DONE]`. Without `stream`, one completion whose message holds the calls.
 */
const renderToolCalls = (options: {
  readonly scenario: Scenario
  readonly request: ScriptRequest
  readonly prng: Prng.Prng
  readonly calls: ReadonlyArray<{ readonly id: string; readonly name: string; readonly arguments: string }>
  readonly id: string
  readonly created: number
  readonly headers: Record<string, string>
  readonly headersMs: number
  readonly firstTokenMs: number
  readonly tokenMs: number
}): Script => {
  const { calls, prng, request, scenario } = options
  const completionTokens = calls.reduce((sum, call) => sum + Tokens.count(call.name) + Tokens.count(call.arguments), 0)
  const usage = scenario.usage === "omit"
    ? undefined
    : scenario.usage === undefined || scenario.usage === "computed"
    ? usageOf(promptTokens(request), completionTokens)
    : usageOf(scenario.usage.prompt_tokens, scenario.usage.completion_tokens, scenario.usage.total_tokens)
  const wireCall = (call: (typeof calls)[number], index: number, args: string) => ({
    index,
    id: call.id,
    type: "function",
    function: { name: call.name, arguments: args }
  })
  const base = {
    id: options.id,
    created: options.created,
    model: request.model,
    system_fingerprint: "fp_simulator"
  }
  if (!request.stream) {
    const completion = {
      ...base,
      object: "chat.completion",
      choices: [{
        index: 0,
        message: { role: "assistant", content: null, tool_calls: calls.map((call, i) => wireCall(call, i, call.arguments)) },
        logprobs: null,
        finish_reason: "tool_calls"
      }],
      ...(usage === undefined ? {} : { usage })
    }
    return {
      status: 200,
      headers: options.headers,
      headersDelayMs: options.headersMs + options.firstTokenMs,
      chunks: [{ delayMs: 0, bytes: encoder.encode(JSON.stringify(completion)) }],
      end: { _tag: "Close" },
      chunked: false,
      outcome: "reply",
      revokeToken: false
    }
  }
  const eol = scenario.lineEnding === "crlf" ? "\r\n" : scenario.lineEnding === "cr" ? "\r" : "\n"
  const data = (delta: Record<string, unknown>, finishReason: string | null, extra?: Record<string, unknown>) =>
    encoder.encode(
      `data: ${
        JSON.stringify({
          ...base,
          object: "chat.completion.chunk",
          choices: extra === undefined ? [{ index: 0, delta, logprobs: null, finish_reason: finishReason }] : [],
          ...extra
        })
      }${eol}${eol}`
    )
  const segments: Array<Segment> = []
  let clock = options.firstTokenMs
  segments.push({ at: clock, bytes: data({ role: "assistant", content: null }, null) })
  calls.forEach((call, index) => {
    segments.push({ at: clock, bytes: data({ tool_calls: [wireCall(call, index, "")] }, null) })
    for (let at = 0; at < call.arguments.length;) {
      const size = prng.int(1, 8)
      clock += options.tokenMs
      segments.push({
        at: clock,
        bytes: data({ tool_calls: [{ index, function: { arguments: call.arguments.slice(at, at + size) } }] }, null)
      })
      at += size
    }
  })
  segments.push({ at: clock, bytes: data({}, "tool_calls") })
  if (request.includeUsage && usage !== undefined) segments.push({ at: clock, bytes: data({}, null, { usage }) })
  segments.push({ at: clock, bytes: encoder.encode(`data: [DONE]${eol}${eol}`) })
  const withKeepAlive = scenario.keepAliveMs === undefined ? segments : keepAlive(segments, scenario.keepAliveMs, eol)
  return {
    status: 200,
    headers: options.headers,
    headersDelayMs: options.headersMs,
    chunks: split(withKeepAlive, scenario, prng),
    end: { _tag: "Close" },
    chunked: true,
    outcome: "reply",
    revokeToken: false
  }
}

type Terminal =
  | { readonly kind: "error"; readonly after: number; readonly error: Record<string, unknown> }
  | { readonly kind: "drop" | "stall" | "end"; readonly after: number }

// The earliest fault that ends the body; at the same position an error object comes first.
const terminalFault = (faults: NonNullable<Scenario["faults"]>): Terminal | undefined => {
  const candidates: Array<Terminal> = []
  if (faults.errorAfter !== undefined) {
    candidates.push({
      kind: "error",
      after: faults.errorAfter.tokens,
      error: {
        message: faults.errorAfter.message ?? "The server had an error while processing your request.",
        type: faults.errorAfter.type ?? "server_error",
        param: null,
        code: faults.errorAfter.code ?? null
      }
    })
  }
  if (faults.dropAfter !== undefined) candidates.push({ kind: "drop", after: faults.dropAfter })
  if (faults.stallAfter !== undefined) candidates.push({ kind: "stall", after: faults.stallAfter })
  if (faults.endAfter !== undefined) candidates.push({ kind: "end", after: faults.endAfter })
  let best: Terminal | undefined
  for (const candidate of candidates) if (best === undefined || candidate.after < best.after) best = candidate
  return best
}

const usageOf = (prompt: number, completion: number, total?: number) => ({
  prompt_tokens: prompt,
  completion_tokens: completion,
  total_tokens: total ?? prompt + completion
})

// A `data:` line of exactly `bytes` bytes: a valid chunk padded with spaces inside a string.
const oversizedLine = (bytes: number): string => {
  const head = "data: {\"choices\":[],\"padding\":\""
  const tail = "\"}"
  const room = Math.max(0, bytes - head.length - tail.length)
  return `${head}${" ".repeat(room)}${tail}`
}

const stall = (keepAliveMs: number | undefined, eol: string): ScriptEnd => ({
  _tag: "Stall",
  keepAlive: keepAliveMs === undefined
    ? undefined
    : { intervalMs: keepAliveMs, bytes: encoder.encode(`: keep-alive${eol}${eol}`) }
})

// Inserts a keep-alive comment whenever `interval` passes without a segment.
const keepAlive = (segments: ReadonlyArray<Segment>, interval: number, eol: string): Array<Segment> => {
  const comment = encoder.encode(`: keep-alive${eol}${eol}`)
  const out: Array<Segment> = []
  let last = 0
  for (const segment of segments) {
    while (segment.at - last > interval) {
      last += interval
      out.push({ at: last, bytes: comment })
    }
    out.push(segment)
    last = segment.at
  }
  return out
}

// Cuts the segments into chunks; a chunk is sent when its last byte is ready.
const split = (segments: ReadonlyArray<Segment>, scenario: Scenario, prng: Prng.Prng): Array<ScriptChunk> => {
  const mode = scenario.split ?? { mode: "event" as const }
  const chunks: Array<ScriptChunk> = []
  let previous = 0
  if (mode.mode === "event") {
    for (const segment of segments) {
      chunks.push({ delayMs: segment.at - previous, bytes: segment.bytes })
      previous = segment.at
    }
    return chunks
  }
  const all = concat(segments.map((segment) => segment.bytes))
  // The end offset of each segment, to find when a byte is ready.
  const ends: Array<number> = []
  let offset = 0
  for (const segment of segments) {
    offset += segment.bytes.length
    ends.push(offset)
  }
  let segment = 0
  let start = 0
  while (start < all.length) {
    const size = mode.mode === "fixed" ? mode.bytes : prng.int(1, mode.maxBytes)
    const stop = Math.min(all.length, start + size)
    while (ends[segment]! < stop) segment++
    const at = segments[segment]!.at
    chunks.push({ delayMs: at - previous, bytes: all.slice(start, stop) })
    previous = at
    start = stop
  }
  return chunks
}

const renderNonStreaming = (options: {
  readonly request: ScriptRequest
  readonly choices: ReadonlyArray<Choice>
  readonly usage: ReturnType<typeof usageOf> | undefined
  readonly id: string
  readonly created: number
  readonly faults: NonNullable<Scenario["faults"]>
  readonly terminal: Terminal | undefined
  readonly headers: Record<string, string>
  readonly headersMs: number
  readonly doneAt: number
}): Script => {
  const { choices, faults, request, terminal } = options
  const completion: Record<string, unknown> = {
    id: options.id,
    object: "chat.completion",
    created: options.created,
    model: request.model,
    system_fingerprint: "fp_simulator",
    choices: choices.map((choice) => ({
      index: choice.index,
      message: { role: "assistant", content: choice.tokens.join(""), refusal: null },
      logprobs: null,
      finish_reason: choice.finishReason
    })),
    ...(options.usage === undefined ? {} : { usage: options.usage })
  }
  if (faults.oversized !== undefined) completion.padding = " ".repeat(faults.oversized.bytes)
  let body = encoder.encode(JSON.stringify(terminal?.kind === "error" ? { error: terminal.error } : completion))
  let end: ScriptEnd = { _tag: "Close" }
  if (terminal?.kind === "stall") {
    end = { _tag: "Stall", keepAlive: undefined }
    body = new Uint8Array(0)
  } else if (terminal?.kind === "drop" || terminal?.kind === "end" || faults.malformedAfter !== undefined) {
    // The body breaks off halfway: invalid JSON, and for `drop` no clean end either.
    body = body.slice(0, Math.floor(body.length / 2))
    if (terminal?.kind === "drop") end = { _tag: "Drop", delayMs: 0 }
  }
  return {
    status: 200,
    headers: options.headers,
    headersDelayMs: options.headersMs + options.doneAt,
    chunks: body.length === 0 ? [] : [{ delayMs: 0, bytes: body }],
    end,
    chunked: end._tag !== "Close",
    outcome: "reply",
    revokeToken: false
  }
}
