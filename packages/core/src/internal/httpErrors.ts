/**
 * The edge where HTTP meets our error union: statuses, error bodies and platform failures
 * become `TransportError`s carrying what an operator needs (status, Genesys `code` and
 * `contextId`, correlation id, rate-limit headers) and nothing secret. Every string taken from
 * the response or a socket error passes the request's `Sanitize` (internal/sanitize.ts) here,
 * where the error is built.
 *
 * @internal
 */
import type * as Headers from "@effect/platform/Headers"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import type * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import {
  AuthError,
  BadRequest,
  ConnectionError,
  PermissionDenied,
  QuotaExhausted,
  RateLimited,
  type RateLimitInfo,
  StreamProtocolError,
  type TransportError,
  UpstreamError
} from "../GatewayError.js"
import * as RetryPolicy from "../RetryPolicy.js"
import * as Json from "./json.js"
import * as Sanitize from "./sanitize.js"

/** The most of an error body we read: enough for any JSON error, bounded against a hostile server. */
export const maxErrorBodyBytes = 64 * 1024

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const str = (u: unknown): string | undefined =>
  typeof u === "string" && u !== "" ? u : typeof u === "number" && Number.isFinite(u) ? String(u) : undefined

/** What an error body said about itself. */
export interface ErrorBody {
  readonly code?: string | undefined
  readonly type?: string | undefined
  readonly message?: string | undefined
  readonly contextId?: string | undefined
}

/**
 * Reads a Genesys Cloud error (`{message, code, status, contextId, details, limit}`) or an
 * OpenAI-style error (`{error: {message, type, code}}`). Anything else yields its text as the
 * message (proxies answer with HTML or plain text).
 */
export const parseErrorBody = (text: string | undefined): ErrorBody => {
  if (text === undefined) return {}
  const trimmed = text.trim()
  if (trimmed === "") return {}
  const parsed = Json.parseOption(trimmed)
  if (Option.isNone(parsed)) return { message: trimmed.replace(/\s+/g, " ") }
  const json = parsed.value
  if (!isRecord(json)) return {}
  const inner = isRecord(json.error) ? json.error : json
  return {
    code: str(inner.code),
    type: str(inner.type),
    message: str(inner.message) ?? (typeof json.error === "string" ? json.error : undefined),
    contextId: str(json.contextId) ?? str(inner.contextId)
  }
}

const header = (headers: Headers.Headers, name: string): string | undefined => {
  const value = headers[name]
  return value === undefined || value === "" ? undefined : value
}

/**
 * The platform's rate-limit headers (`inin-ratelimit-count/allowed/reset`), else the
 * OpenAI-style `x-ratelimit-limit-requests` / `x-ratelimit-reset-requests`, sanitized.
 */
export const rateLimitInfo = (
  headers: Headers.Headers,
  sanitize: Sanitize.Sanitize = Sanitize.basic
): RateLimitInfo | undefined => {
  const read = (name: string) => Sanitize.optional(sanitize, header(headers, name), Sanitize.limits.header)
  const count = read("inin-ratelimit-count")
  const allowed = read("inin-ratelimit-allowed") ?? read("x-ratelimit-limit-requests")
  const reset = read("inin-ratelimit-reset") ?? read("x-ratelimit-reset-requests")
  if (count === undefined && allowed === undefined && reset === undefined) return undefined
  return {
    ...(count !== undefined ? { count } : {}),
    ...(allowed !== undefined ? { allowed } : {}),
    ...(reset !== undefined ? { reset } : {})
  }
}

/** `ININ-Correlation-Id`, else the `x-request-id` OpenAI-compatible servers send, sanitized. */
export const correlationId = (
  headers: Headers.Headers,
  sanitize: Sanitize.Sanitize = Sanitize.basic
): string | undefined =>
  Sanitize.optional(
    sanitize,
    header(headers, "inin-correlation-id") ?? header(headers, "x-request-id"),
    Sanitize.limits.identifier
  )

const QUOTA = /quota|exhausted|insufficient_quota/i

/** Whether a 429 means the account's quota is spent rather than a short-term rate limit. */
export const isQuota = (body: ErrorBody): boolean =>
  (body.code !== undefined && QUOTA.test(body.code)) || (body.type !== undefined && QUOTA.test(body.type))

/** The response facts `fromStatus` needs. */
export interface ResponseFacts {
  readonly status: number
  readonly headers: Headers.Headers
  readonly body: string | undefined
  /** The current time (epoch ms, from `Clock`), to read an HTTP-date `Retry-After`. */
  readonly now: number
  /** The request's sanitizer, which knows the secrets sent (the bearer token). */
  readonly sanitize: Sanitize.Sanitize
}

/**
 * The typed error for a non-2xx response:
 * 401 → `AuthError`, 403 → `PermissionDenied`, 429 → `RateLimited{retryAfter}` (or
 * `QuotaExhausted` when the body's code says the quota is spent), other 4xx except 408 →
 * `BadRequest`, 408, 5xx and anything else → `UpstreamError` (not partial).
 */
export const fromStatus = (facts: ResponseFacts): TransportError => {
  // `isQuota` reads the raw code and type: they only choose the class, never reach the error.
  const body = parseErrorBody(facts.body)
  const { sanitize } = facts
  const code = Sanitize.optional(sanitize, body.code, Sanitize.limits.identifier)
  const detail = Sanitize.optional(sanitize, body.message, Sanitize.limits.text)
  const contextId = Sanitize.optional(sanitize, body.contextId, Sanitize.limits.identifier)
  const rateLimit = rateLimitInfo(facts.headers, sanitize)
  const correlation = correlationId(facts.headers, sanitize)
  const fields = {
    status: facts.status,
    ...(code !== undefined && code !== "" ? { code } : {}),
    ...(detail !== undefined && detail !== "" ? { detail } : {}),
    ...(contextId !== undefined && contextId !== "" ? { contextId } : {}),
    ...(correlation !== undefined && correlation !== "" ? { correlationId: correlation } : {}),
    ...(rateLimit !== undefined ? { rateLimit } : {})
  }
  const status = facts.status
  if (status === 401) {
    return new AuthError({
      error: fields.code ?? "unauthorized",
      description: `the gateway rejected the bearer token${fields.detail === undefined ? "" : ` (${fields.detail})`}`,
      status
    })
  }
  if (status === 403) return new PermissionDenied(fields)
  if (status === 429) {
    if (isQuota(body)) return new QuotaExhausted(fields)
    const retryAfter: Option.Option<Duration.Duration> = RetryPolicy.parseRetryAfter(facts.headers, facts.now)
    return new RateLimited(Option.isSome(retryAfter) ? { ...fields, retryAfter: retryAfter.value } : fields)
  }
  if (status >= 400 && status < 500 && status !== 408) return new BadRequest(fields)
  // A 503 may carry Retry-After too (RFC 9110 §10.2.3): the retry policy honours it.
  const retryAfter = RetryPolicy.parseRetryAfter(facts.headers, facts.now)
  return new UpstreamError(
    Option.isSome(retryAfter) ? { ...fields, partial: false, retryAfter: retryAfter.value } : { ...fields, partial: false }
  )
}

/**
 * A short description of a network failure: the system error code and message (never the
 * request, whose headers hold the token).
 */
export const describeCause = (cause: unknown, sanitize: Sanitize.Sanitize = Sanitize.basic): string => {
  const parts: Array<string> = []
  let current: unknown = cause
  for (let depth = 0; depth < 3 && current !== undefined && current !== null; depth++) {
    if (current instanceof Error || isRecord(current)) {
      const code = str((current as { code?: unknown }).code)
      const message = str((current as { message?: unknown }).message)
      const text = code !== undefined && message !== undefined && !message.includes(code)
        ? `${code}: ${message}`
        : message ?? code
      if (text !== undefined && !parts.includes(text)) parts.push(text)
      current = (current as { cause?: unknown }).cause
    } else {
      if (typeof current === "string") parts.push(current)
      break
    }
  }
  const text = parts.length === 0 ? "" : sanitize(parts.join(" ← "), Sanitize.limits.text)
  return text === "" ? "unknown network error" : text
}

/** A platform failure before the response headers: always a (retryable) `ConnectionError`. */
export const fromRequestError = (
  error: HttpClientError.HttpClientError,
  sanitize: Sanitize.Sanitize = Sanitize.basic
): ConnectionError =>
  new ConnectionError({
    reason: error.reason === "Transport"
      ? describeCause(error.cause, sanitize)
      : `${error.reason.toLowerCase()} failure: ${describeCause(error.cause, sanitize)}`,
    partial: false
  })

/** A failure while reading the body: the stream ends here, never retried. */
export const fromBodyError = (
  error: HttpClientError.HttpClientError,
  partial: boolean,
  sanitize: Sanitize.Sanitize = Sanitize.basic
): ConnectionError =>
  new ConnectionError({
    reason: `the response body broke off: ${describeCause(error.cause ?? error.reason, sanitize)}`,
    partial
  })

/**
 * A 2xx response that is not an event stream; the content type the gateway sent is shown
 * sanitized (a hostile server may put anything in it).
 */
export const fromContentType = (contentType: string, sanitize: Sanitize.Sanitize): StreamProtocolError =>
  new StreamProtocolError({
    reason: `expected a text/event-stream response but the gateway sent ${sanitize(contentType, Sanitize.limits.header)}`,
    partial: false
  })

/** Whether a `Content-Type` is `text/event-stream` (parameters and case ignored). */
export const isEventStream = (contentType: string | undefined): boolean =>
  contentType !== undefined && contentType.split(";")[0]!.trim().toLowerCase() === "text/event-stream"
