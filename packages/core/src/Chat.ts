/**
 * The chat vocabulary shared by every stage: messages, requests, usage and finish reasons.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { ModelId } from "./Models.js"
import * as StructuredOutput from "./StructuredOutput.js"
import * as Tool from "./Tool.js"

/**
 * The author of a message.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const Role = Schema.Literal("system", "user", "assistant", "tool")

/**
 * The author of a message: `system`, `user`, `assistant` or `tool`.
 *
 * @since 0.1.0
 * @category Models
 */
export type Role = typeof Role.Type

/**
 * A tool call as it sits in the history: the `id` the model gave it (a `tool` message answers
 * it with the same `toolCallId`), the tool's `name` and its `arguments` as JSON text (what
 * `Part.ToolCall.rawArguments` holds).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const MessageToolCall = Schema.Struct({
  id: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256)),
  name: Tool.ToolName,
  arguments: Schema.String
})

/**
 * A tool call of an assistant message (see the `MessageToolCall` Schema).
 *
 * @since 0.1.0
 * @category Models
 */
export type MessageToolCall = typeof MessageToolCall.Type

/**
 * One message of a conversation. `name` distinguishes participants of the same role
 * (it also costs one extra prompt token). An assistant message may carry `toolCalls` (its
 * `content` may then be `""`); a `tool` message carries a tool's result as `content` and the
 * `toolCallId` of the call it answers. `toolCalls` on another role, or `toolCallId` on a
 * message that is not a `tool` message, is an invalid request.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ChatMessage = Schema.Struct({
  role: Role,
  content: Schema.String,
  name: Schema.optional(Schema.String),
  toolCalls: Schema.optional(Schema.Array(MessageToolCall)),
  toolCallId: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256)))
}).pipe(Schema.filter((m) => {
  const issues: Array<Schema.FilterIssue> = []
  if (m.toolCalls !== undefined && m.role !== "assistant") {
    issues.push({ path: ["toolCalls"], message: "only an assistant message may carry tool calls" })
  }
  if (m.toolCallId !== undefined && m.role !== "tool") {
    issues.push({ path: ["toolCallId"], message: "only a tool message answers a tool call" })
  }
  return issues
}))

/**
 * One decoded message of a conversation.
 *
 * @since 0.1.0
 * @category Models
 */
export type ChatMessage = typeof ChatMessage.Type

const isTemplateVariables = (u: unknown): u is Readonly<Record<string, string>> | ReadonlyMap<string, string> => {
  try {
    if (u instanceof Map) {
      for (const [key, value] of u) if (typeof key !== "string" || typeof value !== "string") return false
      return true
    }
    if (typeof u !== "object" || u === null || Array.isArray(u)) return false
    return Object.keys(u).every((key) => typeof (u as Record<string, unknown>)[key] === "string")
  } catch {
    return false
  }
}

/**
 * The variables of a template: a plain object whose own properties are strings, or a `Map`
 * of strings. Decoding keeps the value as given rather than copying it, so a variable named
 * `__proto__` (an own property, as `JSON.parse` makes it) is not lost on the way.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const TemplateVariables = Schema.declare(isTemplateVariables, {
  identifier: "TemplateVariables",
  message: () => "must be an object or a Map whose values are strings"
})

/**
 * A prompt template and the variables to substitute into it (Python `string.Template`
 * semantics, see `PromptTemplate`). The rendered text becomes the newest user message.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const TemplatePrompt = Schema.Struct({
  template: Schema.String,
  variables: TemplateVariables
})

/**
 * A decoded prompt template with its variables.
 *
 * @since 0.1.0
 * @category Models
 */
export type TemplatePrompt = typeof TemplatePrompt.Type

/**
 * Size limits of a request, checked before any of its text is scanned or tokenized; a request
 * over a limit fails with `InvalidRequest`, whose issue names the limit. Set them with
 * `Gateway.layer({ limits })`.
 *
 * - `maxMessages`: messages in `messages`.
 * - `maxMessageChars`: characters (UTF-16 code units) of one text: a message's content or
 *   name, the system instruction, the template, one variable, the rendered template.
 * - `maxPromptChars`: characters of all of them together (the gateway's default system
 *   instruction and the rendered template included).
 * - `maxVariables`: variables of a template.
 *
 * @since 0.1.0
 * @category Models
 */
export interface InputLimits {
  readonly maxMessages: number
  readonly maxMessageChars: number
  readonly maxPromptChars: number
  readonly maxVariables: number
}

/**
 * The default limits: 10,000 messages, 1,048,576 characters per text, 2,097,152 characters in
 * all (about half a million tokens, more than most context windows hold; raise it for models
 * with a million-token window), 1,000 template variables. Counting 2 M characters takes about
 * half a second, spread over slices so other requests keep running.
 *
 * @since 0.1.0
 * @category Config
 */
export const defaultInputLimits: InputLimits = {
  maxMessages: 10_000,
  maxMessageChars: 1_048_576,
  maxPromptChars: 2_097_152,
  maxVariables: 1_000
}

/**
 * What an application asks the gateway for.
 *
 * - `model`: a model id (1 to 256 letters, digits and `. _ : / @ + = -`, see `Models.ModelId`).
 * - `messages`: the conversation so far, oldest first. System messages here are appended to
 *   the system instruction in force.
 * - `prompt`: an optional template rendered and appended as the newest user message.
 * - `systemInstruction`: replaces the gateway's default system instruction for this request.
 * - `maxTokens`: the most completion tokens to ask for; also what the budget reserves.
 * - `cache`: set to `false` to bypass the response cache for this request.
 * - `tools`: tools the model may call (`Tool.make` or plain `Tool.ToolDefinition`s, names
 *   unique); the `openai` profile only (the gateway profile's body has no tools).
 * - `toolChoice`: which of them it may call (`Tool.ToolChoice`).
 * - `responseFormat`: the reply must be one JSON value of this shape (structured output, see
 *   `StructuredOutput`); the decoded value arrives on `Finish.value`.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ChatRequest = Schema.Struct({
  model: ModelId,
  messages: Schema.optionalWith(Schema.Array(ChatMessage), { default: () => [] }),
  prompt: Schema.optional(TemplatePrompt),
  systemInstruction: Schema.optional(Schema.String),
  temperature: Schema.optional(Schema.Number.pipe(Schema.between(0, 2))),
  maxTokens: Schema.optional(Schema.Int.pipe(Schema.positive())),
  cache: Schema.optional(Schema.Boolean),
  tools: Schema.optional(Schema.Array(Tool.AnyTool)),
  toolChoice: Schema.optional(Tool.ToolChoice),
  responseFormat: Schema.optional(StructuredOutput.AnyResponseFormat)
}).pipe(Schema.filter((request) => Tool.requestIssues(request.tools, request.toolChoice)))

/**
 * The decoded request (defaults applied).
 *
 * @since 0.1.0
 * @category Models
 */
export type ChatRequest = typeof ChatRequest.Type

/**
 * The request as callers write it (`messages` may be omitted).
 *
 * @since 0.1.0
 * @category Models
 */
export type ChatRequestInput = typeof ChatRequest.Encoded

/**
 * Token usage of one exchange.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const Usage = Schema.Struct({
  promptTokens: Schema.NonNegativeInt,
  completionTokens: Schema.NonNegativeInt,
  totalTokens: Schema.NonNegativeInt
})

/**
 * Prompt, completion and total tokens of one exchange, as reported in `Finish`.
 *
 * @since 0.1.0
 * @category Models
 */
export type Usage = typeof Usage.Type

/**
 * Where the usage numbers came from: the gateway's own usage chunk, or our count with the
 * model's tokenizer when the gateway sent none.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const UsageSource = Schema.Literal("gateway", "tokenizer")

/**
 * Where a `Usage` came from: `gateway` (its usage chunk) or `tokenizer` (our own count).
 *
 * @since 0.1.0
 * @category Models
 */
export type UsageSource = typeof UsageSource.Type

/**
 * Why the model stopped. Values the OpenAI wire format does not define arrive as `"other"`.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const FinishReason = Schema.Literal("stop", "length", "content_filter", "tool_calls", "function_call", "other")

/**
 * Why the model stopped, as reported in `Finish`.
 *
 * @since 0.1.0
 * @category Models
 */
export type FinishReason = typeof FinishReason.Type

/**
 * Maps a wire `finish_reason` to a `FinishReason`.
 *
 * @since 0.1.0
 * @category Utils
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
 * @category Models
 */
export interface OutboundRequest {
  readonly model: string
  readonly system: string | undefined
  readonly messages: ReadonlyArray<ChatMessage>
  readonly temperature: number | undefined
  readonly maxTokens: number | undefined
  /** The tools the model may call, as declared (a `Tool.make` tool keeps its Schema). */
  readonly tools?: ReadonlyArray<Tool.AnyTool> | undefined
  readonly toolChoice?: Tool.ToolChoice | undefined
  /** The reply's shape (structured output), as plain data: the JSON Schema, no Effect Schema. */
  readonly responseFormat?: StructuredOutput.ResponseFormat | undefined
}

/**
 * What one exchange cost, in US dollars.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const Cost = Schema.Struct({
  promptUsd: Schema.Number,
  completionUsd: Schema.Number,
  totalUsd: Schema.Number
})

/**
 * The prompt, completion and total cost of one exchange in US dollars, as reported in `Finish`.
 *
 * @since 0.1.0
 * @category Models
 */
export type Cost = typeof Cost.Type

/**
 * How many matches of one kind of PII were redacted (never the matches themselves).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const RedactionCount = Schema.Struct({
  kind: Schema.String,
  count: Schema.Int
})

/**
 * How many matches of one PII kind were redacted, as carried by a `RedactionNotice`.
 *
 * @since 0.1.0
 * @category Models
 */
export type RedactionCount = typeof RedactionCount.Type
