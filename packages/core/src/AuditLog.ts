/**
 * AuditLog: one entry per request, whatever its outcome, with no secret and no raw PII,
 * chained by SHA-256 so that any edit, removal or reordering is detected.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { Cost, FinishReason, RedactionCount, Usage, UsageSource } from "./Chat.js"

/**
 * What the pipeline records about one request.
 *
 * @since 0.1.0
 */
export const AuditEntry = Schema.Struct({
  requestId: Schema.String,
  timestamp: Schema.String,
  requestHash: Schema.String,
  model: Schema.String,
  outcome: Schema.Literal("success", "failure", "interrupted"),
  errorTag: Schema.optional(Schema.String),
  finishReason: Schema.optional(FinishReason),
  cached: Schema.Boolean,
  usage: Schema.optional(Usage),
  usageSource: Schema.optional(UsageSource),
  cost: Schema.optional(Cost),
  inputRedactions: Schema.Array(RedactionCount),
  outputRedactions: Schema.Array(RedactionCount),
  droppedMessages: Schema.Int,
  durationMs: Schema.Number
})

/**
 * @since 0.1.0
 */
export type AuditEntry = typeof AuditEntry.Type

/**
 * @since 0.1.0
 */
export interface Service {
  readonly append: (entry: AuditEntry) => Effect.Effect<void>
}

/**
 * The AuditLog service.
 *
 * @since 0.1.0
 */
export class AuditLog extends Context.Tag("@llm-gateway/core/AuditLog")<AuditLog, Service>() {}
