/**
 * Telemetry: OpenTelemetry GenAI traces and metrics of every request, following the GenAI
 * semantic conventions v1.41.0 (status Development). With this module's `Telemetry` service
 * in the gateway's context, each request is one `chat {model}` span (kind client) with the
 * `gen_ai.*` attributes and ours under `llm_gateway.*`, with child spans for prepare (input
 * guard, context fitting), the token request, each handshake attempt and the streamed body; and
 * the metrics below are recorded through Effect's `Metric`. Without the service nothing is
 * observed: no span, no metric, no work per token.
 *
 * Spans go to the `Tracer` in the fiber's context and metrics to Effect's metric registry, so
 * any exporter sees them: `TelemetryOtlp.layer` (OTLP/HTTP JSON, `@llm-gateway/core/TelemetryOtlp`)
 * or `@effect/opentelemetry`'s `NodeSdk`.
 *
 * No prompt or reply text is recorded unless `captureContent` is set, and then only the
 * redacted text the gateway sent and received, as a `gen_ai.client.inference.operation.details`
 * span event.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as Option from "effect/Option"

/**
 * What the telemetry records.
 *
 * - `captureContent`: record the redacted prompt, system instruction and reply as a span
 *   event (default `false`: no content at all).
 * - `maxContentChars`: the most characters of content one event carries (default 16384).
 * - `provider`: the `gen_ai.provider.name`; by default the transport's profile decides
 *   (`openai` for the OpenAI-compatible profile, `genesys_cloud` for the gateway profile), and
 *   `llm_gateway` when no request went upstream (a cache hit).
 *
 * @since 0.1.0
 * @category Config
 */
export interface Options {
  readonly captureContent?: boolean | undefined
  readonly maxContentChars?: number | undefined
  readonly provider?: string | undefined
}

/**
 * The resolved settings of the `Telemetry` service.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Settings {
  readonly captureContent: boolean
  readonly maxContentChars: number
  readonly provider: string | undefined
}

/**
 * The telemetry switch: present in the gateway's context, requests are traced and measured.
 *
 * @since 0.1.0
 * @category Services
 */
export class Telemetry extends Context.Tag("@llm-gateway/core/Telemetry")<Telemetry, Settings>() {}

/**
 * Resolves `Options` into `Settings` (defaults applied, `maxContentChars` at least 1).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const settings = (options: Options = {}): Settings => ({
  captureContent: options.captureContent === true,
  maxContentChars: Math.max(1, Math.floor(options.maxContentChars ?? 16_384)),
  provider: options.provider
})

/**
 * Turns the instrumentation on, for the `Tracer` and metric exporter you install yourself
 * (e.g. `@effect/opentelemetry`'s `NodeSdk`). Provide it to `Gateway.layer`.
 *
 * @example
 * import { Telemetry } from "@llm-gateway/core"
 *
 * const TelemetryLive = Telemetry.layer({ captureContent: false })
 *
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: Options = {}): Layer.Layer<Telemetry> => Layer.succeed(Telemetry, settings(options))

// ---------------------------------------------------------------------------------------------
// Attribute names
// ---------------------------------------------------------------------------------------------

/**
 * The attribute names this module writes: the GenAI semantic conventions' own, and ours under
 * the `llm_gateway.` prefix. The `redactions` names are prefixes followed by the PII kind
 * (`llm_gateway.redactions.input.email`).
 *
 * @since 0.1.0
 * @category Attributes
 */
export const attributes = {
  operationName: "gen_ai.operation.name",
  providerName: "gen_ai.provider.name",
  requestModel: "gen_ai.request.model",
  requestTemperature: "gen_ai.request.temperature",
  requestMaxTokens: "gen_ai.request.max_tokens",
  responseId: "gen_ai.response.id",
  responseModel: "gen_ai.response.model",
  responseFinishReasons: "gen_ai.response.finish_reasons",
  usageInputTokens: "gen_ai.usage.input_tokens",
  usageOutputTokens: "gen_ai.usage.output_tokens",
  tokenType: "gen_ai.token.type",
  serverAddress: "server.address",
  serverPort: "server.port",
  errorType: "error.type",
  httpStatus: "http.response.status_code",
  requestId: "llm_gateway.request_id",
  outcome: "llm_gateway.outcome",
  cacheHit: "llm_gateway.cache.hit",
  cacheJoined: "llm_gateway.cache.joined",
  cacheResult: "llm_gateway.cache.result",
  costUsd: "llm_gateway.cost.usd",
  budgetRemainingUsd: "llm_gateway.budget.remaining_usd",
  inputRedactions: "llm_gateway.redactions.input.",
  outputRedactions: "llm_gateway.redactions.output.",
  redactionDirection: "llm_gateway.redaction.direction",
  redactionKind: "llm_gateway.redaction.kind",
  droppedMessages: "llm_gateway.context.dropped_messages",
  retries: "llm_gateway.retries",
  retryReason: "llm_gateway.retry.reason",
  timeToFirstTokenMs: "llm_gateway.time_to_first_token_ms",
  usageSource: "llm_gateway.usage.source",
  attempt: "llm_gateway.attempt",
  waitBeforeMs: "llm_gateway.wait_before_ms"
} as const

/**
 * The span event that carries captured content (only with `captureContent`), with the
 * attributes `gen_ai.system_instructions`, `gen_ai.input.messages` and `gen_ai.output.messages`
 * as JSON text in the conventions' message format.
 *
 * @since 0.1.0
 * @category Attributes
 */
export const contentEvent = "gen_ai.client.inference.operation.details"

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

const durationBoundaries = MetricBoundaries.fromIterable([
  0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92
])

/**
 * `gen_ai.client.token.usage` (histogram, `{token}`), by `gen_ai.token.type` (`input` or
 * `output`), with the conventions' bucket boundaries.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const tokenUsage: Metric.Metric.Histogram<number> = Metric.histogram(
  "gen_ai.client.token.usage",
  MetricBoundaries.fromIterable([
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864
  ]),
  "Number of input and output tokens used"
).pipe(Metric.tagged("unit", "{token}"))

/**
 * `gen_ai.client.operation.duration` (histogram, seconds): the whole request, retries included.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const operationDuration: Metric.Metric.Histogram<number> = Metric.histogram(
  "gen_ai.client.operation.duration",
  durationBoundaries,
  "GenAI operation duration"
).pipe(Metric.tagged("unit", "s"))

/**
 * `gen_ai.client.operation.time_to_first_chunk` (histogram, seconds): from the start of the
 * request to its first text.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const timeToFirstChunk: Metric.Metric.Histogram<number> = Metric.histogram(
  "gen_ai.client.operation.time_to_first_chunk",
  MetricBoundaries.fromIterable([
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10
  ]),
  "Time to receive the first chunk of the reply"
).pipe(Metric.tagged("unit", "s"))

/**
 * `llm_gateway.requests` (counter) by `llm_gateway.outcome` (`success`, `failure`,
 * `interrupted`) and, on failure, `error.type`.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const requests: Metric.Metric.Counter<number> = Metric.counter("llm_gateway.requests", {
  description: "Requests by outcome",
  incremental: true
})

/**
 * `llm_gateway.cost` (counter, USD) by `gen_ai.request.model`: what the requests cost.
 *
 * @since 0.1.0
 * @category Metrics
 */
export const cost: Metric.Metric.Counter<number> = Metric.counter("llm_gateway.cost", {
  description: "Cost of the requests in US dollars",
  incremental: true
}).pipe(Metric.tagged("unit", "USD"))

/**
 * `llm_gateway.cache.requests` (counter) by `llm_gateway.cache.result`: `hit` (replayed from
 * the cache), `joined` (shared an identical request in flight), `miss` (went upstream) or
 * `bypass` (the request asked for no cache).
 *
 * @since 0.1.0
 * @category Metrics
 */
export const cacheRequests: Metric.Metric.Counter<number> = Metric.counter("llm_gateway.cache.requests", {
  description: "Cache lookups by result",
  incremental: true
})

/**
 * `llm_gateway.redactions` (counter) by `llm_gateway.redaction.direction` (`input`, `output`)
 * and `llm_gateway.redaction.kind` (the PII kind).
 *
 * @since 0.1.0
 * @category Metrics
 */
export const redactions: Metric.Metric.Counter<number> = Metric.counter("llm_gateway.redactions", {
  description: "PII redactions by direction and kind",
  incremental: true
})

/**
 * `llm_gateway.retries` (counter) by `llm_gateway.retry.reason`: the HTTP status of the attempt
 * that was retried, or its error type when it had none (`RequestTimeout`, `ConnectionError`).
 *
 * @since 0.1.0
 * @category Metrics
 */
export const retries: Metric.Metric.Counter<number> = Metric.counter("llm_gateway.retries", {
  description: "Handshake retries by reason",
  incremental: true
})

/**
 * `llm_gateway.budget.remaining` (gauge, USD): what the `CostMeter`'s budget has left after the
 * latest request (only when a budget is set).
 *
 * @since 0.1.0
 * @category Metrics
 */
export const budgetRemaining: Metric.Metric.Gauge<number> = Metric.gauge("llm_gateway.budget.remaining", {
  description: "Budget left in US dollars"
}).pipe(Metric.tagged("unit", "USD"))

// ---------------------------------------------------------------------------------------------
// Standard OpenTelemetry environment variables
// ---------------------------------------------------------------------------------------------

/**
 * Where to export, from the standard OpenTelemetry variables (see `config`).
 *
 * - `endpoint`: the OTLP/HTTP base URL; `/v1/traces` and `/v1/metrics` are appended.
 * - `serviceName`, `resourceAttributes`: the resource of every span and metric.
 * - `headers`: sent with every export (e.g. a collector's API key).
 *
 * @since 0.1.0
 * @category Config
 */
export interface Export {
  readonly endpoint: string
  readonly serviceName: string
  readonly resourceAttributes: Readonly<Record<string, string>>
  readonly headers: Readonly<Record<string, string>>
}

/**
 * Parses a `key=value,key=value` list (W3C baggage style, as `OTEL_RESOURCE_ATTRIBUTES` and
 * `OTEL_EXPORTER_OTLP_HEADERS` use): keys and values percent-decoded and trimmed, empty
 * members skipped. A member without `=`, an empty key or a bad percent escape is an error
 * message.
 *
 * @since 0.1.0
 * @category Config
 */
export const parseKeyValues = (text: string): Either.Either<Record<string, string>, string> => {
  const out: Record<string, string> = {}
  for (const member of text.split(",")) {
    if (member.trim() === "") continue
    const eq = member.indexOf("=")
    if (eq <= 0) return Either.left(`expected key=value pairs separated by commas, got "${member.trim().slice(0, 40)}"`)
    try {
      const key = decodeURIComponent(member.slice(0, eq).trim())
      if (key === "") return Either.left("a key is empty")
      out[key] = decodeURIComponent(member.slice(eq + 1).trim())
    } catch {
      return Either.left("a value has an invalid percent escape")
    }
  }
  return Either.right(out)
}

const keyValues = (name: string) =>
  Config.string(name).pipe(
    Config.mapOrFail((text) =>
      Either.mapLeft(parseKeyValues(text), (message) => ConfigError.InvalidData([], message))
    ),
    Config.withDefault({} as Record<string, string>)
  )

/**
 * The export settings from the standard variables: `OTEL_EXPORTER_OTLP_ENDPOINT` (unset: `None`,
 * nothing is exported), `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/json`, the default here; any
 * other value is a `ConfigError` saying which are supported), `OTEL_SERVICE_NAME` (else the
 * `service.name` of the resource attributes, else `llm-gateway`), `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS`
 * (`key=value,…`). `OTEL_SDK_DISABLED=true` turns export off.
 *
 * @since 0.1.0
 * @category Config
 */
export const config: Config.Config<Option.Option<Export>> = Config.all({
  disabled: Config.boolean("OTEL_SDK_DISABLED").pipe(Config.withDefault(false)),
  endpoint: Config.option(Config.nonEmptyString("OTEL_EXPORTER_OTLP_ENDPOINT")),
  protocol: Config.string("OTEL_EXPORTER_OTLP_PROTOCOL").pipe(
    Config.validate({
      message: "Only http/json is supported (OTLP over HTTP with JSON bodies); " +
        "set OTEL_EXPORTER_OTLP_PROTOCOL=http/json or unset it",
      validation: (protocol) => protocol.trim() === "http/json"
    }),
    Config.withDefault("http/json")
  ),
  serviceName: Config.option(Config.nonEmptyString("OTEL_SERVICE_NAME")),
  resourceAttributes: keyValues("OTEL_RESOURCE_ATTRIBUTES"),
  headers: keyValues("OTEL_EXPORTER_OTLP_HEADERS")
}).pipe(
  Config.mapOrFail(({ disabled, endpoint, headers, resourceAttributes, serviceName }) => {
    if (disabled || Option.isNone(endpoint)) return Either.right(Option.none())
    let url: URL
    try {
      url = new URL(endpoint.value.trim())
    } catch {
      return Either.left(
        ConfigError.InvalidData(["OTEL_EXPORTER_OTLP_ENDPOINT"], "Expected an absolute URL such as http://localhost:4318")
      )
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      return Either.left(ConfigError.InvalidData(["OTEL_EXPORTER_OTLP_ENDPOINT"], "Expected an http or https URL"))
    }
    return Either.right(Option.some<Export>({
      endpoint: url.href.replace(/\/+$/, ""),
      // As the SDKs do: OTEL_SERVICE_NAME wins over a service.name in the resource attributes.
      serviceName: Option.getOrElse(serviceName, () => resourceAttributes["service.name"] ?? "llm-gateway"),
      resourceAttributes,
      headers
    }))
  })
)
