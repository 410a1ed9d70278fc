import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { StreamProtocolError } from "../src/GatewayError.js"
import { SseParser } from "../src/internal/sseParser.js"
import * as Sse from "../src/Sse.js"
import { splitAt } from "./support/bytes.js"

const utf8 = new TextEncoder()
const bytes = (text: string) => utf8.encode(text)

/** Each piece is its own network read (its own Stream chunk). */
const reads = <A>(pieces: ReadonlyArray<A>): Stream.Stream<A> =>
  Stream.fromChunks(...pieces.map((piece) => Chunk.of(piece)))

const decodeReads = (pieces: ReadonlyArray<Uint8Array | string>, options?: Sse.DecodeOptions) =>
  reads(pieces.map((p) => (typeof p === "string" ? bytes(p) : p))).pipe(
    Sse.decode(options),
    Stream.runCollect,
    Effect.map(Chunk.toArray)
  )

const decodeSync = (pieces: ReadonlyArray<Uint8Array | string>, options?: Sse.DecodeOptions) =>
  Effect.runSync(decodeReads(pieces, options))

const msg = (data: string, id?: string, event = "message"): Sse.Event => ({ event, data, id })

/** Cuts `input` at the given byte offsets. */

const everyByte = (input: Uint8Array) => Array.from({ length: input.length }, (_, i) => input.subarray(i, i + 1))

describe("Sse.decode", () => {
  it("decodes a simple event with the default type and no id", () => {
    expect(decodeSync(["data: hello\n\n"])).toEqual([msg("hello")])
  })

  it("ends lines on LF, CR and CRLF alike", () => {
    const wire = "data: a\rdata: b\r\n\r\nevent: x\ndata: c\n\rdata: d\r\r"
    expect(decodeSync([wire])).toEqual([msg("a\nb"), msg("c", undefined, "x"), msg("d")])
  })

  it("treats a CR ending one read and an LF starting the next as one terminator", () => {
    // Were the LF taken as a second terminator, "a" and "b" would be dispatched separately.
    expect(decodeSync(["data: a\r", "\ndata: b\r", "\n\r", "\n"])).toEqual([msg("a\nb")])
    // CR then CR across reads is a line end followed by a blank line.
    expect(decodeSync(["data: a\r", "\rdata: b\r", "\r"])).toEqual([msg("a"), msg("b")])
    // The same holds when the LF arrives after an empty read.
    expect(decodeSync(["data: a\r", "", "\ndata: b\n\n"])).toEqual([msg("a\nb")])
  })

  it("strips exactly one space after the colon", () => {
    expect(decodeSync(["data:  two\n\ndata:none\n\ndata:\t tab\n\ndata: \n\n"])).toEqual([
      msg(" two"),
      msg("none"),
      msg("\t tab"),
      msg("")
    ])
  })

  it("takes a line without a colon as a field name with an empty value", () => {
    expect(decodeSync(["data\n\n", "data\ndata\n\n", "event\ndata: x\n\n"])).toEqual([
      msg(""),
      msg("\n"),
      msg("x")
    ])
  })

  it("joins data lines with LF, keeping empty ones", () => {
    expect(decodeSync(["data: a\ndata: b\ndata:\n\n"])).toEqual([msg("a\nb\n")])
  })

  it("splits a field at the first colon only", () => {
    expect(decodeSync(["data: {\"a\":1}\nevent:x:y\n\n"])).toEqual([msg("{\"a\":1}", undefined, "x:y")])
  })

  it("does not dispatch an event whose data buffer is empty, and resets its type", () => {
    expect(decodeSync(["event: foo\n\n", "data: x\n\n"])).toEqual([msg("x")])
    expect(decodeSync(["event: a\ndata: 1\n\ndata: 2\n\n"])).toEqual([msg("1", undefined, "a"), msg("2")])
    expect(decodeSync(["event:\ndata: x\n\n"])).toEqual([msg("x")])
  })

  it("discards a final block that no blank line closed", () => {
    expect(decodeSync(["data: a\n\ndata: b\n"])).toEqual([msg("a")])
    expect(decodeSync(["data: a\n\ndata: b"])).toEqual([msg("a")])
    expect(decodeSync(["data: a\n\ndata: b\r"])).toEqual([msg("a")])
  })

  it("skips comments, also between the lines of an event", () => {
    expect(decodeSync([": keep-alive\n\n", "data: x\n: mid\ndata: y\n\n", ":\n\n"])).toEqual([msg("x\ny")])
  })

  it("reports the last event id, which carries over until an id field changes it", () => {
    const wire = "id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: 7\n\ndata: d\n\n"
    expect(decodeSync([wire])).toEqual([msg("a", "1"), msg("b", "1"), msg("c"), msg("d", "7")])
  })

  it("ignores an id that contains NUL", () => {
    expect(decodeSync(["id: 1\n\nid: a\u0000b\ndata: x\n\n"])).toEqual([msg("x", "1")])
  })

  it("ignores unknown fields; field names are case-sensitive", () => {
    expect(decodeSync(["foo: bar\nDATA: no\nData: no\ndata: yes\nretry: nope\n\n"])).toEqual([msg("yes")])
  })

  it("strips one leading BOM, also when its bytes are split, and only once", () => {
    const bom = Uint8Array.of(0xef, 0xbb, 0xbf)
    expect(decodeSync([bom, "data: x\n\n"])).toEqual([msg("x")])
    expect(decodeSync([bom.subarray(0, 1), bom.subarray(1, 2), Uint8Array.of(0xbf, 0x64), "ata: x\n\n"])).toEqual([
      msg("x")
    ])
    // A second BOM is part of the first field name, which is then unknown.
    expect(decodeSync([bom, bom, "data: x\n\n", "data: y\n\n"])).toEqual([msg("y")])
    // The text entry point strips it too.
    const text = Effect.runSync(
      Stream.make("\uFEFFdata: x\n\n").pipe(Sse.decodeText(), Stream.runCollect, Effect.map(Chunk.toArray))
    )
    expect(text).toEqual([msg("x")])
  })

  it("decodes multi-byte UTF-8 split at every byte", () => {
    const wire = bytes("data: héllo ✓ 日本 🎉\n\n")
    expect(decodeSync(everyByte(wire))).toEqual([msg("héllo ✓ 日本 🎉")])
  })

  it("replaces invalid UTF-8 with U+FFFD", () => {
    expect(decodeSync([Uint8Array.of(0x64, 0x61, 0x74, 0x61, 0x3a, 0xff, 0x0a, 0x0a)])).toEqual([msg("\uFFFD")])
  })

  it("emits one output chunk for all the events of one read", () =>
    Effect.gen(function*() {
      const chunks = yield* reads([bytes("data: 1\n\ndata: 2\n\ndata: 3\n\n"), bytes("data: 4\n\n")]).pipe(
        Sse.decode(),
        Stream.chunks,
        Stream.map(Chunk.size),
        Stream.runCollect
      )
      expect(Chunk.toArray(chunks)).toEqual([3, 1])
    }).pipe(Effect.runSync))

  it("passes upstream failures through after the events before them", () =>
    Effect.gen(function*() {
      const result = yield* Stream.concat(Stream.make(bytes("data: a\n\n")), Stream.fail("boom" as const)).pipe(
        Sse.decode(),
        Stream.either,
        Stream.runCollect
      )
      expect(Chunk.toArray(result)).toEqual([Either.right(msg("a")), Either.left("boom")])
    }).pipe(Effect.runSync))

  describe("retry", () => {
    const wire = "retry: 5000\ndata: a\n\nretry: 60000\n\ndata: b\n\n"

    it.effect("never pauses the stream: it completes while the TestClock stands still", () =>
      Effect.gen(function*() {
        const fiber = yield* Effect.fork(decodeReads([wire.slice(0, 9), wire.slice(9)]))
        yield* TestClock.adjust(0) // waits until the fiber is done or suspended, without moving time
        const exit = yield* Fiber.poll(fiber)
        expect(Option.isSome(exit) && Exit.isSuccess(exit.value)).toBe(true)
        expect(Option.getOrThrow(exit)).toEqual(Exit.succeed([msg("a"), msg("b")]))
        expect(Chunk.toArray(yield* TestClock.sleeps())).toEqual([])
        expect(yield* TestClock.currentTimeMillis).toBe(0)
      }))

    it.effect("the same check does detect a stream that waits on the clock", () =>
      Effect.gen(function*() {
        const sleepy = Stream.concat(
          Stream.make(bytes("data: a\n\n")),
          Stream.fromEffect(Effect.as(Effect.sleep("5 seconds"), bytes("data: b\n\n")))
        )
        const fiber = yield* Effect.fork(sleepy.pipe(Sse.decode(), Stream.runCollect))
        yield* TestClock.adjust(0)
        expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
        yield* Fiber.interrupt(fiber)
      }))

    it("completes synchronously: no timer is involved at all", () => {
      const exit = Effect.runSyncExit(decodeReads([wire]))
      expect(exit).toEqual(Exit.succeed([msg("a"), msg("b")]))
    })

    it("is parsed as the standard says: ASCII digits only", () => {
      const parser = new SseParser(1024)
      parser.feed("retry: 1500\n", [])
      expect(parser.reconnectionTime).toBe(1500)
      parser.feed("retry: 20a\nretry: -5\nretry: 1.5\nretry:\nretry:  7\n", [])
      expect(parser.reconnectionTime).toBe(1500)
      parser.feed("retry:300\n", [])
      expect(parser.reconnectionTime).toBe(300)
    })
  })

  describe("size limit", () => {
    const isOverLimit = (u: unknown) => u instanceof StreamProtocolError && u.partial && /exceeded the limit/.test(u.reason)

    it.effect("fails an event whose data grows past the limit, after the events before it", () =>
      Effect.gen(function*() {
        const lines = Array.from({ length: 20 }, () => "data: 123456789\n")
        const result = yield* reads(["data: ok\n\n", ...lines].map(bytes)).pipe(
          Sse.decode({ maxEventSize: 100 }),
          Stream.either,
          Stream.runCollect
        )
        const items = Chunk.toArray(result)
        expect(items[0]).toEqual(Either.right(msg("ok")))
        expect(items).toHaveLength(2)
        expect(Either.isLeft(items[1]!) && isOverLimit(items[1].left)).toBe(true)
      }))

    it.effect("fails a complete event over the limit even when it arrives in one read", () =>
      Effect.gen(function*() {
        // A line counts with its field name: "data: " and 95 characters are 101.
        const error = yield* Effect.flip(decodeReads([`data: ${"x".repeat(95)}\n\n`], { maxEventSize: 100 }))
        expect(isOverLimit(error)).toBe(true)
        // The limit itself is allowed.
        expect(yield* decodeReads([`data: ${"x".repeat(94)}\n\n`], { maxEventSize: 100 })).toHaveLength(1)
        // Data assembled from several lines counts without the field names.
        const twoLines = `data: ${"x".repeat(50)}\ndata: ${"x".repeat(49)}\n\n`
        expect(yield* decodeReads([twoLines], { maxEventSize: 100 })).toHaveLength(1)
        const tooMuch = `data: ${"x".repeat(50)}\ndata: ${"x".repeat(50)}\n\n`
        expect(isOverLimit(yield* Effect.flip(decodeReads([tooMuch], { maxEventSize: 100 })))).toBe(true)
      }))

    it.effect("fails an endless line with no newline instead of buffering it (default limit)", () =>
      Effect.gen(function*() {
        // Four times the default limit: without the limit this would end quietly, not fail.
        const endless = Stream.take(Stream.repeatValue(bytes("x".repeat(4096))), 1024)
        const error = yield* endless.pipe(Sse.decode(), Stream.runDrain, Effect.flip)
        expect(isOverLimit(error)).toBe(true)
      }))

    it.effect("fails an endless comment line too", () =>
      Effect.gen(function*() {
        const endless = Stream.concat(Stream.make(bytes(":")), Stream.take(Stream.repeatValue(bytes("ping ")), 10_000))
        const error = yield* endless.pipe(Sse.decode({ maxEventSize: 10_000 }), Stream.runDrain, Effect.flip)
        expect(isOverLimit(error)).toBe(true)
      }))

    it.effect("fails an endless event of many short lines", () =>
      Effect.gen(function*() {
        const endless = Stream.take(Stream.repeatValue(bytes("data: x\n")), 10_000)
        const error = yield* endless.pipe(Sse.decode({ maxEventSize: 10_000 }), Stream.runDrain, Effect.flip)
        expect(isOverLimit(error)).toBe(true)
      }))

    it.effect("keeps the default limit when given a limit that is not a positive number", () =>
      Effect.gen(function*() {
        for (const maxEventSize of [Number.NaN, 0, -5]) {
          const endless = Stream.take(Stream.repeatValue(bytes("x".repeat(4096))), 1024)
          const error = yield* endless.pipe(Sse.decode({ maxEventSize }), Stream.runDrain, Effect.flip)
          expect(isOverLimit(error) && error.reason).toContain(String(Sse.defaultMaxEventSize))
        }
      }))

    it.effect("counts the limit per event: many events of moderate size pass", () =>
      Effect.gen(function*() {
        const event = `data: ${"y".repeat(90)}\n\n`
        const events = yield* decodeReads(Array.from({ length: 50 }, () => event), { maxEventSize: 100 })
        expect(events).toHaveLength(50)
      }))
  })
})

describe("Sse.encode", () => {
  it("writes one data line per line and ends with a blank line", () => {
    expect(Sse.encode({ data: "a\nb" })).toBe("data: a\ndata: b\n\n")
    expect(Sse.encode({ data: "a\r\nb\rc" })).toBe("data: a\ndata: b\ndata: c\n\n")
  })

  it("writes event, id and retry fields, omitting the default type", () => {
    expect(Sse.encode({ event: "error", id: "42", retry: 1500, data: "{}" })).toBe(
      "event: error\nid: 42\nretry: 1500\ndata: {}\n\n"
    )
    expect(Sse.encode({ event: "message", data: "x" })).toBe("data: x\n\n")
    expect(Sse.encode({ data: "x", retry: -1 })).toBe("data: x\n\n")
    expect(Sse.encode({ data: "x", retry: 2.7 })).toBe("retry: 2\ndata: x\n\n")
  })

  it("still dispatches an event with empty data", () => {
    expect(Sse.encode({ data: "" })).toBe("data:\n\n")
    expect(decodeSync([Sse.encode({ data: "" })])).toEqual([msg("")])
  })

  it("keeps a leading space of data and event", () => {
    const wire = Sse.encode({ event: " spaced", data: " lead" })
    expect(decodeSync([wire])).toEqual([msg(" lead", undefined, " spaced")])
  })

  it("cannot put line breaks in event or id, nor NUL in id", () => {
    expect(Sse.encode({ event: "a\nb", id: "1\r\n2\u0000", data: "x" })).toBe("event: a b\nid: 1 2\ndata: x\n\n")
    expect(Sse.encode({ id: "", data: "x" })).toBe("id:\ndata: x\n\n")
  })

  it("writes comments that decoders skip", () => {
    expect(Sse.encodeComment("ping")).toBe(": ping\n\n")
    expect(Sse.encodeComment()).toBe(":\n\n")
    expect(Sse.encodeComment("a\nb")).toBe(": a\n: b\n\n")
    expect(decodeSync([Sse.encodeComment("a\nb"), Sse.encode({ data: "x" })])).toEqual([msg("x")])
  })
})

describe("Sse properties", () => {
  const text = FastCheck.oneof(
    { weight: 3, arbitrary: FastCheck.string({ unit: "grapheme" }) },
    {
      weight: 3,
      arbitrary: FastCheck.array(
        FastCheck.constantFrom("héllo", " ✓", "日本", "🎉", "\n", "\r\n", "\r", ":", " ", "data: x", "[DONE]", "\u0000", "a"),
        { maxLength: 12 }
      ).map((parts) => parts.join(""))
    },
    { weight: 1, arbitrary: FastCheck.string({ unit: "binary" }) }
  )
  const noBreaks = text.map((s) => s.replace(/[\r\n]/g, ""))

  type Input = { event?: string; data: string; id?: string; retry?: number }
  const input: FastCheck.Arbitrary<Input> = FastCheck.record(
    {
      event: noBreaks,
      data: text,
      id: noBreaks,
      retry: FastCheck.nat({ max: 100_000 })
    },
    { requiredKeys: ["data"] }
  )
  const item = FastCheck.oneof(
    { weight: 6, arbitrary: input.map((e) => ({ _tag: "event" as const, e })) },
    { weight: 1, arbitrary: noBreaks.map((c) => ({ _tag: "comment" as const, c })) }
  )

  /** What a receiver must see for the given encoded items, written from the standard. */
  const model = (items: ReadonlyArray<{ _tag: "event"; e: Input } | { _tag: "comment"; c: string }>) => {
    const out: Array<Sse.Event> = []
    let lastId = ""
    for (const item of items) {
      if (item._tag === "comment") continue
      const { e } = item
      if (e.id !== undefined) lastId = e.id.replace(/\u0000/g, "")
      out.push({
        event: e.event === undefined || e.event === "" ? "message" : e.event,
        data: e.data.split(/\r\n|\r|\n/).join("\n"),
        id: lastId === "" ? undefined : lastId
      })
    }
    return out
  }

  const encodeAll = (items: ReadonlyArray<{ _tag: "event"; e: Input } | { _tag: "comment"; c: string }>) =>
    items.map((i) => (i._tag === "event" ? Sse.encode(i.e) : Sse.encodeComment(i.c))).join("")

  /** Rewrites each LF terminator as LF, CR or CRLF; a CR is never followed by an LF terminator,
   * which would merge the two into one CRLF. */
  const varyTerminators = (wire: string, choices: ReadonlyArray<number>) => {
    let out = ""
    let k = 0
    for (const ch of wire) {
      if (ch !== "\n") {
        out += ch
        continue
      }
      const pick = choices[k++ % Math.max(choices.length, 1)] ?? 0
      const afterCr = out.endsWith("\r")
      out += afterCr ? (pick % 2 === 0 ? "\r" : "\r\n") : ["\n", "\r", "\r\n"][pick % 3]
    }
    return out
  }

  /** Offsets inside every CRLF pair and inside every multi-byte character. */
  const awkwardOffsets = (wire: Uint8Array) => {
    const offsets: Array<number> = []
    for (let i = 1; i < wire.length; i++) {
      if (wire[i - 1] === 13 && wire[i] === 10) offsets.push(i)
      if ((wire[i]! & 0xc0) === 0x80) offsets.push(i)
    }
    return offsets
  }

  it.prop(
    "encoded events survive any re-chunking of their bytes",
    [
      FastCheck.array(item, { maxLength: 12 }),
      FastCheck.array(FastCheck.nat({ max: 2 }), { minLength: 1, maxLength: 40 }),
      FastCheck.array(FastCheck.nat(), { maxLength: 30 }),
      FastCheck.boolean(),
      FastCheck.boolean()
    ],
    ([items, terminators, cuts, awkward, bom]) => {
      const wire = bytes((bom ? "\uFEFF" : "") + varyTerminators(encodeAll(items), terminators))
      const expected = model(items)
      const whole = decodeSync([wire])
      expect(whole).toEqual(expected)
      const offsets = cuts.map((c) => c % (wire.length + 1)).concat(awkward ? awkwardOffsets(wire) : [])
      expect(decodeSync(splitAt(wire, offsets))).toEqual(expected)
      // Several reads delivered in one Stream chunk decode the same.
      const inOneChunk = Effect.runSync(
        Stream.fromIterable(splitAt(wire, offsets)).pipe(Sse.decode(), Stream.runCollect, Effect.map(Chunk.toArray))
      )
      expect(inOneChunk).toEqual(expected)
    },
    { fastCheck: { numRuns: 300 } }
  )

  it.prop(
    "non-ASCII data split at every byte decodes like the unsplit input",
    [FastCheck.array(FastCheck.constantFrom("héllo", " ✓ ", "日本", "🎉", "\r\n", "x"), { minLength: 1, maxLength: 8 })],
    ([parts]) => {
      const wire = bytes(Sse.encode({ data: parts.join(""), id: "ü" }))
      expect(decodeSync(everyByte(wire))).toEqual(decodeSync([wire]))
    }
  )

  it.prop(
    "the size limit fails or passes the same whatever the chunking",
    [FastCheck.array(FastCheck.string({ maxLength: 40 }), { maxLength: 8 }), FastCheck.array(FastCheck.nat(), { maxLength: 10 })],
    ([datas, cuts]) => {
      const wire = bytes(datas.map((data) => Sse.encode({ data })).join(""))
      const run = (pieces: ReadonlyArray<Uint8Array>) =>
        Effect.runSync(
          reads(pieces).pipe(
            Sse.decode({ maxEventSize: 30 }),
            Stream.either,
            Stream.map(Either.mapLeft((e) => e._tag)),
            Stream.runCollect,
            Effect.map(Chunk.toArray)
          )
        )
      expect(run(splitAt(wire, cuts.map((c) => c % (wire.length + 1))))).toEqual(run([wire]))
    }
  )
})
