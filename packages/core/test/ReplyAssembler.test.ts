/**
 * The Effect-free reply assembler: however the wire splits a reply (into network reads, and the
 * text into chunks), the caller gets the same redacted text, counts, end and usage.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Equal from "effect/Equal"
import * as FastCheck from "effect/FastCheck"
import * as Schema from "effect/Schema"
import type { ChatChunk } from "../src/ChatChunk.js"
import * as ReplyAssembler from "../src/internal/replyAssembler.js"
import { Part, TextDelta } from "../src/Part.js"
import * as SafetyFilter from "../src/SafetyFilter.js"

const filter = Effect.runSync(SafetyFilter.make())

interface Run {
  readonly parts: ReadonlyArray<Part>
  readonly closed: ReplyAssembler.Closed
  readonly stopped: string | undefined
  readonly completionTokens: number
}

/** Feeds `reads` (groups of chunks, one per network read) to a fresh assembler. */
const assemble = (
  reads: ReadonlyArray<ReadonlyArray<ChatChunk>>,
  limits: { readonly maxCompletionTokens: number; readonly maxReplyChars: number }
): Run => {
  const reply = ReplyAssembler.make({
    // Additive at every cut, like a tokenizer at the cuts the assembler chooses.
    count: (text) => text.length,
    redactor: Effect.runSync(filter.outputRedactor),
    redact: (text) => filter.redact(text).text,
    ...limits
  })
  const parts: Array<Part> = []
  for (const read of reads) {
    if (reply.stopped() !== undefined) break
    const missing = reply.missing(read)
    if (missing > 0) reply.supply(Array.from({ length: missing }, () => Effect.runSync(filter.outputRedactor)))
    parts.push(...reply.push(read))
  }
  const closed = reply.close(false)
  const stopped = reply.stopped()
  return {
    parts: [...parts, ...closed.parts],
    closed,
    stopped: stopped === undefined ? undefined : typeof stopped === "string" ? stopped : stopped._tag,
    completionTokens: reply.completionTokens()
  }
}

const text = (run: Run) => run.parts.flatMap((p) => (p._tag === "TextDelta" ? [p.text] : [])).join("")
const notices = (run: Run) => run.parts.filter((p) => p._tag === "RedactionNotice")

/** Cuts `source` at the given points (sorted, deduplicated, inside the string). */
const cutAt = (source: string, points: ReadonlyArray<number>): Array<string> => {
  const at = [...new Set(points.map((p) => p % (source.length + 1)))].sort((a, b) => a - b)
  const pieces: Array<string> = []
  let from = 0
  for (const p of at) {
    if (p > from) pieces.push(source.slice(from, p))
    from = Math.max(from, p)
  }
  if (from < source.length) pieces.push(source.slice(from))
  return pieces
}

/** Groups `items` into consecutive reads of the given sizes (at least one item each). */
const group = <A>(items: ReadonlyArray<A>, sizes: ReadonlyArray<number>): Array<Array<A>> => {
  const reads: Array<Array<A>> = []
  let i = 0
  let s = 0
  while (i < items.length) {
    const size = Math.max(1, sizes[s++ % Math.max(1, sizes.length)] ?? 1)
    reads.push(items.slice(i, i + size))
    i += size
  }
  return reads
}

const reply = "Write to jane.doe@example.com or call +1 415 555 0100; order 12345 ships today. "
const content = (piece: string, index = 0): ChatChunk => ({ choices: [{ index, delta: { content: piece } }] })
const finishChunk: ChatChunk = { choices: [{ index: 0, delta: {}, finish_reason: "stop" }] }

const splits = FastCheck.record({
  repeat: FastCheck.integer({ min: 1, max: 4 }),
  cuts: FastCheck.array(FastCheck.nat(400), { maxLength: 60 }),
  sizes: FastCheck.array(FastCheck.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 10 }),
  withAlternative: FastCheck.boolean()
})

describe("ReplyAssembler", () => {
  it.prop("any split of the chunk list gives the same parts as the whole", { split: splits }, ({ split }) => {
    const source = reply.repeat(split.repeat)
    const chunksOf = (pieces: ReadonlyArray<string>): Array<ChatChunk> => [
      ...pieces.flatMap((piece) => split.withAlternative ? [content(piece), content(piece, 1)] : [content(piece)]),
      finishChunk
    ]
    const limits = { maxCompletionTokens: 100_000, maxReplyChars: 100_000 }
    const whole = assemble([chunksOf([source])], limits)
    const chunks = chunksOf(cutAt(source, split.cuts))
    const regrouped = assemble(group(chunks, split.sizes), limits)
    // Any grouping of the same chunks into reads: exactly the same parts.
    expect(assemble(chunks.map((c) => [c]), limits).parts).toEqual(regrouped.parts)
    // Any split of the text: the same redacted text, counts, alternatives and end.
    expect(text(regrouped)).toBe(text(whole))
    expect(text(whole)).not.toContain("jane.doe")
    expect(notices(regrouped)).toEqual(notices(whole))
    expect(regrouped.closed.alternatives).toEqual(whole.closed.alternatives)
    expect(regrouped.completionTokens).toBe(whole.completionTokens)
    expect(regrouped.stopped).toBeUndefined()
  })

  it.prop("the reply is cut at the same place however it is split", { split: splits }, ({ split }) => {
    const source = reply.repeat(split.repeat)
    const chunks = [...cutAt(source, split.cuts).map((piece) => content(piece)), finishChunk]
    const limits = { maxCompletionTokens: 50, maxReplyChars: 100_000 }
    const a = assemble([[content(source), finishChunk]], limits)
    const b = assemble(group(chunks, split.sizes), limits)
    expect(b.stopped).toBe("cut")
    expect(b.completionTokens).toBe(50)
    expect(text(b)).toBe(text(a))
  })

  it("builds text parts equal to the Schema constructor's", () => {
    const fast = ReplyAssembler.textDelta("Hola")
    const made = new TextDelta({ text: "Hola" })
    expect(fast).toBeInstanceOf(TextDelta)
    expect(Equal.equals(fast, made)).toBe(true)
    expect(JSON.stringify(fast)).toBe(JSON.stringify(made))
    expect(Schema.decodeUnknownSync(Part)(Schema.encodeSync(Part)(fast))).toEqual(made)
  })

  it("stops at maxReplyChars and withholds the tail after a failure", () => {
    const assembler = ReplyAssembler.make({
      count: (t) => t.length,
      redactor: Effect.runSync(filter.outputRedactor),
      redact: (text) => filter.redact(text).text,
      maxCompletionTokens: 1_000,
      maxReplyChars: 30
    })
    const parts = assembler.push([content("Hello there, write to jane.d"), content("oe@example.com")])
    expect(assembler.stopped()).toMatchObject({ _tag: "ReplyTooLarge", limitChars: 30, partial: true })
    const closed = assembler.close(true)
    const delivered = [...parts, ...closed.parts].flatMap((p) => (p._tag === "TextDelta" ? [p.text] : [])).join("")
    expect(delivered).not.toContain("jane")
    expect(closed.outputRedactions.some((r) => r.kind === "withheld")).toBe(true)
  })
})
