/**
 * Every failure a caller of the gateway can see, as one union of tagged, schema-described
 * errors. Messages say what happened and what to do; none carries a secret, a token or the
 * text of a prompt.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Schema from "effect/Schema"

/**
 * Rate-limit headers the platform sends (`inin-ratelimit-count/allowed/reset`, or the
 * OpenAI-style `x-ratelimit-*`), kept as written.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const RateLimitInfo = Schema.Struct({
  count: Schema.optional(Schema.String),
  allowed: Schema.optional(Schema.String),
  reset: Schema.optional(Schema.String)
})

/**
 * The decoded rate-limit headers of a `RateLimited` error.
 *
 * @since 0.1.0
 * @category Models
 */
export type RateLimitInfo = typeof RateLimitInfo.Type

/**
 * What an upstream HTTP response told us about itself: status, the Genesys `code` and
 * `contextId`, the `ININ-Correlation-Id` header and the rate-limit headers.
 *
 * @since 0.1.0
 */
const upstreamFields = {
  status: Schema.Number,
  code: Schema.optional(Schema.String),
  detail: Schema.optional(Schema.String),
  contextId: Schema.optional(Schema.String),
  correlationId: Schema.optional(Schema.String),
  rateLimit: Schema.optional(RateLimitInfo)
}

/**
 * True when at least one byte of the response body had reached us: such a failure is final
 * (a retry would repeat tokens the caller has already seen).
 */
const partialField = { partial: Schema.Boolean }

const describe = (e: { readonly code?: string | undefined; readonly detail?: string | undefined; readonly contextId?: string | undefined; readonly correlationId?: string | undefined }) => {
  const parts: Array<string> = []
  if (e.code !== undefined) parts.push(`code ${e.code}`)
  if (e.detail !== undefined) parts.push(e.detail)
  if (e.contextId !== undefined) parts.push(`contextId ${e.contextId}`)
  if (e.correlationId !== undefined) parts.push(`correlationId ${e.correlationId}`)
  return parts.length === 0 ? "" : ` (${parts.join("; ")})`
}

const partialNote = (partial: boolean) =>
  partial ? " The reply had already started, so it was not retried; the text received so far is incomplete." : ""

/**
 * The token endpoint refused the client credentials, or answered with something that is not a
 * token. Carries the OAuth `error` and `error_description`.
 *
 * @since 0.1.0
 * @category Errors
 */
export class AuthError extends Schema.TaggedError<AuthError>("@llm-gateway/core/AuthError")("AuthError", {
  error: Schema.String,
  description: Schema.optional(Schema.String),
  status: Schema.optional(Schema.Number)
}) {
  get isRetryable(): boolean {
    if (this.status === undefined) return this.error === "connection_failed" || this.error === "timeout"
    return this.status >= 500 || this.status === 429 || this.status === 408
  }
  override get message(): string {
    const desc = this.description === undefined ? "" : `: ${this.description}`
    const status = this.status === undefined ? "" : ` (HTTP ${this.status})`
    return `Authentication failed with ${this.error}${desc}${status}. Check the client id, secret and environment of the OAuth client.`
  }
}

/**
 * The gateway answered 403: the OAuth client lacks a permission. Retrying will not help;
 * grant the role to the client.
 *
 * @since 0.1.0
 * @category Errors
 */
export class PermissionDenied extends Schema.TaggedError<PermissionDenied>("@llm-gateway/core/PermissionDenied")(
  "PermissionDenied",
  upstreamFields
) {
  get isRetryable(): boolean {
    return false
  }
  override get message(): string {
    return `The gateway denied the request (HTTP ${this.status})${describe(this)}. Grant the OAuth client the permission it needs.`
  }
}

/**
 * The gateway answered 429 and we gave up: attempts or the deadline ran out, or it asked us to
 * wait longer than the retry policy allows. `retryAfter` is how long it asked for.
 *
 * @since 0.1.0
 * @category Errors
 */
export class RateLimited extends Schema.TaggedError<RateLimited>("@llm-gateway/core/RateLimited")("RateLimited", {
  ...upstreamFields,
  retryAfter: Schema.optional(Schema.DurationFromSelf)
}) {
  get isRetryable(): boolean {
    return true
  }
  override get message(): string {
    const after = this.retryAfter === undefined ? "" : ` The gateway asked to wait ${Duration.format(this.retryAfter)}.`
    return `Rate limited by the gateway (HTTP ${this.status})${describe(this)}.${after} Lower the request rate or retry later.`
  }
}

/**
 * The account's quota is spent (a 429 whose code says so). Waiting a few seconds will not help.
 *
 * @since 0.1.0
 * @category Errors
 */
export class QuotaExhausted extends Schema.TaggedError<QuotaExhausted>("@llm-gateway/core/QuotaExhausted")(
  "QuotaExhausted",
  upstreamFields
) {
  get isRetryable(): boolean {
    return false
  }
  override get message(): string {
    return `The gateway quota is exhausted (HTTP ${this.status})${describe(this)}. Raise the quota or wait for it to reset.`
  }
}

/**
 * The gateway rejected the request as malformed or unknown (400, 404, 413, 422 …).
 *
 * @since 0.1.0
 * @category Errors
 */
export class BadRequest extends Schema.TaggedError<BadRequest>("@llm-gateway/core/BadRequest")(
  "BadRequest",
  upstreamFields
) {
  get isRetryable(): boolean {
    return false
  }
  override get message(): string {
    return `The gateway rejected the request (HTTP ${this.status})${describe(this)}. Check the model id, the endpoint path and the request body.`
  }
}

/**
 * The gateway failed (5xx or another unexpected status), or sent an error object inside a
 * stream that had started with 200.
 *
 * @since 0.1.0
 * @category Errors
 */
export class UpstreamError extends Schema.TaggedError<UpstreamError>("@llm-gateway/core/UpstreamError")(
  "UpstreamError",
  { ...upstreamFields, ...partialField, retryAfter: Schema.optional(Schema.DurationFromSelf) }
) {
  get isRetryable(): boolean {
    return !this.partial && [408, 429, 500, 502, 503, 504].includes(this.status)
  }
  override get message(): string {
    return `The gateway failed (HTTP ${this.status})${describe(this)}.${partialNote(this.partial)}`
  }
}

/**
 * The connection failed or was reset.
 *
 * @since 0.1.0
 * @category Errors
 */
export class ConnectionError extends Schema.TaggedError<ConnectionError>("@llm-gateway/core/ConnectionError")(
  "ConnectionError",
  { reason: Schema.String, ...partialField }
) {
  get isRetryable(): boolean {
    return !this.partial
  }
  override get message(): string {
    return `The connection to the gateway failed: ${this.reason}.${partialNote(this.partial)}`
  }
}

/**
 * Which deadline ran out: until the response headers (`handshake`), until the first text
 * (`firstToken`), between two events (`idle`; keep-alive comments do not count), or for the
 * whole request (`total`).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const TimeoutPhase = Schema.Literal("handshake", "firstToken", "idle", "total")

/**
 * Which deadline a `RequestTimeout` missed: `handshake`, `firstToken`, `idle` or `total`.
 *
 * @since 0.1.0
 * @category Models
 */
export type TimeoutPhase = typeof TimeoutPhase.Type

/**
 * A deadline ran out.
 *
 * @since 0.1.0
 * @category Errors
 */
export class RequestTimeout extends Schema.TaggedError<RequestTimeout>("@llm-gateway/core/RequestTimeout")(
  "RequestTimeout",
  { phase: TimeoutPhase, after: Schema.DurationFromSelf, ...partialField }
) {
  get isRetryable(): boolean {
    return this.phase === "handshake" && !this.partial
  }
  override get message(): string {
    return `The gateway did not answer in time: the ${this.phase} timeout of ${Duration.format(this.after)} ran out.${
      partialNote(this.partial)
    }`
  }
}

/**
 * The response body broke the wire format: malformed SSE or JSON, an event over the size
 * limit, an unexpected content type.
 *
 * @since 0.1.0
 * @category Errors
 */
export class StreamProtocolError extends Schema.TaggedError<StreamProtocolError>(
  "@llm-gateway/core/StreamProtocolError"
)("StreamProtocolError", { reason: Schema.String, ...partialField }) {
  get isRetryable(): boolean {
    return false
  }
  override get message(): string {
    return `The gateway's stream broke the protocol: ${this.reason}.${partialNote(this.partial)}`
  }
}

/**
 * The stream ended without `data: [DONE]` and without a finish reason: the reply is cut off.
 *
 * @since 0.1.0
 * @category Errors
 */
export class StreamTruncated extends Schema.TaggedError<StreamTruncated>("@llm-gateway/core/StreamTruncated")(
  "StreamTruncated",
  { ...partialField }
) {
  get isRetryable(): boolean {
    return false
  }
  override get message(): string {
    return `The gateway closed the stream before the reply was complete.${partialNote(this.partial)}`
  }
}

/**
 * The reply grew past the gateway's reply-size limit (`maxReplyChars`: characters of text,
 * refusal and alternatives together), so the stream was ended. Always `partial: true`: what
 * was received before the limit reached the caller; the rest was never read.
 *
 * @since 0.1.0
 * @category Errors
 */
export class ReplyTooLarge extends Schema.TaggedError<ReplyTooLarge>("@llm-gateway/core/ReplyTooLarge")(
  "ReplyTooLarge",
  { limitChars: Schema.Number, ...partialField }
) {
  get isRetryable(): boolean {
    return false
  }
  override get message(): string {
    return `The reply exceeded the limit of ${this.limitChars} characters (text, refusal and alternatives together) and was cut off. Ask for a shorter reply (maxTokens) or raise the limit (Gateway option maxReplyChars, LLM_GATEWAY_MAX_REPLY_CHARS).${
      partialNote(this.partial)
    }`
  }
}

/**
 * The conversation cannot fit the model's context window even after dropping old messages:
 * the system instruction and the newest user message alone are too long. Raised before any
 * network call.
 *
 * @since 0.1.0
 * @category Errors
 */
export class ContextWindowExceeded extends Schema.TaggedError<ContextWindowExceeded>(
  "@llm-gateway/core/ContextWindowExceeded"
)("ContextWindowExceeded", {
  model: Schema.String,
  limit: Schema.Number,
  required: Schema.Number,
  /** The model's whole window and the tokens reserved for the reply (`limit` is what is left). */
  contextWindow: Schema.optional(Schema.Number),
  reservedForReply: Schema.optional(Schema.Number)
}) {
  get isRetryable(): boolean {
    return false
  }
  override get message(): string {
    if (this.contextWindow === undefined || this.reservedForReply === undefined) {
      return `The prompt needs ${this.required} tokens but ${this.model} allows ${this.limit} (after reserving room for the reply). Shorten the system instruction or the newest message, or lower maxTokens.`
    }
    const room = this.contextWindow - this.required
    const fix = room > 0
      ? `Lower maxTokens to at most ${room}, or shorten the system instruction or the newest message.`
      : "Shorten the system instruction or the newest message: they alone exceed the whole window."
    return `The prompt needs ${this.required} tokens but the context window of ${this.model} is ${this.contextWindow} tokens, of which ${this.reservedForReply} are reserved for the reply, leaving ${this.limit} for the prompt. ${fix}`
  }
}

/**
 * A block rule of the safety policy matched: the prompt (`direction: "input"`, the default),
 * or the reply as it streamed (`"output"`, when the policy's `output` setting says `fail`; the
 * stream ends before the matching sentence). Names the rule, never the offending text.
 *
 * @since 0.1.0
 * @category Errors
 */
export class SafetyViolation extends Schema.TaggedError<SafetyViolation>("@llm-gateway/core/SafetyViolation")(
  "SafetyViolation",
  {
    category: Schema.String,
    rule: Schema.String,
    direction: Schema.optionalWith(Schema.Literal("input", "output"), { default: () => "input" as const })
  }
) {
  get isRetryable(): boolean {
    return false
  }
  override get message(): string {
    return this.direction === "output"
      ? `The reply was stopped by the safety policy (${this.category}: ${this.rule}); the text before it was delivered. Rephrase the request.`
      : `The prompt was blocked by the safety policy (${this.category}: ${this.rule}). Rephrase the request.`
  }
}

/**
 * The request would exceed a cost budget.
 *
 * @since 0.1.0
 * @category Errors
 */
export class BudgetExceeded extends Schema.TaggedError<BudgetExceeded>("@llm-gateway/core/BudgetExceeded")(
  "BudgetExceeded",
  {
    budget: Schema.String,
    limitUsd: Schema.Number,
    spentUsd: Schema.Number,
    requestedUsd: Schema.Number
  }
) {
  get isRetryable(): boolean {
    return false
  }
  override get message(): string {
    return `The ${this.budget} budget of $${this.limitUsd} would be exceeded: $${this.spentUsd} spent or reserved, this request may cost up to $${this.requestedUsd}. Raise the budget or wait for it to reset.`
  }
}

/**
 * A shared store (Redis) that the request depends on did not answer in time or refused the
 * call, so the request was not sent. Raised where failing closed is the safe choice (the
 * cost budget); the shared cache and rate limit fall back instead. `store` names the store,
 * `operation` what was asked; neither carries a key or a value.
 *
 * @since 0.1.0
 * @category Errors
 */
export class StoreUnavailable extends Schema.TaggedError<StoreUnavailable>("@llm-gateway/core/StoreUnavailable")(
  "StoreUnavailable",
  { store: Schema.String, operation: Schema.String }
) {
  get isRetryable(): boolean {
    return true
  }
  override get message(): string {
    return `The shared ${this.store} store did not answer "${this.operation}" in time or refused it, so the request was not sent. ` +
      `Check that Redis is reachable at LLM_GATEWAY_REDIS_URL and retry, or run without the shared store.`
  }
}

/**
 * A prompt template could not be rendered: a variable is missing, or a `$` starts no valid
 * placeholder. `line` and `column` are 1-based.
 *
 * @since 0.1.0
 * @category Errors
 */
export class TemplateError extends Schema.TaggedError<TemplateError>("@llm-gateway/core/TemplateError")(
  "TemplateError",
  {
    reason: Schema.Literal("MissingVariable", "InvalidPlaceholder"),
    key: Schema.optional(Schema.String),
    line: Schema.optional(Schema.Number),
    column: Schema.optional(Schema.Number)
  }
) {
  get isRetryable(): boolean {
    return false
  }
  override get message(): string {
    const at = this.line === undefined ? "" : ` at line ${this.line}, column ${this.column}`
    return this.reason === "MissingVariable"
      ? `The template uses $${this.key ?? "?"}${at} but no variable of that name was given.`
      : `The template has an invalid placeholder${at}: write $$ for a literal dollar sign, or $name / \${name}.`
  }
}

/**
 * The request itself is malformed (a field of the wrong type, an empty model id …). Names the
 * fields, never their values.
 *
 * @since 0.1.0
 * @category Errors
 */
export class InvalidRequest extends Schema.TaggedError<InvalidRequest>("@llm-gateway/core/InvalidRequest")(
  "InvalidRequest",
  { issues: Schema.Array(Schema.String) }
) {
  get isRetryable(): boolean {
    return false
  }
  override get message(): string {
    return `The request is invalid: ${this.issues.join("; ")}.`
  }
}

/**
 * The reply to a request with a `responseFormat` (structured output) is not what was asked
 * for: not JSON (`not_json`), cut before its end (`truncated`, finish reason `length` or
 * `content_filter`), a refusal instead of an answer (`refused`), or JSON that the Schema does
 * not accept (`schema`). `issues` name the paths that did not match and what was expected,
 * never a value of the reply. `redacted` says PII was redacted from the reply, which can
 * break its JSON or a field's format. Such a reply is never stored in the response cache.
 *
 * @since 0.1.0
 * @category Errors
 */
export class ReplySchemaMismatch extends Schema.TaggedError<ReplySchemaMismatch>(
  "@llm-gateway/core/ReplySchemaMismatch"
)("ReplySchemaMismatch", {
  reason: Schema.Literal("not_json", "truncated", "refused", "schema"),
  issues: Schema.Array(Schema.String),
  redacted: Schema.Boolean
}) {
  get isRetryable(): boolean {
    return false
  }
  override get message(): string {
    const what = this.reason === "not_json"
      ? "is not JSON"
      : this.reason === "truncated"
      ? "was cut off before its JSON ended; ask for more tokens (maxTokens) or a smaller object"
      : this.reason === "refused"
      ? "is a refusal, not an answer"
      : `does not match the schema: ${this.issues.join("; ")}`
    const note = this.redacted ? " PII was redacted from the reply, which may have changed it." : ""
    return `The structured reply ${what}.${note}`
  }
}

/**
 * Every failure of the gateway pipeline.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const GatewayError = Schema.Union(
  AuthError,
  PermissionDenied,
  RateLimited,
  QuotaExhausted,
  BadRequest,
  UpstreamError,
  ConnectionError,
  RequestTimeout,
  StreamProtocolError,
  StreamTruncated,
  ReplyTooLarge,
  ContextWindowExceeded,
  SafetyViolation,
  BudgetExceeded,
  StoreUnavailable,
  TemplateError,
  InvalidRequest,
  ReplySchemaMismatch
)

/**
 * Every typed failure a caller of `Gateway` can see; match on `_tag` (e.g. with
 * `Effect.catchTag`).
 *
 * @since 0.1.0
 * @category Models
 */
export type GatewayError = typeof GatewayError.Type

/**
 * The errors the transport (Auth + Http) can fail with.
 *
 * @since 0.1.0
 * @category Models
 */
export type TransportError =
  | AuthError
  | PermissionDenied
  | RateLimited
  | QuotaExhausted
  | BadRequest
  | UpstreamError
  | ConnectionError
  | RequestTimeout
  | StreamProtocolError
  | StreamTruncated

/**
 * Whether an error may succeed if the same request is sent again.
 *
 * @since 0.1.0
 * @category Guards
 */
export const isRetryable = (error: GatewayError): boolean => error.isRetryable

/**
 * Rewrites every field of an error that carries text from the gateway or the token endpoint:
 * `code`, `detail`, `contextId`, `correlationId` and the rate-limit values of HTTP errors, an
 * `AuthError`'s `error` and `description`, and the `reason` of a `ConnectionError` or
 * `StreamProtocolError`. Other errors, and errors whose text does not change, are returned as
 * they are; otherwise a new error of the same class.
 *
 * @example
 * ```ts
 * import { GatewayError } from "@llm-gateway/core"
 *
 * const error = new GatewayError.BadRequest({ status: 400, detail: "Bad model  " })
 * export const trimmed = GatewayError.mapServerText(error, (text) => text.trim())
 * ```
 *
 * @since 0.1.0
 * @category Combinators
 */
export const mapServerText = <E extends GatewayError>(error: E, f: (text: string) => string): E => {
  const fields = serverTextFields[error._tag]
  if (fields === undefined) return error
  const source = error as unknown as Record<string, unknown>
  const changed: Record<string, unknown> = {}
  let any = false
  for (const field of fields) {
    const value = source[field]
    if (typeof value === "string") {
      const next = f(value)
      if (next !== value) {
        changed[field] = next
        any = true
      }
    } else if (field === "rateLimit" && typeof value === "object" && value !== null) {
      const limit: Record<string, string> = {}
      let limitChanged = false
      for (const [key, text] of Object.entries(value as Record<string, string>)) {
        limit[key] = f(text)
        if (limit[key] !== text) limitChanged = true
      }
      if (limitChanged) {
        changed[field] = limit
        any = true
      }
    }
  }
  if (!any) return error
  const { _tag: _ignored, ...rest } = source
  const ErrorClass = Object.getPrototypeOf(error).constructor as new(fields: object) => E
  return new ErrorClass({ ...rest, ...changed })
}

const upstreamTextFields = ["code", "detail", "contextId", "correlationId", "rateLimit"] as const

const serverTextFields: Partial<Record<GatewayError["_tag"], ReadonlyArray<string>>> = {
  AuthError: ["error", "description"],
  PermissionDenied: upstreamTextFields,
  RateLimited: upstreamTextFields,
  QuotaExhausted: upstreamTextFields,
  BadRequest: upstreamTextFields,
  UpstreamError: upstreamTextFields,
  ConnectionError: ["reason"],
  StreamProtocolError: ["reason"]
}
