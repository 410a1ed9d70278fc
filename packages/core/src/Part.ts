/**
 * The parts of the public reply stream: text as it arrives, notices about what the pipeline
 * did, and one final `Finish`.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { Cost, FinishReason, RedactionCount, Usage, UsageSource } from "./Chat.js"

/**
 * A piece of the reply text, already redacted.
 *
 * @since 0.1.0
 * @category Models
 */
export class TextDelta extends Schema.TaggedClass<TextDelta>("@llm-gateway/core/TextDelta")("TextDelta", {
  text: Schema.String
}) {}

/**
 * PII was redacted from the prompt before it left the process (`input`), or from the reply
 * before it reached the caller (`output`). Counts only, never the matches.
 *
 * @since 0.1.0
 * @category Models
 */
export class RedactionNotice extends Schema.TaggedClass<RedactionNotice>("@llm-gateway/core/RedactionNotice")(
  "RedactionNotice",
  {
    direction: Schema.Literal("input", "output"),
    redactions: Schema.Array(RedactionCount)
  }
) {}

/**
 * Old messages were dropped so the conversation fits the model's context window.
 *
 * @since 0.1.0
 * @category Models
 */
export class ContextTrimmed extends Schema.TaggedClass<ContextTrimmed>("@llm-gateway/core/ContextTrimmed")(
  "ContextTrimmed",
  {
    droppedMessages: Schema.Int,
    promptTokens: Schema.Int,
    limit: Schema.Int
  }
) {}

/**
 * A fragment of a tool call as it streams: `index` tells parallel calls apart, `id` and `name`
 * come with the first fragment of a call only, `argumentsDelta` is the next piece of its
 * arguments' JSON text, redacted like the reply text. The whole call follows as `ToolCall` (or
 * `ToolCallError`) once the model finished.
 *
 * @since 0.1.0
 * @category Models
 */
export class ToolCallDelta extends Schema.TaggedClass<ToolCallDelta>("@llm-gateway/core/ToolCallDelta")(
  "ToolCallDelta",
  {
    index: Schema.Int,
    id: Schema.optional(Schema.String),
    name: Schema.optional(Schema.String),
    argumentsDelta: Schema.String
  }
) {}

/**
 * A complete tool call: its `id` (a `tool` message answers it with this `toolCallId`), the
 * tool's `name`, the `arguments` parsed from JSON (and decoded with the tool's Schema when it
 * was declared with `Tool.make`), and `rawArguments`, the redacted JSON text as the model sent
 * it (what an assistant message of the history carries).
 *
 * @since 0.1.0
 * @category Models
 */
export class ToolCall extends Schema.TaggedClass<ToolCall>("@llm-gateway/core/ToolCall")("ToolCall", {
  index: Schema.Int,
  id: Schema.String,
  name: Schema.String,
  arguments: Schema.Unknown,
  rawArguments: Schema.String
}) {}

/**
 * Why a tool call could not be used.
 *
 * - `malformed`: the arguments are not a JSON object (after redaction).
 * - `invalid`: they do not match the tool's Schema (`issues` name the fields).
 * - `unknownTool`: the request declared no tool of that name.
 * - `invalidName`: the name is not a valid tool name.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ToolCallErrorReason = Schema.Literal("malformed", "invalid", "unknownTool", "invalidName")

/**
 * A tool call whose arguments could not be used: the reply goes on, this part takes the place
 * of its `ToolCall`. `issues` name paths and what is wrong, never a value; the arguments are
 * not kept.
 *
 * @since 0.1.0
 * @category Models
 */
export class ToolCallError extends Schema.TaggedClass<ToolCallError>("@llm-gateway/core/ToolCallError")(
  "ToolCallError",
  {
    index: Schema.Int,
    id: Schema.String,
    name: Schema.String,
    reason: ToolCallErrorReason,
    issues: Schema.Array(Schema.String)
  }
) {
  /** What went wrong, without the arguments. */
  get message(): string {
    const what = this.reason === "malformed"
      ? "its arguments are not a JSON object"
      : this.reason === "invalid"
      ? "its arguments do not match the tool's Schema"
      : this.reason === "unknownTool"
      ? "the request declared no tool of that name"
      : "the tool name is not valid"
    return `The tool call ${this.id} could not be used: ${what}${this.issues.length > 0 ? ` (${this.issues.join("; ")})` : ""}.`
  }
}

/**
 * An extra choice (`n > 1`): index 0 is streamed as `TextDelta`s, the others arrive whole at
 * the end, redacted like the main reply.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const Alternative = Schema.Struct({
  index: Schema.Int,
  text: Schema.String,
  finishReason: Schema.optional(FinishReason)
})

/**
 * One extra choice of a reply (`n > 1`), as carried by `Finish`.
 *
 * @since 0.1.0
 * @category Models
 */
export type Alternative = typeof Alternative.Type

/**
 * The last part of every successful stream.
 *
 * @since 0.1.0
 * @category Models
 */
export class Finish extends Schema.TaggedClass<Finish>("@llm-gateway/core/Finish")("Finish", {
  reason: FinishReason,
  usage: Usage,
  usageSource: UsageSource,
  cost: Cost,
  cached: Schema.Boolean,
  requestHash: Schema.String,
  alternatives: Schema.Array(Alternative),
  /** The model's refusal text, redacted, when it declined instead of answering. */
  refusal: Schema.optional(Schema.String),
  /** The model that answered, when a stage (such as `Stage.modelFallback`) may have changed it. */
  model: Schema.optional(Schema.String),
  /**
   * The decoded reply of a request with a `responseFormat` (structured output): the redacted
   * JSON decoded with the format's Schema, or parsed when the format is a plain JSON Schema.
   */
  value: Schema.optional(Schema.Unknown)
}) {}

/**
 * Any part of the reply stream.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const Part = Schema.Union(
  TextDelta,
  RedactionNotice,
  ContextTrimmed,
  ToolCallDelta,
  ToolCall,
  ToolCallError,
  Finish
)

/**
 * One part of the reply stream: `TextDelta`, `RedactionNotice`, `ContextTrimmed`, the tool call
 * parts (`ToolCallDelta`, `ToolCall`, `ToolCallError`) or the final `Finish`; match on `_tag`.
 *
 * @since 0.1.0
 * @category Models
 */
export type Part = typeof Part.Type
