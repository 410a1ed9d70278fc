import { describe, expect, it } from "@effect/vitest"
import * as Arbitrary from "effect/Arbitrary"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Logger from "effect/Logger"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { ChatChunk } from "../src/ChatChunk.js"
import { ChunkDecoder, decodeChunks } from "../src/internal/chunkStream.js"
import * as Sanitize from "../src/internal/sanitize.js"
import * as Sse from "../src/Sse.js"
import * as Transport from "../src/Transport.js"
import { splitAt } from "./support/bytes.js"

const schemaDecode = Schema.decodeUnknownEither(ChatChunk)

/** Content with what JSON must escape, escapes that may be written several ways, and astral characters. */
const content = FastCheck.oneof(
  FastCheck.string({ maxLength: 12 }),
  FastCheck.string({ unit: "binary", maxLength: 8 }),
  FastCheck.string({ unit: FastCheck.constantFrom("a", " ", "\"", "\\", "\n", "\r", "\t", "\u0000", "\u001f", "/", "é", "😀", "\ud800"), maxLength: 10 })
)

/** `text` as a JSON string, each character either as JSON.stringify writes it or as a `\uXXXX` escape. */
const renderString = (text: string, escapes: ReadonlyArray<boolean>): string => {
  let out = "\""
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    out += escapes[i % Math.max(1, escapes.length)] === true
      ? `\\u${c.toString(16).padStart(4, "0")}`
      : JSON.stringify(text[i]!).slice(1, -1)
  }
  return out + "\""
}

/** Chunks as gateways send them: the schema's arbitrary chunks plus keys we ignore. */
const wireChunk = Arbitrary.make(ChatChunk).map((c) => ({
  object: "chat.completion.chunk",
  ...c,
  choices: c.choices.map((ch) => ({ logprobs: null, ...ch }))
}))

/**
 * A chunk eligible for a template: one choice of plain text, no finish, no usage; with or
 * without OpenAI's random padding (`obfuscation`), before or after the choices.
 */
const plainChunk = FastCheck.tuple(
  wireChunk,
  content,
  FastCheck.boolean(),
  FastCheck.boolean(),
  FastCheck.option(FastCheck.tuple(content, FastCheck.boolean()))
).map(([c, text, role, usageNull, padding]) => {
  const chunk = {
    ...c,
    choices: [{ index: 0, delta: role ? { role: "assistant", content: text } : { content: text }, finish_reason: null }],
    ...(usageNull ? { usage: null } : { usage: undefined })
  }
  if (padding === null) return chunk
  return padding[1] ? { ...chunk, obfuscation: padding[0] } : { obfuscation: padding[0], ...chunk }
})

/** `base` with another content and (when it has one) another padding. */
const withContent = (base: ReturnType<typeof plainChunk.generate>["value"], text: string, padding: string) => ({
  ...base,
  choices: [{ ...base.choices[0]!, delta: { ...base.choices[0]!.delta, content: text } }],
  ...("obfuscation" in base ? { obfuscation: padding } : {})
})

describe("the chunk template", () => {
  it.prop(
    "every event decodes as the schema decodes its JSON, whether the template answers or not",
    [
      plainChunk,
      FastCheck.array(
        FastCheck.tuple(
          content,
          FastCheck.array(FastCheck.boolean(), { maxLength: 4 }),
          FastCheck.option(FastCheck.tuple(FastCheck.nat(), FastCheck.constantFrom("\"", "\\", "}", ",\"x\":1", " ", "\"a\"", "\u0000"))),
          FastCheck.option(wireChunk, { freq: 5 }),
          content
        ),
        { maxLength: 12 }
      )
    ],
    ([base, variants]) => {
      const decoder = new ChunkDecoder({ onMalformedJson: "skip" }, Sanitize.basic)
      const baseText = JSON.stringify(base)
      const canonical = [baseText]
      const datas = [baseText]
      for (const [text, escapes, garbage, other, padding] of variants) {
        let data: string
        if (other !== null) {
          data = JSON.stringify(other)
        } else {
          data = JSON.stringify(withContent(base, "\u0000", padding)).replace("\"\\u0000\"", () => renderString(text, escapes))
          if (data === JSON.stringify(withContent(base, text, padding)) && garbage === null) canonical.push(data)
        }
        if (garbage !== null) {
          const at = garbage[0] % (data.length + 1)
          data = data.slice(0, at) + garbage[1] + data.slice(at)
        }
        datas.push(data)
      }
      for (const data of datas) {
        const out: Array<ChatChunk> = []
        expect(decoder.event("message", data, out)).toBeUndefined()
        let expected: Array<ChatChunk> = []
        try {
          const decoded = schemaDecode(JSON.parse(data))
          if (Either.isRight(decoded)) expected = [decoded.right]
        } catch {
          // not JSON: skipped
        }
        expect(out).toEqual(expected)
      }
      // After the base, the template answers for every variant written as JSON.stringify
      // writes it (when the base shows its content, and padding, each in exactly one place,
      // the padding after the content).
      const marked = JSON.stringify(withContent(base, "\u0000", "\u0001"))
      const once = (mark: string) => marked.split(mark).length === 2
      if (
        once("\"\\u0000\"") && (!("obfuscation" in base) || (once("\"\\u0001\"") && marked.indexOf("\"\\u0001\"") > marked.indexOf("\"\\u0000\""))) &&
        Either.isRight(schemaDecode(JSON.parse(baseText)))
      ) {
        const fresh = new ChunkDecoder({ onMalformedJson: "fail" }, Sanitize.basic)
        for (const data of canonical) expect(fresh.event("message", data, [])).toBeUndefined()
        expect(fresh.templateHits).toBe(canonical.length - 1)
      }
    },
    { fastCheck: { numRuns: 1500 } }
  )
})

// ---------------------------------------------------------------------------------------------
// The fused body decoder against the two stages it replaces
// ---------------------------------------------------------------------------------------------

const utf8 = new TextEncoder()

const event = FastCheck.oneof(
  { weight: 6, arbitrary: FastCheck.tuple(content, FastCheck.boolean()).map(([text, role]) => `data: ${JSON.stringify({ id: "c", object: "chat.completion.chunk", choices: [{ index: 0, delta: role ? { role: "assistant", content: text } : { content: text }, finish_reason: null }] })}\n\n`) },
  { weight: 1, arbitrary: FastCheck.constant(`data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: "stop" }] })}\n\n`) },
  { weight: 1, arbitrary: FastCheck.constant(`data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } })}\n\n`) },
  { weight: 1, arbitrary: FastCheck.constantFrom(": keep-alive\n\n", "retry: 5\n", "id: 7\n", "event: ping\n", ":\n") },
  { weight: 1, arbitrary: FastCheck.constantFrom("data: [DONE]\n\n", "data: {broken\n\n", "data: {\"choices\":7}\n\n", "event: error\ndata: {\"error\":{\"message\":\"overloaded\",\"code\":503}}\n\n", "data: {\"error\":{\"message\":\"bad\"}}\n\n") },
  { weight: 1, arbitrary: FastCheck.string({ maxLength: 120 }).map((s) => `data: ${s}\ndata: ${s}\n\n`) }
)

/** Rewrites LF line ends as LF, CR or CRLF in turn. */
const varyTerminators = (wire: string, kinds: ReadonlyArray<number>) => {
  let i = 0
  return wire.replace(/\n/g, () => ["\n", "\r", "\r\n"][kinds[i++ % kinds.length]!]!)
}

const outcome = (stream: Stream.Stream<ChatChunk, unknown>) =>
  Effect.runSync(stream.pipe(Stream.either, Stream.runCollect, Effect.map(Chunk.toArray), Effect.provide(Logger.remove(Logger.defaultLogger))))

describe("Transport.decodeBody (fused)", () => {
  it.prop(
    "yields what Sse.decode followed by decodeChunks yields, for any wire text cut anywhere",
    [
      FastCheck.array(event, { maxLength: 14 }),
      FastCheck.array(FastCheck.nat({ max: 2 }), { minLength: 1, maxLength: 20 }),
      FastCheck.array(FastCheck.nat(), { maxLength: 20 }),
      FastCheck.constantFrom(undefined, 40, 200),
      FastCheck.constantFrom("fail" as const, "skip" as const),
      FastCheck.boolean(),
      FastCheck.boolean()
    ],
    ([events, terminators, cuts, maxEventSize, onMalformedJson, bom, oneChunk]) => {
      const wire = utf8.encode((bom ? "\uFEFF" : "") + varyTerminators(events.join(""), terminators))
      const reads = splitAt(wire, cuts.map((c) => c % (wire.length + 1)))
      const body = oneChunk ? Stream.fromIterable(reads) : Stream.fromChunks(...reads.map(Chunk.of))
      const options = { onMalformedJson, ...(maxEventSize === undefined ? {} : { maxEventSize }) }
      const staged = outcome(body.pipe(Sse.decode(options), decodeChunks(options)))
      expect(outcome(body.pipe(Transport.decodeBody(options)))).toEqual(staged)
    },
    { fastCheck: { numRuns: 1000 } }
  )
})
