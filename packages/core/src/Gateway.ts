/**
 * Gateway: the one entry point. A request flows through template rendering, the input guard,
 * context fitting, the cache, the budget and the transport, and comes back as one typed
 * `Stream` of parts; cost, cache and audit are settled on every exit.
 *
 * @since 0.1.0
 */
import * as RateLimiter from "@effect/experimental/RateLimiter"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as AuditLog from "./AuditLog.js"
import {
  type ChatMessage,
  ChatRequest,
  type ChatRequestInput,
  defaultInputLimits,
  type InputLimits,
  type Cost,
  type FinishReason,
  finishReasonFromWire,
  type OutboundRequest,
  type RedactionCount,
  type Usage,
  type UsageSource
} from "./Chat.js"
import type { ChatChunk, WireUsage } from "./ChatChunk.js"
import * as ContextWindow from "./ContextWindow.js"
import * as CostMeter from "./CostMeter.js"
import {
  type GatewayError,
  InvalidRequest,
  mapServerText,
  RateLimited,
  ReplyTooLarge,
  type TransportError
} from "./GatewayError.js"
import { type Alternative, ContextTrimmed, Finish, type Part, RedactionNotice, TextDelta } from "./Part.js"
import * as RequestIntake from "./internal/requestIntake.js"
import * as PromptTemplate from "./PromptTemplate.js"
import * as ResponseCache from "./ResponseCache.js"
import * as Sanitize from "./internal/sanitize.js"
import * as SafetyFilter from "./SafetyFilter.js"
import * as Transport from "./Transport.js"

/**
 * How the gateway behaves for every request.
 *
 * - `systemInstruction`: the default system message; a request's own `systemInstruction`
 *   overrides it.
 * - `profile`: a label mixed into the cache key, so replies from different upstreams never mix.
 * - `limits`: size limits of a request (see `InputLimits`), checked before anything scans or
 *   tokenizes it; fields left out keep `defaultInputLimits`.
 * - `maxReplyChars`: the most characters one reply may bring, text, refusal and alternatives
 *   together (default `defaultMaxReplyChars`). A longer reply ends with
 *   `ReplyTooLarge{partial: true}` after the text before the limit; the request is still
 *   settled and audited. Independently, a reply is ended with finish reason `length` once it
 *   reaches the completion tokens its budget reservation covers, whatever the server does.
 *
 * @since 0.1.0
 * @category Config
 */
export interface Options {
  readonly systemInstruction?: string | undefined
  readonly profile?: string | undefined
  readonly rateLimit?: RateLimit | undefined
  readonly limits?: Partial<InputLimits> | undefined
  readonly maxReplyChars?: number | undefined
}

/**
 * The default reply-size limit: 1,000,000 characters (about 250,000 tokens of English, twice
 * the largest completion of current models), so it stops only a runaway reply.
 *
 * @since 0.1.0
 * @category Config
 */
export const defaultMaxReplyChars = 1_000_000

/** One request limit from the environment: unset is `None` (the default applies). */
const limitConfig = (name: string): Config.Config<Option.Option<number>> =>
  Config.option(
    Config.integer(name).pipe(
      Config.validate({ message: "Expected a whole number from 1 to 1000000000", validation: (n) => n >= 1 && n <= 1e9 })
    )
  )

/**
 * Where `layerConfig` reads its settings: `LLM_GATEWAY_MAX_REPLY_CHARS`, the reply-size limit
 * in characters (a whole number from 1 to 1e9; default `defaultMaxReplyChars`), and the request
 * limits (`InputLimits`, each a whole number from 1 to 1e9, unset keeps the default):
 * `LLM_GATEWAY_MAX_MESSAGES`, `LLM_GATEWAY_MAX_MESSAGE_CHARS`, `LLM_GATEWAY_MAX_PROMPT_CHARS`,
 * `LLM_GATEWAY_MAX_TEMPLATE_VARIABLES`.
 *
 * @since 0.1.0
 * @category Config
 */
export const config: Config.Config<Options> = Config.all({
  maxReplyChars: Config.integer("LLM_GATEWAY_MAX_REPLY_CHARS").pipe(
    Config.validate({
      message: "Expected a whole number of characters from 1 to 1000000000",
      validation: (n) => n >= 1 && n <= 1e9
    }),
    Config.withDefault(defaultMaxReplyChars)
  ),
  limits: Config.all({
    maxMessages: limitConfig("LLM_GATEWAY_MAX_MESSAGES"),
    maxMessageChars: limitConfig("LLM_GATEWAY_MAX_MESSAGE_CHARS"),
    maxPromptChars: limitConfig("LLM_GATEWAY_MAX_PROMPT_CHARS"),
    maxVariables: limitConfig("LLM_GATEWAY_MAX_TEMPLATE_VARIABLES")
  }).pipe(
    Config.map((read): Partial<InputLimits> => {
      const limits: { -readonly [K in keyof InputLimits]?: number } = {}
      for (const [key, value] of Object.entries(read) as Array<[keyof InputLimits, Option.Option<number>]>) {
        if (Option.isSome(value)) limits[key] = value.value
      }
      return limits
    })
  )
})

/**
 * A client-side request rate limit, applied after the budget and before the transport, with
 * `@effect/experimental`'s `RateLimiter` (the one in the context, or an in-memory one).
 * `onExceeded: "delay"` (the default) waits for the window; `"fail"` fails at once with
 * `RateLimited{retryAfter}`. Genesys Cloud's default is 300 requests per minute per token.
 *
 * @since 0.1.0
 * @category Models
 */
export interface RateLimit {
  readonly limit: number
  readonly window: Duration.DurationInput
  readonly key?: string | undefined
  readonly onExceeded?: "delay" | "fail" | undefined
}

/**
 * A finished reply, collected from the stream by `complete`.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Completion {
  readonly text: string
  readonly finishReason: FinishReason
  readonly usage: Usage
  readonly usageSource: UsageSource
  readonly cost: Cost
  readonly cached: boolean
  readonly requestHash: string
  readonly alternatives: ReadonlyArray<Alternative>
  readonly refusal: string | undefined
  readonly redactions: {
    readonly input: ReadonlyArray<RedactionCount>
    readonly output: ReadonlyArray<RedactionCount>
  }
  readonly droppedMessages: number
}

/**
 * The entry point of the library: sends a chat request through the whole pipeline (template,
 * safety, context, cache, budget, transport, audit) and returns the reply as a stream of parts or
 * collected.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Service {
  /** Streams the reply as parts; the last part of a successful stream is `Finish`. */
  readonly stream: (request: ChatRequestInput) => Stream.Stream<Part, GatewayError>
  /** Runs `stream` to the end and collects the reply. */
  readonly complete: (request: ChatRequestInput) => Effect.Effect<Completion, GatewayError>
}

/**
 * The Gateway service.
 *
 * @since 0.1.0
 * @category Services
 */
export class Gateway extends Context.Tag("@llm-gateway/core/Gateway")<Gateway, Service>() {}

const zeroCost: Cost = { promptUsd: 0, completionUsd: 0, totalUsd: 0 }

/** Mutable bookkeeping of one request, read by the finalizer whatever the exit. */
interface RequestState {
  requestId: string
  model: string
  startedAt: number
  requestHash: string
  cached: boolean
  inputRedactions: ReadonlyArray<RedactionCount>
  outputRedactions: ReadonlyArray<RedactionCount>
  droppedMessages: number
  promptTokens: number
  reservation: CostMeter.Reservation | undefined
  /** The completion tokens the reservation covers: the reply is ended there. */
  maxCompletion: number
  /** Completion tokens counted so far, over the raw text that came before `uncounted`. */
  completionTokens: number
  /** Raw reply text not counted yet (a bounded slice): never stored or logged. */
  uncounted: string
  /** Characters of text, refusal and alternatives received, against `maxReplyChars`. */
  replyChars: number
  /** The client ended the reply at the reserved completion tokens. */
  cut: boolean
  receivedChunk: boolean
  finish: Finish | undefined
  flight: Deferred.Deferred<FlightOutcome> | undefined
  /** This request already waited on an attempt that failed: a second failure is its own. */
  afterFailedFlight: boolean
  /** The gateway reported usage costing more than the reservation. */
  usageOverReservation: boolean
}

/**
 * How an attempt ended, for the identical requests waiting on it: its reply; its typed
 * failure; `Retry` (it was interrupted: elect a new leader); `Alone` (no shareable reply: each
 * goes upstream on its own).
 */
type FlightOutcome =
  | { readonly _tag: "Reply"; readonly reply: ResponseCache.CachedReply }
  | { readonly _tag: "Failed"; readonly error: GatewayError }
  | { readonly _tag: "Retry" }
  | { readonly _tag: "Alone" }

/** Marks where the body was ended on purpose (reservation reached, reply too large). */
const stopMarker = { _tag: "Stop" } as const
const notStop = (part: Part | typeof stopMarker): part is Part => part !== stopMarker

/** Raw text is counted in slices of about this many characters as it streams. */
const sliceChars = 2_048
/** Near the end of the reservation every piece is counted: slices are kept this short. */
const nearSliceChars = 256
/** Replies longer than this (redacted characters) are streamed but neither cached nor shared. */
const shareableReplyChars = 100_000
/** The most choices (alternatives) one reply may have. */
const maxChoices = 128

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff

/**
 * Where a slice of raw text may be cut for counting: before the last space that follows a
 * non-space (tokenizers split there anyway, so the sum of the slices' counts matches the
 * whole), else anywhere outside a surrogate pair.
 */
const countableEnd = (text: string): number => {
  for (let i = text.lastIndexOf(" "); i > 0; i = text.lastIndexOf(" ", i - 1)) {
    if (!/\s/.test(text.charAt(i - 1))) return i
  }
  return isHighSurrogate(text.charCodeAt(text.length - 1)) ? text.length - 1 : text.length
}

/** The gateway's usage numbers, or `undefined` when they are beyond any real count. */
const trustedUsage = (usage: WireUsage): Usage | undefined =>
  Number.isSafeInteger(usage.prompt_tokens) && Number.isSafeInteger(usage.completion_tokens) &&
    Number.isSafeInteger(usage.total_tokens)
    ? { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens, totalTokens: usage.total_tokens }
    : undefined

/** At most this many issues are reported, each cut to `maxIssueLength` characters. */
const maxIssues = 20
const maxIssueLength = 300

/**
 * The issues of a failed decode, as field paths and messages without values. The input was
 * copied by `RequestIntake.intake` first, so it is plain and shallow; the `try` still keeps a
 * surprise in formatting from becoming a defect.
 */
const formatIssues = (error: ParseResult.ParseError): ReadonlyArray<string> => {
  try {
    const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
    const lines = issues.slice(0, maxIssues).map((issue) => {
      const path = issue.path.length === 0
        ? "request"
        : issue.path.map((key) => typeof key === "symbol" ? "[symbol]" : String(key)).join(".")
      // Drop the ", actual …" tail: the actual value may be prompt text.
      const message = issue.message.replace(/,\s*actual[\s\S]*$/, "")
      const line = `${path}: ${message}`
      return line.length > maxIssueLength ? `${line.slice(0, maxIssueLength - 3)}...` : line
    })
    if (issues.length > maxIssues) lines.push(`and ${issues.length - maxIssues} more`)
    return lines
  } catch {
    return ["request: could not be decoded"]
  }
}


/**
 * The effective system instruction and the conversation without system messages. A request's
 * `systemInstruction` replaces the default; system messages inside the conversation are
 * appended to whichever applies, never silently replacing the operator's default.
 */
const splitSystem = (
  request: ChatRequest,
  defaultSystem: string | undefined
): { readonly system: string | undefined; readonly messages: ReadonlyArray<ChatMessage> } => {
  const parts = [request.systemInstruction ?? defaultSystem]
  for (const m of request.messages) if (m.role === "system") parts.push(m.content)
  const present = parts.filter((p): p is string => p !== undefined && p.length > 0)
  return {
    system: present.length === 0 ? undefined : present.join("\n\n"),
    messages: request.messages.filter((m) => m.role !== "system")
  }
}

const mergeCounts = (
  a: ReadonlyArray<RedactionCount>,
  b: ReadonlyArray<RedactionCount>
): ReadonlyArray<RedactionCount> => {
  if (b.length === 0) return a
  if (a.length === 0) return b
  const totals = new Map<string, number>()
  for (const r of [...a, ...b]) totals.set(r.kind, (totals.get(r.kind) ?? 0) + r.count)
  return Array.from(totals, ([kind, count]) => ({ kind, count }))
}

let requestCounter = 0
const nextRequestId = (now: number) => `${now.toString(36)}-${(requestCounter++).toString(36)}`

/**
 * The services the gateway is built from (Auth is the transport's own requirement).
 *
 * @since 0.1.0
 * @category Models
 */
export type Requirements =
  | Transport.GatewayTransport
  | SafetyFilter.SafetyFilter
  | ContextWindow.ContextWindow
  | ResponseCache.ResponseCache
  | CostMeter.CostMeter
  | AuditLog.AuditLog

/**
 * Builds the gateway from its services.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options: Options = {}): Effect.Effect<Service, never, Requirements> =>
  Effect.gen(function*() {
    const transport = yield* Transport.GatewayTransport
    const safety = yield* SafetyFilter.SafetyFilter
    const contextWindow = yield* ContextWindow.ContextWindow
    const cache = yield* ResponseCache.ResponseCache
    const costMeter = yield* CostMeter.CostMeter
    const audit = yield* AuditLog.AuditLog
    const maxReplyChars = options.maxReplyChars ?? defaultMaxReplyChars
    if (!(Number.isInteger(maxReplyChars) && maxReplyChars >= 1 && maxReplyChars <= 1e9)) {
      return yield* Effect.dieMessage("Gateway: maxReplyChars must be a whole number of characters from 1 to 1000000000")
    }
    const rateLimit = options.rateLimit
    const limiter = rateLimit === undefined ? undefined : yield* Effect.serviceOption(RateLimiter.RateLimiter).pipe(
      Effect.flatMap(Option.match({
        onSome: Effect.succeed,
        onNone: () => RateLimiter.make.pipe(Effect.provide(RateLimiter.layerStoreMemory))
      }))
    )
    const throttle: Effect.Effect<void, RateLimited> = rateLimit === undefined || limiter === undefined
      ? Effect.void
      : limiter.consume({
        key: rateLimit.key ?? "@llm-gateway/core/Gateway",
        limit: rateLimit.limit,
        window: rateLimit.window,
        onExceeded: rateLimit.onExceeded ?? "delay"
      }).pipe(
        Effect.flatMap(({ delay }) => Duration.isZero(delay) ? Effect.void : Effect.sleep(delay)),
        Effect.catchAll((error) =>
          error.reason === "Exceeded"
            ? Effect.fail(
              new RateLimited({ status: 429, code: "client_rate_limit", retryAfter: error.retryAfter })
            )
            // A broken limiter store must not stop traffic: let the request through, loudly.
            : Effect.logWarning("Gateway: the rate limiter store failed; the request was not throttled")
        )
      )
    // Identical requests in flight share one upstream call (DESIGN invariant 4).
    const inFlight = new Map<string, Deferred.Deferred<FlightOutcome>>()

    const replay = (state: RequestState, reply: ResponseCache.CachedReply): Stream.Stream<Part> => {
      state.cached = true
      state.finish = new Finish({
        reason: reply.finishReason,
        usage: reply.usage,
        usageSource: reply.usageSource,
        cost: zeroCost,
        cached: true,
        requestHash: state.requestHash,
        alternatives: reply.alternatives,
        ...(reply.refusal === undefined ? {} : { refusal: reply.refusal })
      })
      const parts: Array<Part> = []
      if (reply.text.length > 0) parts.push(new TextDelta({ text: reply.text }))
      const redactions = reply.outputRedactions ?? []
      state.outputRedactions = redactions
      if (redactions.length > 0) parts.push(new RedactionNotice({ direction: "output", redactions }))
      parts.push(state.finish)
      return Stream.fromIterable(parts)
    }

    // Field paths can hold user text (a variable's name), so issues pass the redactor too.
    const limits: InputLimits = { ...defaultInputLimits, ...options.limits }
    for (const [name, value] of Object.entries(limits)) {
      if (!Number.isSafeInteger(value) || value < 1) {
        return yield* Effect.dieMessage(`Gateway option limits.${name} must be a positive integer`)
      }
    }
    // The request is copied into plain data first (sizes checked, hostile objects defused), so
    // neither decoding nor formatting its issues can recurse without bound or call its code.
    const decodeRequest = (input: ChatRequestInput) =>
      Effect.suspend(() => {
        const plain = RequestIntake.intake(input, limits)
        if (plain._tag === "Issues") {
          return Effect.fail(new InvalidRequest({ issues: plain.issues.map((issue) => safety.redact(issue).text) }))
        }
        return Schema.decodeUnknown(ChatRequest)(plain.value).pipe(
          Effect.mapError((error) =>
            new InvalidRequest({ issues: formatIssues(error).map((issue) => safety.redact(issue).text) })
          )
        )
      })
    /** Bounds the rendered template before it is built: `$a$a$a…` can multiply a long variable. */
    const checkRendered = (prompt: { readonly template: string; readonly variables: PromptTemplate.Variables }) =>
      Effect.suspend(() => {
        const length = PromptTemplate.renderedLength(prompt.template, prompt.variables)
        return length > limits.maxMessageChars
          ? Effect.fail(new InvalidRequest({
            issues: [
              `prompt: the rendered template would have ${length} characters, more than the limit of ${limits.maxMessageChars} (maxMessageChars)`
            ]
          }))
          : Effect.void
      })
    /** Bounds the whole prompt, default system instruction included, before the guard scans it. */
    const checkPromptSize = (split: { readonly system: string | undefined; readonly messages: ReadonlyArray<ChatMessage> }) =>
      Effect.suspend(() => {
        let total = split.system?.length ?? 0
        for (const m of split.messages) total += m.content.length + (m.name?.length ?? 0)
        return total > limits.maxPromptChars
          ? Effect.fail(new InvalidRequest({
            issues: [`request: the prompt has ${total} characters, more than the limit of ${limits.maxPromptChars} (maxPromptChars)`]
          }))
          : Effect.void
      })

    /**
     * A gateway's error text may echo the prompt or the reply. The transport's sanitizer
     * removes our secrets and redacts with the built-in recognizers and, given
     * `policyRedaction` (provided around the transport stream), with the caller's own policy,
     * before it cuts. `redactError` applies the policy once more to every field, for errors
     * built outside that stream (the token endpoint's).
     */
    const policyRedaction = (text: string): string => safety.redact(text).text
    const redactError = (error: TransportError): TransportError => mapServerText(error, policyRedaction)

    /**
     * Settles the request's reservation exactly once: uninterruptible, and cleared only after
     * the meter has recorded it.
     */
    const settle = (state: RequestState, usage: Usage | undefined): Effect.Effect<Cost> =>
      Effect.uninterruptible(Effect.suspend(() => {
        const reservation = state.reservation
        if (reservation === undefined) return Effect.succeed(zeroCost)
        return costMeter.settle(reservation, usage).pipe(
          Effect.tap(() => {
            state.reservation = undefined
          })
        )
      }))

    /**
     * Waits for an identical request in flight, or becomes the one in flight (`None`). Looking
     * up and claiming the flight is one synchronous step, so two requests can never both lead.
     * When the attempt waited on fails, the waiting requests elect the first of them to lead a
     * new attempt and the rest join it; if that one fails too, they fail with its error, so
     * any number of identical requests make at most two attempts upstream.
     */
    const joinFlight = (
      state: RequestState
    ): Effect.Effect<Option.Option<ResponseCache.CachedReply>, GatewayError> =>
      Effect.flatMap(
        Effect.sync(() => {
          const current = inFlight.get(state.requestHash)
          if (current !== undefined) return current
          const flight = Deferred.unsafeMake<FlightOutcome>(FiberId.none)
          inFlight.set(state.requestHash, flight)
          state.flight = flight
          return undefined
        }),
        (leader) =>
          leader === undefined ? Effect.succeedNone : Effect.flatMap(
            Deferred.await(leader),
            (outcome): Effect.Effect<Option.Option<ResponseCache.CachedReply>, GatewayError> => {
              switch (outcome._tag) {
                case "Reply":
                  return Effect.succeedSome(outcome.reply)
                case "Alone":
                  return Effect.succeedNone
                case "Retry":
                  return joinFlight(state)
                case "Failed":
                  if (state.afterFailedFlight) return Effect.fail(outcome.error)
                  state.afterFailedFlight = true
                  return joinFlight(state)
              }
            }
          )
      )

    /** Counts the head of `state.uncounted` up to a cut the tokenizers agree with. */
    const countHead = (state: RequestState): Effect.Effect<void> =>
      Effect.suspend(() => {
        const text = state.uncounted
        const end = countableEnd(text)
        if (end === 0) return Effect.void
        return Effect.map(contextWindow.countText(state.model, text.slice(0, end)), (n) => {
          state.completionTokens += n
          state.uncounted = text.slice(end)
        })
      })

    /** The longest prefix of `piece` that keeps `before + prefix` within `room` tokens. */
    const longestFit = (model: string, before: string, piece: string, room: number): Effect.Effect<number> =>
      Effect.gen(function*() {
        let fits = 0
        let over = piece.length
        while (over - fits > 1) {
          const mid = (fits + over) >>> 1
          if ((yield* contextWindow.countText(model, before + piece.slice(0, mid))) <= room) fits = mid
          else over = mid
        }
        return fits > 0 && isHighSurrogate(piece.charCodeAt(fits - 1)) ? fits - 1 : fits
      })

    /**
     * Counts a raw piece of the reply against the reservation as it streams, and returns the
     * part of it that fits (all of it, until the end of the reservation), marking the request
     * `cut` when the reserved completion tokens are reached. Text is counted in bounded slices,
     * and only where the reservation could be reached is every piece counted at once.
     */
    const admit = (state: RequestState, piece: string): Effect.Effect<string> => {
      state.uncounted += piece
      const room = state.maxCompletion - state.completionTokens
      // A token is at least one UTF-8 byte, so there are at most 3 per UTF-16 unit.
      if (3 * state.uncounted.length <= room) {
        return state.uncounted.length < sliceChars ? Effect.succeed(piece) : Effect.as(countHead(state), piece)
      }
      return Effect.flatMap(contextWindow.countText(state.model, state.uncounted), (n) => {
        if (n <= room) {
          return state.uncounted.length < nearSliceChars ? Effect.succeed(piece) : Effect.as(countHead(state), piece)
        }
        const before = state.uncounted.slice(0, state.uncounted.length - piece.length)
        return Effect.map(longestFit(state.model, before, piece, room), (fits) => {
          state.uncounted = before + piece.slice(0, fits)
          state.cut = true
          return piece.slice(0, fits)
        })
      })
    }

    const upstream = (
      state: RequestState,
      outbound: OutboundRequest,
      useCache: boolean
    ): Stream.Stream<Part, GatewayError> =>
      Stream.unwrap(Effect.gen(function*() {
        const redactor = yield* safety.outputRedactor
        let finishReason: FinishReason | undefined
        let gatewayUsage: Usage | undefined
        let stop: ReplyTooLarge | undefined
        // The redacted reply, kept only to be cached or shared, and only while it is short.
        let kept: string | undefined = useCache ? "" : undefined
        const keep = (text: string) => {
          if (kept === undefined) return
          kept = kept.length + text.length > shareableReplyChars ? undefined : kept + text
        }
        // Refusal and alternatives are redacted as they stream too: only redacted text is held.
        let refusal: { readonly redactor: SafetyFilter.OutputRedactor; text: string } | undefined
        const others = new Map<
          number,
          { readonly redactor: SafetyFilter.OutputRedactor; text: string; finishReason: FinishReason | undefined }
        >()
        const ended = () => state.cut || stop !== undefined

        /** A raw piece, within the reply-size limit and the reservation, or `""`. */
        const take = (piece: string): Effect.Effect<string> => {
          if (state.replyChars + piece.length > maxReplyChars) {
            stop = new ReplyTooLarge({ limitChars: maxReplyChars, partial: true })
            return Effect.succeed("")
          }
          state.replyChars += piece.length
          return admit(state, piece)
        }

        const onChunks = (chunks: Chunk.Chunk<ChatChunk>): Effect.Effect<Chunk.Chunk<Part | typeof stopMarker>> =>
          Effect.gen(function*() {
            const out: Array<Part | typeof stopMarker> = []
            for (const chunk of chunks) {
              state.receivedChunk = true
              if (chunk.usage) {
                const usage = trustedUsage(chunk.usage)
                if (usage !== undefined) gatewayUsage = usage
                else yield* Effect.logWarning("Gateway: the gateway reported usage beyond any real count; the tokenizer's count is used")
              }
              for (const choice of chunk.choices) {
                if (ended()) break
                const content = choice.delta.content
                if (choice.index === 0) {
                  if (typeof content === "string" && content.length > 0) {
                    const raw = yield* take(content)
                    const safe = raw.length > 0 ? redactor.push(raw) : ""
                    if (safe.length > 0) {
                      keep(safe)
                      // Built unchecked: a string by construction, and this is the token path.
                      out.push(new TextDelta({ text: safe }, true))
                    }
                  }
                  const refused = choice.delta.refusal
                  if (typeof refused === "string" && refused.length > 0 && !ended()) {
                    const raw = yield* take(refused)
                    if (raw.length > 0) {
                      refusal ??= { redactor: yield* safety.outputRedactor, text: "" }
                      refusal.text += refusal.redactor.push(raw)
                    }
                  }
                  if (typeof choice.finish_reason === "string") finishReason = finishReasonFromWire(choice.finish_reason)
                } else {
                  let other = others.get(choice.index)
                  if (other === undefined) {
                    if (others.size + 1 >= maxChoices) {
                      stop = new ReplyTooLarge({ limitChars: maxReplyChars, partial: true })
                      break
                    }
                    other = { redactor: yield* safety.outputRedactor, text: "", finishReason: undefined }
                    others.set(choice.index, other)
                  }
                  if (typeof content === "string" && content.length > 0) {
                    const raw = yield* take(content)
                    if (raw.length > 0) other.text += other.redactor.push(raw)
                  }
                  if (typeof choice.finish_reason === "string") {
                    other.finishReason = finishReasonFromWire(choice.finish_reason)
                  }
                }
              }
              if (ended()) {
                out.push(stopMarker)
                break
              }
            }
            return Chunk.unsafeFromArray(out)
          })

        /**
         * Ends every redactor: the main text's tail, the alternatives, the refusal, the counts.
         * After a failure the tail is withheld, not delivered: it is the text that could still
         * have become part of a match (an address cut in half), and the reply will never say.
         * It is accounted for as `withheld` (its length in characters) in the output counts.
         */
        const closeRedactors = (failed: boolean) => {
          const tail = redactor.end()
          if (tail.length > 0 && !failed) keep(tail)
          let outputRedactions = redactor.redactions()
          if (failed && tail.length > 0) outputRedactions = mergeCounts(outputRedactions, [{ kind: "withheld", count: tail.length }])
          const alternatives: Array<Alternative> = []
          for (const [index, other] of [...others].sort(([a], [b]) => a - b)) {
            other.text += other.redactor.end()
            outputRedactions = mergeCounts(outputRedactions, other.redactor.redactions())
            alternatives.push(
              other.finishReason === undefined
                ? { index, text: other.text }
                : { index, text: other.text, finishReason: other.finishReason }
            )
          }
          let refusalText: string | undefined = undefined
          if (refusal !== undefined) {
            refusalText = refusal.text + refusal.redactor.end()
            outputRedactions = mergeCounts(outputRedactions, refusal.redactor.redactions())
          }
          state.outputRedactions = outputRedactions
          const parts: Array<Part> = []
          if (tail.length > 0 && !failed) parts.push(new TextDelta({ text: tail }))
          if (outputRedactions.length > 0) {
            parts.push(new RedactionNotice({ direction: "output", redactions: outputRedactions }))
          }
          return { parts, alternatives, refusal: refusalText }
        }

        const finishing = Effect.gen(function*() {
          const closed = closeRedactors(false)
          const parts = closed.parts
          const { alternatives, refusal } = closed
          let usage: Usage
          let usageSource: UsageSource
          if (gatewayUsage !== undefined && !state.cut) {
            usage = gatewayUsage
            usageSource = "gateway"
            // What the server reports is what it bills: recorded, and flagged when above the hold.
            const held = state.reservation?.amountUsd
            if (held !== undefined && costMeter.price(state.model, usage).totalUsd > held) {
              state.usageOverReservation = true
            }
          } else {
            const completionTokens = state.completionTokens + (yield* contextWindow.countText(outbound.model, state.uncounted))
            state.completionTokens = completionTokens
            state.uncounted = ""
            usage = {
              promptTokens: state.promptTokens,
              completionTokens,
              totalTokens: state.promptTokens + completionTokens
            }
            usageSource = "tokenizer"
          }
          const cost = yield* settle(state, usage)
          const reason = state.cut ? "length" : finishReason ?? "stop"
          state.finish = new Finish({
            reason,
            usage,
            usageSource,
            cost,
            cached: false,
            requestHash: state.requestHash,
            alternatives,
            ...(refusal === undefined ? {} : { refusal })
          })
          if (kept !== undefined) {
            const reply: ResponseCache.CachedReply = {
              text: kept,
              finishReason: reason,
              usage,
              usageSource,
              alternatives,
              ...(refusal === undefined ? {} : { refusal }),
              ...(state.outputRedactions.length === 0 ? {} : { outputRedactions: state.outputRedactions }),
              storedAt: yield* Clock.currentTimeMillis
            }
            // A reply the client cut is shared with identical requests in flight, not stored:
            // the server never finished it.
            if (!state.cut) yield* cache.set(state.requestHash, reply)
            if (state.flight !== undefined) yield* Deferred.succeed(state.flight, { _tag: "Reply", reply })
          }
          parts.push(state.finish)
          return parts
        })

        return transport.stream(outbound).pipe(
          Stream.provideService(Sanitize.PolicyRedaction, policyRedaction),
          Stream.mapError(redactError),
          Stream.mapChunksEffect(onChunks),
          // Ends the body as soon as the reply is cut: the connection closes, nothing more is read.
          Stream.takeWhile(notStop),
          Stream.concat(Stream.fromIterableEffect(Effect.suspend(() => stop === undefined ? finishing : Effect.fail(stop)))),
          // On a failure the output counts (the withheld tail included) reach the caller first.
          Stream.catchAll((error) => Stream.concat(Stream.fromIterable(closeRedactors(true).parts), Stream.fail(error)))
        )
      }))

    const prepare = (input: ChatRequestInput, state: RequestState) =>
      Effect.gen(function*() {
        const request = yield* decodeRequest(input)
        state.model = request.model
        let messages: ReadonlyArray<ChatMessage> = request.messages
        if (request.prompt !== undefined) {
          yield* checkRendered(request.prompt)
          const content = yield* PromptTemplate.substitute(request.prompt.template, request.prompt.variables)
          messages = [...messages, { role: "user", content }]
        }
        const split = splitSystem({ ...request, messages }, options.systemInstruction)
        yield* checkPromptSize(split)
        if (!split.messages.some((m) => m.role === "user")) {
          return yield* new InvalidRequest({ issues: ["messages: the conversation has no user message to answer"] })
        }
        const guarded = yield* safety.guardInput(split)
        state.inputRedactions = guarded.redactions
        const fitted = yield* contextWindow.fit({
          model: request.model,
          system: guarded.system,
          messages: guarded.messages,
          reserveForReply: request.maxTokens
        })
        state.droppedMessages = fitted.droppedMessages
        state.promptTokens = fitted.promptTokens
        const outbound: OutboundRequest = {
          model: request.model,
          system: guarded.system,
          messages: fitted.messages,
          temperature: request.temperature,
          maxTokens: request.maxTokens
        }
        // The policy takes part: a reply redacted under another policy is never replayed here.
        state.requestHash = ResponseCache.requestKey({ ...outbound, profile: options.profile, policy: safety.fingerprint })

        const prelude: Array<Part> = []
        if (guarded.redactions.length > 0) {
          prelude.push(new RedactionNotice({ direction: "input", redactions: guarded.redactions }))
        }
        if (fitted.droppedMessages > 0) {
          prelude.push(
            new ContextTrimmed({
              droppedMessages: fitted.droppedMessages,
              promptTokens: fitted.promptTokens,
              limit: fitted.limit
            })
          )
        }

        const useCache = request.cache !== false
        if (useCache) {
          const hit = yield* cache.get(state.requestHash).pipe(
            Effect.flatMap((stored) => Option.isSome(stored) ? Effect.succeed(stored) : joinFlight(state))
          )
          if (Option.isSome(hit)) {
            return Stream.concat(Stream.fromIterable(prelude), replay(state, hit.value))
          }
        }
        const maxCompletion = request.maxTokens ?? (yield* contextWindow.modelInfo(request.model)).maxOutputTokens
        state.maxCompletion = maxCompletion
        // Recorded in the same uninterruptible step, so an interruption cannot orphan the hold.
        yield* Effect.uninterruptible(
          costMeter.reserve(request.model, fitted.promptTokens, maxCompletion).pipe(
            Effect.tap((reservation) => {
              state.reservation = reservation
            })
          )
        )
        yield* throttle
        const reply = upstream(state, outbound, useCache)
        if (state.flight === undefined) return Stream.concat(Stream.fromIterable(prelude), reply)
        // Identical requests wait for this one to finish, so its upstream starts now and runs
        // ahead of its own consumer: a consumer pulling both (zip, interleave) cannot deadlock.
        // The queue holds at most one reply, which the transport's timeouts bound; it is
        // interrupted with this stream's scope.
        const queue = yield* Stream.toQueue(reply, { strategy: "unbounded" })
        return Stream.concat(Stream.fromIterable(prelude), Stream.flattenTake(Stream.fromQueue(queue)))
      })

    /** Settles cost, releases waiters and writes the audit entry, whatever the exit. */
    const finalize = (state: RequestState, exit: Exit.Exit<unknown, GatewayError>) =>
      Effect.gen(function*() {
        const finish = state.finish
        const succeeded = Exit.isSuccess(exit) && finish !== undefined
        if (state.flight !== undefined) {
          // Released first, so that nothing below can leave identical requests waiting. A
          // delivered reply was already shared; otherwise the waiting requests learn why not.
          if (inFlight.get(state.requestHash) === state.flight) inFlight.delete(state.requestHash)
          const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
          yield* Deferred.succeed(
            state.flight,
            Option.isSome(failure)
              ? { _tag: "Failed", error: failure.value }
              : Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)
              ? { _tag: "Retry" }
              : { _tag: "Alone" }
          )
        }
        if (state.reservation !== undefined) {
          // A request that reached the gateway may be billed for what it sent and received:
          // what was counted as it streamed, plus the short slice not counted yet.
          const usage = state.receivedChunk
            ? yield* contextWindow.countText(state.model, state.uncounted).pipe(
              Effect.map((rest): Usage => {
                const completionTokens = state.completionTokens + rest
                return {
                  promptTokens: state.promptTokens,
                  completionTokens,
                  totalTokens: state.promptTokens + completionTokens
                }
              })
            )
            : undefined
          yield* settle(state, usage).pipe(
            Effect.catchAllCause((cause) =>
              Effect.logError("Gateway: settling the cost reservation failed", Cause.pretty(cause))
            )
          )
        }
        // A typed failure names its tag; a defect is a failure too; interruption (or a
        // consumer that stopped reading before Finish) is "interrupted".
        const errorTag = Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)
          ? Option.match(Cause.failureOption(exit.cause), { onNone: () => "Defect", onSome: (e) => e._tag })
          : undefined
        const now = yield* Clock.currentTimeMillis
        const entry: AuditLog.AuditEntry = {
          requestId: state.requestId,
          timestamp: new Date(now).toISOString(),
          requestHash: state.requestHash,
          model: state.model,
          outcome: succeeded ? "success" : errorTag !== undefined ? "failure" : "interrupted",
          ...(errorTag !== undefined ? { errorTag } : {}),
          ...(finish !== undefined
            ? {
              finishReason: finish.reason,
              usage: finish.usage,
              usageSource: finish.usageSource,
              cost: finish.cost
            }
            : {}),
          ...(state.usageOverReservation ? { usageOverReservation: true } : {}),
          cached: state.cached,
          inputRedactions: state.inputRedactions,
          outputRedactions: state.outputRedactions,
          droppedMessages: state.droppedMessages,
          durationMs: now - state.startedAt
        }
        // The audit entry must not turn a delivered reply into a failure, nor be skipped quietly.
        yield* audit.append(entry).pipe(
          Effect.catchAllCause((cause) =>
            Effect.logError("Gateway: appending the audit entry failed", Cause.pretty(cause)).pipe(
              Effect.annotateLogs({ requestId: entry.requestId, outcome: entry.outcome })
            )
          )
        )
      })

    const stream = (input: ChatRequestInput): Stream.Stream<Part, GatewayError> =>
      Stream.suspend(() => {
        const state: RequestState = {
          requestId: "",
          model: RequestIntake.modelIdOf(input),
          startedAt: 0,
          requestHash: "",
          cached: false,
          inputRedactions: [],
          outputRedactions: [],
          droppedMessages: 0,
          promptTokens: 0,
          reservation: undefined,
          maxCompletion: 0,
          completionTokens: 0,
          uncounted: "",
          replyChars: 0,
          cut: false,
          receivedChunk: false,
          finish: undefined,
          flight: undefined,
          afterFailedFlight: false,
          usageOverReservation: false
        }
        const start = Clock.currentTimeMillis.pipe(
          Effect.tap((now) => {
            state.startedAt = now
            state.requestId = nextRequestId(now)
          })
        )
        return Stream.unwrapScoped(Effect.zipRight(start, prepare(input, state))).pipe(
          Stream.ensuringWith((exit) => finalize(state, exit as Exit.Exit<unknown, GatewayError>))
        )
      })

    const complete = (input: ChatRequestInput): Effect.Effect<Completion, GatewayError> =>
      Effect.suspend(() => {
        let text = ""
        let inputRedactions: ReadonlyArray<RedactionCount> = []
        let output: ReadonlyArray<RedactionCount> = []
        let dropped = 0
        let finish: Finish | undefined
        return stream(input).pipe(
          Stream.runForEach((part) =>
            Effect.sync(() => {
              switch (part._tag) {
                case "TextDelta":
                  text += part.text
                  break
                case "RedactionNotice":
                  if (part.direction === "input") inputRedactions = part.redactions
                  else output = part.redactions
                  break
                case "ContextTrimmed":
                  dropped = part.droppedMessages
                  break
                case "Finish":
                  finish = part
                  break
              }
            })
          ),
          Effect.map((): Completion => {
            // A successful stream always ends with Finish.
            const done = finish!
            return {
              text,
              finishReason: done.reason,
              usage: done.usage,
              usageSource: done.usageSource,
              cost: done.cost,
              cached: done.cached,
              requestHash: done.requestHash,
              alternatives: done.alternatives,
              refusal: done.refusal,
              redactions: { input: inputRedactions, output },
              droppedMessages: dropped
            }
          })
        )
      })

    return Gateway.of({ stream, complete })
  })

/**
 * The gateway as a Layer over its services.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: Options = {}): Layer.Layer<Gateway, never, Requirements> =>
  Layer.effect(Gateway, make(options))

/**
 * The gateway as a Layer, configured from the environment (see `config`); `options` given in
 * code win over it. A malformed setting fails the Layer with a `ConfigError` naming the
 * variable.
 *
 * @example
 * import { Gateway } from "@llm-gateway/core"
 *
 * // LLM_GATEWAY_MAX_REPLY_CHARS=200000
 * const GatewayLive = Gateway.layerConfig({ systemInstruction: "Be brief." })
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerConfig = (
  options: Options = {}
): Layer.Layer<Gateway, ConfigError.ConfigError, Requirements> =>
  Layer.effect(
    Gateway,
    Effect.flatMap(config, (fromEnv) =>
      make({
        ...options,
        maxReplyChars: options.maxReplyChars ?? fromEnv.maxReplyChars,
        limits: { ...fromEnv.limits, ...options.limits }
      }))
  )

/**
 * Streams a reply through the `Gateway` in the context.
 *
 * @since 0.1.0
 * @category Accessors
 */
export const stream = (request: ChatRequestInput): Stream.Stream<Part, GatewayError, Gateway> =>
  Stream.unwrap(Effect.map(Gateway, (gateway) => gateway.stream(request)))

/**
 * Collects a reply through the `Gateway` in the context.
 *
 * @since 0.1.0
 * @category Accessors
 */
export const complete = (request: ChatRequestInput): Effect.Effect<Completion, GatewayError, Gateway> =>
  Effect.flatMap(Gateway, (gateway) => gateway.complete(request))
