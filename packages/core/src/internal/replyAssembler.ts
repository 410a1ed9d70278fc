/**
 * The reply assembler: one request's chat chunks in, parts out, Effect-free (like `SseParser`).
 * It counts the raw reply against the reservation as it streams and cuts it there, enforces the
 * reply-size limit and the number of choices, redacts text, refusal and alternatives as they
 * stream (only redacted text is held), and at the end gives the tail, the output counts and the
 * usage. Tool calls of choice 0 stream as redacted `ToolCallDelta`s; the raw arguments of a call
 * are held (within the reply limit) until it completes, then redacted by value, parsed and
 * decoded into a `ToolCall` or a `ToolCallError`, and dropped. The upstream stage owns one per request and feeds it one network read at a time.
 */
import { finishReasonFromWire, type FinishReason, type RedactionCount, type Usage } from "../Chat.js"
import type { ChatChunk, WireUsage } from "../ChatChunk.js"
import { ReplyTooLarge, type SafetyViolation } from "../GatewayError.js"
import { type Alternative, type Part, RedactionNotice, TextDelta, ToolCallDelta } from "../Part.js"
import type { OutputRedactor } from "../SafetyFilter.js"
import type { AnyTool } from "../Tool.js"
import * as ToolArguments from "./toolArguments.js"

/** Raw text is counted in slices of about this many characters as it streams. */
const sliceChars = 2_048
/** Near the end of the reservation every piece is counted: slices are kept this short. */
const nearSliceChars = 256
/** The most choices (alternatives) one reply may have. */
export const maxChoices = 128
/** The most tool calls one reply may make. */
export const maxToolCalls = 128
/** A tool call id longer than this is not used (one is made from the call's index). */
const maxToolCallIdLength = 256

/** Redaction counts of two sources, added up by kind. */
export const mergeCounts = (
  a: ReadonlyArray<RedactionCount>,
  b: ReadonlyArray<RedactionCount>
): ReadonlyArray<RedactionCount> => {
  if (b.length === 0) return a
  if (a.length === 0) return b
  const totals = new Map<string, number>()
  for (const r of [...a, ...b]) totals.set(r.kind, (totals.get(r.kind) ?? 0) + r.count)
  return Array.from(totals, ([kind, count]) => ({ kind, count }))
}

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

/**
 * A `TextDelta` as the Schema constructor makes it (same prototype, fields and key order) without
 * its copying and default merging: about 1.2 µs less per network read, a tenth of the per-token
 * cost of the whole pipeline. `text` is a string by construction.
 */
export const textDelta = (text: string): TextDelta =>
  Object.assign(Object.create(TextDelta.prototype) as TextDelta, { text, _tag: "TextDelta" as const })

/** What the assembler needs: a synchronous token counter for the model, and the limits. */
export interface Options {
  readonly count: (text: string) => number
  /** The redactor of choice 0's text. */
  readonly redactor: OutputRedactor
  /** The completion tokens the reservation covers: the reply is ended there. */
  readonly maxCompletionTokens: number
  /** Characters of text, refusal, alternatives and tool-call arguments together: beyond, `ReplyTooLarge`. */
  readonly maxReplyChars: number
  /** Redacts one text at once (the values of a completed tool call's arguments). */
  readonly redact: (text: string) => string
  /** The tools the request declared (names checked, arguments decoded with their Schemas). */
  readonly tools?: ReadonlyArray<AnyTool> | undefined
}

/** The end of a reply: the redactors' tails and counts, alternatives and refusal. */
export interface Closed {
  /** The main text's tail (not after a failure) and the output `RedactionNotice`, if any. */
  readonly parts: ReadonlyArray<Part>
  readonly outputRedactions: ReadonlyArray<RedactionCount>
  readonly alternatives: ReadonlyArray<Alternative>
  readonly refusal: string | undefined
}

/** One request's reply assembly (see the module comment). */
export interface ReplyAssembler {
  /**
   * How many more redactors `push(chunks)` needs (for a refusal or alternatives it has not
   * seen yet); give them with `supply` first. Usually 0.
   */
  readonly missing: (chunks: Iterable<ChatChunk>) => number
  readonly supply: (redactors: Iterable<OutputRedactor>) => void
  /** The parts of one network read, redacted. Stops taking text once `stopped` is set. */
  readonly push: (chunks: Iterable<ChatChunk>) => Array<Part>
  /**
   * Why the reply was ended early: the reservation was reached (`"cut"`), the size limit, or an
   * output block rule with the action `fail`.
   */
  readonly stopped: () => "cut" | ReplyTooLarge | SafetyViolation | undefined
  /** The output block rule that matched, also one found only by `close` in the last sentence. */
  readonly violation: () => SafetyViolation | undefined
  /** Usage reports beyond any real count, seen since the last call (for a warning). */
  readonly untrustedUsage: () => number
  /** Ends every redactor; after a failure the main tail is withheld and counted as `withheld`. */
  readonly close: (failed: boolean) => Closed
  /** The wire's finish reason of choice 0, and its usage report if it was believable. */
  readonly finishReason: () => FinishReason | undefined
  readonly gatewayUsage: () => Usage | undefined
  /** Whether any chunk arrived (a request that reached the gateway may be billed). */
  readonly received: () => boolean
  /** Completion tokens of all raw text received (counts what was not counted yet). */
  readonly completionTokens: () => number
}

interface Choice {
  readonly redactor: OutputRedactor
  text: string
  finishReason: FinishReason | undefined
}

/** A tool call of choice 0 as it streams. */
interface PendingCall {
  readonly index: number
  id: string | undefined
  name: string | undefined
  /** The arguments' raw text so far (bounded by the reply limit; never stored or logged). */
  raw: string
  readonly redactor: OutputRedactor
}

/** One entry of `delta.tool_calls`, read defensively (the gateway is not trusted). */
interface CallFragment {
  readonly index: number | undefined
  readonly id: string | undefined
  readonly name: string | undefined
  readonly arguments: string | undefined
}

const fragment = (entry: unknown): CallFragment | undefined => {
  if (typeof entry !== "object" || entry === null) return undefined
  const e = entry as Record<string, unknown>
  const fn = typeof e["function"] === "object" && e["function"] !== null ? e["function"] as Record<string, unknown> : {}
  const index = e["index"]
  return {
    index: typeof index === "number" && Number.isSafeInteger(index) && index >= 0 ? index : undefined,
    id: typeof e["id"] === "string" && e["id"].length > 0 ? e["id"] : undefined,
    name: typeof fn["name"] === "string" && fn["name"].length > 0 ? fn["name"] : undefined,
    arguments: typeof fn["arguments"] === "string" ? fn["arguments"] : undefined
  }
}

/** The assembler's scratch state, local to one request; see `ReplyAssembler` for the methods. */
class Assembler implements ReplyAssembler {
  private readonly spare: Array<OutputRedactor> = []
  private readonly others = new Map<number, Choice>()
  private refusal: { readonly redactor: OutputRedactor; text: string } | undefined
  private readonly calls = new Map<number, PendingCall>()
  /** The index of the call the last fragment went to (a fragment without an index goes there). */
  private lastCall: number | undefined
  /** Set once choice 0 finished: its calls were completed, later fragments are not taken. */
  private callsDone = false
  private reason: FinishReason | undefined
  private usage: Usage | undefined
  private untrusted = 0
  private receivedChunk = false
  private replyChars = 0
  /** Completion tokens counted so far, over the raw text that came before `uncounted`. */
  private counted = 0
  /** Raw reply text not counted yet (a bounded slice): never stored or logged. */
  private uncounted = ""
  private stop: "cut" | ReplyTooLarge | SafetyViolation | undefined
  /** The redactors that judge the reply (output block policy): any of them may end it. */
  private readonly judges: Array<() => SafetyViolation | undefined> = []
  private closed = false

  constructor(private readonly options: Options) {
    if (options.redactor.violation !== undefined) this.judges.push(options.redactor.violation)
  }

  /** Counts the head of `uncounted` up to a cut the tokenizers agree with. */
  private countHead(): void {
    const end = countableEnd(this.uncounted)
    if (end === 0) return
    this.counted += this.options.count(this.uncounted.slice(0, end))
    this.uncounted = this.uncounted.slice(end)
  }

  /** The longest prefix of `piece` that keeps `before + prefix` within `room` tokens. */
  private longestFit(before: string, piece: string, room: number): number {
    let fits = 0
    let over = piece.length
    while (over - fits > 1) {
      const mid = (fits + over) >>> 1
      if (this.options.count(before + piece.slice(0, mid)) <= room) fits = mid
      else over = mid
    }
    return fits > 0 && isHighSurrogate(piece.charCodeAt(fits - 1)) ? fits - 1 : fits
  }

  /**
   * Counts a raw piece against the reservation and returns the part of it that fits (all of
   * it, until the end of the reservation). Text is counted in bounded slices, and only where
   * the reservation could be reached is every piece counted at once.
   */
  private admit(piece: string): string {
    this.uncounted += piece
    const room = this.options.maxCompletionTokens - this.counted
    // A token is at least one UTF-8 byte, so there are at most 3 per UTF-16 unit.
    if (3 * this.uncounted.length <= room) {
      if (this.uncounted.length >= sliceChars) this.countHead()
      return piece
    }
    if (this.options.count(this.uncounted) <= room) {
      if (this.uncounted.length >= nearSliceChars) this.countHead()
      return piece
    }
    const before = this.uncounted.slice(0, this.uncounted.length - piece.length)
    const fits = this.longestFit(before, piece, room)
    this.uncounted = before + piece.slice(0, fits)
    this.stop = "cut"
    return piece.slice(0, fits)
  }

  /** A raw piece, within the reply-size limit and the reservation, or `""`. */
  private take(piece: string): string {
    if (this.replyChars + piece.length > this.options.maxReplyChars) {
      this.stop = new ReplyTooLarge({ limitChars: this.options.maxReplyChars, partial: true })
      return ""
    }
    this.replyChars += piece.length
    return this.admit(piece)
  }

  private nextRedactor(what: string): OutputRedactor {
    const redactor = this.spare.shift()
    if (redactor === undefined) throw new Error(`ReplyAssembler: push before supply (${what})`)
    return redactor
  }

  /** The index a fragment belongs to: its own, else a new call for a new id, else the last call. */
  private indexOf(f: CallFragment): number {
    if (f.index !== undefined) return f.index
    if (this.lastCall === undefined) return 0
    const last = this.calls.get(this.lastCall)
    if (f.id !== undefined && last !== undefined && last.id !== undefined && last.id !== f.id) {
      return Math.max(...this.calls.keys()) + 1
    }
    return this.lastCall
  }

  missing(chunks: Iterable<ChatChunk>): number {
    let refusalNeeded = false
    let fresh: Set<number> | undefined
    // Calls this read may open: counted generously (a spare redactor is kept for later).
    let newCalls = 0
    for (const chunk of chunks) {
      for (const choice of chunk.choices) {
        if (choice.index === 0) {
          const refused = choice.delta.refusal
          if (this.refusal === undefined && typeof refused === "string" && refused.length > 0) refusalNeeded = true
          const entries = choice.delta.tool_calls
          if (entries !== undefined && !this.callsDone) {
            for (const entry of entries) {
              const f = fragment(entry)
              if (f === undefined || this.calls.size + newCalls >= maxToolCalls) continue
              if (f.index !== undefined ? !this.calls.has(f.index) : (f.id !== undefined || this.calls.size === 0)) newCalls++
            }
          }
        } else if (!this.others.has(choice.index) && !(fresh?.has(choice.index) ?? false)) {
          // Beyond the limit no redactor is needed: the reply stops there.
          if (this.others.size + (fresh?.size ?? 0) + 1 >= maxChoices) continue
          ;(fresh ??= new Set()).add(choice.index)
        }
      }
    }
    return Math.max(0, (fresh?.size ?? 0) + (refusalNeeded ? 1 : 0) + newCalls - this.spare.length)
  }

  supply(redactors: Iterable<OutputRedactor>): void {
    for (const redactor of redactors) {
      this.spare.push(redactor)
      if (redactor.violation !== undefined) this.judges.push(redactor.violation)
    }
  }

  /** Choice 0: text (redacted into a part), refusal (redacted, held), finish reason. */
  private first(choice: ChatChunk["choices"][number], out: Array<Part>): void {
    const content = choice.delta.content
    if (typeof content === "string" && content.length > 0) {
      const raw = this.take(content)
      const safe = raw.length > 0 ? this.options.redactor.push(raw) : ""
      if (safe.length > 0) out.push(textDelta(safe))
    }
    const refused = choice.delta.refusal
    if (typeof refused === "string" && refused.length > 0 && this.stop === undefined) {
      const raw = this.take(refused)
      if (raw.length > 0) {
        this.refusal ??= { redactor: this.nextRedactor("refusal"), text: "" }
        this.refusal.text += this.refusal.redactor.push(raw)
      }
    }
    const entries = choice.delta.tool_calls
    if (entries !== undefined && entries.length > 0 && !this.callsDone) {
      for (const entry of entries) {
        if (this.stop !== undefined) break
        this.toolFragment(entry, out)
      }
    }
    if (typeof choice.finish_reason === "string") {
      this.reason = finishReasonFromWire(choice.finish_reason)
      this.completeCalls(out)
    }
  }

  /**
   * One fragment of a tool call: `id` and `name` from the first fragment that has them, the
   * arguments counted like text (reservation and reply limit), held raw until the call
   * completes and streamed as a redacted `ToolCallDelta`.
   */
  private toolFragment(entry: unknown, out: Array<Part>): void {
    const f = fragment(entry)
    if (f === undefined) return
    const index = this.indexOf(f)
    let call = this.calls.get(index)
    let opened = false
    if (call === undefined) {
      if (this.calls.size >= maxToolCalls) {
        this.stop = new ReplyTooLarge({ limitChars: this.options.maxReplyChars, partial: true })
        return
      }
      call = { index, id: undefined, name: undefined, raw: "", redactor: this.nextRedactor("tool call") }
      this.calls.set(index, call)
    }
    this.lastCall = index
    let id: string | undefined
    let name: string | undefined
    if (call.id === undefined && f.id !== undefined) {
      const taken = f.id.length <= maxToolCallIdLength ? this.take(f.id) : ""
      if (taken.length === f.id.length && taken.length > 0) {
        call.id = id = this.options.redact(taken)
        opened = true
      }
    }
    if (call.name === undefined && f.name !== undefined) {
      // Names are bounded identifiers: a longer one is invalid whatever follows.
      const piece = f.name.length <= 64 ? f.name : f.name.slice(0, 65)
      const taken = this.take(piece)
      call.name = name = taken.length === piece.length ? taken : ""
      opened = true
    }
    let argumentsDelta = ""
    if (f.arguments !== undefined && f.arguments.length > 0 && this.stop === undefined) {
      const raw = this.take(f.arguments)
      if (raw.length > 0) {
        call.raw += raw
        argumentsDelta = call.redactor.push(raw)
      }
    }
    if (opened || argumentsDelta.length > 0) {
      out.push(
        new ToolCallDelta({
          index,
          ...(id === undefined ? {} : { id }),
          ...(name === undefined ? {} : { name: ToolArguments.isToolName(name) ? name : "" }),
          argumentsDelta
        })
      )
    }
  }

  /**
   * Completes the calls in index order: each redactor's tail as a last `ToolCallDelta`, then
   * the `ToolCall` (or `ToolCallError`). The raw text is dropped.
   */
  private completeCalls(out: Array<Part>): void {
    if (this.callsDone) return
    this.callsDone = true
    for (const call of [...this.calls.values()].sort((a, b) => a.index - b.index)) {
      const tail = call.redactor.end()
      if (tail.length > 0) out.push(new ToolCallDelta({ index: call.index, argumentsDelta: tail }))
      out.push(ToolArguments.complete({
        index: call.index,
        id: call.id ?? `call_${call.index}`,
        name: call.name ?? "",
        raw: call.raw
      }, this.options.tools, this.options.redact))
      call.raw = ""
    }
  }

  /** Another choice: an alternative, redacted and held; at most `maxChoices` of them. */
  private other(choice: ChatChunk["choices"][number]): void {
    let other = this.others.get(choice.index)
    if (other === undefined) {
      if (this.others.size + 1 >= maxChoices) {
        this.stop = new ReplyTooLarge({ limitChars: this.options.maxReplyChars, partial: true })
        return
      }
      other = { redactor: this.nextRedactor("alternative"), text: "", finishReason: undefined }
      this.others.set(choice.index, other)
    }
    const content = choice.delta.content
    if (typeof content === "string" && content.length > 0) {
      const raw = this.take(content)
      if (raw.length > 0) other.text += other.redactor.push(raw)
    }
    if (typeof choice.finish_reason === "string") other.finishReason = finishReasonFromWire(choice.finish_reason)
  }

  push(chunks: Iterable<ChatChunk>): Array<Part> {
    const out: Array<Part> = []
    for (const chunk of chunks) {
      if (this.stop !== undefined) break
      this.receivedChunk = true
      if (chunk.usage) {
        const usage = trustedUsage(chunk.usage)
        if (usage !== undefined) this.usage = usage
        else this.untrusted++
      }
      for (const choice of chunk.choices) {
        if (this.stop !== undefined) break
        if (choice.index === 0) this.first(choice, out)
        else this.other(choice)
      }
      if (this.stop === undefined && this.judges.length > 0) this.stop = this.violation()
    }
    return out
  }

  violation(): SafetyViolation | undefined {
    for (const judge of this.judges) {
      const found = judge()
      if (found !== undefined) return found
    }
    return undefined
  }

  close(failed: boolean): Closed {
    // Once only: a reply failed after its close (a violation in the last sentence) has no more parts.
    if (this.closed) return { parts: [], outputRedactions: [], alternatives: [], refusal: undefined }
    this.closed = true
    return this.closeOnce(failed)
  }

  private closeOnce(failed: boolean): Closed {
    const tail = this.options.redactor.end()
    // Calls still open complete at the end of a clean stream; after a failure they are dropped.
    const calls: Array<Part> = []
    if (!failed) this.completeCalls(calls)
    let outputRedactions = this.options.redactor.redactions()
    if (failed && tail.length > 0) outputRedactions = mergeCounts(outputRedactions, [{ kind: "withheld", count: tail.length }])
    for (const call of this.calls.values()) {
      if (failed) call.raw = ""
      outputRedactions = mergeCounts(outputRedactions, call.redactor.redactions())
    }
    const alternatives: Array<Alternative> = []
    for (const [index, other] of [...this.others].sort(([a], [b]) => a - b)) {
      other.text += other.redactor.end()
      outputRedactions = mergeCounts(outputRedactions, other.redactor.redactions())
      alternatives.push(
        other.finishReason === undefined
          ? { index, text: other.text }
          : { index, text: other.text, finishReason: other.finishReason }
      )
    }
    let refusal: string | undefined = undefined
    if (this.refusal !== undefined) {
      refusal = this.refusal.text + this.refusal.redactor.end()
      outputRedactions = mergeCounts(outputRedactions, this.refusal.redactor.redactions())
    }
    const parts: Array<Part> = []
    if (tail.length > 0 && !failed) parts.push(new TextDelta({ text: tail }))
    parts.push(...calls)
    if (outputRedactions.length > 0) parts.push(new RedactionNotice({ direction: "output", redactions: outputRedactions }))
    return { parts, outputRedactions, alternatives, refusal }
  }

  stopped(): "cut" | ReplyTooLarge | SafetyViolation | undefined {
    return this.stop
  }

  untrustedUsage(): number {
    const n = this.untrusted
    this.untrusted = 0
    return n
  }

  finishReason(): FinishReason | undefined {
    return this.reason
  }

  gatewayUsage(): Usage | undefined {
    return this.usage
  }

  received(): boolean {
    return this.receivedChunk
  }

  completionTokens(): number {
    if (this.uncounted.length > 0) {
      this.counted += this.options.count(this.uncounted)
      this.uncounted = ""
    }
    return this.counted
  }
}

/**
 * A new assembler for one reply.
 */
export const make = (options: Options): ReplyAssembler => new Assembler(options)

/**
 * What the upstream stage knows about a `Finish` beyond its fields: the client ended the reply
 * at the reservation (`cut`: shared with identical requests in flight, never stored, as the
 * server never finished it), and the gateway reported usage costing more than the hold. Kept
 * beside the value, not in it, so the public `Finish` stays as it is; a stage that rebuilds
 * `Finish` drops them.
 */
export interface FinishFacts {
  readonly cut: boolean
  readonly usageOverReservation: boolean
}

const facts = new WeakMap<object, FinishFacts>()

/** Attaches `FinishFacts` to a `Finish` value. */
export const markFinish = <A extends object>(finish: A, value: FinishFacts): A => {
  facts.set(finish, value)
  return finish
}

/** The `FinishFacts` of a `Finish`, if the upstream stage made it. */
export const finishFacts = (finish: object): FinishFacts | undefined => facts.get(finish)
