/**
 * The reply assembler: one request's chat chunks in, parts out, Effect-free (like `SseParser`).
 * It counts the raw reply against the reservation as it streams and cuts it there, enforces the
 * reply-size limit and the number of choices, redacts text, refusal and alternatives as they
 * stream (only redacted text is held), and at the end gives the tail, the output counts and the
 * usage. The upstream stage owns one per request and feeds it one network read at a time.
 */
import { finishReasonFromWire, type FinishReason, type RedactionCount, type Usage } from "../Chat.js"
import type { ChatChunk, WireUsage } from "../ChatChunk.js"
import { ReplyTooLarge } from "../GatewayError.js"
import { type Alternative, type Part, RedactionNotice, TextDelta } from "../Part.js"
import type { OutputRedactor } from "../SafetyFilter.js"

/** Raw text is counted in slices of about this many characters as it streams. */
const sliceChars = 2_048
/** Near the end of the reservation every piece is counted: slices are kept this short. */
const nearSliceChars = 256
/** The most choices (alternatives) one reply may have. */
export const maxChoices = 128

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
  /** Characters of text, refusal and alternatives together: beyond, `ReplyTooLarge`. */
  readonly maxReplyChars: number
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
  /** Why the reply was ended early: the reservation was reached (`"cut"`) or the size limit. */
  readonly stopped: () => "cut" | ReplyTooLarge | undefined
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

/** The assembler's scratch state, local to one request; see `ReplyAssembler` for the methods. */
class Assembler implements ReplyAssembler {
  private readonly spare: Array<OutputRedactor> = []
  private readonly others = new Map<number, Choice>()
  private refusal: { readonly redactor: OutputRedactor; text: string } | undefined
  private reason: FinishReason | undefined
  private usage: Usage | undefined
  private untrusted = 0
  private receivedChunk = false
  private replyChars = 0
  /** Completion tokens counted so far, over the raw text that came before `uncounted`. */
  private counted = 0
  /** Raw reply text not counted yet (a bounded slice): never stored or logged. */
  private uncounted = ""
  private stop: "cut" | ReplyTooLarge | undefined

  constructor(private readonly options: Options) {}

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

  missing(chunks: Iterable<ChatChunk>): number {
    let refusalNeeded = false
    let fresh: Set<number> | undefined
    for (const chunk of chunks) {
      for (const choice of chunk.choices) {
        if (choice.index === 0) {
          const refused = choice.delta.refusal
          if (this.refusal === undefined && typeof refused === "string" && refused.length > 0) refusalNeeded = true
        } else if (!this.others.has(choice.index) && !(fresh?.has(choice.index) ?? false)) {
          // Beyond the limit no redactor is needed: the reply stops there.
          if (this.others.size + (fresh?.size ?? 0) + 1 >= maxChoices) continue
          ;(fresh ??= new Set()).add(choice.index)
        }
      }
    }
    return Math.max(0, (fresh?.size ?? 0) + (refusalNeeded ? 1 : 0) - this.spare.length)
  }

  supply(redactors: Iterable<OutputRedactor>): void {
    for (const redactor of redactors) this.spare.push(redactor)
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
    if (typeof choice.finish_reason === "string") this.reason = finishReasonFromWire(choice.finish_reason)
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
    }
    return out
  }

  close(failed: boolean): Closed {
    const tail = this.options.redactor.end()
    let outputRedactions = this.options.redactor.redactions()
    if (failed && tail.length > 0) outputRedactions = mergeCounts(outputRedactions, [{ kind: "withheld", count: tail.length }])
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
    if (outputRedactions.length > 0) parts.push(new RedactionNotice({ direction: "output", redactions: outputRedactions }))
    return { parts, outputRedactions, alternatives, refusal }
  }

  stopped(): "cut" | ReplyTooLarge | undefined {
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
