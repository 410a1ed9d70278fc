/**
 * The file store's bounds: no file is read past `maxEntryBytes`, the directory is kept within
 * `maxEntries`/`maxBytes` (oldest first), and an unusable directory fails start-up at once.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import { execFileSync } from "node:child_process"
import * as AuditLog from "../src/AuditLog.js"
import * as ResponseCache from "../src/ResponseCache.js"

const reply = (text: string): ResponseCache.CachedReply => ({
  text,
  finishReason: "stop",
  usage: { promptTokens: 3, completionTokens: 2, totalTokens: 5 },
  usageSource: "gateway",
  alternatives: [],
  storedAt: 0
})

const key = (n: number) => `${n}`.padStart(64, "a")

const warnings = () => {
  const logs: Array<string> = []
  const logger = Logger.make(({ logLevel, message }) => {
    if (logLevel === LogLevel.Warning) logs.push(String(Array.isArray(message) ? message[0] : message))
  })
  return { logs, layer: Logger.replace(Logger.defaultLogger, logger) }
}

const tempDirectory = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  return path.join(yield* fs.makeTempDirectoryScoped({ prefix: "llm-gateway-cache-bounds-" }), "cache")
})

/** Lets the store's background fibers (sweep, eviction) run until `done` holds. */
const settle = (done: Effect.Effect<boolean, unknown>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 200 && !(yield* done); i++) {
      yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
    }
  })

const mib = 1024 * 1024

describe("ResponseCache.makeFileSystem bounds", () => {
  it.scoped("a 300 MB entry file is a miss and is removed without being read", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const directory = yield* tempDirectory
      const { layer, logs } = warnings()
      // Counts directory listings, to know when the start-up sweep (two listings) is over.
      let listings = 0
      const counting = Layer.succeed(FileSystem.FileSystem, {
        ...fs,
        readDirectory: (p, o) => Effect.tap(fs.readDirectory(p, o), () => Effect.sync(() => listings++))
      })
      yield* Effect.gen(function*() {
        const cache = yield* ResponseCache.makeFileSystem({ directory, timeToLive: "1 hour", sweepInterval: "1 day" })
        yield* settle(Effect.sync(() => listings >= 2))
        yield* Effect.yieldNow()
        const file = `${directory}/${key(1)}.json`
        // Sparse: 300 MB long, no disk used.
        yield* fs.writeFileString(file, "{")
        yield* fs.truncate(file, 300 * mib)
        const rss = process.memoryUsage().rss
        expect(yield* cache.get(key(1))).toEqual(Option.none())
        const growth = process.memoryUsage().rss - rss
        expect(growth).toBeLessThan(64 * mib)
        expect(yield* fs.exists(file)).toBe(false)
      }).pipe(Effect.provide(Layer.merge(layer, counting)))
      expect(listings).toBe(2)
      expect(logs.some((l) => l.includes("larger than maxEntryBytes"))).toBe(true)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("the start-up sweep removes an oversized file without reading it", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const directory = yield* tempDirectory
      yield* fs.makeDirectory(directory)
      const file = `${directory}/${key(2)}.json`
      yield* fs.writeFileString(file, "{")
      yield* fs.truncate(file, 300 * mib)
      const rss = process.memoryUsage().rss
      yield* ResponseCache.makeFileSystem({ directory, timeToLive: "1 hour" })
      yield* settle(Effect.map(fs.exists(file), (exists) => !exists))
      expect(yield* fs.exists(file)).toBe(false)
      expect(process.memoryUsage().rss - rss).toBeLessThan(64 * mib)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("an entry file that is a FIFO is a miss, not a hang", () =>
    Effect.gen(function*() {
      const directory = yield* tempDirectory
      const cache = yield* ResponseCache.makeFileSystem({ directory, timeToLive: "1 hour", sweepInterval: "1 day" })
      execFileSync("mkfifo", [`${directory}/${key(3)}.json`])
      expect(yield* cache.get(key(3))).toEqual(Option.none())
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("does not store an entry larger than maxEntryBytes", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const directory = yield* tempDirectory
      const cache = yield* ResponseCache.makeFileSystem({ directory, timeToLive: "1 hour", maxEntryBytes: 1000 })
      yield* cache.set(key(4), reply("x".repeat(2000)))
      expect(yield* cache.get(key(4))).toEqual(Option.none())
      yield* cache.set(key(5), reply("small"))
      expect(Option.map(yield* cache.get(key(5)), (r) => r.text)).toEqual(Option.some("small"))
      expect((yield* fs.readDirectory(directory)).filter((n) => n.endsWith(".json"))).toEqual([`${key(5)}.json`])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("keeps at most maxEntries, evicting the oldest first", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const directory = yield* tempDirectory
      const cache = yield* ResponseCache.makeFileSystem({ directory, timeToLive: "1 hour", maxEntries: 5 })
      const names = Effect.map(fs.readDirectory(directory), (all) => all.filter((n) => n.endsWith(".json")).sort())
      for (let i = 0; i < 5; i++) {
        yield* cache.set(key(i), reply(`r${i}`))
        const at = new Date(Date.now() - (10 - i) * 60_000)
        yield* fs.utimes(`${directory}/${key(i)}.json`, at, at)
      }
      expect(yield* names).toHaveLength(5)
      yield* cache.set(key(5), reply("r5"))
      // Over the bound: evicted down to 90 % of it (4 entries), oldest first.
      yield* settle(Effect.map(names, (n) => n.length <= 4))
      expect(yield* names).toEqual([2, 3, 4, 5].map((i) => `${key(i)}.json`))
      expect(Option.isSome(yield* cache.get(key(5)))).toBe(true)
      expect(yield* cache.get(key(0))).toEqual(Option.none())
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("keeps at most maxBytes, evicting the oldest first", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const directory = yield* tempDirectory
      const text = "y".repeat(1000)
      const cache = yield* ResponseCache.makeFileSystem({ directory, timeToLive: "1 hour", maxBytes: 6_000 })
      const sizes = Effect.flatMap(fs.readDirectory(directory), (all) =>
        Effect.forEach(all.filter((n) => n.endsWith(".json")), (n) =>
          Effect.map(fs.stat(`${directory}/${n}`), (info) => Number(info.size))))
      const total = Effect.map(sizes, (s) => s.reduce((a, b) => a + b, 0))
      for (let i = 0; i < 4; i++) {
        yield* cache.set(key(i), reply(text))
        const at = new Date(Date.now() - (10 - i) * 60_000)
        yield* fs.utimes(`${directory}/${key(i)}.json`, at, at)
      }
      // Four entries of about 1.3 kB each fit; the fifth goes over the bound.
      expect(yield* total).toBeLessThanOrEqual(6_000)
      yield* cache.set(key(4), reply(text))
      yield* settle(Effect.map(total, (t) => t <= 5_400))
      expect(yield* total).toBeLessThanOrEqual(5_400)
      expect(yield* fs.exists(`${directory}/${key(0)}.json`)).toBe(false)
      expect(yield* fs.exists(`${directory}/${key(1)}.json`)).toBe(true)
      expect(yield* fs.exists(`${directory}/${key(4)}.json`)).toBe(true)
    }).pipe(Effect.provide(NodeContext.layer)))
})

describe("unusable directories fail start-up at once", () => {
  it.scoped("a cache directory under /proc is a CacheDirectoryError, not a hang", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        ResponseCache.makeFileSystem({ directory: "/proc/self/nonexistent/cache", timeToLive: "1 hour" })
      )
      expect(error._tag).toBe("CacheDirectoryError")
      expect(error.directory).toBe("/proc/self/nonexistent/cache")
      expect(error.message).toContain("cannot create /proc/self/nonexistent")
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("a regular file on the path is a CacheDirectoryError", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const directory = yield* tempDirectory
      yield* fs.makeDirectory(directory)
      yield* fs.writeFileString(`${directory}/file`, "")
      const error = yield* Effect.flip(Layer.build(
        ResponseCache.layerFileSystem({ directory: `${directory}/file/cache`, timeToLive: "1 hour" })
      ))
      expect(error).toMatchObject({ _tag: "CacheDirectoryError" })
      expect(error.message).toContain("exists and is not a directory")
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("an audit file under /proc is an AuditFileError, not a hang", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(AuditLog.layerFile("/proc/self/nonexistent/audit/audit.jsonl")))
      expect(error._tag).toBe("AuditFileError")
      expect(error.message).toContain("cannot create /proc/self/nonexistent")
    }).pipe(Effect.provide(NodeContext.layer)))
})
