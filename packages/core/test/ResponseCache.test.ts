import * as Persistence from "@effect/experimental/Persistence"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import { createHash } from "node:crypto"
import type { OutboundRequest } from "../src/Chat.js"
import * as ResponseCache from "../src/ResponseCache.js"

const reply = (text: string): ResponseCache.CachedReply => ({
  text,
  finishReason: "stop",
  usage: { promptTokens: 10, completionTokens: 2, totalTokens: 12 },
  usageSource: "gateway",
  alternatives: [],
  storedAt: 0
})

/** Collects what is logged, so a test can check that a fault was reported. */
const captureLogs = Effect.gen(function*() {
  const logs: Array<{ level: LogLevel.LogLevel; message: string }> = []
  const logger = Logger.make(({ logLevel, message }) => {
    logs.push({ level: logLevel, message: Array.isArray(message) ? message.map(String).join(" ") : String(message) })
  })
  return { logs, layer: Logger.replace(Logger.defaultLogger, logger) }
})

const base: OutboundRequest & { readonly profile?: string } = {
  model: "gpt-4o-mini",
  system: "Be brief.",
  messages: [
    { role: "user", content: "Hello", name: "ann" },
    { role: "assistant", content: "Hi" },
    { role: "user", content: "Weather?" }
  ],
  temperature: 0.2,
  maxTokens: 64,
  profile: "openai"
}

/** The same data with the keys of every object in reverse order. */
const reorder = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(reorder)
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {}
    for (const key of Object.keys(value).reverse()) out[key] = reorder((value as Record<string, unknown>)[key])
    return out
  }
  return value
}

const arbitraryRequest = FastCheck.record({
  model: FastCheck.string({ minLength: 1 }),
  system: FastCheck.option(FastCheck.string(), { nil: undefined }),
  messages: FastCheck.array(
    FastCheck.record(
      {
        role: FastCheck.constantFrom("system" as const, "user" as const, "assistant" as const, "tool" as const),
        content: FastCheck.fullUnicodeString(),
        name: FastCheck.string()
      },
      { requiredKeys: ["role", "content"] }
    )
  ),
  temperature: FastCheck.option(FastCheck.double({ min: 0, max: 2, noNaN: true }), { nil: undefined }),
  maxTokens: FastCheck.option(FastCheck.integer({ min: 1, max: 1_000_000 }), { nil: undefined }),
  profile: FastCheck.option(FastCheck.string(), { nil: undefined })
})

describe("ResponseCache.requestKey", () => {
  it("is the SHA-256 of the version tag and the canonical JSON (sorted keys, no whitespace, no undefined)", () => {
    const request = {
      model: "m",
      system: undefined,
      messages: [{ role: "user" as const, content: "é\"x" }],
      temperature: undefined,
      maxTokens: 5
    }
    const expected = createHash("sha256")
      .update("llm-gateway/request-key/v1\n{\"maxTokens\":5,\"messages\":[{\"content\":\"é\\\"x\",\"role\":\"user\"}],\"model\":\"m\"}")
      .digest("hex")
    expect(ResponseCache.requestKey(request)).toBe(expected)
    expect(ResponseCache.requestKey(request)).toMatch(/^[0-9a-f]{64}$/)
  })

  it.prop("is stable under key reordering", [arbitraryRequest], ([request]) => {
    const reordered = reorder(request) as typeof request
    expect(Object.keys(reordered)).toEqual(Object.keys(request).reverse())
    expect(ResponseCache.requestKey(reordered)).toBe(ResponseCache.requestKey(request))
  })

  it.prop(
    "differs when any message changes",
    [arbitraryRequest, FastCheck.fullUnicodeString({ minLength: 1 })],
    ([request, extra]) => {
      const changed = { ...request, messages: [...request.messages, { role: "user" as const, content: extra }] }
      expect(ResponseCache.requestKey(changed)).not.toBe(ResponseCache.requestKey(request))
    }
  )

  it("changes with every field, and treats an undefined field as absent", () => {
    const key = ResponseCache.requestKey(base)
    const variants: Array<OutboundRequest & { readonly profile?: string | undefined }> = [
      { ...base, model: "gpt-4o" },
      { ...base, system: "Be long." },
      { ...base, system: undefined },
      { ...base, system: "" },
      { ...base, temperature: 0.3 },
      { ...base, temperature: undefined },
      { ...base, maxTokens: 65 },
      { ...base, maxTokens: undefined },
      { ...base, profile: "gateway" },
      { ...base, profile: undefined },
      { ...base, messages: base.messages.slice(1) },
      { ...base, messages: [...base.messages].reverse() },
      { ...base, messages: [{ ...base.messages[0]!, role: "assistant" }, ...base.messages.slice(1)] },
      { ...base, messages: [{ ...base.messages[0]!, content: "Hello!" }, ...base.messages.slice(1)] },
      { ...base, messages: [{ ...base.messages[0]!, name: "bob" }, ...base.messages.slice(1)] },
      { ...base, messages: [{ role: "user", content: "Hello" }, ...base.messages.slice(1)] }
    ]
    const keys = variants.map(ResponseCache.requestKey)
    for (const other of keys) expect(other).not.toBe(key)
    expect(new Set(keys).size).toBe(keys.length)

    const { profile: _, ...withoutProfile } = base
    expect(ResponseCache.requestKey({ ...withoutProfile, profile: undefined })).toBe(
      ResponseCache.requestKey(withoutProfile)
    )
    expect(
      ResponseCache.requestKey({ ...base, messages: [{ role: "user", content: "x", name: undefined }] })
    ).toBe(ResponseCache.requestKey({ ...base, messages: [{ role: "user", content: "x" }] }))
  })
})

describe("ResponseCache.layerMemory", () => {
  const withMemory = <A, E>(
    options: ResponseCache.MemoryOptions,
    f: (cache: ResponseCache.Service) => Effect.Effect<A, E>
  ) => Effect.flatMap(ResponseCache.ResponseCache, f).pipe(Effect.provide(ResponseCache.layerMemory(options)))

  it.effect("evicts the least recently used entry beyond its capacity", () =>
    withMemory({ capacity: 2, timeToLive: "1 hour" }, (cache) =>
      Effect.gen(function*() {
        yield* cache.set("a", reply("A"))
        yield* cache.set("b", reply("B"))
        expect(Option.map(yield* cache.get("a"), (_) => _.text)).toEqual(Option.some("A"))
        yield* cache.set("c", reply("C"))
        expect(yield* cache.get("b")).toEqual(Option.none())
        expect(Option.map(yield* cache.get("a"), (_) => _.text)).toEqual(Option.some("A"))
        expect(Option.map(yield* cache.get("c"), (_) => _.text)).toEqual(Option.some("C"))
        yield* cache.set("a", reply("A2"))
        yield* cache.set("d", reply("D"))
        expect(yield* cache.get("c")).toEqual(Option.none())
        expect(Option.map(yield* cache.get("a"), (_) => _.text)).toEqual(Option.some("A2"))
      })))

  it.effect("expires entries after the time to live, measured with the Clock", () =>
    withMemory({ capacity: 10, timeToLive: "10 minutes" }, (cache) =>
      Effect.gen(function*() {
        yield* cache.set("a", reply("A"))
        yield* TestClock.adjust("9 minutes")
        yield* cache.set("b", reply("B"))
        yield* TestClock.adjust("59999 millis")
        expect(Option.isSome(yield* cache.get("a"))).toBe(true)
        yield* TestClock.adjust("1 millis")
        expect(yield* cache.get("a")).toEqual(Option.none())
        expect(Option.isSome(yield* cache.get("b"))).toBe(true)
        yield* TestClock.adjust("9 minutes")
        expect(yield* cache.get("b")).toEqual(Option.none())
      })))

  it.effect("stores nothing with capacity 0", () =>
    withMemory({ capacity: 0, timeToLive: "1 hour" }, (cache) =>
      Effect.gen(function*() {
        yield* cache.set("a", reply("A"))
        expect(yield* cache.get("a")).toEqual(Option.none())
      })))
})

describe("ResponseCache.layerFileSystem", () => {
  const withFiles = <A, E>(
    f: (env: { cache: ResponseCache.Service; directory: string; fs: FileSystem.FileSystem }) => Effect.Effect<A, E>,
    timeToLive: Duration.DurationInput = "1 hour"
  ) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const root = yield* fs.makeTempDirectoryScoped({ prefix: "llm-gateway-cache-" })
      const directory = path.join(root, "cache")
      const cache = yield* ResponseCache.makeFileSystem({ directory, timeToLive })
      return yield* f({ cache, directory, fs })
    }).pipe(Effect.provide(NodeContext.layer))

  const key = ResponseCache.requestKey(base)

  it.scoped("round-trips an entry through one file, written atomically", () =>
    withFiles(({ cache, directory, fs }) =>
      Effect.gen(function*() {
        expect(yield* cache.get(key)).toEqual(Option.none())
        const stored = { ...reply("Sunny."), alternatives: [{ index: 1, text: "Rain.", finishReason: "stop" as const }] }
        yield* cache.set(key, stored)
        expect(yield* cache.get(key)).toEqual(Option.some(stored))
        expect(yield* fs.readDirectory(directory)).toEqual([`${key}.json`])
        yield* cache.set(key, reply("Cloudy."))
        expect(Option.map(yield* cache.get(key), (_) => _.text)).toEqual(Option.some("Cloudy."))
        expect(yield* fs.readDirectory(directory)).toEqual([`${key}.json`])
      })))

  it.scoped("hashes keys that are not safe file names", () =>
    withFiles(({ cache, directory, fs }) =>
      Effect.gen(function*() {
        yield* cache.set("../../etc/passwd", reply("x"))
        const names = yield* fs.readDirectory(directory)
        expect(names).toHaveLength(1)
        expect(names[0]).toMatch(/^[0-9a-f]{64}\.json$/)
        expect(Option.map(yield* cache.get("../../etc/passwd"), (_) => _.text)).toEqual(Option.some("x"))
      })))

  it.scoped("expires entries on read with the Clock", () =>
    withFiles(({ cache, directory, fs }) =>
      Effect.gen(function*() {
        yield* cache.set(key, reply("A"))
        yield* TestClock.adjust("29 minutes")
        expect(Option.isSome(yield* cache.get(key))).toBe(true)
        yield* TestClock.adjust("1 minute")
        expect(yield* cache.get(key)).toEqual(Option.none())
        expect(yield* fs.readDirectory(directory)).toEqual([])
      }), "30 minutes"))

  it.scoped("reads a corrupt or foreign file as a logged miss and removes it", () =>
    Effect.gen(function*() {
      const { layer, logs } = yield* captureLogs
      yield* withFiles(({ cache, directory, fs }) =>
        Effect.gen(function*() {
          yield* cache.set(key, reply("A"))
          const file = `${directory}/${key}.json`
          const text = yield* fs.readFileString(file)
          yield* fs.writeFileString(file, text.slice(0, text.length - 7))
          expect(yield* cache.get(key)).toEqual(Option.none())
          expect(yield* fs.exists(file)).toBe(false)

          yield* fs.writeFileString(file, JSON.stringify({ format: "llm-gateway/response-cache/v1", key, writtenAt: 0 }))
          expect(yield* cache.get(key)).toEqual(Option.none())

          // A valid entry copied under another key's name is not served.
          yield* cache.set("other", reply("B"))
          yield* fs.copyFile(`${directory}/other.json`, file)
          expect(yield* cache.get(key)).toEqual(Option.none())
          expect(Option.map(yield* cache.get("other"), (_) => _.text)).toEqual(Option.some("B"))
        })
      ).pipe(Effect.provide(layer))
      const warnings = logs.filter((_) => _.level === LogLevel.Warning && _.message.includes("corrupt"))
      expect(warnings).toHaveLength(3)
    }))

  it.scoped("never fails a request on a storage fault", () =>
    Effect.gen(function*() {
      const { layer, logs } = yield* captureLogs
      yield* Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const root = yield* fs.makeTempDirectoryScoped({ prefix: "llm-gateway-cache-" })
        // After start-up the cache directory is replaced by a regular file: every operation
        // fails underneath.
        const directory = `${root}/not-a-directory`
        const cache = yield* ResponseCache.makeFileSystem({ directory, timeToLive: "1 hour" })
        yield* fs.remove(directory, { recursive: true })
        yield* fs.writeFileString(directory, "")
        yield* cache.set(key, reply("A"))
        expect(yield* cache.get(key)).toEqual(Option.none())
      }).pipe(Effect.provide(Layer.merge(NodeContext.layer, layer)))
      expect(logs.filter((_) => _.level === LogLevel.Warning).length).toBeGreaterThanOrEqual(2)
    }))

  it.scoped("sweeps expired entries and abandoned temporary files in the background", () =>
    withFiles(({ cache, directory, fs }) =>
      Effect.gen(function*() {
        yield* cache.set(key, reply("A"))
        yield* fs.writeFileString(`${directory}/.abandoned.json.1.tmp`, "{")
        yield* fs.utimes(`${directory}/.abandoned.json.1.tmp`, new Date(0), new Date(0))
        yield* TestClock.adjust("2 hours")
        // The sweep runs on the Clock; give its fiber a turn to finish its file operations.
        for (let i = 0; i < 50 && (yield* fs.readDirectory(directory)).length > 0; i++) {
          yield* Effect.yieldNow()
          yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
        }
        expect(yield* fs.readDirectory(directory)).toEqual([])
      })))
})

describe("ResponseCache.layerPersistence", () => {
  it.scoped("stores through a BackingPersistence with its time to live, validating on read", () =>
    Effect.gen(function*() {
      const cache = yield* ResponseCache.makePersistence({ timeToLive: "1 minute" })
      yield* cache.set("k", reply("A"))
      expect(Option.map(yield* cache.get("k"), (_) => _.text)).toEqual(Option.some("A"))
      yield* TestClock.adjust("61 seconds")
      expect(yield* cache.get("k")).toEqual(Option.none())

      const backing = yield* Persistence.BackingPersistence
      const store = yield* backing.make("llm-gateway/response-cache/v1")
      yield* store.set("bad", { text: 1 }, Option.none())
      expect(yield* cache.get("bad")).toEqual(Option.none())
      expect(yield* store.get("bad")).toEqual(Option.none())
    }).pipe(Effect.provide(Persistence.layerMemory)))
})
