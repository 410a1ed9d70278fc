/**
 * Gateway: the one entry point. A request is prepared (template, input guard, context fitting,
 * key) into an immutable `Stage.Prepared`, then answered by a composition of stages (cache, rate
 * limit, upstream with budget and streaming redaction) as one typed `Stream` of parts, audited
 * once whatever the exit. `layer` is the default composition; `layerWith` takes your own.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { pipe } from "effect/Function"
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
  type OutboundRequest,
  type RedactionCount,
  type Usage,
  type UsageSource
} from "./Chat.js"
import * as ContextWindow from "./ContextWindow.js"
import * as CostMeter from "./CostMeter.js"
import { type GatewayError, InvalidRequest } from "./GatewayError.js"
import { type Alternative, ContextTrimmed, type Part, RedactionNotice } from "./Part.js"
import { formatPath } from "./internal/issues.js"
import * as StructuredReply from "./internal/structuredReply.js"
import * as PartsFold from "./internal/partsFold.js"
import * as ReplyAssembler from "./internal/replyAssembler.js"
import * as Observe from "./internal/telemetry.js"
import * as RequestIntake from "./internal/requestIntake.js"
import * as RestoreParts from "./internal/restoreParts.js"
import * as PromptTemplate from "./PromptTemplate.js"
import * as ResponseCache from "./ResponseCache.js"
import * as SafetyFilter from "./SafetyFilter.js"
import * as Stage from "./Stage.js"
import * as StructuredOutput from "./StructuredOutput.js"
import * as Tool from "./Tool.js"
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
 * - `rateLimit`: a client-side request rate limit (see `Stage.rateLimit`), waited for before
 *   the budget hold.
 *
 * `maxReplyChars` and `rateLimit` configure the stages `layer` composes; with `layerWith` give
 * them to `Stage.upstream` and `Stage.rateLimit` instead.
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
export const defaultMaxReplyChars: number = Stage.defaultMaxReplyChars

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
 * A client-side request rate limit (see `Stage.RateLimit`), applied around the upstream call
 * before the budget hold.
 *
 * @since 0.1.0
 * @category Models
 */
export type RateLimit = Stage.RateLimit

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
  /** The decoded reply of a request with a `responseFormat` (see `Finish.value`). */
  readonly value: unknown
}

/**
 * A finished structured reply, collected by `completeObject`: a `Completion` whose `value` is
 * the reply decoded with the Schema.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ObjectCompletion<A> extends Completion {
  readonly value: A
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
  /**
   * A dry run: the redacted, fitted request, its token count, its cache key and its cost
   * reservation, without any network call, budget hold or audit entry.
   */
  readonly prepare: (request: ChatRequestInput) => Effect.Effect<DryRun, GatewayError>
}

/**
 * The Gateway service.
 *
 * @since 0.1.0
 * @category Services
 */
export class Gateway extends Context.Tag("@llm-gateway/core/Gateway")<Gateway, Service>() {}

/**
 * What `Gateway.prepare` returns: the prepared request (redacted, fitted, keyed, see
 * `Stage.Prepared`) and the cost the budget would hold for it (`undefined` without a
 * `CostMeter` in the context).
 *
 * @since 0.1.0
 * @category Models
 */
export interface DryRun extends Stage.Prepared {
  readonly reservation: Cost | undefined
}

/**
 * Where request ids come from: `next(now)` gives the id of a request that starts at `now`
 * (milliseconds). The default counts up from 0 behind a base-36 timestamp; provide another
 * (`Effect.provideService(Gateway.RequestIds, ...)`) for ids of your own, e.g. a trace id.
 *
 * @since 0.1.0
 * @category Config
 */
export class RequestIds extends Context.Reference<RequestIds>()("@llm-gateway/core/Gateway/RequestIds", {
  defaultValue: (): { readonly next: (now: number) => string } => {
    let counter = 0
    return { next: (now) => `${now.toString(36)}-${(counter++).toString(36)}` }
  }
}) {}

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
      const path = formatPath(issue.path, "request")
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
 * Each request's restoration (its placeholder values, when the policy restores), kept beside
 * its `Prepared`, never in it: stages, the cache and dry runs do not see the values, and it
 * goes with the request.
 */
const restorations = new WeakMap<Stage.Prepared, SafetyFilter.Restoration>()

/**
 * The first stage, and `Gateway.prepare`'s dry run: decode → template → system split → guard
 * input → fit → request key, with no network call. It runs before any other stage: the key is
 * computed on the redacted, fitted request.
 */
const makePrepare = (options: Options) =>
  Effect.gen(function*() {
    const safety = yield* SafetyFilter.SafetyFilter
    const contextWindow = yield* ContextWindow.ContextWindow
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
        for (const m of split.messages) {
          total += m.content.length + (m.name?.length ?? 0)
          if (m.toolCalls !== undefined) for (const call of m.toolCalls) total += call.name.length + call.arguments.length
        }
        return total > limits.maxPromptChars
          ? Effect.fail(new InvalidRequest({
            issues: [`request: the prompt has ${total} characters, more than the limit of ${limits.maxPromptChars} (maxPromptChars)`]
          }))
          : Effect.void
      })

    /**
     * A response format as it will be sent: strict mode's rules checked before any call, and
     * no PII in its schema or description, which go on the wire as written (redacting them
     * would change the shape asked for, so they are refused instead).
     */
    const checkFormat = (format: StructuredOutput.AnyResponseFormat) =>
      Effect.suspend(() => {
        const plain = StructuredOutput.toPlain(format)
        if (plain.strict !== false) {
          const issues = StructuredOutput.strictIssues(plain.jsonSchema)
          if (issues.length > 0) {
            return Effect.fail(new InvalidRequest({
              issues: issues.map((issue) =>
                safety.redact(`${formatPath(["responseFormat", "jsonSchema", ...issue.path], "request")}: ${issue.message}`).text
              )
            }))
          }
        }
        const kinds = new Set(safety.redact(`${plain.description ?? ""}\n${JSON.stringify(plain.jsonSchema)}`).findings.map((f) => f.kind))
        return kinds.size > 0
          ? Effect.fail(new InvalidRequest({
            issues: [`responseFormat: its schema or description holds text the safety policy redacts (${[...kinds].join(", ")}); it is sent as written, so remove it`]
          }))
          : Effect.succeed(plain)
      })

    // What the wire profile cannot carry (tools on the gateway profile) is refused before any call.
    const transport = yield* Effect.serviceOption(Transport.GatewayTransport)
    const profile = Option.isSome(transport) ? transport.value.profile : undefined
    return (input: ChatRequestInput, requestId: string): Effect.Effect<Stage.Prepared, GatewayError> =>
      Effect.gen(function*() {
        const request = yield* decodeRequest(input)
        const unsupported = profile === undefined ? undefined : Transport.unsupportedBy(profile, request)
        if (unsupported !== undefined) return yield* new InvalidRequest({ issues: [unsupported] })
        const format = request.responseFormat === undefined ? undefined : yield* checkFormat(request.responseFormat)
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
        const guarded = yield* Observe.span(safety.guardInput(split), "SafetyFilter.guardInput")
        const fitted = yield* contextWindow.fit({
          model: request.model,
          system: guarded.system,
          messages: guarded.messages,
          reserveForReply: request.maxTokens,
          tools: request.tools
        })
        const outbound: OutboundRequest = {
          ...(format === undefined ? {} : { responseFormat: format }),
          model: request.model,
          system: guarded.system,
          messages: fitted.messages,
          temperature: request.temperature,
          maxTokens: request.maxTokens,
          ...(request.tools === undefined || request.tools.length === 0 ? {} : { tools: request.tools }),
          ...(request.toolChoice === undefined ? {} : { toolChoice: request.toolChoice })
        }
        const prepared: Stage.Prepared = {
          requestId,
          outbound,
          ...(request.responseFormat === undefined ? {} : { responseFormat: request.responseFormat }),
          promptTokens: fitted.promptTokens,
          maxCompletionTokens: request.maxTokens ?? (yield* contextWindow.modelInfo(request.model)).maxOutputTokens,
          // The policy takes part: a reply redacted under another policy is never replayed here.
          requestHash: ResponseCache.requestKey({
            ...outbound,
            // A tool's Schema is code: its JSON Schema stands for it in the key.
            tools: outbound.tools?.map(toolKey),
            profile: options.profile,
            policy: safety.fingerprint
          }),
          cache: request.cache !== false,
          inputRedactions: guarded.redactions,
          droppedMessages: fitted.droppedMessages,
          contextLimit: fitted.limit
        }
        if (guarded.restoration !== undefined) restorations.set(prepared, guarded.restoration)
        return prepared
      })
  })

/** A tool as plain data, for the request key. */
const toolKey = (tool: Tool.AnyTool): Tool.ToolDefinition => ({
  name: tool.name,
  ...(tool.description === undefined ? {} : { description: tool.description }),
  ...(tool.parameters === undefined ? {} : { parameters: tool.parameters })
})

/** What the caller learns first: what the guard redacted and what the fitting dropped. */
const prelude = (prepared: Stage.Prepared): ReadonlyArray<Part> => {
  const parts: Array<Part> = []
  if (prepared.inputRedactions.length > 0) {
    parts.push(new RedactionNotice({ direction: "input", redactions: prepared.inputRedactions }))
  }
  if (prepared.droppedMessages > 0) {
    parts.push(
      new ContextTrimmed({
        droppedMessages: prepared.droppedMessages,
        promptTokens: prepared.promptTokens,
        limit: prepared.contextLimit
      })
    )
  }
  return parts
}

/** The audit entry of one request, from what it was, the parts it gave and how it ended. */
const auditEntry = (request: {
  readonly requestId: string
  readonly startedAt: number
  readonly now: number
  readonly model: string
  readonly prepared: Stage.Prepared | undefined
  readonly parts: PartsFold.Fold
  readonly exit: Exit.Exit<unknown, GatewayError>
}): AuditLog.AuditEntry => {
  const { exit, now, prepared } = request
  const finish = request.parts.finish
  const succeeded = Exit.isSuccess(exit) && finish !== undefined
  // A typed failure names its tag; a defect is a failure too; interruption (or a consumer
  // that stopped reading before Finish) is "interrupted".
  const errorTag = Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)
    ? Option.match(Cause.failureOption(exit.cause), { onNone: () => "Defect", onSome: (e) => e._tag })
    : undefined
  const facts = finish === undefined ? undefined : ReplyAssembler.finishFacts(finish)
  return {
    requestId: request.requestId,
    timestamp: new Date(now).toISOString(),
    requestHash: prepared?.requestHash ?? "",
    model: finish?.model ?? request.model,
    outcome: succeeded ? "success" : errorTag !== undefined ? "failure" : "interrupted",
    ...(errorTag !== undefined ? { errorTag } : {}),
    ...(finish !== undefined
      ? { finishReason: finish.reason, usage: finish.usage, usageSource: finish.usageSource, cost: finish.cost }
      : {}),
    ...(facts?.usageOverReservation === true ? { usageOverReservation: true } : {}),
    cached: finish?.cached ?? false,
    inputRedactions: prepared?.inputRedactions ?? [],
    outputRedactions: request.parts.outputRedactions,
    droppedMessages: prepared?.droppedMessages ?? 0,
    durationMs: now - request.startedAt,
    ...auditTools(prepared, request.parts)
  }
}

/** The tool names and call counts of an audit entry (never arguments, never a name the request did not declare). */
const auditTools = (
  prepared: Stage.Prepared | undefined,
  parts: PartsFold.Fold
): Pick<AuditLog.AuditEntry, "tools" | "toolCalls"> => {
  const declared = prepared?.outbound.tools?.map((tool) => tool.name) ?? []
  const calls = parts.toolCalls
  return {
    ...(declared.length === 0 ? {} : { tools: declared }),
    ...(calls.length === 0 ? {} : {
      toolCalls: {
        count: calls.length,
        failed: calls.filter((call) => call._tag === "ToolCallError").length,
        names: calls.map((call) => declared.includes(call.name) ? call.name : "(undeclared)")
      }
    })
  }
}

/**
 * Builds a gateway around a handler composed of stages (see `Stage`): `prepare` runs first,
 * the audit around everything. `options.systemInstruction`, `profile` and `limits` apply here;
 * `maxReplyChars` and `rateLimit` belong to the stages (`Stage.upstream`, `Stage.rateLimit`).
 * The dry run prices its reservation with the `CostMeter` in the context, if any.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeWith = (
  handler: Stage.Handler,
  options: Options = {}
): Effect.Effect<Service, never, SafetyFilter.SafetyFilter | ContextWindow.ContextWindow | AuditLog.AuditLog> =>
  Effect.gen(function*() {
    const prepare = yield* makePrepare(options)
    const audit = yield* AuditLog.AuditLog
    const meter = yield* Effect.serviceOption(CostMeter.CostMeter)

    const observe = yield* Observe.gateway
    // Whether a request may come with values to restore (the policy restores placeholders).
    const restoring = (yield* SafetyFilter.SafetyFilter).restores === true

    /**
     * The audit stage, outermost: exactly one entry per request whatever the exit; inside the
     * request's span when the `Telemetry` service is present. `onPrepared` learns the request.
     */
    const audited = (
      input: ChatRequestInput,
      onPrepared?: (prepared: Stage.Prepared) => void
    ): Stream.Stream<Part, GatewayError> =>
      observe(input, Stream.suspend(() => {
        // Scratch state of this stage, for this request only.
        let startedAt = 0
        let requestId = ""
        let prepared: Stage.Prepared | undefined
        const parts = PartsFold.make(0)
        const append = (exit: Exit.Exit<unknown, GatewayError>) =>
          Effect.gen(function*() {
            const entry = auditEntry({
              requestId,
              startedAt,
              now: yield* Clock.currentTimeMillis,
              model: prepared?.outbound.model ?? RequestIntake.modelIdOf(input),
              prepared,
              parts: parts.state,
              exit
            })
            // The audit entry must not turn a delivered reply into a failure, nor be skipped quietly.
            yield* audit.append(entry).pipe(
              Effect.catchAllCause((cause) =>
                Effect.logError("Gateway: appending the audit entry failed", Cause.pretty(cause)).pipe(
                  Effect.annotateLogs({ requestId: entry.requestId, outcome: entry.outcome })
                )
              )
            )
          })
        return Stream.unwrap(Effect.gen(function*() {
          startedAt = yield* Clock.currentTimeMillis
          requestId = (yield* RequestIds).next(startedAt)
          prepared = yield* Observe.prepared(prepare(input, requestId))
          onPrepared?.(prepared)
          return Stream.concat(
            Stream.fromIterable(prelude(prepared)),
            StructuredReply.decode(prepared.responseFormat, handler(prepared))
          )
        })).pipe(
          Stream.mapChunks((chunk) => {
            for (const part of chunk) parts.add(part)
            return chunk
          }),
          Stream.ensuringWith((exit) => append(exit as Exit.Exit<unknown, GatewayError>))
        )
      }))

    /**
     * The caller's values put back last, outside the audit and the request's span (neither sees
     * them), with this request's restoration; without `restore` in the policy, no stage at all.
     */
    const stream = (input: ChatRequestInput): Stream.Stream<Part, GatewayError> =>
      !restoring ? audited(input) : Stream.suspend(() => {
        let restoration: SafetyFilter.Restoration | undefined
        return RestoreParts.restore(
          audited(input, (prepared) => {
            restoration = restorations.get(prepared)
          }),
          () => restoration
        )
      })

    const complete = (input: ChatRequestInput): Effect.Effect<Completion, GatewayError> =>
      Effect.suspend(() => {
        const fold = PartsFold.make(Number.POSITIVE_INFINITY)
        return stream(input).pipe(
          Stream.runForEachChunk((chunk) =>
            Effect.sync(() => {
              for (const part of chunk) fold.add(part)
            })
          ),
          Effect.map((): Completion => {
            const { droppedMessages, finish, inputRedactions, outputRedactions, text } = fold.state
            // A successful stream always ends with Finish.
            const done = finish!
            return {
              text: text ?? "",
              finishReason: done.reason,
              usage: done.usage,
              usageSource: done.usageSource,
              cost: done.cost,
              cached: done.cached,
              requestHash: done.requestHash,
              alternatives: done.alternatives,
              refusal: done.refusal,
              redactions: { input: inputRedactions, output: outputRedactions },
              droppedMessages,
              value: done.value
            }
          })
        )
      })

    const dryRun = (input: ChatRequestInput): Effect.Effect<DryRun, GatewayError> =>
      Effect.gen(function*() {
        const prepared = yield* prepare(input, (yield* RequestIds).next(yield* Clock.currentTimeMillis))
        const { maxCompletionTokens, outbound, promptTokens } = prepared
        const reservation = Option.isNone(meter) ? undefined : meter.value.price(outbound.model, {
          promptTokens,
          completionTokens: maxCompletionTokens,
          totalTokens: promptTokens + maxCompletionTokens
        })
        return { ...prepared, reservation }
      })

    return Gateway.of({ stream, complete, prepare: dryRun })
  })

/**
 * Builds the default gateway from its services: `prepare`, then the cache, the rate limit and
 * the upstream stage (budget, transport, redaction), all audited.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options: Options = {}): Effect.Effect<Service, never, Requirements> =>
  Effect.gen(function*() {
    const handler = pipe(
      yield* Stage.upstream({ maxReplyChars: options.maxReplyChars }),
      yield* Stage.rateLimit(options.rateLimit),
      yield* Stage.cache
    )
    return yield* makeWith(handler, options)
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
 * A gateway composed of your own stages, as a Layer (see `Stage` and `makeWith`): only the
 * services your stages use are required, with `SafetyFilter`, `ContextWindow` and `AuditLog`.
 *
 * @example
 * import { Gateway, Stage } from "@llm-gateway/core"
 * import * as Effect from "effect/Effect"
 * import { pipe } from "effect/Function"
 *
 * // The default pipeline without the cache: CostMeter stays, ResponseCache is not required.
 * export const Uncached = Gateway.layerWith(
 *   Effect.gen(function*() {
 *     return pipe(yield* Stage.upstream(), yield* Stage.rateLimit({ limit: 300, window: "1 minute" }))
 *   })
 * )
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerWith = <R>(
  handler: Effect.Effect<Stage.Handler, never, R>,
  options: Options = {}
): Layer.Layer<Gateway, never, R | SafetyFilter.SafetyFilter | ContextWindow.ContextWindow | AuditLog.AuditLog> =>
  Layer.effect(Gateway, Effect.flatMap(handler, (h) => makeWith(h, options)))

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

/**
 * Prepares a request through the `Gateway` in the context without sending it (a dry run).
 *
 * @since 0.1.0
 * @category Accessors
 */
export const prepare = (request: ChatRequestInput): Effect.Effect<DryRun, GatewayError, Gateway> =>
  Effect.flatMap(Gateway, (gateway) => gateway.prepare(request))

/**
 * Asks for a reply that is one JSON value of `schema`'s shape (structured output) through the
 * `Gateway` in the context, and returns the collected reply with `value` decoded. The request
 * carries `StructuredOutput.make(schema, options)` as its `responseFormat`: on the `openai`
 * profile a strict `json_schema` response format, on the `gateway` profile an instruction
 * appended to the system instruction. A reply that is not JSON, was cut, or does not decode
 * fails with `ReplySchemaMismatch` (paths, never values); a Schema with no JSON Schema, or one
 * strict mode cannot express (see `StructuredOutput.strictIssues`), with `InvalidRequest`
 * before anything is sent.
 *
 * @example
 * import { Gateway } from "@llm-gateway/core"
 * import * as Schema from "effect/Schema"
 *
 * const City = Schema.Struct({ name: Schema.String, country: Schema.String, population: Schema.NullOr(Schema.Int) })
 *
 * export const city = Gateway.completeObject(
 *   { model: "gpt-4o-mini", messages: [{ role: "user", content: "The largest city of Japan?" }] },
 *   City
 * )
 *
 * @since 0.1.0
 * @category Accessors
 */
export const completeObject = <A, I>(
  request: Omit<ChatRequestInput, "responseFormat">,
  schema: Schema.Schema<A, I, never>,
  options?: { readonly name?: string | undefined; readonly description?: string | undefined; readonly strict?: boolean | undefined }
): Effect.Effect<ObjectCompletion<A>, GatewayError, Gateway> =>
  Effect.gen(function*() {
    const format = yield* Effect.try({
      try: () => StructuredOutput.make(schema, options),
      catch: (cause) => {
        const why = cause instanceof Error ? cause.message.replace(/\s+/g, " ").slice(0, 300) : "unknown reason"
        return new InvalidRequest({ issues: [`responseFormat: the Schema has no JSON Schema (${why})`] })
      }
    })
    const completion = yield* complete({ ...request, responseFormat: format } as ChatRequestInput)
    return { ...completion, value: completion.value as A }
  })
