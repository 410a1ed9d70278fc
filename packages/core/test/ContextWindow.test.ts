import { describe, expect, it, layer } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import { Tiktoken } from "js-tiktoken/lite"
import type { ChatMessage } from "../src/Chat.js"
import * as ContextWindow from "../src/ContextWindow.js"
import { ContextWindowExceeded } from "../src/GatewayError.js"
import * as Tokenizer from "../src/internal/tokenizer.js"
import * as Models from "../src/Models.js"

// Keep this block first: it observes the process-wide tokenizer cache before anything loads.
describe("encoding loading", () => {
  it.effect("builds nothing at import time, preloads on request, and shares one build", () =>
    Effect.gen(function*() {
      expect(Tokenizer.peek("cl100k_base")).toBeUndefined()
      yield* ContextWindow.ContextWindow.pipe(Effect.provide(ContextWindow.layer({ preload: ["cl100k_base"] })))
      const first = Tokenizer.peek("cl100k_base")
      expect(first).toBeDefined()
      expect(Tokenizer.load("cl100k_base")).toBe(first)
      expect(yield* Effect.promise(() => Tokenizer.load("cl100k_base"))).toBe(
        yield* Effect.promise(() => Tokenizer.load("cl100k_base"))
      )
    }))
})

/** js-tiktoken's own encoder, the reference our counts must equal. */
const reference = new Map<Models.Encoding, Promise<Tiktoken>>()
const referenceFor = (encoding: Models.Encoding) => {
  let found = reference.get(encoding)
  if (found === undefined) {
    found = (encoding === "o200k_base" ? import("js-tiktoken/ranks/o200k_base") : import("js-tiktoken/ranks/cl100k_base"))
      .then((m) => new Tiktoken(m.default))
    reference.set(encoding, found)
  }
  return found
}

describe("tokenizer", () => {
  const known: ReadonlyArray<readonly [string, number, number]> = [
    // text, cl100k_base, o200k_base
    ["tiktoken is great!", 6, 6],
    ["antidisestablishmentarianism", 6, 6],
    ["2 + 2 = 4", 7, 7],
    ["お誕生日おめでとう", 9, 8],
    ["", 0, 0]
  ]

  it.effect("counts known strings like tiktoken", () =>
    Effect.gen(function*() {
      const cl100k = yield* Effect.promise(() => Tokenizer.load("cl100k_base"))
      const o200k = yield* Effect.promise(() => Tokenizer.load("o200k_base"))
      for (const [text, cl, o] of known) {
        expect(cl100k.count(text), text).toBe(cl)
        expect(o200k.count(text), text).toBe(o)
      }
    }))

  it.effect("counts special-token spellings as plain text instead of throwing", () =>
    Effect.gen(function*() {
      for (const encoding of ["cl100k_base", "o200k_base"] as const) {
        const ours = yield* Effect.promise(() => Tokenizer.load(encoding))
        const ref = yield* Effect.promise(() => referenceFor(encoding))
        const text = "a <|endoftext|> b <|endofprompt|><|fim_prefix|>"
        expect(ours.count(text)).toBe(ref.encode(text, [], []).length)
        expect(ours.count("<|endoftext|>")).toBeGreaterThan(1)
      }
    }))

  // Strings built from pieces that stress pre-tokenization: contractions, digits, case changes,
  // CR/LF runs, combining marks, emoji, lone surrogates and long runs without spaces.
  const tricky = FastCheck.array(
    FastCheck.constantFrom(
      "a", "b", "Z", "é", "ß", "\u0301", "日本", "😀", "👍🏽", " ", "  ", "\t", "\n", "\r\n", "\r", "'s", "'LL", "'ve",
      "1", "23", "4567", ".", "...", "/", "<|endoftext|>", "\ud800", "\udc00", "_", "-", "K", "ſ"
    ),
    { maxLength: 80 }
  ).map((parts) => parts.join(""))
  const longRuns = FastCheck.tuple(
    FastCheck.stringOf(FastCheck.constantFrom("a", "b", "c", "é", "Ab"), { minLength: 40, maxLength: 400 }),
    FastCheck.constantFrom("", " ", "\n")
  ).map(([run, sep]) => run + sep + run.slice(0, 50))

  for (const encoding of ["cl100k_base", "o200k_base"] as const) {
    it.effect(`${encoding}: counts equal js-tiktoken's encode for any text`, () =>
      Effect.gen(function*() {
        const ours = yield* Effect.promise(() => Tokenizer.load(encoding))
        const ref = yield* Effect.promise(() => referenceFor(encoding))
        FastCheck.assert(
          FastCheck.property(FastCheck.oneof(tricky, FastCheck.fullUnicodeString({ maxLength: 120 }), longRuns), (text) => {
            expect(ours.count(text)).toBe(ref.encode(text, [], []).length)
          }),
          { numRuns: 300 }
        )
      }))
  }

  it("merges long and short pieces identically, whatever the ranks", () => {
    const alphabet = ["a", "b", "c"]
    const strings: Array<string> = []
    const grow = (prefix: string) => {
      if (prefix.length === 4) return
      for (const c of alphabet) {
        strings.push(prefix + c)
        grow(prefix + c)
      }
    }
    grow("")
    const multi = strings.filter((s) => s.length > 1)
    const ranksArb = FastCheck.array(FastCheck.tuple(FastCheck.constantFrom(...multi), FastCheck.nat(50)), {
      maxLength: 60
    }).map((pairs) => new Map<string, number>([...alphabet.map((c, i) => [c, 100 + i] as const), ...pairs]))
    const piece = FastCheck.stringOf(FastCheck.constantFrom(...alphabet), { minLength: 2, maxLength: 120 })
    FastCheck.assert(
      FastCheck.property(ranksArb, piece, (ranks, text) => {
        expect(Tokenizer.mergeCountLarge(text, ranks)).toBe(Tokenizer.mergeCountSmall(text, ranks))
      }),
      { numRuns: 2_000 }
    )
  })

  it.effect("counts long runs without a space in linear time", () =>
    Effect.gen(function*() {
      // A run without spaces is a single pre-token; its merge must stay O(n log n).
      const o200k = yield* Effect.promise(() => Tokenizer.load("o200k_base"))
      const ref = yield* Effect.promise(() => referenceFor("o200k_base"))
      expect(o200k.count("a".repeat(1_000))).toBe(ref.encode("a".repeat(1_000)).length)
      expect(o200k.count("a".repeat(200_000))).toBe(25_000)
      expect(o200k.count(" ".repeat(1_000))).toBe(ref.encode(" ".repeat(1_000)).length)
      expect(o200k.count(" ".repeat(128 * 1_000))).toBe(1_000)
    }))
})

describe("tokenizer on long texts", () => {
  for (const encoding of ["cl100k_base", "o200k_base"] as const) {
    it.effect(`${encoding}: slices cut only at pre-token boundaries, so their counts add up to js-tiktoken's`, () =>
      Effect.gen(function*() {
        const ours = yield* Effect.promise(() => Tokenizer.load(encoding))
        const ref = yield* Effect.promise(() => referenceFor(encoding))
        const text = FastCheck.array(
          FastCheck.constantFrom(
            "a", "Zb", "é", "\u0301", "日本", "中", "я", "😀", " ", "  ", "\t", "\n", "\n\n", "\r\n", "\r", "'s", "1", "234",
            ".", "/", "!", "_", "\u3000", "\u00a0", "<|endoftext|>"
          ),
          { maxLength: 150 }
        ).map((parts) => parts.join(""))
        FastCheck.assert(
          FastCheck.property(text, FastCheck.integer({ min: 2, max: 40 }), (text, max) => {
            let sum = 0
            for (const slice of Tokenizer.slices(text, max, false)) sum += ours.count(slice)
            expect(sum).toBe(ref.encode(text, [], []).length)
          }),
          { numRuns: 400 }
        )
        // Random text longer than one slice (so `count` slices it) counts exactly as a whole.
        FastCheck.assert(
          FastCheck.property(FastCheck.array(text, { minLength: 1_200, maxLength: 1_400 }), (parts) => {
            const long = parts.join(" ")
            if (long.length <= Tokenizer.sliceLength) return
            expect(ours.count(long)).toBe(ref.encode(long, [], []).length)
          }),
          { numRuns: 4 }
        )
        // Normal prose longer than one slice counts exactly as a whole.
        const prose = "The quick brown fox jumps over the lazy dog. Съешь же ещё этих булок. 我能吞下玻璃。\n".repeat(2_000)
        expect(prose.length).toBeGreaterThan(Tokenizer.sliceLength)
        expect(ours.count(prose)).toBe(ref.encode(prose, [], []).length)
      }))
  }

  it.effect("counts 5 million CJK or Cyrillic letters without a stack overflow", () =>
    Effect.gen(function*() {
      // One pre-token of millions of letters overflowed V8's RegExp stack; such a run is cut
      // into slices, and for these letters every cut falls between whole tokens.
      const o200k = yield* Effect.promise(() => Tokenizer.load("o200k_base"))
      const ref = yield* Effect.promise(() => referenceFor("o200k_base"))
      expect(ref.encode("中".repeat(1_000)).length).toBe(1_000)
      expect(o200k.count("中".repeat(5_000_000))).toBe(5_000_000)
      expect(ref.encode("я".repeat(1_000)).length).toBe(500)
      expect(o200k.count("я".repeat(5_000_000))).toBe(2_500_000)
      for (const slice of Tokenizer.slices("я".repeat(200_000))) {
        expect(slice.length).toBeLessThanOrEqual(Tokenizer.sliceLength)
      }
    }), 60_000)

  it.effect("lets timers and I/O run while it counts a long text", () =>
    Effect.gen(function*() {
      const cw = yield* ContextWindow.make({ preload: ["o200k_base"] })
      const text = "lorem ipsum dolor sit amet ".repeat(40_000)
      let ticks = 0
      const timer = setInterval(() => ticks++, 0)
      const counted = yield* cw.countText("gpt-4o", text).pipe(Effect.ensuring(Effect.sync(() => clearInterval(timer))))
      expect(counted).toBe((yield* Effect.promise(() => Tokenizer.load("o200k_base"))).count(text))
      // A synchronous count of these 1 M characters would let no timer fire before it ends.
      expect(ticks).toBeGreaterThan(0)
      // Nor may many short messages add up to a long block (distinct ones: a resent text is remembered).
      const messages = Array.from({ length: 50 }, (_, i) => ({ role: "user" as const, content: `${i} ${text.slice(0, 20_000)}` }))
      ticks = 0
      const again = setInterval(() => ticks++, 0)
      yield* cw.countPrompt("gpt-4o", undefined, messages).pipe(Effect.ensuring(Effect.sync(() => clearInterval(again))))
      expect(ticks).toBeGreaterThan(0)
    }))
})

/** The example conversation of OpenAI's token-counting cookbook. */
const cookbook: ReadonlyArray<ChatMessage> = [
  {
    role: "system",
    content: "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."
  },
  { role: "system", name: "example_user", content: "New synergies will help drive top-line growth." },
  { role: "system", name: "example_assistant", content: "Things working well together will increase revenue." },
  {
    role: "system",
    name: "example_user",
    content: "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."
  },
  {
    role: "system",
    name: "example_assistant",
    content: "Let's talk later when we're less busy about how to do better."
  },
  { role: "user", content: "This late pivot means we don't have time to boil the ocean for the client deliverable." }
]

const user = (content: string): ChatMessage => ({ role: "user", content })
const assistant = (content: string): ChatMessage => ({ role: "assistant", content })
const tool = (content: string): ChatMessage => ({ role: "tool", content })

const MODEL = "test-model"
const WINDOW = 1_000

layer(ContextWindow.layer({ models: { [MODEL]: { contextWindow: WINDOW, maxOutputTokens: 200, encoding: "o200k_base" } } }))(
  "ContextWindow",
  (it) => {
    const service = ContextWindow.ContextWindow
    /** Tokens one message adds to a prompt. */
    const cost = (message: ChatMessage, model = MODEL) =>
      Effect.flatMap(service, (cw) => cw.countPrompt(model, undefined, [message])).pipe(Effect.map((n) => n - 3))

    it.effect("counts the cookbook conversation as the API does", () =>
      Effect.gen(function*() {
        const cw = yield* service
        expect(yield* cw.countPrompt("gpt-4", undefined, cookbook)).toBe(129)
        expect(yield* cw.countPrompt("gpt-3.5-turbo-0613", undefined, cookbook)).toBe(129)
        expect(yield* cw.countPrompt("gpt-4o", undefined, cookbook)).toBe(124)
        expect(yield* cw.countPrompt("gpt-4o-mini", undefined, cookbook)).toBe(124)
      }))

    it.effect("counts the system instruction as a system message", () =>
      Effect.gen(function*() {
        const cw = yield* service
        const [first, ...rest] = cookbook
        expect(yield* cw.countPrompt("gpt-4o", first!.content, rest)).toBe(124)
        expect(yield* cw.countPrompt("gpt-4o", undefined, [])).toBe(3)
        expect(yield* cw.countPrompt("gpt-4o", "", [])).toBe(3 + 3 + 1)
      }))

    it.effect("counts text with the model's encoding", () =>
      Effect.gen(function*() {
        const cw = yield* service
        expect(yield* cw.countText("gpt-4", "お誕生日おめでとう")).toBe(9)
        expect(yield* cw.countText("gpt-4o", "お誕生日おめでとう")).toBe(8)
        expect(yield* cw.countText(MODEL, "")).toBe(0)
      }))

    it.effect("returns the conversation unchanged when it fits", () =>
      Effect.gen(function*() {
        const cw = yield* service
        const messages = [user("hi"), assistant("hello"), user("how are you?")]
        const fitted = yield* cw.fit({ model: MODEL, system: "Be brief.", messages, reserveForReply: 100 })
        expect(fitted).toEqual({
          messages,
          promptTokens: yield* cw.countPrompt(MODEL, "Be brief.", messages),
          droppedMessages: 0,
          limit: WINDOW - 100
        })
      }))

    it.effect("drops the oldest messages first, keeping the system instruction and the newest user message", () =>
      Effect.gen(function*() {
        const cw = yield* service
        const messages = [
          user("first question about the weather in Paris"),
          assistant("It is sunny in Paris today, with a light breeze."),
          user("and tomorrow?"),
          assistant("Rain is expected tomorrow afternoon."),
          user("should I take an umbrella?")
        ]
        const total = yield* cw.countPrompt(MODEL, "You answer travel questions.", messages)
        const limit = total - (yield* cost(messages[0]!)) - (yield* cost(messages[1]!))
        const fitted = yield* cw.fit({
          model: MODEL,
          system: "You answer travel questions.",
          messages,
          reserveForReply: WINDOW - limit
        })
        expect(fitted.messages).toEqual(messages.slice(2))
        expect(fitted.droppedMessages).toBe(2)
        expect(fitted.limit).toBe(limit)
        expect(fitted.promptTokens).toBe(limit)

        // One token less and the next oldest turn goes too.
        const tighter = yield* cw.fit({
          model: MODEL,
          system: "You answer travel questions.",
          messages,
          reserveForReply: WINDOW - limit + 1
        })
        expect(tighter.messages).toEqual([messages[4]])
        expect(tighter.promptTokens).toBe(yield* cw.countPrompt(MODEL, "You answer travel questions.", [messages[4]!]))
      }))

    it.effect("drops the assistant and tool messages a dropped user turn leaves leading", () =>
      Effect.gen(function*() {
        const cw = yield* service
        const messages = [
          user("look up order 42"),
          assistant("calling the order service"),
          tool("{\"status\":\"shipped\"}"),
          user("when will it arrive?")
        ]
        const total = yield* cw.countPrompt(MODEL, undefined, messages)
        const limit = total - (yield* cost(messages[0]!))
        const fitted = yield* cw.fit({ model: MODEL, system: undefined, messages, reserveForReply: WINDOW - limit })
        expect(fitted.messages).toEqual([messages[3]])
        expect(fitted.droppedMessages).toBe(3)
        expect(fitted.promptTokens).toBe(yield* cw.countPrompt(MODEL, undefined, [messages[3]!]))
      }))

    it.effect("drops tool results whose assistant call was dropped", () =>
      Effect.gen(function*() {
        const cw = yield* service
        const messages = [
          user("an older question that is rather long and will go first"),
          user("check the stock of item 7"),
          assistant("calling the inventory service for item 7 with a long explanation"),
          tool("{\"stock\":3}")
        ]
        const total = yield* cw.countPrompt(MODEL, undefined, messages)
        const limit = total - (yield* cost(messages[0]!)) - (yield* cost(messages[2]!))
        const fitted = yield* cw.fit({ model: MODEL, system: undefined, messages, reserveForReply: WINDOW - limit })
        expect(fitted.messages).toEqual([messages[1]])
      }))

    it.effect("never drops system messages inside the conversation", () =>
      Effect.gen(function*() {
        const cw = yield* service
        const rules: ChatMessage = { role: "system", content: "Answer in French." }
        const messages = [user("one"), assistant("un"), rules, user("two"), assistant("deux"), user("three")]
        const required = yield* cw.countPrompt(MODEL, undefined, [rules, messages[5]!])
        const fitted = yield* cw.fit({ model: MODEL, system: undefined, messages, reserveForReply: WINDOW - required })
        expect(fitted.messages).toEqual([rules, messages[5]])
        expect(fitted.promptTokens).toBe(required)
      }))

    it.effect("fails with ContextWindowExceeded when the system instruction and newest user message do not fit", () =>
      Effect.gen(function*() {
        const cw = yield* service
        const messages = [user("old"), assistant("reply"), user("the newest question, which must be kept")]
        const required = yield* cw.countPrompt(MODEL, "system rules", [messages[2]!])
        const error = yield* Effect.flip(
          cw.fit({ model: MODEL, system: "system rules", messages, reserveForReply: WINDOW - required + 1 })
        )
        expect(error).toEqual(
          new ContextWindowExceeded({
            model: MODEL,
            limit: required - 1,
            required,
            contextWindow: WINDOW,
            reservedForReply: WINDOW - required + 1
          })
        )
        // A reply reserve larger than the window leaves no room at all, and the message says
        // why with the real numbers instead of "allows 0".
        const none = yield* Effect.flip(cw.fit({ model: MODEL, system: undefined, messages, reserveForReply: 1e9 }))
        expect(none.limit).toBe(0)
        const needed = yield* cw.countPrompt(MODEL, undefined, [messages[2]!])
        expect(none.message).toContain(`context window of ${MODEL} is ${WINDOW} tokens, of which 1000000000 are reserved`)
        expect(none.message).toContain(`Lower maxTokens to at most ${WINDOW - needed}`)
      }))

    it.effect("reserves the model's default when the request sets no reply size", () =>
      Effect.gen(function*() {
        const cw = yield* service
        const fitted = yield* cw.fit({ model: MODEL, system: undefined, messages: [user("hi")], reserveForReply: undefined })
        expect(fitted.limit).toBe(WINDOW - 200)
        const gpt4 = yield* cw.fit({ model: "gpt-4-0613", system: undefined, messages: [user("hi")], reserveForReply: undefined })
        expect(gpt4.limit).toBe(8_192 - 4_096)
      }))

    it.effect("treats an unknown model with the fallback and warns once", () =>
      Effect.gen(function*() {
        const warnings: Array<string> = []
        const capture = Logger.make(({ logLevel, message }) => {
          if (logLevel._tag === "Warning") warnings.push(Array.isArray(message) ? message.join(" ") : String(message))
        })
        const cw = yield* service
        const run = cw.fit({ model: "acme-chat-v2", system: undefined, messages: [user("hi")], reserveForReply: undefined })
        const fitted = yield* run.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
        yield* run.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
        expect(fitted.limit).toBe(Models.defaultFallback.contextWindow - 4_096)
        expect(warnings).toHaveLength(1)
        expect(warnings[0]).toContain("Unknown model")
      }))

    // Random conversations and budgets: fit never exceeds the limit, keeps every pinned message,
    // and fails exactly when the pinned messages alone do not fit.
    const role = FastCheck.oneof(
      { arbitrary: FastCheck.constant("user" as const), weight: 4 },
      { arbitrary: FastCheck.constant("assistant" as const), weight: 4 },
      { arbitrary: FastCheck.constant("tool" as const), weight: 2 },
      { arbitrary: FastCheck.constant("system" as const), weight: 1 }
    )
    const message = FastCheck.record(
      {
        role,
        content: FastCheck.oneof(FastCheck.lorem({ maxCount: 40 }), FastCheck.fullUnicodeString({ maxLength: 60 })),
        name: FastCheck.constantFrom("alice", "bob_2", "")
      },
      { requiredKeys: ["role", "content"] }
    )
    const conversation = FastCheck.array(message, { maxLength: 14 })
    const system = FastCheck.option(FastCheck.lorem({ maxCount: 20 }), { nil: undefined })
    const reserve = FastCheck.integer({ min: 0, max: WINDOW })

    it.effect.prop(
      "fit keeps the budget and the pinned messages, or fails exactly when they alone do not fit",
      [conversation, system, reserve, FastCheck.constantFrom(MODEL, "gpt-4")],
      ([generated, system, reserveForReply, model]) =>
        Effect.gen(function*() {
          const cw = yield* service
          const messages: ReadonlyArray<ChatMessage> = generated
          const window = model === MODEL ? WINDOW : Models.lookup("gpt-4").contextWindow
          const limit = Math.max(0, window - reserveForReply)
          const newestUser = messages.map((m) => m.role).lastIndexOf("user")
          const pinned = messages.filter((m, i) => i === newestUser || m.role === "system")
          const required = yield* cw.countPrompt(model, system, pinned)
          const total = yield* cw.countPrompt(model, system, messages)
          const result = yield* Effect.either(cw.fit({ model, system, messages, reserveForReply }))

          if (required > limit) {
            expect(result).toEqual(
              Either.left(
                new ContextWindowExceeded({ model, limit, required, contextWindow: window, reservedForReply: reserveForReply })
              )
            )
            return
          }
          expect(Either.isRight(result)).toBe(true)
          if (Either.isLeft(result)) return
          const fitted = result.right
          expect(fitted.limit).toBe(limit)
          expect(fitted.promptTokens).toBeLessThanOrEqual(limit)
          expect(fitted.promptTokens).toBe(yield* cw.countPrompt(model, system, fitted.messages))
          expect(fitted.droppedMessages).toBe(messages.length - fitted.messages.length)

          // The kept messages are a subsequence of the original, by identity.
          const keptIndex: Array<number> = []
          let from = 0
          for (const kept of fitted.messages) {
            const at = messages.indexOf(kept, from)
            expect(at).toBeGreaterThanOrEqual(from)
            keptIndex.push(at)
            from = at + 1
          }
          for (const p of pinned) expect(fitted.messages).toContain(p)

          if (total <= limit) {
            expect(fitted.messages).toBe(messages)
            return
          }
          // Oldest first: every dropped user message is older than every kept droppable one.
          const isPinned = (i: number) => i === newestUser || messages[i]!.role === "system"
          const keptDroppable = keptIndex.filter((i) => !isPinned(i))
          const droppedUsers = messages.map((m, i) => [m, i] as const)
            .filter(([m, i]) => m.role === "user" && !keptIndex.includes(i))
            .map(([, i]) => i)
          if (keptDroppable.length > 0 && droppedUsers.length > 0) {
            expect(Math.max(...droppedUsers)).toBeLessThan(Math.min(...keptDroppable))
          }
          // A trimmed conversation starts with a user turn (system messages aside).
          const firstTurn = fitted.messages.find((m) => m.role !== "system")
          if (firstTurn !== undefined) expect(firstTurn.role).toBe("user")
        }),
      { fastCheck: { numRuns: 300 } }
    )
  }
)

describe("layers", () => {
  it.effect("rejects an invalid registered model at start-up, naming it", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Layer.build(
          ContextWindow.layer({ models: { "acme-chat": { contextWindow: 0, maxOutputTokens: 10, encoding: "o200k_base" } } })
        ).pipe(Effect.scoped)
      )
      expect(error._op).toBe("InvalidData")
      expect(String(error)).toContain("models.acme-chat")
      const reserve = yield* Effect.flip(
        Layer.build(ContextWindow.layer({ defaultReserveForReply: -1 })).pipe(Effect.scoped)
      )
      expect(String(reserve)).toContain("defaultReserveForReply")
    }))

  it.effect("uses a layer-wide default reserve", () =>
    Effect.gen(function*() {
      const cw = yield* ContextWindow.ContextWindow.pipe(
        Effect.provide(ContextWindow.layer({ defaultReserveForReply: 1_000 }))
      )
      const fitted = yield* cw.fit({ model: "gpt-4o", system: undefined, messages: [user("hi")], reserveForReply: undefined })
      expect(fitted.limit).toBe(128_000 - 1_000)
      const explicit = yield* cw.fit({ model: "gpt-4o", system: undefined, messages: [user("hi")], reserveForReply: 10 })
      expect(explicit.limit).toBe(128_000 - 10)
    }))

  it.effect("layerConfig reads models and the reserve from configuration", () =>
    Effect.gen(function*() {
      const settings = ContextWindow.layerConfig({
        models: Models.config("LLM_MODELS"),
        defaultReserveForReply: Config.integer("LLM_RESERVE_FOR_REPLY")
      })
      const provider = (entries: ReadonlyArray<readonly [string, string]>) =>
        Layer.setConfigProvider(ConfigProvider.fromMap(new Map(entries)))
      const cw = yield* ContextWindow.ContextWindow.pipe(
        Effect.provide(settings.pipe(Layer.provide(provider([
          ["LLM_MODELS", `{"acme-chat":{"contextWindow":32768,"maxOutputTokens":4096,"encoding":"cl100k_base"}}`],
          ["LLM_RESERVE_FOR_REPLY", "768"]
        ]))))
      )
      const fitted = yield* cw.fit({ model: "acme-chat", system: undefined, messages: [user("hi")], reserveForReply: undefined })
      expect(fitted.limit).toBe(32_768 - 768)
      expect(yield* cw.countText("acme-chat", "お誕生日おめでとう")).toBe(9)

      const error = yield* Effect.flip(
        Layer.build(settings.pipe(Layer.provide(provider([["LLM_MODELS", "{}"], ["LLM_RESERVE_FOR_REPLY", "lots"]])))).pipe(
          Effect.scoped
        )
      )
      expect(String(error)).toContain("LLM_RESERVE_FOR_REPLY")
    }))
})
