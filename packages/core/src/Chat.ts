/**
 * The chat vocabulary shared by every stage: messages, requests, usage and finish reasons.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * The author of a message.
 *
 * @since 0.1.0
 */
export const Role = Schema.Literal("system", "user", "assistant", "tool")

/**
 * @since 0.1.0
 */
export type Role = typeof Role.Type

/**
 * One message of a conversation. `name` distinguishes participants of the same role
 * (it also costs one extra prompt token).
 *
 * @since 0.1.0
 */
export const ChatMessage = Schema.Struct({
  role: Role,
  content: Schema.String,
  name: Schema.optional(Schema.String)
})

/**
 * @since 0.1.0
 */
export type ChatMessage = typeof ChatMessage.Type

/**
 * A prompt template and the variables to substitute into it (Python `string.Template`
 * semantics, see `PromptTemplate`). The rendered text becomes the newest user message.
 *
 * @since 0.1.0
 */
export const TemplatePrompt = Schema.Struct({
  template: Schema.String,
  variables: Schema.Record({ key: Schema.String, value: Schema.String })
})

/**
 * @since 0.1.0
 */
export type TemplatePrompt = typeof TemplatePrompt.Type

/**
 * What an application asks the gateway for.
 *
 * - `messages`: the conversation so far, oldest first. System messages here are appended to
 *   the system instruction in force.
 * - `prompt`: an optional template rendered and appended as the newest user message.
 * - `systemInstruction`: replaces the gateway's default system instruction for this request.
 * - `maxTokens`: the most completion tokens to ask for; also what the budget reserves.
 * - `cache`: set to `false` to bypass the response cache for this request.
 *
 * @since 0.1.0
 */
export const ChatRequest = Schema.Struct({
  model: Schema.String.pipe(Schema.nonEmptyString()),
  messages: Schema.optionalWith(Schema.Array(ChatMessage), { default: () => [] }),
  prompt: Schema.optional(TemplatePrompt),
  systemInstruction: Schema.optional(Schema.String),
  temperature: Schema.optional(Schema.Number.pipe(Schema.between(0, 2))),
  maxTokens: Schema.optional(Schema.Int.pipe(Schema.positive())),
  cache: Schema.optional(Schema.Boolean)
})

/**
 * The decoded request (defaults applied).
 *
 * @since 0.1.0
 */
export type ChatRequest = typeof ChatRequest.Type

/**
 * The request as callers write it (`messages` may be omitted).
 *
 * @since 0.1.0
 */
export type ChatRequestInput = typeof ChatRequest.Encoded

/**
 * Token usage of one exchange.
 *
 * @since 0.1.0
 */
export const Usage = Schema.Struct({
  promptTokens: Schema.NonNegativeInt,
  completionTokens: Schema.NonNegativeInt,
  totalTokens: Schema.NonNegativeInt
})

/**
 * @since 0.1.0
 */
export type Usage = typeof Usage.Type

/**
 * Where the usage numbers came from: the gateway's own usage chunk, or our count with the
 * model's tokenizer when the gateway sent none.
 *
 * @since 0.1.0
 */
export const UsageSource = Schema.Literal("gateway", "tokenizer")

/**
 * @since 0.1.0
 */
export type UsageSource = typeof UsageSource.Type

/**
 * Why the model stopped. Values the OpenAI wire format does not define arrive as `"other"`.
 *
 * @since 0.1.0
 */
export const FinishReason = Schema.Literal("stop", "length", "content_filter", "tool_calls", "function_call", "other")

/**
 * @since 0.1.0
 */
export type FinishReason = typeof FinishReason.Type

/**
 * Maps a wire `finish_reason` to a `FinishReason`.
 *
 * @since 0.1.0
 */
export const finishReasonFromWire = (reason: string): FinishReason => {
  switch (reason) {
    case "stop":
    case "length":
    case "content_filter":
    case "tool_calls":
    case "function_call":
      return reason
    default:
      return "other"
  }
}

/**
 * The request as it leaves the pipeline for the transport: PII already redacted, the context
 * already fitted, the system instruction kept apart so each wire profile can place it.
 *
 * @since 0.1.0
 */
export interface OutboundRequest {
  readonly model: string
  readonly system: string | undefined
  readonly messages: ReadonlyArray<ChatMessage>
  readonly temperature: number | undefined
  readonly maxTokens: number | undefined
}

/**
 * What one exchange cost, in US dollars.
 *
 * @since 0.1.0
 */
export const Cost = Schema.Struct({
  promptUsd: Schema.Number,
  completionUsd: Schema.Number,
  totalUsd: Schema.Number
})

/**
 * @since 0.1.0
 */
export type Cost = typeof Cost.Type

/**
 * How many matches of one kind of PII were redacted (never the matches themselves).
 *
 * @since 0.1.0
 */
export const RedactionCount = Schema.Struct({
  kind: Schema.String,
  count: Schema.Int
})

/**
 * @since 0.1.0
 */
export type RedactionCount = typeof RedactionCount.Type
