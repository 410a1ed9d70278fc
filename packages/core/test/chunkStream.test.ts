import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Arbitrary from "effect/Arbitrary"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { readFileSync } from "node:fs"
import { ChatChunk } from "../src/ChatChunk.js"
import { StreamProtocolError, StreamTruncated, UpstreamError } from "../src/GatewayError.js"
import { type ChunkStreamOptions, decodeChunks, decodeCommonChunk } from "../src/internal/chunkStream.js"
import * as Sse from "../src/Sse.js"
import { splitAt } from "./support/bytes.js"

const utf8 = new TextEncoder()

const reads = (pieces: ReadonlyArray<string | Uint8Array>): Stream.Stream<Uint8Array> =>
  Stream.fromChunks(...pieces.map((p) => Chunk.of(typeof p === "string" ? utf8.encode(p) : p)))

const fail: ChunkStreamOptions = { onMalformedJson: "fail" }

const pipeline = <E>(body: Stream.Stream<Uint8Array, E>, options: ChunkStreamOptions = fail) =>
  body.pipe(Sse.decode(), decodeChunks(options))

const collect = <E>(body: Stream.Stream<Uint8Array, E>, options: ChunkStreamOptions = fail) =>
  pipeline(body, options).pipe(Stream.runCollect, Effect.map(Chunk.toArray))

/** Every item and the failure, if any, in order. */
const outcome = <E>(body: Stream.Stream<Uint8Array, E>, options: ChunkStreamOptions = fail) =>
  pipeline(body, options).pipe(Stream.either, Stream.runCollect, Effect.map(Chunk.toArray))

const chunk = (content: string | null, finish: string | null = null, index = 0) =>
  Sse.encode({
    data: JSON.stringify({
      id: "c1",
      object: "chat.completion.chunk",
      choices: [{ index, delta: { content }, finish_reason: finish }]
    })
  })

const usage = Sse.encode({
  data: JSON.stringify({ choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } })
})
const done = Sse.encode({ data: "[DONE]" })

const texts = (chunks: ReadonlyArray<ChatChunk>) =>
  chunks.flatMap((c) => c.choices.filter((ch) => ch.index === 0).map((ch) => ch.delta.content ?? "")).join("")

describe("decodeChunks", () => {
  it.effect("decodes chunks: null content, usage-only chunk, several choices", () =>
    Effect.gen(function*() {
      const body = reads([
        chunk("Hel"),
        chunk(null),
        chunk("other", null, 1),
        chunk("lo", "stop"),
        usage,
        done
      ])
      const chunks = yield* collect(body)
      expect(chunks).toHaveLength(5)
      expect(texts(chunks)).toBe("Hello")
      expect(chunks[1]!.choices[0]!.delta.content).toBeNull()
      expect(chunks[2]!.choices[0]!.index).toBe(1)
      expect(chunks[3]!.choices[0]!.finish_reason).toBe("stop")
      expect(chunks[4]!.choices).toEqual([])
      expect(chunks[4]!.usage).toEqual({ prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 })
    }))

  it.effect("ends at [DONE] and ignores whatever follows in the same read", () =>
    Effect.gen(function*() {
      const body = reads([chunk("a") + done + "data: not json\n\n" + Sse.encode({ event: "error", data: "x" })])
      const chunks = yield* collect(body)
      expect(texts(chunks)).toBe("a")
      // Stray whitespace around the marker still ends the stream.
      expect(texts(yield* collect(reads([chunk("b"), "data:  [DONE] \n\n", "data: garbage\n\n"])))).toBe("b")
    }))

  it.effect("does not read the upstream after [DONE]", () =>
    Effect.gen(function*() {
      const body = Stream.concat(reads([chunk("a"), done]), Stream.die("the body was read after [DONE]"))
      expect(texts(yield* collect(body))).toBe("a")
      // Control: without [DONE] the same upstream is read and its failure surfaces.
      const exit = yield* Effect.exit(collect(Stream.concat(reads([chunk("a")]), Stream.die("read"))))
      expect(exit._tag).toBe("Failure")
    }))

  it.effect("fails with UpstreamError on an error object inside a 200 stream, after the text before it", () =>
    Effect.gen(function*() {
      const error = Sse.encode({
        data: JSON.stringify({
          error: { message: "The server had an error", type: "server_error", code: "internal_error", param: null }
        })
      })
      const items = yield* outcome(reads([chunk("partial "), error, chunk("never")]))
      expect(items).toHaveLength(2)
      expect(Either.isRight(items[0]!) && texts([items[0].right])).toBe("partial ")
      const failure = Either.isLeft(items[1]!) ? items[1].left : undefined
      expect(failure).toBeInstanceOf(UpstreamError)
      expect(failure).toMatchObject({ status: 200, code: "internal_error", detail: "The server had an error", partial: true })
    }))

  it.effect("takes the status from the error object when it is numeric", () =>
    Effect.gen(function*() {
      const byCode = Sse.encode({ data: JSON.stringify({ error: { message: "overloaded", code: 503 } }) })
      expect(yield* Effect.flip(collect(reads([byCode])))).toMatchObject({
        _tag: "UpstreamError",
        status: 503,
        code: "503",
        detail: "overloaded"
      })
      const byStatus = Sse.encode({ data: JSON.stringify({ error: { status: 429, type: "rate_limit" } }) })
      expect(yield* Effect.flip(collect(reads([byStatus])))).toMatchObject({ status: 429, code: "rate_limit" })
      const notHttp = Sse.encode({ data: JSON.stringify({ error: { code: 42, message: "odd" } }) })
      expect(yield* Effect.flip(collect(reads([notHttp])))).toMatchObject({ status: 200, code: "42" })
      const flat = Sse.encode({ data: JSON.stringify({ object: "error", message: "bad", code: 400 }) })
      expect(yield* Effect.flip(collect(reads([flat])))).toMatchObject({ status: 400, detail: "bad" })
    }))

  it.effect("fails with UpstreamError on an `event: error` event", () =>
    Effect.gen(function*() {
      const json = Sse.encode({ event: "error", data: JSON.stringify({ message: "boom", code: "overloaded" }) })
      const e1 = yield* Effect.flip(collect(reads([chunk("a"), json])))
      expect(e1).toBeInstanceOf(UpstreamError)
      expect(e1).toMatchObject({ status: 200, code: "overloaded", detail: "boom", partial: true })
      const wrapped = Sse.encode({ event: "error", data: JSON.stringify({ error: { message: "m", status: 500 } }) })
      expect(yield* Effect.flip(collect(reads([wrapped])))).toMatchObject({ status: 500, detail: "m" })
      const text = Sse.encode({ event: "error", data: "Internal Server Error" })
      expect(yield* Effect.flip(collect(reads([text])))).toMatchObject({ status: 200, detail: "Internal Server Error" })
    }))

  it.effect("fails on malformed JSON by default, without quoting the data", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(collect(reads([chunk("a"), "data: {secret@example.com\n\n", done])))
      expect(error).toBeInstanceOf(StreamProtocolError)
      expect(error).toMatchObject({ partial: true })
      expect(error.message).not.toContain("secret")
      const shape = yield* Effect.flip(
        collect(reads([Sse.encode({ data: JSON.stringify({ choices: [{ index: "jane@example.com" }] }) })]))
      )
      expect(shape).toBeInstanceOf(StreamProtocolError)
      expect(shape.message).toContain("choices.0.index")
      expect(shape.message).not.toContain("jane")
      expect(yield* Effect.flip(collect(reads([Sse.encode({ data: "42" })])))).toBeInstanceOf(StreamProtocolError)
    }))

  it.effect("skips malformed JSON when asked, counting it through onSkip and a warning log without the data", () =>
    Effect.gen(function*() {
      const counts: Array<number> = []
      const logs: Array<{ level: LogLevel.LogLevel; text: string }> = []
      const logger = Logger.make(({ annotations, logLevel, message }) => {
        logs.push({ level: logLevel, text: JSON.stringify({ message, annotations: [...annotations] }) })
      })
      const body = reads([chunk("a"), "data: {secret@example.com\n\n", chunk("b"), "data: nope\n\ndata: [1\n\n", chunk("c", "stop"), done])
      const chunks = yield* collect(body, { onMalformedJson: "skip", onSkip: (n) => counts.push(n) }).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, logger))
      )
      expect(texts(chunks)).toBe("abc")
      expect(counts).toEqual([1, 3])
      expect(logs.length).toBe(2)
      expect(logs.every((l) => l.level === LogLevel.Warning)).toBe(true)
      expect(logs.some((l) => l.text.includes("secret") || l.text.includes("nope"))).toBe(false)
      expect(logs[1]!.text).toContain("3")
    }))

  it.effect("fails with StreamTruncated when the stream closes without [DONE] or a finish reason", () =>
    Effect.gen(function*() {
      const items = yield* outcome(reads([chunk("a"), chunk("b")]))
      expect(items).toHaveLength(3)
      const last = items[2]!
      expect(Either.isLeft(last) && last.left).toBeInstanceOf(StreamTruncated)
      expect(Either.isLeft(last) && last.left.partial).toBe(true)
      expect(yield* Effect.flip(collect(reads([])))).toBeInstanceOf(StreamTruncated)
      // An unterminated last block is not an event, so it cannot finish the reply.
      expect(yield* Effect.flip(collect(reads([chunk("a"), chunk("b", "stop").trimEnd()])))).toBeInstanceOf(
        StreamTruncated
      )
    }))

  it.effect("succeeds when the stream closes without [DONE] after a finish reason", () =>
    Effect.gen(function*() {
      expect(texts(yield* collect(reads([chunk("a"), chunk("b", "length"), usage])))).toBe("ab")
      // A finish reason on any choice counts.
      expect(yield* collect(reads([chunk("x", "stop", 1)]))).toHaveLength(1)
    }))

  it.effect("passes upstream failures through unchanged", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(collect(Stream.concat(reads([chunk("a")]), Stream.fail("reset" as const))))
      expect(error).toBe("reset")
    }))
})

interface Fixture {
  readonly name: string
  readonly input: { readonly stream: string; readonly split_at: ReadonlyArray<number> }
  readonly expected: {
    readonly done: boolean
    readonly chunks: number
    readonly usage: { readonly prompt_tokens: number; readonly completion_tokens: number; readonly total_tokens: number }
    readonly choices: ReadonlyArray<{
      readonly index: number
      readonly role: string | null
      readonly content: string | null
      readonly refusal: string | null
      readonly finish_reason: string | null
      readonly tool_calls: ReadonlyArray<{ index: number; id: string; type: string; name: string; arguments: string }>
    }>
    readonly text: string
    readonly finish_reason: string
  }
}

const fixtures: ReadonlyArray<Fixture> = JSON.parse(
  readFileSync(new URL("./fixtures/openai-recorded-streams.json", import.meta.url), "utf8")
)

/** Accumulates chunks into per-choice replies, the way a caller would. */
const summarize = (chunks: ReadonlyArray<ChatChunk>) => {
  const choices = new Map<number, {
    index: number
    role: string | null
    content: string | null
    refusal: string | null
    finish_reason: string | null
    tool_calls: Array<{ index: number; id: string; type: string; name: string; arguments: string }>
  }>()
  let usage: ChatChunk["usage"] = undefined
  for (const c of chunks) {
    if (c.usage) usage = c.usage
    for (const ch of c.choices) {
      const acc = choices.get(ch.index) ??
        { index: ch.index, role: null, content: null, refusal: null, finish_reason: null, tool_calls: [] }
      choices.set(ch.index, acc)
      if (ch.delta.role !== undefined) acc.role = ch.delta.role
      if (typeof ch.delta.content === "string") acc.content = (acc.content ?? "") + ch.delta.content
      if (typeof ch.delta.refusal === "string") acc.refusal = (acc.refusal ?? "") + ch.delta.refusal
      if (ch.finish_reason != null) acc.finish_reason = ch.finish_reason
      for (const raw of ch.delta.tool_calls ?? []) {
        const call = raw as { index: number; id?: string; type?: string; function?: { name?: string; arguments?: string } }
        let t = acc.tool_calls.find((x) => x.index === call.index)
        if (t === undefined) {
          t = { index: call.index, id: "", type: "", name: "", arguments: "" }
          acc.tool_calls.push(t)
        }
        if (call.id) t.id = call.id
        if (call.type) t.type = call.type
        if (call.function?.name) t.name = call.function.name
        t.arguments += call.function?.arguments ?? ""
      }
    }
  }
  const sorted = [...choices.values()].sort((a, b) => a.index - b.index)
  return {
    chunks: chunks.length,
    usage,
    choices: sorted,
    text: sorted[0]?.content ?? "",
    finish_reason: sorted[0]?.finish_reason ?? null
  }
}


/** Deterministic pseudo-random offsets, so a failure reproduces. */
const pseudoRandomOffsets = (length: number, seed: number) => {
  const out: Array<number> = []
  let x = seed
  for (let pos = 0; pos < length;) {
    x = (x * 1103515245 + 12345) % 2147483648
    pos += 1 + (x % 97)
    out.push(pos)
  }
  return out
}

describe("recorded OpenAI streams", () => {
  it("the fixture file holds the recorded streams", () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(8)
  })

  for (const fixture of fixtures) {
    it.effect(fixture.name, () =>
      Effect.gen(function*() {
        const wire = utf8.encode(fixture.input.stream)
        const { expected } = fixture
        const check = (chunks: ReadonlyArray<ChatChunk>) => {
          const got = summarize(chunks)
          expect(got.chunks).toBe(expected.chunks)
          expect(got.text).toBe(expected.text)
          expect(got.finish_reason).toBe(expected.finish_reason)
          expect(got.usage).toEqual({
            prompt_tokens: expected.usage.prompt_tokens,
            completion_tokens: expected.usage.completion_tokens,
            total_tokens: expected.usage.total_tokens
          })
          expect(got.choices).toEqual(expected.choices)
        }
        check(yield* collect(reads([wire])))
        check(yield* collect(reads(splitAt(wire, fixture.input.split_at))))
        check(yield* collect(reads(splitAt(wire, pseudoRandomOffsets(wire.length, fixture.name.length)))))
        // CRLF line ends, cut inside every CRLF pair.
        const crlf = utf8.encode(fixture.input.stream.replace(/\n/g, "\r\n"))
        const insidePairs = [...crlf.keys()].filter((i) => crlf[i - 1] === 13)
        check(yield* collect(reads(splitAt(crlf, insidePairs))))
      }))
  }
})

describe("decodeCommonChunk", () => {
  const schemaDecode = Schema.decodeUnknownEither(ChatChunk)
  const jsonOnly = (u: unknown): unknown => JSON.parse(JSON.stringify(u) ?? "null")

  /** Valid chunks (the decoded side is valid wire JSON too), with extra keys gateways add. */
  const valid = Arbitrary.make(ChatChunk).map((c) => ({
    object: "chat.completion.chunk",
    system_fingerprint: "fp",
    ...c,
    choices: c.choices.map((ch) => ({ logprobs: null, ...ch }))
  }))
  /** Whatever the encoded side of the schema allows (mostly out-of-range numbers). */
  const loose = Arbitrary.make(Schema.encodedSchema(ChatChunk))
  const anyValue = FastCheck.oneof(
    FastCheck.constant(undefined), // removes the key
    FastCheck.constant(null),
    FastCheck.integer({ min: -3, max: 3 }),
    FastCheck.double(),
    FastCheck.string({ maxLength: 4 }),
    FastCheck.jsonValue({ maxDepth: 2 })
  )
  /** A valid chunk with one place overwritten or removed. */
  const corrupted = FastCheck.tuple(
    valid.filter((c) => c.choices.length > 0 && c.usage != null),
    FastCheck.constantFrom(
      "id",
      "model",
      "created",
      "choices",
      "usage",
      "choice",
      "index",
      "delta",
      "content",
      "refusal",
      "role",
      "tool_calls",
      "finish_reason",
      "prompt_tokens",
      "completion_tokens",
      "total_tokens"
    ),
    anyValue
  ).map(([chunk, where, value]) => {
    const c: any = jsonOnly(chunk)
    const choice = c.choices[0]
    switch (where) {
      case "choice":
        c.choices[0] = value ?? null
        break
      case "index":
      case "delta":
      case "finish_reason":
        choice[where] = value
        break
      case "content":
      case "refusal":
      case "role":
      case "tool_calls":
        choice.delta[where] = value
        break
      case "prompt_tokens":
      case "completion_tokens":
      case "total_tokens":
        c.usage[where] = value
        break
      default:
        c[where] = value
    }
    return c
  })

  it.prop(
    "decodes exactly as the ChatChunk schema whenever it answers",
    [FastCheck.oneof(valid, loose, corrupted, corrupted, FastCheck.jsonValue())],
    ([value]) => {
      const input = jsonOnly(value)
      const fast = decodeCommonChunk(input)
      if (fast !== undefined) expect(schemaDecode(input)).toEqual(Either.right(fast))
    },
    { fastCheck: { numRuns: 2000 } }
  )

  it("answers for every chunk of the recorded streams", () => {
    for (const fixture of fixtures) {
      for (const line of fixture.input.stream.split("\n")) {
        if (!line.startsWith("data: {")) continue
        const input = JSON.parse(line.slice(6))
        const fast = decodeCommonChunk(input)
        expect(fast).toBeDefined()
        expect(schemaDecode(input)).toEqual(Either.right(fast))
      }
    }
  })
})
