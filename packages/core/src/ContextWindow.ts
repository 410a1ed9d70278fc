/**
 * ContextWindow: counts tokens with the model's own tokenizer (js-tiktoken) and fits the
 * conversation into the model's context window.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { ChatMessage } from "./Chat.js"
import type { ContextWindowExceeded } from "./GatewayError.js"

/**
 * The conversation after fitting.
 *
 * @since 0.1.0
 */
export interface Fitted {
  readonly messages: ReadonlyArray<ChatMessage>
  /** Prompt tokens of the system instruction plus `messages`, chat overhead included. */
  readonly promptTokens: number
  readonly droppedMessages: number
  /** The context window minus the room reserved for the reply. */
  readonly limit: number
}

/**
 * @since 0.1.0
 */
export interface Service {
  /**
   * Drops the oldest messages until the prompt fits, never the system instruction and never
   * the newest user message; fails with `ContextWindowExceeded` when even those do not fit.
   */
  readonly fit: (input: {
    readonly model: string
    readonly system: string | undefined
    readonly messages: ReadonlyArray<ChatMessage>
    readonly reserveForReply: number | undefined
  }) => Effect.Effect<Fitted, ContextWindowExceeded>
  /** Prompt tokens of a chat (OpenAI cookbook accounting). */
  readonly countPrompt: (
    model: string,
    system: string | undefined,
    messages: ReadonlyArray<ChatMessage>
  ) => Effect.Effect<number>
  /** Tokens of a plain text, e.g. a completion. */
  readonly countText: (model: string, text: string) => Effect.Effect<number>
}

/**
 * The ContextWindow service.
 *
 * @since 0.1.0
 */
export class ContextWindow extends Context.Tag("@llm-gateway/core/ContextWindow")<ContextWindow, Service>() {}
