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
  model: Schema.optional(Schema.String)
}) {}

/**
 * Any part of the reply stream.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const Part = Schema.Union(TextDelta, RedactionNotice, ContextTrimmed, Finish)

/**
 * One part of the reply stream: `TextDelta`, `RedactionNotice`, `ContextTrimmed` or the final
 * `Finish`; match on `_tag`.
 *
 * @since 0.1.0
 * @category Models
 */
export type Part = typeof Part.Type
