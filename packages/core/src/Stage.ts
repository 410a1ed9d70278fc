/**
 * Stage: the pieces a gateway is composed of. A prepared request (`Prepared`, an immutable
 * value from `Gateway.prepare`) goes into a `Handler`, which returns the reply as a stream of
 * parts; a `Stage` wraps a handler into another one, with its "before" and "after" halves side
 * by side. `Gateway.layer` composes the default pipeline:
 *
 * ```text
 * audit ( prepare → cache ( rate limit ( upstream ) ) )
 * ```
 *
 * `Gateway.layerWith` takes any other composition: omit the cache or the meter, or insert your
 * own stage (moderation, `modelFallback`, metrics) between `upstream` and the audit.
 *
 * @example
 * import { Gateway, Stage } from "@llm-gateway/core"
 * import * as Effect from "effect/Effect"
 * import { pipe } from "effect/Function"
 *
 * // No cache and no budget; a second model when the first is unavailable.
 * export const GatewayLive = Gateway.layerWith(
 *   Effect.gen(function*() {
 *     return pipe(
 *       yield* Stage.upstreamUnmetered(),
 *       yield* Stage.modelFallback(["gpt-4o-mini"])
 *     )
 *   })
 * )
 *
 * @since 0.1.0
 */
import * as RateLimiter from "@effect/experimental/RateLimiter"
import * as Cause from "effect/Cause"
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { Cost, OutboundRequest, RedactionCount, Usage, UsageSource } from "./Chat.js"
import type { ChatChunk } from "./ChatChunk.js"
import * as ContextWindow from "./ContextWindow.js"
import * as CostMeter from "./CostMeter.js"
import {
  type GatewayError,
  mapServerText,
  RateLimited,
  ReplyTooLarge,
  SafetyViolation,
  type TransportError
} from "./GatewayError.js"
import * as Models from "./Models.js"
import { Finish, type Part, RedactionNotice, TextDelta, type ToolCall, ToolCallDelta, ToolCallError } from "./Part.js"
import * as PartsFold from "./internal/partsFold.js"
import * as ReplyAssembler from "./internal/replyAssembler.js"
import * as Observe from "./internal/telemetry.js"
import * as Sanitize from "./internal/sanitize.js"
import * as ToolArguments from "./internal/toolArguments.js"
import * as ResponseCache from "./ResponseCache.js"
import * as SafetyFilter from "./SafetyFilter.js"
import * as StructuredOutput from "./StructuredOutput.js"
import * as Transport from "./Transport.js"

/**
 * A request after `Gateway.prepare`: decoded, rendered, guarded (redacted), fitted to the
 * context window and keyed. Immutable; a stage that changes it (a model fallback) passes a copy.
 *
 * - `outbound`: what is sent, the model included.
 * - `promptTokens`: the prompt's tokens (OpenAI cookbook accounting) for `outbound.model`.
 * - `maxCompletionTokens`: the reply size the budget holds and the reply is ended at: the
 *   request's `maxTokens`, else the model's largest completion.
 * - `requestHash`: the cache key (hex SHA-256 of the redacted, fitted request, the gateway's
 *   profile and the safety policy).
 * - `cache`: `false` when the request asked to bypass the cache.
 * - `inputRedactions`, `droppedMessages`, `contextLimit`: what the guard and the fitting did.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Prepared {
  readonly requestId: string
  readonly outbound: OutboundRequest
  readonly promptTokens: number
  readonly maxCompletionTokens: number
  readonly requestHash: string
  readonly cache: boolean
  readonly inputRedactions: ReadonlyArray<RedactionCount>
  readonly droppedMessages: number
  readonly contextLimit: number
  /**
   * The reply's shape when the request asked for structured output, as the request gave it (a
   * format made by `StructuredOutput.make` keeps its Schema); `outbound.responseFormat` is its
   * plain form.
   */
  readonly responseFormat?: StructuredOutput.AnyResponseFormat | undefined
}

/**
 * Answers a prepared request with a stream of parts ending in `Finish`.
 *
 * @since 0.1.0
 * @category Models
 */
export type Handler = (request: Prepared) => Stream.Stream<Part, GatewayError>

/**
 * Wraps a handler: what it does before calling `next` and what it does with the parts that
 * come back sit side by side. Compose with `pipe(handler, stageA, stageB)` (the last is the
 * outermost). A stage that rewrites parts should pass the upstream's `Finish` through as it
 * is: beside it the upstream records whether the client cut the reply (the cache stage then
 * shares it but does not store it) and whether the usage exceeded the hold (for the audit).
 *
 * @since 0.1.0
 * @category Models
 */
export type Stage = (next: Handler) => Handler

/**
 * A client-side request rate limit, applied around the upstream call (only real calls wait,
 * never cache hits), with `@effect/experimental`'s `RateLimiter` (the one in the context, or an
 * in-memory one). `onExceeded: "delay"` (the default) waits for the window; `"fail"` fails at
 * once with `RateLimited{retryAfter}`. Genesys Cloud's default is 300 requests per minute per
 * token.
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
 * Options of the upstream stage. `maxReplyChars`: the most characters one reply may bring
 * (text, refusal and alternatives together); default `defaultMaxReplyChars`.
 *
 * @since 0.1.0
 * @category Config
 */
export interface UpstreamOptions {
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

const zeroCost: Cost = { promptUsd: 0, completionUsd: 0, totalUsd: 0 }

/** The services the upstream stage is built from; `meter` is left out by `upstreamUnmetered`. */
interface UpstreamServices {
  readonly transport: Transport.Service
  readonly safety: SafetyFilter.Service
  readonly contextWindow: ContextWindow.Service
  readonly meter: CostMeter.Service | undefined
}

/**
 * The one mandatory stage, innermost: budget hold → transport → reply assembly with streaming
 * redaction → usage → settle → `Finish`. It alone sees the raw wire text, so redaction cannot
 * be left out, and a reply ended early is billed on the raw text received.
 */
const makeUpstream = (services: UpstreamServices, maxReplyChars: number): Handler => {
  const { contextWindow, meter, safety, transport } = services
  /**
   * A gateway's error text may echo the prompt or the reply. The transport's sanitizer
   * removes our secrets and redacts with the built-in recognizers and, given
   * `policyRedaction` (provided around the transport stream), with the caller's own policy,
   * before it cuts. `redactError` applies the policy once more to every field, for errors
   * built outside that stream (the token endpoint's).
   */
  const policyRedaction = (text: string): string => safety.redact(text).text
  const redactError = (error: TransportError): TransportError => mapServerText(error, policyRedaction)

  return (request) =>
    Stream.unwrapScoped(Effect.gen(function*() {
      const model = request.outbound.model
      const reply = ReplyAssembler.make({
        count: yield* contextWindow.textCounter(model),
        redactor: yield* safety.outputRedactor,
        maxCompletionTokens: request.maxCompletionTokens,
        maxReplyChars,
        redact: policyRedaction,
        tools: request.outbound.tools
      })
      const received = (): Usage | undefined => {
        if (!reply.received()) return undefined
        const completionTokens = reply.completionTokens()
        return { promptTokens: request.promptTokens, completionTokens, totalTokens: request.promptTokens + completionTokens }
      }
      // The hold is settled exactly once: by the Finish, or on any other exit by the release,
      // with what the gateway sent so far (a request that reached it may be billed).
      let settled = false
      const hold = meter === undefined ? undefined : yield* Effect.acquireRelease(
        meter.reserve(model, request.promptTokens, request.maxCompletionTokens),
        (hold) =>
          settled ? Effect.void : Effect.suspend(() => meter.settle(hold, received())).pipe(
            Effect.catchAllCause((cause) =>
              Effect.logError("Gateway: settling the cost reservation failed", Cause.pretty(cause))
            )
          )
      )
      const settle = (usage: Usage): Effect.Effect<Cost> =>
        meter === undefined || hold === undefined
          ? Effect.succeed(zeroCost)
          : Effect.uninterruptible(Effect.tap(meter.settle(hold, usage), () => {
            settled = true
          }))

      /**
       * One stage per network read: assemble the chunks into parts, and end the body as soon
       * as the reply is ended (cut or too large): nothing more is read and the connection
       * closes. Fused into one channel: on the token path each stage costs per read.
       */
      type Assembly = Channel.Channel<Chunk.Chunk<Part>, Chunk.Chunk<ChatChunk>, GatewayError, GatewayError, unknown, unknown>
      const emit = (parts: Array<Part>): Assembly => {
        const written = parts.length === 0 ? undefined : Channel.write(Chunk.unsafeFromArray(parts))
        const next = reply.stopped() === undefined ? assembly : Channel.void
        const warned = reply.untrustedUsage() === 0 ? next : Channel.zipRight(
          Channel.fromEffect(
            Effect.logWarning("Gateway: the gateway reported usage beyond any real count; the tokenizer's count is used")
          ),
          next
        )
        return written === undefined ? warned : Channel.zipRight(written, warned)
      }
      const assembly: Assembly = Channel.readWithCause({
        onInput: (chunks: Chunk.Chunk<ChatChunk>) => {
          const missing = reply.missing(chunks)
          if (missing === 0) return emit(reply.push(chunks))
          return Channel.flatMap(Channel.fromEffect(Effect.replicateEffect(safety.outputRedactor, missing)), (redactors) => {
            reply.supply(redactors)
            return emit(reply.push(chunks))
          })
        },
        onFailure: Channel.failCause,
        onDone: () => Channel.void
      })

      const finish = Effect.suspend(() => {
        const closed = reply.close(false)
        // An output block rule matched the last sentence: what was judged safe goes out, then the error.
        if (reply.violation() !== undefined) return Effect.succeed(closed.parts)
        const cut = reply.stopped() === "cut"
        const fromGateway = cut ? undefined : reply.gatewayUsage()
        let usage: Usage
        let usageSource: UsageSource
        let usageOverReservation = false
        if (fromGateway !== undefined) {
          usage = fromGateway
          usageSource = "gateway"
          // What the server reports is what it bills: recorded, and flagged when above the hold.
          usageOverReservation = meter !== undefined && hold !== undefined &&
            meter.price(model, usage).totalUsd > hold.amountUsd
        } else {
          usage = received() ?? { promptTokens: request.promptTokens, completionTokens: 0, totalTokens: request.promptTokens }
          usageSource = "tokenizer"
        }
        return Effect.map(settle(usage), (cost): ReadonlyArray<Part> => {
          const done = new Finish({
            reason: cut ? "length" : reply.finishReason() ?? "stop",
            usage,
            usageSource,
            cost,
            cached: false,
            requestHash: request.requestHash,
            alternatives: closed.alternatives,
            ...(closed.refusal === undefined ? {} : { refusal: closed.refusal }),
            model
          })
          return [...closed.parts, ReplyAssembler.markFinish(done, { cut, usageOverReservation })]
        })
      })

      return transport.stream(request.outbound).pipe(
        Stream.provideService(Sanitize.PolicyRedaction, policyRedaction),
        Stream.mapError(redactError),
        Stream.pipeThroughChannel(assembly),
        Stream.concat(Stream.fromIterableEffect(Effect.suspend(() => {
          const stopped = reply.stopped()
          return stopped instanceof ReplyTooLarge || stopped instanceof SafetyViolation ? Effect.fail(stopped) : finish
        }))),
        Stream.concat(Stream.suspend(() => {
          const violation = reply.violation()
          return violation === undefined ? Stream.empty : Stream.fail(violation)
        })),
        // On a failure the output counts (the withheld tail included) reach the caller first.
        Stream.catchAll((error) => Stream.concat(Stream.fromIterable(reply.close(true).parts), Stream.fail(error)))
      )
    }))
}

const checkMaxReplyChars = (options: UpstreamOptions): Effect.Effect<number> => {
  const maxReplyChars = options.maxReplyChars ?? defaultMaxReplyChars
  return Number.isInteger(maxReplyChars) && maxReplyChars >= 1 && maxReplyChars <= 1e9
    ? Effect.succeed(maxReplyChars)
    : Effect.dieMessage("Gateway: maxReplyChars must be a whole number of characters from 1 to 1000000000")
}

/**
 * The upstream stage with a budget: holds the worst case on the `CostMeter` before the call
 * and settles the real cost on every exit. Replies end with finish reason `length` at the
 * completion tokens the hold covers, whatever the server does.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const upstream = (
  options: UpstreamOptions = {}
): Effect.Effect<
  Handler,
  never,
  Transport.GatewayTransport | SafetyFilter.SafetyFilter | ContextWindow.ContextWindow | CostMeter.CostMeter
> =>
  upstreamWith(options, CostMeter.CostMeter)

/** The upstream stage over the services in the context, with `meter` or without one. */
const upstreamWith = <R>(
  options: UpstreamOptions,
  meter: Effect.Effect<CostMeter.Service | undefined, never, R>
): Effect.Effect<
  Handler,
  never,
  Transport.GatewayTransport | SafetyFilter.SafetyFilter | ContextWindow.ContextWindow | R
> =>
  Effect.gen(function*() {
    const maxReplyChars = yield* checkMaxReplyChars(options)
    return makeUpstream({
      transport: yield* Transport.GatewayTransport,
      safety: yield* SafetyFilter.SafetyFilter,
      contextWindow: yield* ContextWindow.ContextWindow,
      meter: yield* meter
    }, maxReplyChars)
  })

/**
 * The upstream stage without a `CostMeter`: nothing is held or recorded and `Finish.cost` is
 * zero. Replies still end at `maxCompletionTokens`.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const upstreamUnmetered = (
  options: UpstreamOptions = {}
): Effect.Effect<Handler, never, Transport.GatewayTransport | SafetyFilter.SafetyFilter | ContextWindow.ContextWindow> =>
  upstreamWith(options, Effect.succeed(undefined))

/**
 * The client-side rate limit as a stage (the identity without `limit`). Placed around the
 * upstream stage it waits before the budget hold: a request waiting for its turn holds no
 * budget, so waiting requests never make others fail with `BudgetExceeded`.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const rateLimit = (limit: RateLimit | undefined): Effect.Effect<Stage> =>
  limit === undefined ? Effect.succeed((next) => next) : Effect.gen(function*() {
    const limiter = yield* Effect.serviceOption(RateLimiter.RateLimiter).pipe(
      Effect.flatMap(Option.match({
        onSome: Effect.succeed,
        onNone: () => RateLimiter.make.pipe(Effect.provide(RateLimiter.layerStoreMemory))
      }))
    )
    const throttle: Effect.Effect<void, RateLimited> = limiter.consume({
      key: limit.key ?? "@llm-gateway/core/Gateway",
      limit: limit.limit,
      window: limit.window,
      onExceeded: limit.onExceeded ?? "delay"
    }).pipe(
      Effect.flatMap(({ delay }) => Duration.isZero(delay) ? Effect.void : Effect.sleep(delay)),
      Effect.catchAll((error) =>
        error.reason === "Exceeded"
          ? Effect.fail(new RateLimited({ status: 429, code: "client_rate_limit", retryAfter: error.retryAfter }))
          // A broken limiter store must not stop traffic: let the request through, loudly.
          : Effect.logWarning("Gateway: the rate limiter store failed; the request was not throttled")
      )
    )
    return (next) => (request) => Stream.unwrap(Effect.as(throttle, next(request)))
  })

/** Replies longer than this (redacted characters) are streamed but neither cached nor shared. */
const shareableReplyChars = 100_000

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

type Admission =
  | { readonly _tag: "Hit"; readonly reply: ResponseCache.CachedReply }
  | { readonly _tag: "Lead"; readonly flight: Deferred.Deferred<FlightOutcome> }
  | { readonly _tag: "Alone" }

/** A cached reply as parts: no cost, `cached: true`. */
const replay = (request: Prepared, reply: ResponseCache.CachedReply): Stream.Stream<Part> => {
  const parts: Array<Part> = []
  if (reply.text.length > 0) parts.push(new TextDelta({ text: reply.text }))
  for (const call of reply.toolCalls ?? []) parts.push(...replayToolCall(request, call))
  const redactions = reply.outputRedactions ?? []
  if (redactions.length > 0) parts.push(new RedactionNotice({ direction: "output", redactions }))
  parts.push(
    new Finish({
      reason: reply.finishReason,
      usage: reply.usage,
      usageSource: reply.usageSource,
      cost: zeroCost,
      cached: true,
      requestHash: request.requestHash,
      alternatives: reply.alternatives,
      ...(reply.refusal === undefined ? {} : { refusal: reply.refusal }),
      model: reply.model ?? request.outbound.model
    })
  )
  return Stream.fromIterable(parts)
}

/** A stored tool call as parts: its arguments in one delta, then decoded again with the request's tools. */
const replayToolCall = (request: Prepared, call: ResponseCache.CachedToolCall): ReadonlyArray<Part> => {
  const { id, index, name } = call
  if (!("rawArguments" in call)) {
    return [new ToolCallError({ index, id, name, reason: call.reason, issues: call.issues })]
  }
  return [
    new ToolCallDelta({ index, id, name, argumentsDelta: call.rawArguments }),
    ToolArguments.replay(call, request.outbound.tools)
  ]
}

/** A tool call part as stored: the redacted arguments' text, never the decoded value. */
const toCachedToolCall = (part: ToolCall | ToolCallError): ResponseCache.CachedToolCall =>
  part._tag === "ToolCall"
    ? { index: part.index, id: part.id, name: part.name, rawArguments: part.rawArguments }
    : { index: part.index, id: part.id, name: part.name, reason: part.reason, issues: part.issues }

/** The reply to store and share, from the parts of a clean finish (`undefined`: too long). */
const toCachedReply = (fold: PartsFold.Fold, finish: Finish, storedAt: number): ResponseCache.CachedReply | undefined =>
  fold.text === undefined ? undefined : {
    text: fold.text,
    finishReason: finish.reason,
    usage: finish.usage,
    usageSource: finish.usageSource,
    alternatives: finish.alternatives,
    ...(finish.refusal === undefined ? {} : { refusal: finish.refusal }),
    ...(fold.outputRedactions.length === 0 ? {} : { outputRedactions: fold.outputRedactions }),
    ...(finish.model === undefined ? {} : { model: finish.model }),
    ...(fold.toolCalls.length === 0 ? {} : { toolCalls: fold.toolCalls.map(toCachedToolCall) }),
    storedAt
  }

/** Whether a reply meets the request's `responseFormat` (always, without one). */
const decodes = (request: Prepared, reply: ResponseCache.CachedReply): boolean =>
  request.responseFormat === undefined ||
  Either.isRight(StructuredOutput.decodeReply(request.responseFormat, {
    text: reply.text,
    finishReason: reply.finishReason,
    refusal: reply.refusal,
    redacted: false
  }))

/**
 * The response cache as a stage around any handler: look up → join an identical request in
 * flight or lead → replay, or run `next`, store on a clean `Finish` and share the reply with
 * the requests that joined. Requests with `cache: false` pass through.
 */
const makeCache = (store: ResponseCache.Service): Stage => {
  // Identical requests in flight share one upstream call (DESIGN invariant 4).
  const inFlight = new Map<string, Deferred.Deferred<FlightOutcome>>()

  const release = (key: string, flight: Deferred.Deferred<FlightOutcome>, outcome: FlightOutcome) =>
    Effect.suspend(() => {
      if (inFlight.get(key) === flight) inFlight.delete(key)
      return Deferred.succeed(flight, outcome)
    })

  /**
   * Joins an identical request in flight, or becomes the one in flight. Looking up and
   * claiming the flight is one synchronous step, so two requests can never both lead; the
   * claim is released by the scope on every exit. When the attempt waited on fails, the
   * waiting requests elect the first of them to lead a new attempt and the rest join it; if
   * that one fails too, they fail with its error, so any number of identical requests make at
   * most two attempts upstream.
   */
  const admit = (key: string, afterFailure: boolean): Effect.Effect<Admission, GatewayError, Scope.Scope> =>
    Effect.flatMap(
      Effect.acquireRelease(
        Effect.sync(() => {
          const current = inFlight.get(key)
          if (current !== undefined) return { _tag: "Join", current } as const
          const flight = Deferred.unsafeMake<FlightOutcome>(FiberId.none)
          inFlight.set(key, flight)
          return { _tag: "Lead", flight } as const
        }),
        // Whatever happens to the leader, nobody is left waiting (a no-op once published).
        (claim) => claim._tag === "Lead" ? release(key, claim.flight, { _tag: "Retry" }) : Effect.void
      ),
      (claim): Effect.Effect<Admission, GatewayError, Scope.Scope> =>
        claim._tag === "Lead" ? Effect.succeed(claim) : Effect.flatMap(Deferred.await(claim.current), (outcome) => {
          switch (outcome._tag) {
            case "Reply":
              return Effect.succeed({ _tag: "Hit", reply: outcome.reply } as const)
            case "Alone":
              return Effect.succeed({ _tag: "Alone" } as const)
            case "Retry":
              return admit(key, afterFailure)
            case "Failed":
              return afterFailure ? Effect.fail(outcome.error) : admit(key, true)
          }
        })
    )

  /** Publishes how the leader's attempt ended: stored and shared on a clean finish. */
  const publish = (
    request: Prepared,
    flight: Deferred.Deferred<FlightOutcome>,
    fold: PartsFold.Fold,
    exit: Exit.Exit<unknown, GatewayError>
  ) =>
    Effect.gen(function*() {
      const key = request.requestHash
      const finish = fold.finish
      if (Exit.isSuccess(exit) && finish !== undefined) {
        const reply = toCachedReply(fold, finish, yield* Effect.clockWith((clock) => clock.currentTimeMillis))
        if (reply !== undefined) {
          // A reply the client cut is shared with identical requests in flight, not stored:
          // the server never finished it.
          // Nor is a structured reply that does not decode: asking again may give a good one.
          if (ReplyAssembler.finishFacts(finish)?.cut !== true && decodes(request, reply)) yield* store.set(key, reply)
          return yield* release(key, flight, { _tag: "Reply", reply })
        }
      }
      const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
      return yield* release(
        key,
        flight,
        Option.isSome(failure)
          ? { _tag: "Failed", error: failure.value }
          : Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)
          ? { _tag: "Retry" }
          : { _tag: "Alone" }
      )
    })

  /**
   * Runs `next` as the leader. Identical requests wait for it, so its upstream starts now and
   * runs ahead of its own consumer: a consumer pulling both (zip, interleave) cannot deadlock.
   * The queue holds at most one reply, which the transport's timeouts bound; it is interrupted
   * with this stream's scope.
   */
  const lead = (next: Handler, request: Prepared, flight: Deferred.Deferred<FlightOutcome>) =>
    Effect.gen(function*() {
      // A reply stored between the lookup and the claim is replayed, not asked for again. A
      // shared store also makes this the leader across processes, for the life of this scope.
      const stored = yield* (store.lead === undefined ? store.get : store.lead)(request.requestHash)
      if (Option.isSome(stored)) {
        yield* release(request.requestHash, flight, { _tag: "Reply", reply: stored.value })
        return replay(request, stored.value)
      }
      const fold = PartsFold.make(shareableReplyChars)
      // Observes the parts and publishes the outcome inside the stream, not by a finalizer: the
      // queue runs it in this stream's scope, so a finalizer would wait for the leader's own
      // consumer to finish. An interruption is published by the claim's release. One channel:
      // on the token path each stage costs per read.
      type Observer = Channel.Channel<Chunk.Chunk<Part>, Chunk.Chunk<Part>, GatewayError, GatewayError, unknown, unknown>
      const observer: Observer = Channel.readWithCause({
        onInput: (parts: Chunk.Chunk<Part>) => {
          for (const part of parts) fold.add(part)
          return Channel.zipRight(Channel.write(parts), observer)
        },
        onFailure: (cause) =>
          Channel.zipRight(Channel.fromEffect(publish(request, flight, fold.state, Exit.failCause(cause))), Channel.failCause(cause)),
        onDone: () => Channel.fromEffect(publish(request, flight, fold.state, Exit.void))
      })
      const observed = Stream.pipeThroughChannel(next(request), observer)
      const queue = yield* Stream.toQueue(observed, { strategy: "unbounded" })
      return Stream.flattenTake(Stream.fromQueue(queue))
    })

  return (next) => (request) =>
    !request.cache ? next(request) : Stream.unwrapScoped(Effect.gen(function*() {
      const stored = yield* store.get(request.requestHash)
      if (Option.isSome(stored)) return replay(request, stored.value)
      const admission = yield* admit(request.requestHash, false)
      switch (admission._tag) {
        case "Hit":
          yield* Observe.joined
          return replay(request, admission.reply)
        case "Alone":
          return next(request)
        case "Lead":
          return yield* lead(next, request, admission.flight)
      }
    }))
}

/**
 * The `ResponseCache` as a stage: a hit costs and sends nothing; identical requests in flight
 * make one upstream call; only clean finishes are stored, and only redacted parts. Reusable
 * around any handler, not only the upstream stage.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const cache: Effect.Effect<Stage, never, ResponseCache.ResponseCache> = Effect.map(
  ResponseCache.ResponseCache,
  makeCache
)

/**
 * Model fallback: when the model fails before the first part of its reply with a retryable
 * error (rate limited, 5xx, a connection or handshake failure, after the transport's own
 * retries), the request is sent to the next model of `models`, in order. Each attempt holds
 * and settles its own budget under its own model, and `Finish.model` (and so the audit entry)
 * names the model that answered. The prompt fitted for the first model is reused, so list
 * models with the same tokenizer and a context window at least as large. Place it around
 * `upstream`, inside the cache (a cached reply remembers its model).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const modelFallback = (models: ReadonlyArray<string>): Effect.Effect<Stage> =>
  Effect.succeed((next) => (request) => {
    const chain = [request.outbound.model, ...models.filter((model) => model !== request.outbound.model)]
    const attempt = (i: number): Stream.Stream<Part, GatewayError> =>
      Stream.suspend(() => {
        const model = chain[i]!
        // Whether this attempt has replied yet: local to the attempt.
        let replied = false
        return next(i === 0 ? request : { ...request, outbound: { ...request.outbound, model } }).pipe(
          Stream.mapChunks((parts) => {
            if (Chunk.isNonEmpty(parts)) replied = true
            return parts
          }),
          Stream.catchAll((error) =>
            !replied && i + 1 < chain.length && error.isRetryable
              ? Stream.concat(
                Stream.fromEffect(
                  Effect.logWarning(
                    `Gateway: ${Models.printableId(model)} failed (${error._tag}); trying ${Models.printableId(chain[i + 1]!)}`
                  )
                ).pipe(Stream.drain),
                attempt(i + 1)
              )
              : Stream.fail(error)
          )
        )
      })
    return attempt(0)
  })
