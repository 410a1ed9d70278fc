/**
 * The instrumentation behind `Telemetry`: the request span and its metrics (around the whole
 * gateway stream), and the helpers the pipeline calls at its few points of interest (prepare,
 * input guard, handshake attempts, body, single-flight join). Each helper reads the request's
 * record from `CurrentRequest` and does nothing when there is none, i.e. when the gateway was
 * built without the `Telemetry` service.
 */
import * as Cause from "effect/Cause"
import * as Channel from "effect/Channel"
import type * as Chunk from "effect/Chunk"
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import type { ChatRequestInput, RedactionCount } from "../Chat.js"
import type { ChatChunk } from "../ChatChunk.js"
import * as CostMeter from "../CostMeter.js"
import type { GatewayError } from "../GatewayError.js"
import type { Finish, Part } from "../Part.js"
import type { Prepared } from "../Stage.js"
import * as Telemetry from "../Telemetry.js"
import { modelIdOf } from "./requestIntake.js"

const A = Telemetry.attributes

/** What one request's span and metrics are built from; local to that request. */
export interface RequestRecord {
  readonly settings: Telemetry.Settings
  readonly span: Tracer.Span
  readonly clock: Clock.Clock
  readonly startedAt: number
  readonly model: string
  provider: string | undefined
  server: { readonly address: string; readonly port: number } | undefined
  prepared: Prepared | undefined
  firstTextAt: number | undefined
  finish: Finish | undefined
  readonly outputRedactions: Map<string, number>
  attempts: number
  lastAttemptEndedAt: number | undefined
  lastFailure: string | undefined
  retries: number
  joined: boolean
  responseId: string | undefined
  responseModel: string | undefined
  output: Array<string> | undefined
  outputChars: number
}

/**
 * The record of the request being answered, provided by the gateway's request span to
 * everything that runs inside it; `undefined` without telemetry.
 */
export class CurrentRequest extends Context.Reference<CurrentRequest>()(
  "@llm-gateway/core/internal/telemetry/CurrentRequest",
  { defaultValue: (): RequestRecord | undefined => undefined }
) {}

/** A server-chosen id or model name, if it is short and plain; anything else is not recorded. */
const plainId = (value: string | undefined): string | undefined =>
  value !== undefined && value.length <= 128 && /^[A-Za-z0-9][A-Za-z0-9._:/@+=-]*$/.test(value) ? value : undefined

const setAttributes = (span: Tracer.Span, attributes: Record<string, unknown>) => {
  for (const key in attributes) {
    const value = attributes[key]
    if (value !== undefined) span.attribute(key, value)
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers called by the pipeline
// ---------------------------------------------------------------------------------------------

/** `self` in a child span of the request span; `self` alone without telemetry. */
export const span = <A, E, R>(self: Effect.Effect<A, E, R>, name: string): Effect.Effect<A, E, R> =>
  Effect.flatMap(CurrentRequest, (record) => record === undefined ? self : Effect.withSpan(self, name, { captureStackTrace: false }))

/** The prepare step in its span; its result's request attributes go on the request span. */
export const prepared = <E, R>(self: Effect.Effect<Prepared, E, R>): Effect.Effect<Prepared, E, R> =>
  Effect.flatMap(CurrentRequest, (record) =>
    record === undefined ? self : self.pipe(
      Effect.withSpan("Gateway.prepare", { captureStackTrace: false }),
      Effect.tap((prepared) =>
        Effect.sync(() => {
          record.prepared = prepared
          setAttributes(record.span, {
            [A.requestId]: prepared.requestId,
            [A.requestTemperature]: prepared.outbound.temperature,
            [A.requestMaxTokens]: prepared.outbound.maxTokens,
            [A.droppedMessages]: prepared.droppedMessages
          })
          for (const { count, kind } of prepared.inputRedactions) {
            record.span.attribute(`${A.inputRedactions}${kind}`, count)
          }
        })
      )
    ))

/** Records that this request shared an identical request's upstream call. */
export const joined: Effect.Effect<void> = Effect.map(CurrentRequest, (record) => {
  if (record !== undefined) record.joined = true
})

/** Where the transport sends requests: enough to name the server and the provider. */
export interface Endpoint {
  readonly url: string
  readonly profile: string
}

const serverOf = (url: string): RequestRecord["server"] => {
  try {
    const parsed = new URL(url)
    const port = parsed.port !== "" ? Number(parsed.port) : parsed.protocol === "https:" ? 443 : 80
    return { address: parsed.hostname, port }
  } catch {
    return undefined
  }
}

type HandshakeResult =
  | { readonly _tag: "Open"; readonly response: { readonly status: number } }
  | { readonly _tag: "Unauthorized"; readonly error: unknown }

const statusOf = (error: unknown): number | undefined =>
  typeof error === "object" && error !== null && "status" in error && typeof error.status === "number"
    ? error.status
    : undefined

const tagOf = (error: unknown): string =>
  typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string"
    ? error._tag
    : "Error"

/**
 * One handshake attempt (one HTTP exchange up to the response headers) in its own span, with
 * its number, the wait before it and its status. A new attempt after a failed one counts as a
 * retry, by the status (or error type) of the failed one.
 */
export const handshake = <A extends HandshakeResult, E, R>(
  self: Effect.Effect<A, E, R>,
  endpoint: Endpoint
): Effect.Effect<A, E, R> =>
  Effect.flatMap(CurrentRequest, (record) => {
    if (record === undefined) return self
    return Effect.suspend(() => {
      const now = record.clock.unsafeCurrentTimeMillis()
      record.attempts += 1
      if (record.server === undefined) record.server = serverOf(endpoint.url)
      if (record.provider === undefined) {
        record.provider = endpoint.profile === "openai" ? "openai" : "genesys_cloud"
      }
      const attributes: Record<string, unknown> = { [A.attempt]: record.attempts }
      if (record.lastAttemptEndedAt !== undefined) attributes[A.waitBeforeMs] = now - record.lastAttemptEndedAt
      const retried = record.lastFailure
      if (retried !== undefined) {
        record.retries += 1
        record.lastFailure = undefined
      }
      const ended = (status: number | undefined, failure: string | undefined) =>
        Effect.suspend(() => {
          record.lastAttemptEndedAt = record.clock.unsafeCurrentTimeMillis()
          record.lastFailure = failure === undefined ? undefined : status !== undefined ? String(status) : failure
          return Effect.all([
            status === undefined ? Effect.void : Effect.annotateCurrentSpan(A.httpStatus, status),
            failure === undefined ? Effect.void : Effect.annotateCurrentSpan(A.errorType, failure)
          ], { discard: true })
        })
      return Effect.zipRight(
        retried === undefined ? Effect.void : Metric.increment(Metric.tagged(Telemetry.retries, A.retryReason, retried)),
        self.pipe(
          Effect.onExit((exit) => {
            if (Exit.isSuccess(exit)) {
              const result = exit.value
              return result._tag === "Open"
                ? ended(result.response.status, undefined)
                : ended(statusOf(result.error) ?? 401, tagOf(result.error))
            }
            const failure = Cause.failureOption(exit.cause)
            if (Option.isSome(failure)) return ended(statusOf(failure.value), tagOf(failure.value))
            return ended(undefined, Cause.isInterruptedOnly(exit.cause) ? undefined : "Defect")
          }),
          Effect.withSpan("Transport.handshake", { attributes, kind: "client", captureStackTrace: false })
        )
      )
    })
  })

/** Notes the response id and model from the first chunks that carry them (called per read). */
export const chunks = (record: RequestRecord, read: ReadonlyArray<ChatChunk>): void => {
  for (const chunk of read) {
    if (record.responseId === undefined && chunk.id !== undefined) record.responseId = plainId(chunk.id) ?? ""
    if (record.responseModel === undefined && chunk.model !== undefined) {
      record.responseModel = plainId(chunk.model) ?? ""
    }
    if (record.responseId !== undefined && record.responseModel !== undefined) return
  }
}

/** The response body in its own span, from the response headers to its end. */
export const body = <A, E, R>(record: RequestRecord | undefined, self: Stream.Stream<A, E, R>): Stream.Stream<A, E, R> =>
  record === undefined ? self : Stream.fromChannel(
    Channel.acquireUseRelease(
      Effect.makeSpan("Transport.body", { captureStackTrace: false }),
      () => Stream.toChannel(self),
      (span, exit) => Effect.sync(() => span.end(record.clock.unsafeCurrentTimeNanos(), exit))
    )
  )

// ---------------------------------------------------------------------------------------------
// The request span
// ---------------------------------------------------------------------------------------------

const addRedactions = (into: Map<string, number>, redactions: ReadonlyArray<RedactionCount>) => {
  for (const { count, kind } of redactions) into.set(kind, (into.get(kind) ?? 0) + count)
}

/** Watches the parts as they pass: first text, output redactions, Finish, captured text. */
const observeParts = (record: RequestRecord) => (parts: Chunk.Chunk<Part>): Chunk.Chunk<Part> => {
  for (const part of parts) {
    switch (part._tag) {
      case "TextDelta":
        if (record.firstTextAt === undefined) record.firstTextAt = record.clock.unsafeCurrentTimeMillis()
        if (record.output !== undefined && record.outputChars < record.settings.maxContentChars) {
          const text = part.text.slice(0, record.settings.maxContentChars - record.outputChars)
          record.output.push(text)
          record.outputChars += text.length
        }
        break
      case "RedactionNotice":
        if (part.direction === "output") addRedactions(record.outputRedactions, part.redactions)
        break
      case "Finish":
        record.finish = part
        break
    }
  }
  return parts
}

const cut = (text: string, max: number) => (text.length > max ? `${text.slice(0, max)}…` : text)

/** The captured content, in the conventions' message format: redacted text only. */
const contentAttributes = (record: RequestRecord): Record<string, string> => {
  const max = record.settings.maxContentChars
  const out: Record<string, string> = {}
  const prepared = record.prepared
  if (prepared !== undefined) {
    if (prepared.outbound.system !== undefined) {
      out["gen_ai.system_instructions"] = JSON.stringify([{ type: "text", content: cut(prepared.outbound.system, max) }])
    }
    let budget = max
    out["gen_ai.input.messages"] = JSON.stringify(prepared.outbound.messages.map((message) => {
      const content = cut(message.content, Math.max(0, budget))
      budget -= content.length
      return { role: message.role, parts: [{ type: "text", content }] }
    }))
  }
  if (record.output !== undefined && record.finish !== undefined) {
    out["gen_ai.output.messages"] = JSON.stringify([{
      role: "assistant",
      parts: [{ type: "text", content: record.output.join("") }],
      finish_reason: record.finish.reason
    }])
  }
  return out
}

/** What a request's exit says: its outcome and, on failure, the error type. */
const outcomeOf = (record: RequestRecord, exit: Exit.Exit<unknown, unknown>) => {
  if (Exit.isSuccess(exit) && record.finish !== undefined) return { outcome: "success", errorType: undefined } as const
  if (Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)) {
    const failure = Cause.failureOption(exit.cause)
    return { outcome: "failure", errorType: Option.isSome(failure) ? tagOf(failure.value) : "Defect" } as const
  }
  return { outcome: "interrupted", errorType: undefined } as const
}

/** The exit the span ends with: a defect is reduced to its name, so no text of it is exported. */
const spanExit = (exit: Exit.Exit<unknown, unknown>): Exit.Exit<unknown, unknown> =>
  Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause) && Option.isNone(Cause.failureOption(exit.cause))
    ? Exit.die(new Error("Defect"))
    : exit

/** Span attributes and metrics of a request that ended with `exit`. */
const complete = (record: RequestRecord, meter: Option.Option<CostMeter.Service>, exit: Exit.Exit<unknown, unknown>) =>
  Effect.gen(function*() {
    const { finish, span } = record
    const now = record.clock.unsafeCurrentTimeMillis()
    const { errorType, outcome } = outcomeOf(record, exit)
    const provider = record.settings.provider ?? record.provider ?? "llm_gateway"
    const model = record.prepared?.outbound.model ?? record.model
    const responseModel = record.responseModel || (finish?.model === undefined ? undefined : plainId(finish.model))
    const common: Record<string, string> = {
      [A.operationName]: "chat",
      [A.providerName]: provider
    }
    if (model !== "") common[A.requestModel] = model
    if (record.server !== undefined) {
      common[A.serverAddress] = record.server.address
      common[A.serverPort] = String(record.server.port)
    }
    if (responseModel !== undefined && responseModel !== "") common[A.responseModel] = responseModel
    if (errorType !== undefined) common[A.errorType] = errorType

    setAttributes(span, {
      ...common,
      [A.serverPort]: record.server?.port,
      [A.outcome]: outcome,
      [A.responseId]: record.responseId || undefined,
      [A.retries]: record.retries,
      [A.cacheJoined]: record.joined
    })
    for (const [kind, count] of record.outputRedactions) span.attribute(`${A.outputRedactions}${kind}`, count)
    if (record.firstTextAt !== undefined) span.attribute(A.timeToFirstTokenMs, record.firstTextAt - record.startedAt)

    const metrics: Array<Effect.Effect<void>> = [
      Metric.update(withLabels(Telemetry.operationDuration, labels(common)), (now - record.startedAt) / 1000),
      Metric.increment(withLabels(Telemetry.requests, labels({
        [A.outcome]: outcome,
        ...(errorType === undefined ? {} : { [A.errorType]: errorType })
      })))
    ]
    if (record.firstTextAt !== undefined) {
      metrics.push(Metric.update(
        withLabels(Telemetry.timeToFirstChunk, labels(common)),
        (record.firstTextAt - record.startedAt) / 1000
      ))
    }
    const cacheResult = record.prepared?.cache === false
      ? "bypass"
      : record.joined
      ? "joined"
      : finish?.cached === true
      ? "hit"
      : record.prepared === undefined || (finish === undefined && record.attempts === 0)
      ? undefined
      : "miss"
    if (cacheResult !== undefined) {
      metrics.push(Metric.increment(Metric.tagged(Telemetry.cacheRequests, A.cacheResult, cacheResult)))
    }
    for (const { count, kind } of record.prepared?.inputRedactions ?? []) {
      metrics.push(Metric.incrementBy(redactionMetric("input", kind), count))
    }
    for (const [kind, count] of record.outputRedactions) {
      metrics.push(Metric.incrementBy(redactionMetric("output", kind), count))
    }
    if (finish !== undefined) {
      setAttributes(span, {
        [A.responseFinishReasons]: [finish.reason, ...finish.alternatives.flatMap((a) => a.finishReason ?? [])],
        [A.usageInputTokens]: finish.usage.promptTokens,
        [A.usageOutputTokens]: finish.usage.completionTokens,
        [A.usageSource]: finish.usageSource,
        [A.cacheHit]: finish.cached,
        [A.costUsd]: finish.cost.totalUsd
      })
      metrics.push(
        Metric.update(
          withLabels(Telemetry.tokenUsage, labels({ ...common, [A.tokenType]: "input" })),
          finish.usage.promptTokens
        ),
        Metric.update(
          withLabels(Telemetry.tokenUsage, labels({ ...common, [A.tokenType]: "output" })),
          finish.usage.completionTokens
        )
      )
      if (finish.cost.totalUsd > 0) {
        metrics.push(Metric.incrementBy(Metric.tagged(Telemetry.cost, A.requestModel, bounded(A.requestModel, model)), finish.cost.totalUsd))
      }
    }
    // Only a request that reached the budget changes what is left of it.
    if (Option.isSome(meter) && record.attempts > 0) {
      const summary = yield* meter.value.summary.pipe(
        Effect.timeoutOption("1 second"),
        Effect.catchAllCause(() => Effect.succeed(Option.none<CostMeter.Summary>()))
      )
      if (Option.isSome(summary) && summary.value.remainingUsd !== undefined) {
        span.attribute(A.budgetRemainingUsd, summary.value.remainingUsd)
        metrics.push(Metric.set(Telemetry.budgetRemaining, summary.value.remainingUsd))
      }
    }
    yield* Effect.all(metrics, { discard: true })
    if (record.settings.captureContent) {
      span.event(Telemetry.contentEvent, record.clock.unsafeCurrentTimeNanos(), contentAttributes(record))
    }
  })

/**
 * Metric series live as long as the process, so the label values a caller or a gateway chooses
 * (model names) are bounded: past `maxModelLabels` distinct values per label, a new one is
 * recorded as `_other`. Span attributes keep the real value.
 */
const maxModelLabels = 100
const seenModels = new Map<string, Set<string>>()
export const bounded = (key: string, value: string): string => {
  if (key !== A.requestModel && key !== A.responseModel) return value
  let seen = seenModels.get(key)
  if (seen === undefined) seenModels.set(key, seen = new Set())
  if (seen.has(value)) return value
  if (seen.size >= maxModelLabels) return "_other"
  seen.add(value)
  return value
}

const labels = (record: Record<string, string>): Array<MetricLabel.MetricLabel> =>
  Object.entries(record).map(([key, value]) => MetricLabel.make(key, bounded(key, value)))

const withLabels = <Type, In, Out>(metric: Metric.Metric<Type, In, Out>, extra: Array<MetricLabel.MetricLabel>) =>
  Metric.taggedWithLabels(metric, extra)

const redactionMetric = (direction: "input" | "output", kind: string) =>
  Telemetry.redactions.pipe(Metric.tagged(A.redactionDirection, direction), Metric.tagged(A.redactionKind, kind))

/**
 * The request span around a gateway stream, or the stream as it is without the `Telemetry`
 * service (read once, when the gateway is built).
 */
export const gateway: Effect.Effect<
  (input: ChatRequestInput, stream: Stream.Stream<Part, GatewayError>) => Stream.Stream<Part, GatewayError>
> = Effect.gen(function*() {
  const telemetry = yield* Effect.serviceOption(Telemetry.Telemetry)
  if (Option.isNone(telemetry)) return (_input, stream) => stream
  const settings = telemetry.value
  const meter = yield* Effect.serviceOption(CostMeter.CostMeter)
  return (input, stream) => {
    const acquire = Effect.gen(function*() {
      const model = modelIdOf(input)
      const clock = yield* Effect.clock
      const span = yield* Effect.makeSpan(model === "" ? "chat" : `chat ${model}`, {
        kind: "client",
        captureStackTrace: false,
        attributes: {
          [A.operationName]: "chat",
          ...(settings.provider === undefined ? {} : { [A.providerName]: settings.provider }),
          ...(model === "" ? {} : { [A.requestModel]: model })
        }
      })
      const record: RequestRecord = {
        settings,
        span,
        clock,
        startedAt: clock.unsafeCurrentTimeMillis(),
        model,
        provider: undefined,
        server: undefined,
        prepared: undefined,
        firstTextAt: undefined,
        finish: undefined,
        outputRedactions: new Map(),
        attempts: 0,
        lastAttemptEndedAt: undefined,
        lastFailure: undefined,
        retries: 0,
        joined: false,
        responseId: undefined,
        responseModel: undefined,
        output: settings.captureContent ? [] : undefined,
        outputChars: 0
      }
      const context = Context.add(Context.add(yield* Effect.context<never>(), Tracer.ParentSpan, span), CurrentRequest, record)
      return { record, context }
    })
    return Stream.fromChannel(
      Channel.acquireUseRelease(
        acquire,
        ({ context, record }) => Channel.provideContext(Stream.toChannel(Stream.mapChunks(stream, observeParts(record))), context),
        ({ record }, exit) =>
          complete(record, meter, exit).pipe(
            // Telemetry must never change how a request ends, and the span ends whatever happened.
            Effect.catchAllCause((cause) => Effect.logDebug("Telemetry: recording the request failed", Cause.pretty(cause))),
            Effect.zipRight(Effect.sync(() => record.span.end(record.clock.unsafeCurrentTimeNanos(), spanExit(exit))))
          )
      )
    )
  }
})
