/**
 * The `@llm-gateway/core` package: an Effect-native client for an LLM gateway. Each module is
 * re-exported here as a namespace (`import { Gateway } from "@llm-gateway/core"`) and is also
 * importable on its own (`@llm-gateway/core/Gateway`).
 *
 * @since 0.1.0
 */

/**
 * One audit entry per request, whatever its outcome, with no secret and no raw PII, in a SHA-256
 * (optionally HMAC) hash chain that detects any edit.
 *
 * @since 0.1.0
 */
export * as AuditLog from "./AuditLog.js"

/**
 * Where the bearer token comes from: Genesys Cloud OAuth client credentials (fetched, cached,
 * refreshed) or a static token / API key.
 *
 * @since 0.1.0
 */
export * as Auth from "./Auth.js"

/**
 * The chat vocabulary shared by every stage: messages, requests, usage, costs and finish reasons.
 *
 * @since 0.1.0
 */
export * as Chat from "./Chat.js"

/**
 * The OpenAI-shaped `chat.completion.chunk` events both wire profiles stream, as Schemas.
 *
 * @since 0.1.0
 */
export * as ChatChunk from "./ChatChunk.js"

/**
 * Token counting with the model's own tokenizer, and fitting a conversation into the model's
 * context window.
 *
 * @since 0.1.0
 */
export * as ContextWindow from "./ContextWindow.js"

/**
 * A conversation: a history with an id, answered through the gateway, that records only clean
 * turns (as sent, redacted), counts incrementally and reports what its window leaves out.
 *
 * @since 0.1.0
 */
export * as Conversation from "./Conversation.js"

/**
 * Where conversations are kept between runs: in memory or in one JSON file replaced atomically,
 * behind a small interface other stores can implement.
 *
 * @since 0.1.0
 */
export * as ConversationStore from "./ConversationStore.js"

/**
 * Prices token usage per model, reserves the worst case against budgets before a request leaves
 * and settles the real cost afterwards.
 *
 * @since 0.1.0
 */
export * as CostMeter from "./CostMeter.js"

/**
 * Genesys Cloud environments (region hosts) and the login and API base URLs that follow from them.
 *
 * @since 0.1.0
 */
export * as Environment from "./Environment.js"

/**
 * The one entry point: a request through template, safety, context, cache, budget and transport,
 * back as one typed `Stream` of parts.
 *
 * @since 0.1.0
 */
export * as Gateway from "./Gateway.js"

/**
 * Every failure a caller can see, as one union of tagged errors whose messages say what to do.
 *
 * @since 0.1.0
 */
export * as GatewayError from "./GatewayError.js"

/**
 * What the gateway knows about each model (context window, largest reply, tokenizer encoding), and
 * how model ids resolve.
 *
 * @since 0.1.0
 */
export * as Models from "./Models.js"

/**
 * The parts of the reply stream: text deltas, redaction and trimming notices, and the final
 * `Finish`.
 *
 * @since 0.1.0
 */
export * as Part from "./Part.js"

/**
 * `$`-placeholder templates with the semantics of Python's `string.Template`.
 *
 * @since 0.1.0
 */
export * as PromptTemplate from "./PromptTemplate.js"

/**
 * Replies to repeated requests keyed by the SHA-256 of the request as sent: in memory, on the file
 * system or in any `@effect/experimental` persistence.
 *
 * @since 0.1.0
 */
export * as ResponseCache from "./ResponseCache.js"

/**
 * Retry as data: a `Schedule` with exponential backoff, jitter, bounded attempts, a deadline and
 * `Retry-After`.
 *
 * @since 0.1.0
 */
export * as RetryPolicy from "./RetryPolicy.js"

/**
 * Blocks unsafe prompts and redacts PII from the prompt before it leaves and from the reply as it
 * streams.
 *
 * @since 0.1.0
 */
export * as SafetyFilter from "./SafetyFilter.js"

/**
 * Server-Sent Events as the WHATWG standard parses them: a bounded decoder for response bodies and
 * an encoder for servers.
 *
 * @since 0.1.0
 */
export * as Sse from "./Sse.js"

/**
 * The stages a gateway is composed of (prepared request in, parts out): the upstream call with
 * budget and streaming redaction, the rate limit, the response cache, a model fallback, and your
 * own, put together with `Gateway.layerWith`.
 *
 * @since 0.1.0
 */
export * as Stage from "./Stage.js"

/**
 * Structured output: a reply that is one JSON value of a given shape, declared with an Effect
 * `Schema` (the reply is decoded with it) or a plain JSON Schema.
 *
 * @since 0.1.0
 */
export * as StructuredOutput from "./StructuredOutput.js"

/**
 * OpenTelemetry GenAI traces and metrics of every request (spans through Effect's `Tracer`,
 * metrics through `Metric`); `@llm-gateway/core/TelemetryOtlp` exports them over OTLP/HTTP.
 *
 * @since 0.1.0
 */
export * as Telemetry from "./Telemetry.js"

/**
 * Tools a model may call: declared from an Effect `Schema` (arguments decoded with it) or as
 * plain JSON Schema definitions, and which of them the model may call.
 *
 * @since 0.1.0
 */
export * as Tool from "./Tool.js"

/**
 * Sends an outbound request over the `gateway` or `openai` wire profile and streams back decoded
 * chunks, with retries and timeouts.
 *
 * @since 0.1.0
 */
export * as Transport from "./Transport.js"
