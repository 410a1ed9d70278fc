/**
 * ResponseCache: replies to repeated requests, keyed by the SHA-256 of the request as sent.
 * Only clean finishes are stored, and only redacted text.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { FinishReason, Usage, UsageSource } from "./Chat.js"
import { Alternative } from "./Part.js"

/**
 * A stored reply.
 *
 * @since 0.1.0
 */
export const CachedReply = Schema.Struct({
  text: Schema.String,
  finishReason: FinishReason,
  usage: Usage,
  usageSource: UsageSource,
  alternatives: Schema.Array(Alternative),
  storedAt: Schema.Number
})

/**
 * @since 0.1.0
 */
export type CachedReply = typeof CachedReply.Type

/**
 * @since 0.1.0
 */
export interface Service {
  /** The stored reply for `key`, if present and not expired. Storage faults read as a miss. */
  readonly get: (key: string) => Effect.Effect<Option.Option<CachedReply>>
  /** Stores a reply. Storage faults are logged, never fail the request. */
  readonly set: (key: string, reply: CachedReply) => Effect.Effect<void>
}

/**
 * The ResponseCache service.
 *
 * @since 0.1.0
 */
export class ResponseCache extends Context.Tag("@llm-gateway/core/ResponseCache")<ResponseCache, Service>() {}
