/**
 * SafetyFilter: blocks unsafe prompts and redacts PII, from the prompt before it leaves and
 * from the reply as it streams.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { ChatMessage, RedactionCount } from "./Chat.js"
import type { SafetyViolation } from "./GatewayError.js"

/**
 * The prompt after the input guard.
 *
 * @since 0.1.0
 */
export interface GuardedInput {
  readonly system: string | undefined
  readonly messages: ReadonlyArray<ChatMessage>
  readonly redactions: ReadonlyArray<RedactionCount>
}

/**
 * Streaming redaction state for one reply. `push` returns the text that is safe to emit now,
 * holding back only what could still become part of a match; `end` flushes the rest. For any
 * split of a text into pushes, the concatenated output equals `redact(text)`.
 *
 * @since 0.1.0
 */
export interface OutputRedactor {
  readonly push: (text: string) => string
  readonly end: () => string
  readonly redactions: () => ReadonlyArray<RedactionCount>
}

/**
 * @since 0.1.0
 */
export interface Service {
  /** Redacts PII from the system instruction and messages, or fails if a block rule matches. */
  readonly guardInput: (input: {
    readonly system: string | undefined
    readonly messages: ReadonlyArray<ChatMessage>
  }) => Effect.Effect<GuardedInput, SafetyViolation>
  /** Redacts a whole text at once. */
  readonly redact: (text: string) => { readonly text: string; readonly redactions: ReadonlyArray<RedactionCount> }
  /** Fresh streaming redaction state for one reply. */
  readonly outputRedactor: Effect.Effect<OutputRedactor>
}

/**
 * The SafetyFilter service.
 *
 * @since 0.1.0
 */
export class SafetyFilter extends Context.Tag("@llm-gateway/core/SafetyFilter")<SafetyFilter, Service>() {}
