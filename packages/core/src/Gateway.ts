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
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
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
import type { ChatChunk } from "./ChatChunk.js"
import * as ContextWindow from "./ContextWindow.js"
import * as CostMeter from "./CostMeter.js"
import { type GatewayError, InvalidRequest, mapServerText, RateLimited, type TransportError } from "./GatewayError.js"
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
 *
 * @since 0.1.0
 */
export interface Options {
  readonly systemInstruction?: string | undefined
  readonly profile?: string | undefined
  readonly rateLimit?: RateLimit | undefined
  readonly limits?: Partial<InputLimits> | undefined
}

/**
 * A client-side request rate limit, applied after the budget and before the transport, with
 * `@effect/experimental`'s `RateLimiter` (the one in the context, or an in-memory one).
 * `onExceeded: "delay"` (the default) waits for the window; `"fail"` fails at once with
 * `RateLimited{retryAfter}`. Genesys Cloud's default is 300 requests per minute per token.
 *
 * @since 0.1.0
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
 * @since 0.1.0
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
  /** Raw completion text received so far: counted for usage, never stored or logged. */
  rawText: string
  receivedChunk: boolean
  finish: Finish | undefined
  flight: Deferred.Deferred<Option.Option<ResponseCache.CachedReply>> | undefined
}

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
 */
export const make = (options: Options = {}): Effect.Effect<Service, never, Requirements> =>
  Effect.gen(function*() {
    const transport = yield* Transport.GatewayTransport
    const safety = yield* SafetyFilter.SafetyFilter
    const contextWindow = yield* ContextWindow.ContextWindow
    const cache = yield* ResponseCache.ResponseCache
    const costMeter = yield* CostMeter.CostMeter
    const audit = yield* AuditLog.AuditLog
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
    const inFlight = new Map<string, Deferred.Deferred<Option.Option<ResponseCache.CachedReply>>>()

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

    /** Waits for an identical request in flight, or becomes the one in flight (`None`). */
    const joinFlight = (
      state: RequestState
    ): Effect.Effect<Option.Option<ResponseCache.CachedReply>> =>
      Effect.suspend(() => {
        const leader = inFlight.get(state.requestHash)
        if (leader === undefined) {
          return Deferred.make<Option.Option<ResponseCache.CachedReply>>().pipe(
            Effect.map((flight) => {
              inFlight.set(state.requestHash, flight)
              state.flight = flight
              return Option.none()
            })
          )
        }
        // Without a reply from the leader (it failed or was stopped), each waiting request goes
        // upstream on its own, at once: queueing them behind one another would multiply waits.
        return Deferred.await(leader)
      })

    const upstream = (
      state: RequestState,
      outbound: OutboundRequest,
      useCache: boolean
    ): Stream.Stream<Part, GatewayError> =>
      Stream.unwrap(Effect.gen(function*() {
        const redactor = yield* safety.outputRedactor
        let finishReason: FinishReason | undefined
        let gatewayUsage: Usage | undefined
        let redactedText = ""
        let rawRefusal = ""
        const others = new Map<number, { text: string; finishReason: FinishReason | undefined }>()

        const onChunks = (chunks: Iterable<ChatChunk>): Array<Part> => {
          const out: Array<Part> = []
          for (const chunk of chunks) {
            state.receivedChunk = true
            if (chunk.usage) {
              gatewayUsage = {
                promptTokens: chunk.usage.prompt_tokens,
                completionTokens: chunk.usage.completion_tokens,
                totalTokens: chunk.usage.total_tokens
              }
            }
            for (const choice of chunk.choices) {
              const content = choice.delta.content
              if (choice.index === 0) {
                if (typeof content === "string" && content.length > 0) {
                  state.rawText += content
                  const safe = redactor.push(content)
                  if (safe.length > 0) {
                    redactedText += safe
                    out.push(new TextDelta({ text: safe }))
                  }
                }
                const refusal = choice.delta.refusal
                if (typeof refusal === "string") rawRefusal += refusal
                if (typeof choice.finish_reason === "string") finishReason = finishReasonFromWire(choice.finish_reason)
              } else {
                let other = others.get(choice.index)
                if (other === undefined) {
                  other = { text: "", finishReason: undefined }
                  others.set(choice.index, other)
                }
                if (typeof content === "string") other.text += content
                if (typeof choice.finish_reason === "string") {
                  other.finishReason = finishReasonFromWire(choice.finish_reason)
                }
              }
            }
          }
          return out
        }

        const finishing = Effect.gen(function*() {
          const parts: Array<Part> = []
          const tail = redactor.end()
          if (tail.length > 0) {
            redactedText += tail
            parts.push(new TextDelta({ text: tail }))
          }
          const alternatives: Array<Alternative> = []
          let outputRedactions = redactor.redactions()
          for (const [index, other] of [...others].sort(([a], [b]) => a - b)) {
            const redacted = safety.redact(other.text)
            outputRedactions = mergeCounts(outputRedactions, redacted.redactions)
            alternatives.push(
              other.finishReason === undefined
                ? { index, text: redacted.text }
                : { index, text: redacted.text, finishReason: other.finishReason }
            )
          }
          let refusal: string | undefined = undefined
          if (rawRefusal.length > 0) {
            const redacted = safety.redact(rawRefusal)
            outputRedactions = mergeCounts(outputRedactions, redacted.redactions)
            refusal = redacted.text
          }
          state.outputRedactions = outputRedactions
          if (outputRedactions.length > 0) {
            parts.push(new RedactionNotice({ direction: "output", redactions: outputRedactions }))
          }
          let usage: Usage
          let usageSource: UsageSource
          if (gatewayUsage !== undefined) {
            usage = gatewayUsage
            usageSource = "gateway"
          } else {
            const completionTokens = yield* contextWindow.countText(outbound.model, state.rawText)
            usage = {
              promptTokens: state.promptTokens,
              completionTokens,
              totalTokens: state.promptTokens + completionTokens
            }
            usageSource = "tokenizer"
          }
          const cost = yield* settle(state, usage)
          const reason = finishReason ?? "stop"
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
          if (useCache) {
            const reply: ResponseCache.CachedReply = {
              text: redactedText,
              finishReason: reason,
              usage,
              usageSource,
              alternatives,
              ...(refusal === undefined ? {} : { refusal }),
              ...(outputRedactions.length === 0 ? {} : { outputRedactions }),
              storedAt: yield* Clock.currentTimeMillis
            }
            yield* cache.set(state.requestHash, reply)
            if (state.flight !== undefined) yield* Deferred.succeed(state.flight, Option.some(reply))
          }
          parts.push(state.finish)
          return parts
        })

        return transport.stream(outbound).pipe(
          Stream.provideService(Sanitize.PolicyRedaction, policyRedaction),
          Stream.mapChunks((chunk) => Chunk.unsafeFromArray(onChunks(chunk))),
          Stream.concat(Stream.fromIterableEffect(finishing)),
          Stream.mapError(redactError)
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
        state.requestHash = ResponseCache.requestKey({ ...outbound, profile: options.profile })

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
          // Released first, so that nothing below can leave identical requests waiting.
          inFlight.delete(state.requestHash)
          yield* Deferred.succeed(state.flight, Option.none())
        }
        if (state.reservation !== undefined) {
          // A request that reached the gateway may be billed for what it sent and received.
          const usage = state.receivedChunk
            ? yield* contextWindow.countText(state.model, state.rawText).pipe(
              Effect.map((completionTokens): Usage => ({
                promptTokens: state.promptTokens,
                completionTokens,
                totalTokens: state.promptTokens + completionTokens
              }))
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
          rawText: "",
          receivedChunk: false,
          finish: undefined,
          flight: undefined
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
 */
export const layer = (options: Options = {}): Layer.Layer<Gateway, never, Requirements> =>
  Layer.effect(Gateway, make(options))

/**
 * Streams a reply through the `Gateway` in the context.
 *
 * @since 0.1.0
 */
export const stream = (request: ChatRequestInput): Stream.Stream<Part, GatewayError, Gateway> =>
  Stream.unwrap(Effect.map(Gateway, (gateway) => gateway.stream(request)))

/**
 * Collects a reply through the `Gateway` in the context.
 *
 * @since 0.1.0
 */
export const complete = (request: ChatRequestInput): Effect.Effect<Completion, GatewayError, Gateway> =>
  Effect.flatMap(Gateway, (gateway) => gateway.complete(request))
