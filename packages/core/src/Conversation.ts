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
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { randomUUID } from "node:crypto"
import { ChatMessage, type ChatRequestInput, type TemplatePrompt } from "./Chat.js"
import * as ContextWindow from "./ContextWindow.js"
import * as Gateway from "./Gateway.js"
import { ContextWindowExceeded, type GatewayError, InvalidRequest } from "./GatewayError.js"
import { formatPath } from "./internal/issues.js"
import * as Models from "./Models.js"
import { ContextTrimmed, type Part, type ToolCall, type ToolCallError, ToolCallErrorReason } from "./Part.js"
import type * as Tool from "./Tool.js"

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
 * instruction and its messages (user, assistant and tool messages, oldest first, as sent; a
 * `system` message is refused by `make`: the instruction is the `system` field).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ConversationData = Schema.Struct({
  id: ConversationId,
  model: Models.ModelId,
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
  /**
   * `send` with tools: when a reply calls tools, their handlers answer, and the assistant's
   * calls and the results go back to the model in another request, until it answers without
   * calling a tool (each request's parts, its own `Finish` included, are streamed in turn).
   * The whole exchange is one turn: on the last `Finish` the user message, every call and
   * result and the answer are recorded; on any failure nothing is (the handlers' effects have
   * happened). See `ToolLoopOptions` for the rounds limit and what a failed call does.
   */
  readonly sendWithTools: <const H extends ReadonlyArray<ToolHandler<any, any>>>(
    input: Input,
    options: ToolLoopOptions<H>
  ) => Stream.Stream<Part, GatewayError | ToolLoopError | ErrorOf<H[number]>, ContextOf<H[number]>>
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

/**
 * Who is being called: the id the model gave the call and the tool's name.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ToolCallInfo {
  readonly id: string
  readonly name: string
}

/**
 * A tool and the Effect that answers its calls (see `handler`). What the Effect returns is the
 * call's result: a string is sent as it is, anything else as its JSON text.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ToolHandler<E = never, R = never> {
  readonly tool: Tool.AnyTool
  readonly handle: (args: unknown, call: ToolCallInfo) => Effect.Effect<unknown, E, R>
}

/**
 * Pairs a tool with the Effect that answers it. With a tool from `Tool.make` the handler gets
 * the arguments decoded with its Schema; with a plain `Tool.ToolDefinition`, the parsed JSON.
 *
 * @example
 * import { Conversation, Tool } from "@llm-gateway/core"
 * import * as Effect from "effect/Effect"
 * import * as Schema from "effect/Schema"
 *
 * const getWeather = Tool.make({
 *   name: "get_weather",
 *   description: "The current weather of a city",
 *   parameters: Schema.Struct({ city: Schema.String })
 * })
 *
 * export const weather = Conversation.handler(getWeather, ({ city }) => Effect.succeed({ city, celsius: 21 }))
 *
 * @since 0.1.0
 * @category Constructors
 */
export function handler<A, I, E, R>(
  tool: Tool.Tool<A, I>,
  handle: (args: A, call: ToolCallInfo) => Effect.Effect<unknown, E, R>
): ToolHandler<E, R>
export function handler<E, R>(
  tool: Tool.ToolDefinition,
  handle: (args: unknown, call: ToolCallInfo) => Effect.Effect<unknown, E, R>
): ToolHandler<E, R>
export function handler<E, R>(
  tool: Tool.AnyTool,
  handle: (args: any, call: ToolCallInfo) => Effect.Effect<unknown, E, R>
): ToolHandler<E, R> {
  return { tool, handle }
}

/**
 * The error type of a handler.
 *
 * @since 0.1.0
 * @category Models
 */
export type ErrorOf<H> = H extends ToolHandler<infer E, any> ? E : never

/**
 * The requirements of a handler.
 *
 * @since 0.1.0
 * @category Models
 */
export type ContextOf<H> = H extends ToolHandler<any, infer R> ? R : never

/**
 * Options of `sendWithTools`, besides those of `send`:
 *
 * - `handlers`: the tools the model may call, each with its handler (see `handler`).
 * - `toolChoice`: which of them it may call (default: it decides).
 * - `maxRounds` (default 8): how many rounds of tool calls are answered in one turn; a reply
 *   that still calls tools after that many is `ToolRoundsExceeded`.
 * - `onFailure` (default `"fail"`): what a failed call does. `"fail"` fails the send with the
 *   handler's own error, or `ToolCallRejected` for arguments that are not valid JSON or do not
 *   match the tool's Schema. `"report"` sends the failure to the model as the call's result,
 *   `{"error": "<message>"}` (the error's `message`, redacted like every prompt), and goes on.
 *   A call to a tool that was not declared is `ToolCallRejected` either way.
 * - `concurrency` (default 1): how many calls of one reply run at once; results keep the
 *   order of the calls.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ToolLoopOptions<H extends ReadonlyArray<ToolHandler<any, any>>> extends SendOptions {
  readonly handlers: H
  readonly toolChoice?: Tool.ToolChoice | undefined
  readonly maxRounds?: number | undefined
  readonly onFailure?: "fail" | "report" | undefined
  readonly concurrency?: number | "unbounded" | undefined
}

/**
 * The default of `ToolLoopOptions.maxRounds`.
 *
 * @since 0.1.0
 * @category Config
 */
export const defaultMaxRounds = 8

/**
 * A tool call of the reply could not be answered: the model called a tool that was not declared
 * (`unknownTool`, `invalidName`), or its arguments are not a JSON object (`malformed`) or do not
 * match the tool's Schema (`invalid`). `issues` name paths, never values. The turn is not
 * recorded.
 *
 * @since 0.1.0
 * @category Errors
 */
export class ToolCallRejected extends Schema.TaggedError<ToolCallRejected>("@llm-gateway/core/ToolCallRejected")(
  "ToolCallRejected",
  {
    toolName: Schema.String,
    callId: Schema.String,
    reason: ToolCallErrorReason,
    issues: Schema.Array(Schema.String)
  }
) {
  override get message(): string {
    const what = this.reason === "unknownTool" || this.reason === "invalidName"
      ? `called the tool ${JSON.stringify(this.toolName.slice(0, 64))}, which was not declared`
      : this.reason === "malformed"
      ? `called ${this.toolName} with arguments that are not a JSON object`
      : `called ${this.toolName} with arguments that do not match its Schema (${this.issues.join("; ")})`
    return `The model ${what} (call ${this.callId}); the turn was not recorded. Check the tools and their descriptions, or pass onFailure: "report" to let the model correct its arguments.`
  }
}

/**
 * The model still called tools after `maxRounds` rounds of answered calls in one turn. The turn
 * is not recorded.
 *
 * @since 0.1.0
 * @category Errors
 */
export class ToolRoundsExceeded extends Schema.TaggedError<ToolRoundsExceeded>("@llm-gateway/core/ToolRoundsExceeded")(
  "ToolRoundsExceeded",
  { maxRounds: Schema.Int }
) {
  override get message(): string {
    return `The model still called tools after ${this.maxRounds} rounds; the turn was stopped and not recorded. Raise maxRounds, or make the tools' results more conclusive.`
  }
}

/**
 * The failures of the tool loop besides the gateway's and the handlers' own.
 *
 * @since 0.1.0
 * @category Models
 */
export type ToolLoopError = ToolCallRejected | ToolRoundsExceeded

/** A tool call of one reply: the complete call or why it cannot be used, with its JSON text as sent. */
type CollectedCall = { readonly part: ToolCall | ToolCallError; readonly rawArguments: string }

/** What one round's reply said, from its parts: text, refusal, tool calls. */
const replyCollector = () => {
  let text = ""
  let refusal: string | undefined
  const deltas = new Map<number, string>()
  const calls: Array<CollectedCall> = []
  return {
    /** Adds a part; true for the `Finish`. */
    add: (part: Part): boolean => {
      switch (part._tag) {
        case "TextDelta":
          text += part.text
          return false
        case "ToolCallDelta":
          deltas.set(part.index, (deltas.get(part.index) ?? "") + part.argumentsDelta)
          return false
        case "ToolCall":
          calls.push({ part, rawArguments: part.rawArguments })
          return false
        case "ToolCallError":
          calls.push({ part, rawArguments: deltas.get(part.index) ?? "{}" })
          return false
        case "Finish":
          refusal = part.refusal
          return true
        default:
          return false
      }
    },
    hasCalls: () => calls.length > 0,
    calls: (): ReadonlyArray<CollectedCall> => calls,
    /** The reply as an assistant message of the history: its text (its refusal when it has none). */
    answer: (): ChatMessage => ({ role: "assistant", content: text.length === 0 && refusal !== undefined ? refusal : text }),
    /** The reply as the assistant message that carries its tool calls. */
    callMessage: (): ChatMessage => ({
      role: "assistant",
      content: text,
      toolCalls: calls.map(({ part, rawArguments }) => ({ id: part.id, name: part.name, arguments: rawArguments }))
    })
  }
}

/** The tool loop's side of a turn: what the request declares, and how a reply's calls are answered. */
interface ToolRunner<E, R> {
  readonly request: { readonly tools: ReadonlyArray<Tool.AnyTool>; readonly toolChoice?: Tool.ToolChoice }
  readonly maxRounds: number
  readonly run: (calls: ReadonlyArray<CollectedCall>) => Effect.Effect<ReadonlyArray<ChatMessage>, ToolLoopError | E, R>
}

/** A failure as the model reads it in `"report"` mode: its message, never its other fields. */
const failureText = (error: unknown): string => {
  const message = typeof error === "object" && error !== null && "message" in error &&
      typeof (error as { readonly message: unknown }).message === "string"
    ? (error as { readonly message: string }).message
    : "the tool failed"
  return JSON.stringify({ error: message.length > 0 ? message : "the tool failed" })
}

/** A handler's result as the `tool` message's content. */
const resultText = (result: unknown): string => {
  if (typeof result === "string") return result
  const json = JSON.stringify(result)
  return json === undefined ? "null" : json
}

const toolRunner = <H extends ReadonlyArray<ToolHandler<any, any>>>(
  options: ToolLoopOptions<H>,
  context: Context.Context<ContextOf<H[number]>>
): ToolRunner<ErrorOf<H[number]>, never> => {
  const byName = new Map<string, ToolHandler<any, any>>()
  for (const h of options.handlers) byName.set(h.tool.name, h)
  const maxRounds = options.maxRounds ?? defaultMaxRounds
  if (!Number.isSafeInteger(maxRounds) || maxRounds < 0) {
    throw new Error("Conversation.sendWithTools: maxRounds must be a whole number from 0")
  }
  const report = options.onFailure === "report"
  const rejected = (part: ToolCall | ToolCallError, reason: typeof ToolCallErrorReason.Type, issues: ReadonlyArray<string>) =>
    new ToolCallRejected({ toolName: part.name, callId: part.id, reason, issues })
  const answer = ({ part }: CollectedCall): Effect.Effect<ChatMessage, ToolLoopError | ErrorOf<H[number]>> => {
    const reply = (content: string): ChatMessage => ({ role: "tool", toolCallId: part.id, content })
    const found = byName.get(part.name)
    if (part._tag === "ToolCallError") {
      if (part.reason === "unknownTool" || part.reason === "invalidName" || !report) {
        return Effect.fail(rejected(part, part.reason, part.issues))
      }
      return Effect.succeed(reply(failureText(part)))
    }
    if (found === undefined) return Effect.fail(rejected(part, "unknownTool", []))
    const handled = Effect.provide(
      found.handle(part.arguments, { id: part.id, name: part.name }),
      context
    ) as Effect.Effect<unknown, ErrorOf<H[number]>>
    return report
      ? Effect.match(handled, { onFailure: (error) => reply(failureText(error)), onSuccess: (r) => reply(resultText(r)) })
      : Effect.map(handled, (r) => reply(resultText(r)))
  }
  return {
    request: {
      tools: options.handlers.map((h) => h.tool),
      ...(options.toolChoice === undefined ? {} : { toolChoice: options.toolChoice })
    },
    maxRounds,
    run: (calls) => Effect.forEach(calls, answer, { concurrency: options.concurrency ?? 1 })
  }
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
 *
 * @since 0.1.0
 * @category Utils
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
 * The history of one conversation and what is known of its tokens: messages (append-only,
 * changed only by `commit`, which is synchronous, under the conversation's lock), the indices of
 * its user messages, running sums of message tokens per encoding, and the frame (system
 * instruction's tokens, prompt limit) per model and reply size.
 */
const makeHistory = (
  contextWindow: ContextWindow.Service,
  system: string | undefined,
  initial: ReadonlyArray<ChatMessage>
) => {
  const messages: Array<ChatMessage> = []
  const starts: Array<number> = []
  /** Running sums of message tokens per encoding: `prefix[i]` is the tokens of messages 0..i-1. */
  const tallies = new Map<string, Array<number>>()
  const frames = new Map<string, Frame>()

  /** Appends messages: synchronous, so a turn is appended entirely or not at all. */
  const commit = (turn: ReadonlyArray<ChatMessage>): void => {
    for (const m of turn) {
      if (m.role === "user") starts.push(messages.length)
      messages.push(m)
    }
  }
  commit(initial)

  /** Tokens one message adds to a prompt (chat overhead included). */
  const messageCost = (model: string, message: ChatMessage): Effect.Effect<number> =>
    Effect.zipWith(
      contextWindow.countPrompt(model, undefined, [message]),
      contextWindow.countPrompt(model, undefined, []),
      (one, none) => one - none
    )

  /**
   * The running sums for `model`'s encoding, extended to the current history (counting only
   * what is new), and the length of the history they cover.
   */
  const tally = (model: string): Effect.Effect<readonly [ReadonlyArray<number>, number]> =>
    Effect.gen(function*() {
      const { encoding } = yield* contextWindow.modelInfo(model)
      let prefix = tallies.get(encoding)
      if (prefix === undefined) {
        prefix = [0]
        tallies.set(encoding, prefix)
      }
      const from = prefix.length - 1
      const upTo = messages.length
      if (from >= upTo) return [prefix, upTo] as const
      const costs: Array<number> = []
      for (let i = from; i < upTo; i++) costs.push(yield* messageCost(model, messages[i]!))
      // Another fiber (`tokens`) may have extended it meanwhile: then its sums stand.
      if (prefix.length - 1 === from) {
        for (const cost of costs) prefix.push(prefix[prefix.length - 1]! + cost)
      }
      return [prefix, upTo] as const
    })

  /** The system instruction's tokens and the prompt limit for `model` and a reply of `maxTokens`. */
  const frame = (model: string, maxTokens: number | undefined): Effect.Effect<Frame, GatewayError> => {
    const key = `${model}\u0000${maxTokens ?? ""}`
    const known = frames.get(key)
    if (known !== undefined) return Effect.succeed(known)
    return Effect.map(
      contextWindow.fit({ model, system, messages: [], reserveForReply: maxTokens }),
      (fitted) => {
        const found = { fixed: fitted.promptTokens, limit: fitted.limit }
        if (frames.size >= maxFrames) frames.clear()
        frames.set(key, found)
        return found
      }
    )
  }

  return { messages, starts, commit, messageCost, tally, frame }
}

type History = ReturnType<typeof makeHistory>

/** What a turn is sent with: the gateway, the history, and the request fields every round shares. */
interface TurnContext {
  readonly gateway: Gateway.Service
  readonly history: History
  readonly model: string
  readonly base: Omit<ChatRequestInput, "messages" | "prompt">
}

/**
 * One round's request: the history that fits (the oldest whole turns left out first), the user
 * message and what the turn added so far, and, from the gateway's dry run, those messages as it
 * sends them (rendered, redacted) and what was left out as a `ContextTrimmed`.
 */
const prepareRound = (
  turn: TurnContext,
  input: Input,
  user: ChatMessage | undefined,
  pending: ReadonlyArray<ChatMessage>
) =>
  Effect.gen(function*() {
    const { history, model } = turn
    const { fixed, limit } = yield* history.frame(model, turn.base.maxTokens)
    const [prefix, n] = yield* history.tally(model)
    // A template's rendered length is unknown here: the gateway's fit trims further if needed.
    let current = 0
    for (const message of user === undefined ? pending : [user, ...pending]) current += yield* history.messageCost(model, message)
    const first = firstSent(prefix, history.starts, n, limit - fixed - current)
    const request: ChatRequestInput = {
      ...turn.base,
      messages: [...history.messages.slice(first), ...(user === undefined ? [] : [user]), ...pending],
      ...(user === undefined ? { prompt: input as TemplatePrompt } : {})
    }
    // The stream prepares the same request the same way.
    const prepared = yield* turn.gateway.prepare(request)
    const sent = prepared.outbound.messages
    const ours = sent.slice(sent.length - 1 - pending.length)
    if (ours.length !== 1 + pending.length || ours[0]!.role !== "user") {
      // The window kept the user message but not all of this turn's calls and results.
      return yield* new ContextWindowExceeded({
        model: Models.printableId(model),
        limit: prepared.contextLimit,
        required: fixed + current
      })
    }
    const dropped = first + prepared.droppedMessages
    const trimmed: ReadonlyArray<Part> = dropped === 0 ? [] : [
      new ContextTrimmed({ droppedMessages: dropped, promptTokens: prepared.promptTokens, limit: prepared.contextLimit })
    ]
    return { request, ours, trimmed }
  })

/**
 * One turn: a round per request. A reply with tool calls runs them (`tools`) and goes on with
 * another round carrying the calls and their results. The turn is recorded on the last round's
 * `Finish`, before the caller sees it, as the last round's dry run shows it was sent.
 */
const runTurn = <E, R>(
  turn: TurnContext,
  input: Input,
  tools: ToolRunner<E, R> | undefined
): Stream.Stream<Part, GatewayError | ToolLoopError | E, R> => {
  // Round 1 sends the input as given; later rounds the user message as the gateway sent it.
  let user: ChatMessage | undefined = typeof input === "string" ? { role: "user", content: input } : undefined
  const pending: Array<ChatMessage> = []
  const round = (index: number): Stream.Stream<Part, GatewayError | ToolLoopError | E, R> =>
    Stream.unwrap(Effect.map(prepareRound(turn, input, user, pending), ({ ours, request, trimmed }) => {
      user = ours[0]!
      const reply = replyCollector()
      const parts = turn.gateway.stream(request).pipe(
        Stream.mapChunks((chunk) => {
          let out = chunk
          for (const part of chunk) {
            if (part._tag === "ContextTrimmed") {
              // Reported by `trimmed`, with the turns this conversation left out.
              out = Chunk.filter(chunk, (p) => p._tag !== "ContextTrimmed")
            } else if (reply.add(part) && (tools === undefined || !reply.hasCalls())) {
              turn.history.commit([...ours, reply.answer()])
            }
          }
          return out
        })
      )
      const next = tools === undefined ? Stream.empty : Stream.unwrap(Effect.suspend(() => {
        if (!reply.hasCalls()) return Effect.succeed(Stream.empty)
        if (index > tools.maxRounds) return Effect.fail(new ToolRoundsExceeded({ maxRounds: tools.maxRounds }))
        return Effect.map(tools.run(reply.calls()), (results) => {
          pending.splice(0, pending.length, ...ours.slice(1), reply.callMessage(), ...results)
          return round(index + 1)
        })
      }))
      return Stream.concat(Stream.fromIterable(trimmed), Stream.concat(parts, next))
    }))
  return round(1)
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
    // The window leaves out whole turns; a system message among them would be left out too.
    const systemAt = decoded.right.messages.findIndex((m) => m.role === "system")
    if (systemAt >= 0) {
      return yield* new InvalidRequest({
        issues: [`messages.${systemAt}.role: a conversation's system instruction is its own option (system), not a message`]
      })
    }
    const history = makeHistory(contextWindow, system, decoded.right.messages)
    const lock = yield* Effect.makeSemaphore(1)
    /** Holds the conversation for the rest of the scope; waiting for it can be interrupted. */
    const hold: Effect.Effect<void, never, Scope.Scope> = Effect.uninterruptibleMask((restore) =>
      Effect.zipRight(restore(lock.take(1)), Effect.addFinalizer(() => lock.release(1)))
    )
    const turn = <E, R>(input: Input, send: SendOptions, tools: ToolRunner<E, R> | undefined) =>
      Stream.unwrapScoped(Effect.as(hold, runTurn({
        gateway,
        history,
        model: send.model ?? model,
        base: {
          model: send.model ?? model,
          ...(system === undefined ? {} : { systemInstruction: system }),
          ...(send.temperature === undefined ? {} : { temperature: send.temperature }),
          ...(send.maxTokens === undefined ? {} : { maxTokens: send.maxTokens }),
          ...(send.cache === undefined ? {} : { cache: send.cache }),
          ...(tools === undefined ? {} : tools.request)
        }
      }, input, tools)))

    return {
      id,
      model,
      system,
      messages: Effect.sync(() => history.messages.slice()),
      data: Effect.sync((): ConversationData => ({
        id,
        model,
        ...(system === undefined ? {} : { system }),
        messages: history.messages.slice()
      })),
      tokens: (m = model) =>
        Effect.zipWith(history.tally(m), history.frame(m, undefined), ([prefix, n], { fixed }) => fixed + prefix[n]!),
      // Without tools a turn fails only as the gateway does.
      send: (input, send = {}) => turn<never, never>(input, send, undefined) as Stream.Stream<Part, GatewayError>,
      sendWithTools: <const H extends ReadonlyArray<ToolHandler<any, any>>>(input: Input, options: ToolLoopOptions<H>) =>
        Stream.unwrap(
          Effect.map(Effect.context<ContextOf<H[number]>>(), (context) => turn(input, options, toolRunner(options, context)))
        )
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
