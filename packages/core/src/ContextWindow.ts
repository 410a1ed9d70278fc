/**
 * ContextWindow: counts tokens with the model's own tokenizer (js-tiktoken's encodings) and
 * fits the conversation into the model's context window.
 *
 * Prompt tokens follow OpenAI's accounting for chat: every message costs 3 tokens plus the
 * tokens of its role, content and name (a name costs 1 more), and 3 tokens prime the reply. The
 * system instruction counts as a system message. Encodings are built while the layer is built
 * (see `Options.preload`) and shared by every layer in the process.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as ParseResult from "effect/ParseResult"
import * as Scheduler from "effect/Scheduler"
import * as Schema from "effect/Schema"
import type { ChatMessage } from "./Chat.js"
import type { ToolDefinition } from "./Tool.js"
import { ContextWindowExceeded } from "./GatewayError.js"
import * as Memo from "./internal/memo.js"
import * as Tokenizer from "./internal/tokenizer.js"
import * as Models from "./Models.js"

/**
 * The conversation after fitting.
 *
 * @since 0.1.0
 * @category Models
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
 * Counts tokens with the model's tokenizer and fits a conversation into the model's context window
 * before anything is sent.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Service {
  /**
   * Drops the oldest messages until the prompt fits, never the system instruction and never
   * the newest user message, and never a tool call without its results (see `trim`); fails
   * with `ContextWindowExceeded` when even those do not fit. `tools` (the request's tool
   * definitions) count against the window too.
   */
  readonly fit: (input: {
    readonly model: string
    readonly system: string | undefined
    readonly messages: ReadonlyArray<ChatMessage>
    readonly reserveForReply: number | undefined
    readonly tools?: ReadonlyArray<ToolDefinition> | undefined
  }) => Effect.Effect<Fitted, ContextWindowExceeded>
  /** Prompt tokens of a chat (OpenAI cookbook accounting). */
  readonly countPrompt: (
    model: string,
    system: string | undefined,
    messages: ReadonlyArray<ChatMessage>
  ) => Effect.Effect<number>
  /** Tokens of a plain text, e.g. a completion. */
  readonly countText: (model: string, text: string) => Effect.Effect<number>
  /**
   * A synchronous `countText` for one model, for counting a reply as it streams in (one call
   * per network read, no Effect per piece). Counts the same as `countText`.
   */
  readonly textCounter: (model: string) => Effect.Effect<(text: string) => number>
  /** What this service knows of a model (registered models included, else the fallback). */
  readonly modelInfo: (model: string) => Effect.Effect<Models.ModelInfo>
}

/**
 * The ContextWindow service.
 *
 * @since 0.1.0
 * @category Services
 */
export class ContextWindow extends Context.Tag("@llm-gateway/core/ContextWindow")<ContextWindow, Service>() {}

/**
 * Options of `make` and `layer`.
 *
 * - `models`: extra or replacement models by exact id or family name (see `Models`).
 * - `fallback`: what unknown models get instead of `Models.defaultFallback`.
 * - `defaultReserveForReply`: tokens kept free for the reply when a request sets no
 *   `maxTokens`; without it, `Models.defaultReserveForReply` of the model.
 * - `preload`: encodings to build while the layer starts, so the first request does not pay
 *   for it (about 0.3 s and 100 MB for `o200k_base`, once per process). Default: the encodings
 *   of the fallback and of the models in `models`; `[]` builds nothing until a request needs it.
 * - `memoEntries` (default 50 000, `0` turns it off): how many message token counts are
 *   remembered, keyed by the SHA-256 of the text (never the text itself) and the encoding, so
 *   the earlier turns a conversation resends are not tokenized again. The least recently used
 *   count goes first; texts under 32 characters are always counted.
 *
 * @since 0.1.0
 * @category Config
 */
export interface Options {
  readonly models?: Readonly<Record<string, Models.ModelInfo>> | undefined
  readonly fallback?: Models.ModelInfo | undefined
  readonly defaultReserveForReply?: number | undefined
  readonly preload?: ReadonlyArray<Models.Encoding> | undefined
  readonly memoEntries?: number | undefined
}

/** Every reply is primed with `<|start|>assistant<|message|>`. */
const REPLY_PRIMING = 3
/** `<|start|>`, `<|message|>` (or the role separator) and `<|end|>` around every message. */
const TOKENS_PER_MESSAGE = 3
const TOKENS_PER_NAME = 1
/**
 * Tool calls and tool definitions are rendered into the prompt in a form OpenAI does not
 * document: each call is counted as its name and arguments plus this, each tool as the JSON of
 * its definition plus this (an estimate, close for typical tools).
 */
const TOKENS_PER_TOOL_CALL = 3
const TOKENS_PER_TOOL = 3
/** Unknown model ids we have already warned about; bounded so odd ids cannot grow it forever. */
const MAX_WARNED = 1_000
/** Below this length a text is counted directly: hashing it would cost about as much. */
const MEMO_MIN_LENGTH = 32
const DEFAULT_MEMO_ENTRIES = 50_000
/** Words, numbers, punctuation, line breaks, a long word and non-Latin text: every path of a count. */
const WARM_UP_TEXT = "Hello, world! It's 2024-01-31 and the order #12345 costs $19.99.\n\n" +
  "  def f(x):\n      return x ** 2  # comment\r\n{\"key\": [1, 2, 3]} " +
  "Pneumonoultramicroscopicsilicovolcanoconiosis Grüße, 東京都の天気 и привет 🙂"

/**
 * Resumes the fiber from a timer task: between slices of a long text, I/O callbacks and other
 * requests get their turn (a plain `yieldNow` resumes from a microtask, which they do not).
 */
const yieldToEventLoop = Effect.yieldNow().pipe(Effect.withScheduler(Scheduler.timer(0)))

/** Tokens of `text`; a text longer than one slice is counted slice by slice, yielding in between. */
const countTokens = (tk: Tokenizer.Tokenizer, text: string): Effect.Effect<number> =>
  text.length <= Tokenizer.sliceLength
    ? Effect.sync(() => tk.count(text))
    : Effect.suspend(() => {
      const slices = Tokenizer.slices(text)
      let total = 0
      const step: Effect.Effect<number> = Effect.suspend(() => {
        const next = slices.next()
        if (next.done === true) return Effect.succeed(total)
        total += tk.count(next.value)
        return Effect.zipRight(yieldToEventLoop, step)
      })
      return step
    })

const decodeModelInfo = Schema.decodeUnknownEither(Models.ModelInfo)
const decodeReserve = Schema.decodeUnknownEither(Schema.NonNegativeInt)

const invalid = (path: Array<string>, error: ParseResult.ParseError) =>
  ConfigError.InvalidData(path, ParseResult.TreeFormatter.formatErrorSync(error))

const validate = (options: Options): Either.Either<Models.Registry, ConfigError.ConfigError> => {
  const models: Record<string, Models.ModelInfo> = {}
  for (const [id, model] of Object.entries(options.models ?? {})) {
    const decoded = decodeModelInfo(model)
    if (Either.isLeft(decoded)) return Either.left(invalid(["models", id], decoded.left))
    models[id] = decoded.right
  }
  let fallback: Models.ModelInfo | undefined
  if (options.fallback !== undefined) {
    const decoded = decodeModelInfo(options.fallback)
    if (Either.isLeft(decoded)) return Either.left(invalid(["fallback"], decoded.left))
    fallback = decoded.right
  }
  if (options.defaultReserveForReply !== undefined) {
    const decoded = decodeReserve(options.defaultReserveForReply)
    if (Either.isLeft(decoded)) return Either.left(invalid(["defaultReserveForReply"], decoded.left))
  }
  if (options.memoEntries !== undefined) {
    const decoded = decodeReserve(options.memoEntries)
    if (Either.isLeft(decoded)) return Either.left(invalid(["memoEntries"], decoded.left))
  }
  return Either.right(Models.make({ models, fallback }))
}

/**
 * A fresh pace for one count: says to yield to the event loop each time about a slice's
 * worth of characters was tokenized, so many short messages do not block it either.
 * Remembered counts cost no tokenizing and do not count.
 */
const pacer = () => {
  let counted = 0
  return (chars: number): boolean => {
    counted += chars
    if (counted < Tokenizer.sliceLength) return false
    counted = 0
    return true
  }
}

/** Roles are a handful of short words: their counts are kept by encoding and role (at most 64). */
const roleCount = (roleTokens: Map<string, number>, tk: Tokenizer.Tokenizer, role: string): number => {
  const key = tk.encoding + ":" + role
  let n = roleTokens.get(key)
  if (n === undefined) {
    n = tk.count(role)
    if (roleTokens.size < 64) roleTokens.set(key, n)
  }
  return n
}

/**
 * A few thousand pre-tokens compile the pre-tokenizing RegExp and let the JIT optimize the
 * count (a few milliseconds), off the request path.
 */
const warmUp = (tk: Tokenizer.Tokenizer): void => {
  for (let i = 0; i < 40; i++) tk.count(WARM_UP_TEXT)
}

/**
 * The groups of a conversation: each message starts one, except a `tool` message after an
 * assistant message (or after its other results), which joins that assistant's group, so tool
 * calls and their results stay together. `group[i]`
 * is the index of the first message of message `i`'s group.
 */
const groupsOf = (messages: ReadonlyArray<ChatMessage>): Int32Array => {
  const group = new Int32Array(messages.length)
  for (let i = 0; i < messages.length; i++) {
    group[i] = i > 0 && messages[i]!.role === "tool" && messages[group[i - 1]!]!.role === "assistant" ? group[i - 1]! : i
  }
  return group
}

/**
 * Drops messages until the prompt fits `limit` (pure; `fixed` is the system instruction, the
 * tool definitions and the reply priming), a whole group at a time (an assistant message with
 * the tool results that follow it): the oldest first, never a system message or the newest
 * user message; then groups left leading before the first user message. `Exceeded` with the tokens required when the pinned messages
 * alone do not fit.
 */
const trim = (
  messages: ReadonlyArray<ChatMessage>,
  costs: ReadonlyArray<number>,
  fixed: number,
  limit: number
): { readonly _tag: "Fitted"; readonly fitted: Fitted } | { readonly _tag: "Exceeded"; readonly required: number } => {
  const n = messages.length
  let newestUser = -1
  for (let i = 0; i < n; i++) {
    if (messages[i]!.role === "user") newestUser = i
  }
  const group = groupsOf(messages)
  // A group is pinned when one of its messages is: a system message or the newest user message.
  const pinnedGroup = new Uint8Array(n)
  for (let i = 0; i < n; i++) {
    if (i === newestUser || messages[i]!.role === "system") pinnedGroup[group[i]!] = 1
  }
  const pinned = (i: number) => pinnedGroup[group[i]!] === 1
  let total = fixed
  let required = total
  for (let i = 0; i < n; i++) {
    total += costs[i]!
    if (pinned(i)) required += costs[i]!
  }
  if (total <= limit) return { _tag: "Fitted", fitted: { messages, promptTokens: total, droppedMessages: 0, limit } }
  if (required > limit) return { _tag: "Exceeded", required }
  const dropped = new Uint8Array(n)
  /** Drops the group starting at `start`; returns the index after it. */
  const dropGroup = (start: number): number => {
    let i = start
    do {
      dropped[i] = 1
      total -= costs[i]!
      i++
    } while (i < n && group[i] === start)
    return i
  }
  // Oldest first; stops before running out because the pinned messages alone fit.
  for (let i = 0; i < n && total > limit;) {
    i = pinned(i) ? i + 1 : dropGroup(i)
  }
  // A trimmed conversation starts with a user turn: drop groups left leading once older turns
  // are gone.
  for (let i = 0; i < n;) {
    const role = messages[i]!.role
    if (dropped[i] === 1 || role === "system") {
      i++
      continue
    }
    if (role === "user" || pinned(i)) break
    i = dropGroup(group[i]!)
  }
  const kept = messages.filter((_, i) => dropped[i] === 0)
  return { _tag: "Fitted", fitted: { messages: kept, promptTokens: total, droppedMessages: n - kept.length, limit } }
}

/**
 * Builds the service. Registered models, the fallback and the default reserve are validated
 * first; an invalid one is a `ConfigError` naming it (e.g. `models.acme-chat`).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options: Options = {}): Effect.Effect<Service, ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const registry = yield* validate(options)
    const ready = new Map<Models.Encoding, Tokenizer.Tokenizer>()
    const warned = new Set<string>()
    let warnedInvalid = false
    const memoEntries = options.memoEntries ?? DEFAULT_MEMO_ENTRIES
    // One memo for all encodings: the encoding is part of the key. Weight 0 and overhead 1 per
    // entry make the bound a number of entries.
    const memo = memoEntries > 0 ? Memo.makeLru<number>(memoEntries, 1) : undefined
    const roleTokens = new Map<string, number>()

    const tokenizer = (encoding: Models.Encoding): Effect.Effect<Tokenizer.Tokenizer> => {
      const found = ready.get(encoding)
      return found !== undefined
        ? Effect.succeed(found)
        : Effect.promise(() => Tokenizer.load(encoding)).pipe(Effect.tap((t) => ready.set(encoding, t)))
    }

    const resolve = (model: string): Effect.Effect<Models.Resolved> => {
      const resolved = Models.resolve(model, registry)
      if (resolved.matched !== undefined) return Effect.succeed(resolved)
      // Valid ids (at most 256 characters) are remembered one by one; invalid ones share one
      // warning, so no id of any size is kept.
      if (Models.isModelId(model)) {
        if (warned.has(model) || warned.size >= MAX_WARNED) return Effect.succeed(resolved)
        warned.add(model)
      } else {
        if (warnedInvalid) return Effect.succeed(resolved)
        warnedInvalid = true
      }
      return Effect.logWarning(
        "Unknown model: using the fallback window and encoding; register the model in ContextWindow.layer({ models })"
      ).pipe(
        Effect.annotateLogs({
          model: Models.printableId(model),
          contextWindow: registry.fallback.contextWindow,
          encoding: registry.fallback.encoding
        }),
        Effect.as(resolved)
      )
    }

    /** Tokens of a message's text; a text seen before is looked up by its hash. */
    const textTokens = (tk: Tokenizer.Tokenizer, text: string): Effect.Effect<number> => {
      const hash = memo === undefined || text.length < MEMO_MIN_LENGTH ? undefined : Memo.contentKey(text)
      if (hash === undefined) return countTokens(tk, text)
      const key = tk.encoding + ":" + hash
      const hit = memo!.get(key)
      return hit !== undefined
        ? Effect.succeed(hit)
        : Effect.map(countTokens(tk, text), (n) => {
          memo!.set(key, n, 0)
          return n
        })
    }

    /**
     * The tokens of each message, chat overhead included. A remembered content costs a hash and
     * a lookup, without an Effect per message; only what is tokenized paces the event loop.
     */
    const messageCosts = (
      tk: Tokenizer.Tokenizer,
      messages: ReadonlyArray<ChatMessage>
    ): Effect.Effect<Array<number>> =>
      Effect.gen(function*() {
        const pace = pacer()
        const costs = new Array<number>(messages.length)
        for (let i = 0; i < messages.length; i++) {
          const m = messages[i]!
          const hash = memo === undefined || m.content.length < MEMO_MIN_LENGTH ? undefined : Memo.contentKey(m.content)
          const key = hash === undefined ? undefined : tk.encoding + ":" + hash
          let content = key === undefined ? undefined : memo!.get(key)
          if (content === undefined) {
            content = m.content.length <= Tokenizer.sliceLength ? tk.count(m.content) : yield* countTokens(tk, m.content)
            if (key !== undefined) memo!.set(key, content, 0)
            if (pace(m.content.length)) yield* yieldToEventLoop
          }
          costs[i] = TOKENS_PER_MESSAGE + roleCount(roleTokens, tk, m.role) + content +
            (m.name === undefined ? 0 : tk.count(m.name) + TOKENS_PER_NAME)
          if (m.toolCalls !== undefined) {
            for (const call of m.toolCalls) {
              costs[i] += TOKENS_PER_TOOL_CALL + tk.count(call.name) + (yield* textTokens(tk, call.arguments))
            }
          }
        }
        return costs
      })

    const fixedTokens = (tk: Tokenizer.Tokenizer, system: string | undefined): Effect.Effect<number> =>
      system === undefined
        ? Effect.succeed(REPLY_PRIMING)
        : Effect.map(textTokens(tk, system), (n) => REPLY_PRIMING + TOKENS_PER_MESSAGE + roleCount(roleTokens, tk, "system") + n)

    const reserveFor = (info: Models.ModelInfo, requested: number | undefined): number =>
      requested !== undefined && Number.isFinite(requested) && requested >= 0
        ? requested
        : options.defaultReserveForReply ?? Models.defaultReserveForReply(info)

    /** Tokens of the tool definitions: the JSON of each (name, description, parameters). */
    const toolTokens = (tk: Tokenizer.Tokenizer, tools: ReadonlyArray<ToolDefinition> | undefined): Effect.Effect<number> =>
      tools === undefined || tools.length === 0 ? Effect.succeed(0) : Effect.reduce(tools, 0, (total, tool) =>
        Effect.map(
          textTokens(tk, JSON.stringify({ name: tool.name, description: tool.description, parameters: tool.parameters })),
          (n) => total + TOKENS_PER_TOOL + n
        ))

    const fit: Service["fit"] = ({ messages, model, reserveForReply, system, tools }) =>
      Effect.gen(function*() {
        const { info } = yield* resolve(model)
        const tk = yield* tokenizer(info.encoding)
        const reserved = reserveFor(info, reserveForReply)
        const limit = Math.max(0, info.contextWindow - reserved)
        // Each message is tokenized at most once; trimming only subtracts.
        const costs = yield* messageCosts(tk, messages)
        const trimmed = trim(messages, costs, (yield* fixedTokens(tk, system)) + (yield* toolTokens(tk, tools)), limit)
        if (trimmed._tag === "Fitted") return trimmed.fitted
        return yield* new ContextWindowExceeded({
          model: Models.printableId(model),
          limit,
          required: trimmed.required,
          contextWindow: info.contextWindow,
          reservedForReply: reserved
        })
      }).pipe(Effect.withSpan("ContextWindow.fit", { attributes: { model: Models.printableId(model) }, captureStackTrace: false }))

    const countPrompt: Service["countPrompt"] = (model, system, messages) =>
      Effect.gen(function*() {
        const { info } = yield* resolve(model)
        const tk = yield* tokenizer(info.encoding)
        let total = yield* fixedTokens(tk, system)
        for (const cost of yield* messageCosts(tk, messages)) total += cost
        return total
      })

    const countText: Service["countText"] = (model, text) =>
      Effect.gen(function*() {
        const { info } = yield* resolve(model)
        const tk = yield* tokenizer(info.encoding)
        return yield* countTokens(tk, text)
      })

    const textCounter: Service["textCounter"] = (model) =>
      Effect.map(Effect.flatMap(resolve(model), ({ info }) => tokenizer(info.encoding)), (tk) => tk.count)

    // Building an encoding takes a noticeable fraction of a second: do it while the layer
    // starts, not inside the first request.
    const preload = options.preload ??
      [registry.fallback.encoding, ...Object.values(options.models ?? {}).map((m) => m.encoding)]
    yield* Effect.forEach(new Set(preload), (encoding) => Effect.map(tokenizer(encoding), warmUp), { discard: true })

    const modelInfo = (model: string) => Effect.map(resolve(model), (resolved) => resolved.info)
    return ContextWindow.of({ fit, countPrompt, countText, textCounter, modelInfo })
  })

/**
 * The service with the built-in models and default reserve. With options, the registered
 * models, fallback and reserve are validated while the layer starts (`ConfigError` otherwise).
 *
 * @since 0.1.0
 * @category Layers
 */
export function layer(): Layer.Layer<ContextWindow>
export function layer(options: Options): Layer.Layer<ContextWindow, ConfigError.ConfigError>
export function layer(options?: Options): Layer.Layer<ContextWindow, ConfigError.ConfigError> {
  return Layer.effect(ContextWindow, make(options))
}

/**
 * The service from configuration, e.g.
 * `layerConfig({ models: Models.config("LLM_MODELS"), defaultReserveForReply: Config.integer("LLM_RESERVE_FOR_REPLY") })`.
 * A missing or invalid setting fails the layer with a `ConfigError` naming the variable; wrap a
 * setting in `Config.option`/`Config.withDefault` to make it optional.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerConfig = (options: Config.Config.Wrap<Options>): Layer.Layer<ContextWindow, ConfigError.ConfigError> =>
  Layer.effect(ContextWindow, Effect.flatMap(Config.unwrap(options), make))
