/**
 * The OpenAI-shaped `chat.completion.chunk` events both wire profiles stream, as Schemas.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * The change one chunk brings to a choice. `content` may be `null` (tool calls, refusals).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ChunkDelta = Schema.Struct({
  role: Schema.optional(Schema.String),
  content: Schema.optional(Schema.NullOr(Schema.String)),
  refusal: Schema.optional(Schema.NullOr(Schema.String)),
  tool_calls: Schema.optional(Schema.Array(Schema.Unknown))
})

/**
 * The decoded change one chunk brings to a choice.
 *
 * @since 0.1.0
 * @category Models
 */
export type ChunkDelta = typeof ChunkDelta.Type

/**
 * One choice inside a chunk.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ChunkChoice = Schema.Struct({
  index: Schema.Int,
  delta: Schema.optionalWith(ChunkDelta, { default: () => ({}) }),
  finish_reason: Schema.optional(Schema.NullOr(Schema.String))
})

/**
 * One decoded choice of a chunk.
 *
 * @since 0.1.0
 * @category Models
 */
export type ChunkChoice = typeof ChunkChoice.Type

/**
 * The usage numbers of the usage-only chunk (`stream_options.include_usage`).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const WireUsage = Schema.Struct({
  prompt_tokens: Schema.NonNegativeInt,
  completion_tokens: Schema.NonNegativeInt,
  total_tokens: Schema.NonNegativeInt
})

/**
 * The decoded usage numbers of the usage-only chunk, in the wire's snake_case.
 *
 * @since 0.1.0
 * @category Models
 */
export type WireUsage = typeof WireUsage.Type

/**
 * One `chat.completion.chunk`. The usage-only chunk has `choices: []`.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ChatChunk = Schema.Struct({
  id: Schema.optional(Schema.String),
  model: Schema.optional(Schema.String),
  created: Schema.optional(Schema.Number),
  choices: Schema.optionalWith(Schema.Array(ChunkChoice), { default: () => [] }),
  usage: Schema.optional(Schema.NullOr(WireUsage))
})

/**
 * One decoded `chat.completion.chunk`, what `GatewayTransport` streams.
 *
 * @since 0.1.0
 * @category Models
 */
export type ChatChunk = typeof ChatChunk.Type
