/**
 * From server-sent events to decoded `chat.completion.chunk`s: `[DONE]` handling, in-stream
 * error objects, malformed data and truncation, in one Stream stage.
 *
 * @internal
 */
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { ChatChunk } from "../ChatChunk.js"
import { StreamProtocolError, StreamTruncated, UpstreamError } from "../GatewayError.js"
import type * as Sse from "../Sse.js"
import * as Issues from "./issues.js"
import * as Sanitize from "./sanitize.js"

/**
 * What to do with an event whose data is not a chat chunk (not JSON, or JSON of the wrong
 * shape): fail the stream (`"fail"`), or skip it (`"skip"`), in which case `onSkip` receives the
 * running count of skipped events and a warning is logged (without the data, which may hold
 * personal data).
 *
 * @internal
 */
export interface ChunkStreamOptions {
  readonly onMalformedJson: "fail" | "skip"
  readonly onSkip?: (count: number) => void
  /**
   * Cleans the text of an in-stream error (the transport passes one that knows the bearer
   * token it sent); default: PII, controls and length only.
   */
  readonly sanitize?: Sanitize.Sanitize
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const decodeChatChunk = Schema.decodeUnknownEither(ChatChunk)

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

const isString = (u: unknown): u is string => typeof u === "string"
const isNullableString = (u: unknown): u is string | null => u === null || typeof u === "string"
const isCount = (u: unknown): u is number => typeof u === "number" && Number.isSafeInteger(u) && u >= 0

/**
 * The `ChatChunk` schema's decoding of the shapes gateways actually send, done by hand: the
 * same checks, the same defaults, only the known keys kept. The schema costs several times
 * `JSON.parse` per event, and this runs once per token. It answers `undefined` for anything it
 * is not sure of, which then goes through the schema, the authority that also says what is
 * wrong; a property test holds the two to the same output.
 *
 * @internal
 */
export const decodeCommonChunk = (u: unknown): ChatChunk | undefined => {
  if (!isRecord(u)) return undefined
  const out: Mutable<ChatChunk> = { choices: [] }
  if (u.id !== undefined) {
    if (!isString(u.id)) return undefined
    out.id = u.id
  }
  if (u.model !== undefined) {
    if (!isString(u.model)) return undefined
    out.model = u.model
  }
  if (u.created !== undefined) {
    if (typeof u.created !== "number") return undefined
    out.created = u.created
  }
  const choices = u.choices
  if (choices !== undefined) {
    if (!Array.isArray(choices)) return undefined
    const decoded: Array<ChatChunk["choices"][number]> = new Array(choices.length)
    for (let i = 0; i < choices.length; i++) {
      const c: unknown = choices[i]
      if (!isRecord(c) || typeof c.index !== "number" || !Number.isSafeInteger(c.index)) return undefined
      const d = c.delta
      const delta: Mutable<ChatChunk["choices"][number]["delta"]> = {}
      if (d !== undefined) {
        if (!isRecord(d)) return undefined
        if (d.role !== undefined) {
          if (!isString(d.role)) return undefined
          delta.role = d.role
        }
        if (d.content !== undefined) {
          if (!isNullableString(d.content)) return undefined
          delta.content = d.content
        }
        if (d.refusal !== undefined) {
          if (!isNullableString(d.refusal)) return undefined
          delta.refusal = d.refusal
        }
        if (d.tool_calls !== undefined) {
          if (!Array.isArray(d.tool_calls)) return undefined
          delta.tool_calls = d.tool_calls
        }
      }
      const f = c.finish_reason
      if (f === undefined) {
        decoded[i] = { index: c.index, delta }
      } else {
        if (!isNullableString(f)) return undefined
        decoded[i] = { index: c.index, delta, finish_reason: f }
      }
    }
    out.choices = decoded
  }
  const usage = u.usage
  if (usage !== undefined) {
    if (usage === null) {
      out.usage = null
    } else {
      if (!isRecord(usage)) return undefined
      const { completion_tokens, prompt_tokens, total_tokens } = usage
      if (!isCount(prompt_tokens) || !isCount(completion_tokens) || !isCount(total_tokens)) return undefined
      out.usage = { prompt_tokens, completion_tokens, total_tokens }
    }
  }
  return out
}

/** Paths of the fields that did not match, never their values (which may be user text). */
const describeShapeError = (error: ParseResult.ParseError): string => {
  return `an event's data does not have the chat.completion.chunk shape (at ${Issues.paths(error).join(", ")})`
}

const NOT_JSON = "an event's data is not valid JSON"

const toStatus = (u: unknown): number | undefined => {
  const n = typeof u === "number" ? u : typeof u === "string" && /^[0-9]{3}$/.test(u) ? Number(u) : Number.NaN
  return Number.isInteger(n) && n >= 100 && n <= 599 ? n : undefined
}

/**
 * The typed error for an error the gateway reported inside a started stream: an
 * `{"error": {...}}` object (OpenAI), an `{"object": "error", ...}` object, an `event: error`
 * event with such an object, a bare error object or plain text. The status comes from the error
 * when it holds a numeric one, else 200 (the status of the stream it arrived in).
 */
const upstreamError = (error: unknown, sanitize: Sanitize.Sanitize): UpstreamError => {
  if (!isRecord(error)) {
    const detail = typeof error === "string" ? sanitize(error, Sanitize.limits.text) : ""
    return new UpstreamError({ status: 200, partial: true, ...(detail !== "" ? { detail } : {}) })
  }
  const status = toStatus(error.status) ?? toStatus(error.code) ?? 200
  const rawCode = typeof error.code === "string" && error.code !== ""
    ? error.code
    : typeof error.code === "number"
    ? String(error.code)
    : typeof error.type === "string" && error.type !== ""
    ? error.type
    : undefined
  const code = Sanitize.optional(sanitize, rawCode, Sanitize.limits.identifier)
  const detail = typeof error.message === "string" ? sanitize(error.message, Sanitize.limits.text) : undefined
  // A Genesys-shaped error names its contextId, which support asks for.
  const contextId = typeof error.contextId === "string"
    ? sanitize(error.contextId, Sanitize.limits.identifier)
    : undefined
  return new UpstreamError({
    status,
    partial: true,
    ...(code !== undefined && code !== "" ? { code } : {}),
    ...(detail !== undefined && detail !== "" ? { detail } : {}),
    ...(contextId !== undefined && contextId !== "" ? { contextId } : {})
  })
}

/** The error carried by a parsed chunk, if it is one. */
const errorOf = (json: unknown, sanitize: Sanitize.Sanitize): UpstreamError | undefined => {
  if (!isRecord(json)) return undefined
  if (json.error !== undefined && json.error !== null) return upstreamError(json.error, sanitize)
  if (json.object === "error") return upstreamError(json, sanitize)
  return undefined
}

const errorFromEvent = (data: string, sanitize: Sanitize.Sanitize): UpstreamError => {
  let json: unknown
  try {
    json = JSON.parse(data)
  } catch {
    return upstreamError(data, sanitize)
  }
  return errorOf(json, sanitize) ?? upstreamError(json, sanitize)
}

const isDone = (data: string) => data === "[DONE]" || (data.length < 16 && data.trim() === "[DONE]")

/**
 * What ends a stream of chunks early: an error, or `"done"` for `[DONE]`.
 *
 * @internal
 */
export type Failure = StreamProtocolError | UpstreamError | StreamTruncated

/** The content of a chunk as JSON renders it; no other JSON string can render as this text. */
const MARK = "\"\\u0000\""
/** The same for the padding field, which must be told apart from the content. */
const PAD_MARK = "\"\\u0001\""
/**
 * OpenAI pads every streamed chunk with a random string of this name (against length side
 * channels); decoding ignores it, so a template leaves a second place for it.
 */
const PADDING = "obfuscation"
/** What a JSON string's text cannot hold unescaped: quotes, backslashes, control characters. */
const special = /["\\\u0000-\u001f]/

/**
 * A copy of a slice of a network read. V8 represents a slice of 13 or more characters as a view
 * that keeps the whole read (up to 64 KiB) alive for as long as the caller keeps the text; a
 * concatenation sliced back is flattened into a string of its own.
 */
const own = (slice: string): string => slice.length < 13 ? slice : (slice + " ").slice(0, -1)

/** The value of the JSON string whose text is `text` (without its quotes), if it is one. */
const jsonString = (text: string): string | undefined => {
  if (!special.test(text)) return text
  // Escapes (or a quote that would end the string early) are JSON's to read: it accepts the
  // text only if it is one whole string.
  try {
    const value: unknown = JSON.parse(`"${text}"`)
    return typeof value === "string" ? value : undefined
  } catch {
    return undefined
  }
}

/** The position of the first quote at or after `from` that no backslash escapes, or -1. */
const closingQuote = (data: string, from: number): number => {
  let q = data.indexOf("\"", from)
  while (q !== -1) {
    let backslashes = 0
    while (q - backslashes - 1 >= from && data.charCodeAt(q - backslashes - 1) === 92) backslashes++
    if (backslashes % 2 === 0) return q
    q = data.indexOf("\"", q + 1)
  }
  return -1
}

/**
 * The text of one streamed chunk with the place of `choices[0].delta.content` cut out (and,
 * after it, the place of OpenAI's random padding string, when the chunk has one). A model's
 * chunks differ only in those strings, so an event that starts with `prefix`, ends with
 * `suffix` and holds one JSON string between them (or two, separated by `middle`) is the same
 * JSON with another content: it decodes to `base` with that content, without `JSON.parse` of
 * the whole and without the schema. A template is only made from an event whose text is
 * exactly `JSON.stringify` of its parsed value (so the cuts are at those strings and nowhere
 * else) and whose decoded chunk has one plain text choice.
 */
class ChunkTemplate {
  private constructor(
    readonly prefix: string,
    readonly middle: string | undefined,
    readonly suffix: string,
    readonly base: ChatChunk
  ) {}

  static from(data: string, json: unknown, chunk: ChatChunk): ChunkTemplate | undefined {
    if (chunk.choices.length !== 1 || (chunk.usage !== undefined && chunk.usage !== null)) return undefined
    const choice = chunk.choices[0]!
    const delta = choice.delta
    if (
      (choice.finish_reason !== undefined && choice.finish_reason !== null) || typeof delta.content !== "string" ||
      delta.refusal !== undefined || delta.tool_calls !== undefined || JSON.stringify(json) !== data
    ) return undefined
    const record = json as Record<string, unknown> & { choices: Array<{ delta: { content: string } }> }
    const wireDelta = record.choices[0]!.delta
    const content = wireDelta.content
    const padding = record[PADDING]
    const padded = typeof padding === "string"
    wireDelta.content = "\u0000"
    if (padded) record[PADDING] = "\u0001"
    const text = JSON.stringify(json)
    wireDelta.content = content
    if (padded) record[PADDING] = padding
    const at = text.indexOf(MARK)
    if (at === -1 || text.indexOf(MARK, at + 1) !== -1) return undefined
    const contentEnd = at + MARK.length - 1
    if (!padded) return new ChunkTemplate(text.slice(0, at + 1), undefined, text.slice(contentEnd), chunk)
    const padAt = text.indexOf(PAD_MARK)
    if (padAt < contentEnd || text.indexOf(PAD_MARK, padAt + 1) !== -1) return undefined
    return new ChunkTemplate(
      text.slice(0, at + 1),
      text.slice(contentEnd, padAt + 1),
      text.slice(padAt + PAD_MARK.length - 1),
      chunk
    )
  }

  /** The chunk `data` decodes to, when it is this template with some content; else `undefined`. */
  match(data: string): ChatChunk | undefined {
    const start = this.prefix.length
    const end = data.length - this.suffix.length
    // Compared as slices: V8's startsWith is several times slower on these strings.
    if (end < start || data.slice(0, start) !== this.prefix || data.slice(end) !== this.suffix) return undefined
    const middle = this.middle
    if (middle === undefined) {
      const content = jsonString(data.slice(start, end))
      return content === undefined ? undefined : this.make(own(content))
    }
    const quote = closingQuote(data, start)
    const padStart = quote + middle.length
    if (quote === -1 || padStart > end || data.slice(quote, padStart) !== middle) return undefined
    if (jsonString(data.slice(padStart, end)) === undefined) return undefined
    const content = jsonString(data.slice(start, quote))
    return content === undefined ? undefined : this.make(own(content))
  }

  /** `base` with another content, built as {@link decodeCommonChunk} builds it. */
  private make(content: string): ChatChunk {
    const base = this.base
    const choice = base.choices[0]!
    const delta = choice.delta.role === undefined ? { content } : { role: choice.delta.role, content }
    const out: Mutable<ChatChunk> = {
      choices: [
        choice.finish_reason === undefined
          ? { index: choice.index, delta }
          : { index: choice.index, delta, finish_reason: choice.finish_reason }
      ]
    }
    if (base.id !== undefined) out.id = base.id
    if (base.model !== undefined) out.model = base.model
    if (base.created !== undefined) out.created = base.created
    if (base.usage !== undefined) out.usage = base.usage
    return out
  }
}

/**
 * The decoding of one stream's events into chat chunks, Effect-free: `[DONE]`, in-stream
 * errors, malformed data (failed or skipped and counted), whether a finish reason was seen.
 * Shared by {@link decodeChunks} and the transport's fused body decoder.
 *
 * @internal
 */
export class ChunkDecoder {
  /** Some choice reported a `finish_reason`: an end without `[DONE]` is not a truncation. */
  sawFinish = false
  /** Events skipped so far, and since the last {@link takeSkips}, with their reasons. */
  skipped = 0
  private skippedHere = 0
  private kinds: Set<string> | undefined = undefined
  private template: ChunkTemplate | undefined = undefined
  /** Events the template decoded (for tests). */
  templateHits = 0
  private templateBuilds = 0
  private readonly skip: boolean

  constructor(readonly options: ChunkStreamOptions, readonly sanitize: Sanitize.Sanitize) {
    this.skip = options.onMalformedJson === "skip"
  }

  /** Decodes one event into `out`; answers what ends the stream, when this event does. */
  event(type: string, data: string, out: Array<ChatChunk>): "done" | Failure | undefined {
    if (type === "error") return errorFromEvent(data, this.sanitize)
    const template = this.template
    if (template !== undefined) {
      const chunk = template.match(data)
      if (chunk !== undefined) {
        this.templateHits++
        out.push(chunk)
        return undefined
      }
    }
    if (isDone(data)) return "done"
    let json: unknown
    let reason: string | undefined
    try {
      json = JSON.parse(data)
    } catch {
      reason = NOT_JSON
    }
    if (reason === undefined) {
      const error = errorOf(json, this.sanitize)
      if (error !== undefined) return error
      const common = decodeCommonChunk(json)
      if (common !== undefined) {
        this.accept(common, out)
        // A new template when the last one missed; given up on a stream whose chunks never
        // repeat (e.g. a field that changes with every event).
        if (this.templateBuilds < 8 || this.templateHits >= this.templateBuilds) {
          const made = ChunkTemplate.from(data, json, common)
          if (made !== undefined) {
            this.templateBuilds++
            this.template = made
          }
        }
        return undefined
      }
      const decoded = decodeChatChunk(json)
      if (Either.isRight(decoded)) {
        this.accept(decoded.right, out)
        return undefined
      }
      reason = describeShapeError(decoded.left)
    }
    if (!this.skip) return new StreamProtocolError({ reason, partial: true })
    this.skipped++
    this.skippedHere++
    ;(this.kinds ??= new Set()).add(reason)
    return undefined
  }

  private accept(chunk: ChatChunk, out: Array<ChatChunk>): void {
    for (let c = 0; c < chunk.choices.length; c++) {
      const finish = chunk.choices[c]!.finish_reason
      if (finish !== undefined && finish !== null) this.sawFinish = true
    }
    out.push(chunk)
  }

  /** The report of the events skipped since the last call (`undefined` when none were). */
  takeSkips(): Effect.Effect<void> | undefined {
    if (this.skippedHere === 0) return undefined
    const inChunk = this.skippedHere
    const kinds = this.kinds!
    const total = this.skipped
    this.skippedHere = 0
    this.kinds = undefined
    return Effect.zipRight(
      Effect.sync(() => this.options.onSkip?.(total)),
      Effect.logWarning(`Skipped ${inChunk} streamed event(s) whose data is not a chat chunk`).pipe(
        Effect.annotateLogs({ skippedTotal: total, reasons: [...kinds].join("; ") })
      )
    )
  }

  /** What follows a batch of decoded chunks: write them, report skips, then `next` or the end. */
  continueWith<OErr, InElem, InErr>(
    out: Array<ChatChunk>,
    end: "done" | Failure | undefined,
    next: Channel.Channel<Chunk.Chunk<ChatChunk>, InElem, OErr, InErr, unknown, unknown>,
    fail: (failure: Failure) => OErr
  ): Channel.Channel<Chunk.Chunk<ChatChunk>, InElem, OErr, InErr, unknown, unknown> {
    const then = end === undefined ? next : end === "done" ? Channel.void : Channel.fail(fail(end))
    const skips = this.takeSkips()
    const afterSkips = skips === undefined ? then : Channel.zipRight(Channel.fromEffect(skips), then)
    return out.length === 0
      ? afterSkips
      : Channel.zipRight(Channel.write(out.length === 1 ? Chunk.of(out[0]!) : Chunk.unsafeFromArray(out)), afterSkips)
  }

  /** The end of the input: a success once a finish reason was seen, else a truncation. */
  finish(): Failure | undefined {
    return this.sawFinish ? undefined : new StreamTruncated({ partial: true })
  }
}

/**
 * Decodes server-sent events into chat chunks, whole chunks of events at a time.
 *
 * - `data: [DONE]` (surrounding whitespace tolerated) ends the stream; nothing after it is read.
 * - An `event: error` event, or data holding an error object, fails with `UpstreamError`
 *   (`partial: true`; status from the error when numeric, else 200).
 * - Events of any other type are chat chunks (OpenAI sends only the default type; a gateway
 *   that names its events does not lose text).
 * - Data that is not a chat chunk fails with `StreamProtocolError`, or is skipped and counted
 *   under `onMalformedJson: "skip"`.
 * - An end without `[DONE]` is a success once some choice has reported a `finish_reason`,
 *   otherwise `StreamTruncated` (`partial: true`).
 *
 * One `JSON.parse` per event, then the `ChatChunk` schema on the parsed value (the same result
 * as `Schema.parseJson(ChatChunk)`, with the parsed value also checked for an error object);
 * the common shapes take {@link decodeCommonChunk}, which decodes them the same way faster.
 *
 * @internal
 */
export const decodeChunks = (options: ChunkStreamOptions) =>
<E, R>(
  self: Stream.Stream<Sse.Event, E, R>
): Stream.Stream<ChatChunk, E | StreamProtocolError | UpstreamError | StreamTruncated, R> =>
  Stream.pipeThroughChannel(
    self,
    Channel.suspend(() => {
      const decoder = new ChunkDecoder(options, options.sanitize ?? Sanitize.basic)
      type Out = Channel.Channel<Chunk.Chunk<ChatChunk>, Chunk.Chunk<Sse.Event>, E | Failure, E, unknown, unknown>
      const keep = (failure: Failure): E | Failure => failure
      const loop: Out = Channel.readWithCause({
        onInput: (input: Chunk.Chunk<Sse.Event>): Out => {
          const events = Chunk.toReadonlyArray(input)
          const out: Array<ChatChunk> = []
          let end: "done" | Failure | undefined
          for (let i = 0; i < events.length && end === undefined; i++) {
            end = decoder.event(events[i]!.event, events[i]!.data, out)
          }
          return decoder.continueWith(out, end, loop, keep)
        },
        onFailure: (cause) => Channel.failCause(cause),
        onDone: (): Out => {
          const end = decoder.finish()
          return end === undefined ? Channel.void : Channel.fail(end)
        }
      })
      return loop
    })
  )
