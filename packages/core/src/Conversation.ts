/**
 * Conversation: a history (a system instruction, then turns) with an id, answered through the
 * `Gateway`. `send` streams the reply and, on a clean `Finish` only, appends the user turn and
 * the assistant turn as they were sent (redacted: the user turn as the gateway's input guard
 * left it, the reply as its output redaction streamed it). A failed or interrupted send leaves
 * the history as it was; concurrent sends on one conversation run one after the other.
 *
 * Counting is incremental: each message is counted once per tokenizer encoding, when a send
 * first needs it, and kept as a running sum, so a turn costs the length of what it adds and of
 * what it sends, not of the whole history. At send time the oldest whole turns that no longer
 * fit are left out, and `ContextWindow.fit` (inside the gateway) fits what is sent; a
 * `ContextTrimmed` part reports every message left out, never silently.
 *
 * @example
 * import { Conversation } from "@llm-gateway/core"
 * import * as Effect from "effect/Effect"
 * import * as Stream from "effect/Stream"
 *
 * export const program = Effect.gen(function*() {
 *   const conversation = yield* Conversation.make({ model: "gpt-4o-mini", system: "Be brief." })
 *   yield* conversation.send("What is Effect?").pipe(Stream.runDrain)
 *   yield* conversation.send({ template: "And $topic?", variables: { topic: "Stream" } }).pipe(Stream.runDrain)
 *   return yield* conversation.messages // user, assistant, user, assistant
 * })
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { randomUUID } from "node:crypto"
import { ChatMessage, type ChatRequestInput, type TemplatePrompt } from "./Chat.js"
import * as ContextWindow from "./ContextWindow.js"
import * as Gateway from "./Gateway.js"
import { type GatewayError, InvalidRequest } from "./GatewayError.js"
import { formatPath } from "./internal/issues.js"
import { ModelId } from "./Models.js"
import { ContextTrimmed, type Part } from "./Part.js"

/**
 * A conversation id: 1 to 256 characters, no control characters.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ConversationId = Schema.String.pipe(
  Schema.pattern(/^[^\u0000-\u001f\u007f]{1,256}$/, {
    message: () => "a conversation id must be 1 to 256 characters without control characters"
  })
)

/**
 * A conversation as data, what a `ConversationStore` keeps: its id, its model, its system
 * instruction and its messages (user, assistant and tool messages, oldest first, as sent).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ConversationData = Schema.Struct({
  id: ConversationId,
  model: ModelId,
  system: Schema.optional(Schema.String),
  messages: Schema.Array(ChatMessage)
})

/**
 * A conversation as data (see the `ConversationData` Schema).
 *
 * @since 0.1.0
 * @category Models
 */
export type ConversationData = typeof ConversationData.Type

/**
 * What `send` takes: the user's text, or a template with its variables (rendered by the
 * gateway, see `PromptTemplate`).
 *
 * @since 0.1.0
 * @category Models
 */
export type Input = string | TemplatePrompt

/**
 * Options of one `send`: another model than the conversation's, the sampling temperature, the
 * most completion tokens (also the room the context window keeps for the reply), and `cache:
 * false` to bypass the response cache.
 *
 * @since 0.1.0
 * @category Models
 */
export interface SendOptions {
  readonly model?: string | undefined
  readonly temperature?: number | undefined
  readonly maxTokens?: number | undefined
  readonly cache?: boolean | undefined
}

/**
 * A conversation: its id, model and system instruction, its history, and `send`.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Conversation {
  readonly id: string
  readonly model: string
  readonly system: string | undefined
  /** The messages so far (a copy), oldest first: user, assistant and tool messages as sent. */
  readonly messages: Effect.Effect<ReadonlyArray<ChatMessage>>
  /** The conversation as data, for a `ConversationStore`. */
  readonly data: Effect.Effect<ConversationData>
  /**
   * Prompt tokens of the system instruction and the whole history for `model` (default: the
   * conversation's), chat overhead included, counted incrementally. `ContextWindowExceeded`
   * when the system instruction alone does not fit the model's window.
   */
  readonly tokens: (model?: string) => Effect.Effect<number, GatewayError>
  /**
   * Streams the reply to `input` through the `Gateway`. On a clean `Finish`, before it is
   * emitted, the user turn and the reply are appended to the history; on any other end
   * (failure, interruption, a consumer that stops reading) the history is left as it was.
   * Sends on one conversation wait for each other.
   */
  readonly send: (input: Input, options?: SendOptions) => Stream.Stream<Part, GatewayError>
}

/**
 * Options of `make`: the model, the system instruction (kept as given; the gateway guards it on
 * every send), an id (default: a random UUID) and the messages so far (e.g. from a store).
 *
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  readonly model: string
  readonly system?: string | undefined
  readonly id?: string | undefined
  readonly messages?: ReadonlyArray<ChatMessage> | undefined
}

const decodeData = Schema.decodeUnknownEither(ConversationData)

/** The issues of a conversation that does not decode: paths and messages, never values. */
const dataIssues = (error: ParseResult.ParseError): ReadonlyArray<string> =>
  ParseResult.ArrayFormatter.formatErrorSync(error).slice(0, 20).map((issue) =>
    `${formatPath(issue.path, "conversation")}: ${issue.message.replace(/,\s*actual[\s\S]*$/, "")}`
  )

/** Prompt tokens of what is always sent and the room for messages, per model and reply size. */
interface Frame {
  readonly fixed: number
  readonly limit: number
}

/** At most this many frames (model × maxTokens) are remembered per conversation. */
const maxFrames = 16

/**
 * The index from which the history is sent: the oldest whole turn (a user message) such that
 * it and everything after it fit `budget` tokens; 0 when the whole history fits, `n` when no
 * turn does. `prefix[i]` is the tokens of messages `0..i-1`; `starts` the indices of user
 * messages, ascending. O(log n).
 */
export const firstSent = (
  prefix: ReadonlyArray<number>,
  starts: ReadonlyArray<number>,
  n: number,
  budget: number
): number => {
  const total = prefix[n]!
  if (total <= budget) return 0
  let lo = 0
  let hi = starts.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (total - prefix[starts[mid]!]! <= budget) hi = mid
    else lo = mid + 1
  }
  return lo < starts.length ? starts[lo]! : n
}

/**
 * Builds a conversation around the `Gateway` and the `ContextWindow` in the context. The
 * options are validated (`InvalidRequest` names the fields that are wrong).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = (
  options: Options
): Effect.Effect<Conversation, InvalidRequest, Gateway.Gateway | ContextWindow.ContextWindow> =>
  Effect.gen(function*() {
    const gateway = yield* Gateway.Gateway
    const contextWindow = yield* ContextWindow.ContextWindow
    const decoded = decodeData({
      id: options.id ?? randomUUID(),
      model: options.model,
      ...(options.system === undefined ? {} : { system: options.system }),
      messages: options.messages ?? []
    })
    if (decoded._tag === "Left") return yield* new InvalidRequest({ issues: dataIssues(decoded.left) })
    const { id, model, system } = decoded.right

    // The history: append-only, changed only by `commit` (synchronous, under the lock).
    const messages: Array<ChatMessage> = [...decoded.right.messages]
    const starts: Array<number> = []
    messages.forEach((m, i) => {
      if (m.role === "user") starts.push(i)
    })
    const lock = yield* Effect.makeSemaphore(1)
    /** Running sums of message tokens per encoding: `prefix[i]` is the tokens of messages 0..i-1. */
    const tallies = new Map<string, Array<number>>()
    const frames = new Map<string, Frame>()

    const encodingOf = (m: string) => Effect.map(contextWindow.modelInfo(m), (info) => info.encoding)

    /** Tokens one message adds to a prompt (chat overhead included). */
    const messageCost = (m: string, message: ChatMessage): Effect.Effect<number> =>
      Effect.zipWith(
        contextWindow.countPrompt(m, undefined, [message]),
        contextWindow.countPrompt(m, undefined, []),
        (one, none) => one - none
      )

    /**
     * The running sums for `m`'s encoding, extended to the current history (counting only what
     * is new), and the length of the history they cover.
     */
    const tally = (m: string): Effect.Effect<readonly [ReadonlyArray<number>, number]> =>
      Effect.gen(function*() {
        const encoding = yield* encodingOf(m)
        let prefix = tallies.get(encoding)
        if (prefix === undefined) {
          prefix = [0]
          tallies.set(encoding, prefix)
        }
        const from = prefix.length - 1
        const upTo = messages.length
        if (from >= upTo) return [prefix, upTo] as const
        const costs: Array<number> = []
        for (let i = from; i < upTo; i++) costs.push(yield* messageCost(m, messages[i]!))
        // Another fiber (`tokens`) may have extended it meanwhile: then its sums stand.
        if (prefix.length - 1 === from) {
          for (const cost of costs) prefix.push(prefix[prefix.length - 1]! + cost)
        }
        return [prefix, upTo] as const
      })

    /** The system instruction's tokens and the prompt limit for `m` and a reply of `maxTokens`. */
    const frame = (m: string, maxTokens: number | undefined): Effect.Effect<Frame, GatewayError> => {
      const key = `${m}\u0000${maxTokens ?? ""}`
      const known = frames.get(key)
      if (known !== undefined) return Effect.succeed(known)
      return Effect.map(
        contextWindow.fit({ model: m, system, messages: [], reserveForReply: maxTokens }),
        (fitted) => {
          const found = { fixed: fitted.promptTokens, limit: fitted.limit }
          if (frames.size >= maxFrames) frames.clear()
          frames.set(key, found)
          return found
        }
      )
    }

    /** Appends a turn: synchronous, so it happens entirely or not at all. */
    const commit = (turn: ReadonlyArray<ChatMessage>): void => {
      for (const m of turn) {
        if (m.role === "user") starts.push(messages.length)
        messages.push(m)
      }
    }

    /** Holds the conversation for the rest of the scope; waiting for it can be interrupted. */
    const hold: Effect.Effect<void, never, Scope.Scope> = Effect.uninterruptibleMask((restore) =>
      Effect.zipRight(restore(lock.take(1)), Effect.addFinalizer(() => lock.release(1)))
    )

    const send = (input: Input, sendOptions: SendOptions = {}): Stream.Stream<Part, GatewayError> =>
      Stream.unwrapScoped(Effect.gen(function*() {
        yield* hold
        const m = sendOptions.model ?? model
        const userText = typeof input === "string" ? input : undefined
        const [prefix, n] = yield* tally(m)
        const { fixed, limit } = yield* frame(m, sendOptions.maxTokens)
        // A template's rendered length is unknown here: the gateway's fit trims further if needed.
        const newTokens = userText === undefined ? 0 : yield* messageCost(m, { role: "user", content: userText })
        const first = firstSent(prefix, starts, n, limit - fixed - newTokens)
        const request: ChatRequestInput = {
          model: m,
          messages: userText === undefined
            ? messages.slice(first)
            : [...messages.slice(first), { role: "user", content: userText }],
          ...(userText === undefined ? { prompt: input as TemplatePrompt } : {}),
          ...(system === undefined ? {} : { systemInstruction: system }),
          ...(sendOptions.temperature === undefined ? {} : { temperature: sendOptions.temperature }),
          ...(sendOptions.maxTokens === undefined ? {} : { maxTokens: sendOptions.maxTokens }),
          ...(sendOptions.cache === undefined ? {} : { cache: sendOptions.cache })
        }
        // The dry run gives the user turn as the gateway sends it: rendered and redacted. The
        // send below prepares the same request the same way.
        const prepared = yield* gateway.prepare(request)
        const sent = prepared.outbound.messages
        const user = sent[sent.length - 1]!
        const dropped = first + prepared.droppedMessages
        const trimmed: ReadonlyArray<Part> = dropped === 0 ? [] : [
          new ContextTrimmed({ droppedMessages: dropped, promptTokens: prepared.promptTokens, limit: prepared.contextLimit })
        ]
        let text = ""
        let refusal: string | undefined
        return Stream.concat(
          Stream.fromIterable(trimmed),
          gateway.stream(request).pipe(
            Stream.mapChunks((chunk) => {
              let out = chunk
              for (const part of chunk) {
                switch (part._tag) {
                  case "TextDelta":
                    text += part.text
                    break
                  case "ContextTrimmed":
                    // Reported above, with the turns this conversation left out.
                    out = Chunk.filter(chunk, (p) => p._tag !== "ContextTrimmed")
                    break
                  case "Finish":
                    refusal = part.refusal
                    commit([user, { role: "assistant", content: text.length === 0 && refusal !== undefined ? refusal : text }])
                    break
                }
              }
              return out
            })
          )
        )
      }))

    const tokens = (m: string = model): Effect.Effect<number, GatewayError> =>
      Effect.zipWith(tally(m), frame(m, undefined), ([prefix, n], { fixed }) => fixed + prefix[n]!)

    return {
      id,
      model,
      system,
      messages: Effect.sync(() => messages.slice()),
      data: Effect.sync((): ConversationData => ({
        id,
        model,
        ...(system === undefined ? {} : { system }),
        messages: messages.slice()
      })),
      tokens,
      send
    }
  })

/**
 * A conversation from its data (as a `ConversationStore` returns it), around the `Gateway` and
 * the `ContextWindow` in the context.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const fromData = (
  data: ConversationData
): Effect.Effect<Conversation, InvalidRequest, Gateway.Gateway | ContextWindow.ContextWindow> =>
  make({ id: data.id, model: data.model, system: data.system, messages: data.messages })
