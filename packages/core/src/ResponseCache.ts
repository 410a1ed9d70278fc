/**
 * ResponseCache: replies to repeated requests, keyed by the SHA-256 of the request as sent.
 * Only clean finishes are stored, and only redacted text.
 *
 * Three stores ship here: `layerMemory` (LRU bounded by entry count, with a time to live),
 * `layerFileSystem` (one JSON file per key, shared by the processes of one host, surviving
 * restarts) and `layerPersistence` (any `@effect/experimental` `BackingPersistence`, such as
 * Redis, for several hosts). Every store treats a storage fault as a miss and logs it at warning
 * level: the cache can make a request cheaper, never make it fail. Identical requests in flight
 * at the same time are merged by the pipeline, not by the store.
 *
 * @since 0.1.0
 */
import * as Persistence from "@effect/experimental/Persistence"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { randomUUID } from "node:crypto"
import { FinishReason, type OutboundRequest, RedactionCount, Usage, UsageSource } from "./Chat.js"
import * as BoundedFile from "./internal/boundedFile.js"
import { canonicalJson } from "./internal/canonicalJson.js"
import { ensureDirectory as ensureDirectoryLevels } from "./internal/directory.js"
import { sha256Hex, sha256HexJoined } from "./internal/hash.js"
import { Alternative, ToolCallErrorReason } from "./Part.js"

/**
 * A tool call of a stored reply: its redacted arguments' JSON text (decoded again with the
 * request's tools when replayed), or why it could not be used.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const CachedToolCall = Schema.Union(
  Schema.Struct({ index: Schema.Int, id: Schema.String, name: Schema.String, rawArguments: Schema.String }),
  Schema.Struct({
    index: Schema.Int,
    id: Schema.String,
    name: Schema.String,
    reason: ToolCallErrorReason,
    issues: Schema.Array(Schema.String)
  })
)

/**
 * A tool call of a stored reply (see the `CachedToolCall` Schema).
 *
 * @since 0.1.0
 * @category Models
 */
export type CachedToolCall = typeof CachedToolCall.Type

/**
 * A stored reply.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const CachedReply = Schema.Struct({
  text: Schema.String,
  finishReason: FinishReason,
  usage: Usage,
  usageSource: UsageSource,
  alternatives: Schema.Array(Alternative),
  refusal: Schema.optional(Schema.String),
  /** What was redacted from the reply before it was stored (counts only). */
  outputRedactions: Schema.optional(Schema.Array(RedactionCount)),
  /** The model that answered, when a stage (such as a model fallback) chose another one. */
  model: Schema.optional(Schema.String),
  /** The reply's tool calls, in order. */
  toolCalls: Schema.optional(Schema.Array(CachedToolCall)),
  storedAt: Schema.Number
})

/**
 * A decoded cached reply, as a cache hit replays it.
 *
 * @since 0.1.0
 * @category Models
 */
export type CachedReply = typeof CachedReply.Type

/**
 * Stores the replies of clean finishes by request key and returns them for identical requests;
 * storage faults read as a miss and never fail a request.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Service {
  /** The stored reply for `key`, if present and not expired. Storage faults read as a miss. */
  readonly get: (key: string) => Effect.Effect<Option.Option<CachedReply>>
  /** Stores a reply. Storage faults are logged, never fail the request. */
  readonly set: (key: string, reply: CachedReply) => Effect.Effect<void>
  /**
   * Single-flight across processes, offered by stores that several processes share (optional;
   * without it identical requests are merged within each process only). The cache stage calls
   * it on a miss, for the one request of this process about to go upstream: `None` means go,
   * and the store then holds the key's lease for it until `Scope` closes, whatever the exit;
   * `Some` is the reply another process stored while this one waited for its lease.
   */
  readonly lead?: ((key: string) => Effect.Effect<Option.Option<CachedReply>, never, Scope.Scope>) | undefined
}

/**
 * The ResponseCache service.
 *
 * @since 0.1.0
 * @category Services
 */
export class ResponseCache extends Context.Tag("@llm-gateway/core/ResponseCache")<ResponseCache, Service>() {}

// ---------------------------------------------------------------------------------------------
// Request keys
// ---------------------------------------------------------------------------------------------

/**
 * The version tag hashed in front of every request key. Changing how requests are serialized
 * changes this tag, so entries written by an older version can never be read as hits.
 *
 * @since 0.1.0
 * @category Keys
 */
export const requestKeyVersion = "llm-gateway/request-key/v1"

/**
 * The cache key of a request: the SHA-256 (64 lowercase hex digits) of `requestKeyVersion`, a
 * newline, and the canonical JSON of the request (keys sorted at every depth, no whitespace,
 * fields whose value is `undefined` left out). Two requests get the same key exactly when they
 * carry the same data, whatever the order of their keys. Every field takes part, including
 * fields added to `OutboundRequest` later: a field that changes the reply must change the key,
 * and an unknown field costing a miss is cheaper than a wrong hit. `profile` names the wire
 * profile, so two gateways never share entries. `policy` is the `SafetyFilter` fingerprint
 * the reply is redacted under, so a reply stored under a weaker policy (say, with email
 * redaction off) is never replayed to a gateway with a stricter one sharing the store.
 *
 * The request must already be redacted (the pipeline hashes what it sends); only the hex key
 * may leave the process, never the serialization.
 *
 * @example
 * import { requestKey } from "@llm-gateway/core/ResponseCache"
 *
 * const key = requestKey({
 *   model: "gpt-4o-mini",
 *   system: "Be brief.",
 *   messages: [{ role: "user", content: "Hello" }],
 *   temperature: 0,
 *   maxTokens: 64,
 *   profile: "openai",
 *   policy: "3f0c…"
 * })
 *
 * @since 0.1.0
 * @category Keys
 */
export const requestKey = (
  request: OutboundRequest & { readonly profile?: string | undefined; readonly policy?: string | undefined }
): string =>
  sha256HexJoined(requestKeyVersion + "\n", canonicalJson(request))

// ---------------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------------

/**
 * Options of the in-memory store.
 *
 * - `capacity`: the most entries kept; the least recently used entry is evicted first. `0`
 *   stores nothing. Replies are kept whole, so size it by your typical reply length.
 * - `timeToLive`: how long an entry stays readable after it was stored, measured with the
 *   Effect `Clock`. An entry is expired once exactly `timeToLive` has passed.
 *
 * @since 0.1.0
 * @category Config
 */
export interface MemoryOptions {
  readonly capacity: number
  readonly timeToLive: Duration.DurationInput
}

interface MemoryEntry {
  readonly reply: CachedReply
  readonly expiresAt: number
}

/**
 * An in-memory LRU store with a time to live. A JavaScript `Map` keeps insertion order, so
 * moving an entry to the end on every hit makes its first key the least recently used one; get
 * and set are O(1).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeMemory = (options: MemoryOptions): Effect.Effect<Service> =>
  Effect.sync(() => {
    const capacity = Number.isFinite(options.capacity) ? Math.max(0, Math.floor(options.capacity)) : 0
    const timeToLive = Duration.toMillis(Duration.decode(options.timeToLive))
    const entries = new Map<string, MemoryEntry>()

    const get = (key: string): Effect.Effect<Option.Option<CachedReply>> =>
      Effect.clockWith((clock) =>
        Effect.sync(() => {
          const entry = entries.get(key)
          if (entry === undefined) return Option.none()
          entries.delete(key)
          if (clock.unsafeCurrentTimeMillis() >= entry.expiresAt) return Option.none()
          entries.set(key, entry)
          return Option.some(entry.reply)
        })
      )

    const set = (key: string, reply: CachedReply): Effect.Effect<void> =>
      Effect.clockWith((clock) =>
        Effect.sync(() => {
          if (capacity === 0 || timeToLive <= 0) return
          entries.delete(key)
          entries.set(key, { reply, expiresAt: clock.unsafeCurrentTimeMillis() + timeToLive })
          while (entries.size > capacity) {
            const oldest = entries.keys().next()
            if (oldest.done === true) break
            entries.delete(oldest.value)
          }
        })
      )

    return { get, set }
  })

/**
 * The in-memory store as a Layer (see `MemoryOptions`).
 *
 * @example
 * import { ResponseCache } from "@llm-gateway/core"
 *
 * const CacheLive = ResponseCache.layerMemory({ capacity: 1_000, timeToLive: "1 hour" })
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerMemory = (options: MemoryOptions): Layer.Layer<ResponseCache> =>
  Layer.effect(ResponseCache, makeMemory(options))

// ---------------------------------------------------------------------------------------------
// File system
// ---------------------------------------------------------------------------------------------

/**
 * Options of the file-system store.
 *
 * - `directory`: where entries live, created if missing. Give the cache its own directory: the
 *   periodic sweep removes expired and unreadable `*.json` files in it.
 * - `timeToLive`: how long an entry stays readable after it was written. It is checked on every
 *   read against the time written in the entry, so lowering it takes effect at once.
 * - `sweepInterval`: how often expired entries and abandoned temporary files are removed in the
 *   background (default 1 hour; the first sweep runs at start-up). Reads never depend on it.
 * - `maxEntries`: the most entry files kept (default 10,000).
 * - `maxBytes`: the most bytes of entry files kept (default 256 MiB).
 * - `maxEntryBytes`: the largest entry file read or written (default 8 MiB). A larger file is
 *   never read into memory: it is a miss and is removed; a larger reply is not stored.
 *
 * When a write takes the store past `maxEntries` or `maxBytes` (counted from the last scan of
 * the directory plus this process's writes), the oldest entries (by modification time) are
 * removed in the background until the store is back under 90 % of both bounds.
 *
 * @since 0.1.0
 * @category Config
 */
export interface FileSystemOptions {
  readonly directory: string
  readonly timeToLive: Duration.DurationInput
  readonly sweepInterval?: Duration.DurationInput | undefined
  readonly maxEntries?: number | undefined
  readonly maxBytes?: number | undefined
  readonly maxEntryBytes?: number | undefined
}

/**
 * The defaults of `FileSystemOptions`' size bounds.
 *
 * @since 0.1.0
 * @category Config
 */
export const fileSystemDefaults = {
  maxEntries: 10_000,
  maxBytes: 256 * 1024 * 1024,
  maxEntryBytes: 8 * 1024 * 1024
} as const

/**
 * The file store's directory cannot be used: it cannot be created (a path under `/proc`, no
 * permission), an ancestor is not a directory, or creating it did not finish in time.
 *
 * @since 0.1.0
 * @category Errors
 */
export class CacheDirectoryError extends Schema.TaggedError<CacheDirectoryError>(
  "@llm-gateway/core/CacheDirectoryError"
)("CacheDirectoryError", { directory: Schema.String, reason: Schema.String }) {
  override get message(): string {
    return `The response cache directory ${this.directory} cannot be used (${this.reason}). ` +
      `Point the file cache at a writable directory on a regular file system, or use another store.`
  }
}

const entryFormat = "llm-gateway/response-cache/v1"

/** What one cache file holds: the reply, the key it answers and when it was written. */
const FileEntry = Schema.parseJson(Schema.Struct({
  format: Schema.Literal(entryFormat),
  key: Schema.String,
  writtenAt: Schema.Number,
  reply: CachedReply
}))

const decodeFileEntry = Schema.decodeEither(FileEntry)
const encodeFileEntry = Schema.encodeEither(FileEntry)

/** Keys that are safe file names are used as they are; any other key is hashed first. */
const fileNameOf = (key: string): string =>
  /^[A-Za-z0-9_-]{1,128}$/.test(key) ? `${key}.json` : `${sha256Hex(key)}.json`

/** Abandoned temporary files (a process died between write and rename) older than this go. */
const staleTemporaryMillis = 10 * 60 * 1000

/** Logs a storage fault at warning level and carries on; interruption is passed through. */
const logFault = (message: string) => (cause: Cause.Cause<unknown>): Effect.Effect<void> =>
  Cause.isInterruptedOnly(cause) ? Effect.failCause(cause as Cause.Cause<never>) : Effect.logWarning(message, cause)

type Loaded =
  | { readonly _tag: "Missing" }
  | { readonly _tag: "Unusable"; readonly why: string }
  | { readonly _tag: "Text"; readonly text: string }

/**
 * Reads an entry file without ever holding more than `maxEntryBytes + 1` bytes: checks its
 * type and size first (a FIFO would block `open`), then reads at most that much.
 */
const loadBounded = (fs: FileSystem.FileSystem, file: string, maxEntryBytes: number): Effect.Effect<Loaded, unknown> =>
  Effect.map(BoundedFile.readText(fs, file, maxEntryBytes), (read): Loaded => {
    switch (read._tag) {
      case "Missing":
      case "Text":
        return read
      case "NotAFile":
        return { _tag: "Unusable", why: "is not a regular file" }
      case "TooLarge":
        return { _tag: "Unusable", why: `is larger than maxEntryBytes (${maxEntryBytes})` }
    }
  })

/** Removes one directory entry if it is an abandoned temporary file or an expired, unusable or corrupt entry. */
const sweepOne = (
  fs: FileSystem.FileSystem,
  file: string,
  name: string,
  at: { readonly now: number; readonly timeToLive: number; readonly maxEntryBytes: number }
): Effect.Effect<void> =>
  Effect.gen(function*() {
    const remove = Effect.ignore(fs.remove(file))
    if (name.startsWith(".") && name.endsWith(".tmp")) {
      const modified = Option.flatMap(yield* Effect.option(fs.stat(file)), (_) => _.mtime)
      if (Option.isSome(modified) && at.now - modified.value.getTime() > staleTemporaryMillis) yield* remove
      return
    }
    if (!name.endsWith(".json")) return
    const loaded = yield* Effect.option(loadBounded(fs, file, at.maxEntryBytes))
    if (Option.isNone(loaded) || loaded.value._tag === "Missing") return
    if (loaded.value._tag === "Unusable") return yield* remove
    const decoded = decodeFileEntry(loaded.value.text)
    if (Either.isLeft(decoded) || at.now >= decoded.right.writtenAt + at.timeToLive) yield* remove
  })

/** The size bounds of a store: the options given, whole and non-negative, else the defaults. */
const boundsOf = (options: FileSystemOptions) => {
  const bound = (value: number | undefined, fallback: number) =>
    value === undefined || Number.isNaN(value) ? fallback : Math.max(0, Math.floor(value))
  return {
    maxEntries: bound(options.maxEntries, fileSystemDefaults.maxEntries),
    maxBytes: bound(options.maxBytes, fileSystemDefaults.maxBytes),
    maxEntryBytes: bound(options.maxEntryBytes, fileSystemDefaults.maxEntryBytes)
  }
}

/** The bytes of an entry file, or why it is not stored (the warning to log). */
const entryBytes = (
  key: string,
  reply: CachedReply,
  writtenAt: number,
  bounds: { readonly maxEntryBytes: number; readonly maxBytes: number }
): Either.Either<Uint8Array, string> => {
  const encoded = encodeFileEntry({ format: entryFormat, key, writtenAt, reply })
  if (Either.isLeft(encoded)) return Either.left("ResponseCache: the reply does not match the CachedReply schema; not stored")
  const bytes = new TextEncoder().encode(encoded.right)
  return bytes.length > bounds.maxEntryBytes || bytes.length > bounds.maxBytes
    ? Either.left(
      `ResponseCache: the entry (${bytes.length} bytes) is larger than maxEntryBytes (${bounds.maxEntryBytes}) or maxBytes; not stored`
    )
    : Either.right(bytes)
}

interface EntryFile {
  readonly file: string
  readonly size: number
  readonly mtime: number
}

/**
 * Which entries to remove (pure): the oldest first (by modification time, then name) until
 * both bounds hold, with 10 % to spare once a bound was passed; and what is left.
 */
const chooseEvictions = (
  files: ReadonlyArray<EntryFile>,
  maxEntries: number,
  maxBytes: number
): { readonly remove: ReadonlyArray<EntryFile>; readonly entries: number; readonly bytes: number } => {
  const sorted = [...files].sort((a, b) => a.mtime - b.mtime || (a.file < b.file ? -1 : 1))
  let entries = sorted.length
  let bytes = sorted.reduce((sum, f) => sum + f.size, 0)
  const over = entries > maxEntries || bytes > maxBytes
  const targetEntries = over ? Math.floor(maxEntries * 0.9) : maxEntries
  const targetBytes = over ? Math.floor(maxBytes * 0.9) : maxBytes
  const remove: Array<EntryFile> = []
  for (const f of sorted) {
    if (entries <= targetEntries && bytes <= targetBytes) break
    remove.push(f)
    entries--
    bytes -= f.size
  }
  return { remove, entries, bytes }
}

/**
 * A store of one JSON file per key under `options.directory`. Writes go to a temporary file in
 * the same directory and are renamed over the entry, so a reader sees the old entry or the new
 * one, never half of one. Every read is validated against the entry schema: a corrupt,
 * truncated, oversized or foreign file reads as a miss, is logged at warning level and
 * removed; no file is read past `maxEntryBytes`. Expiry is checked on read. The store is
 * bounded by `maxEntries` and `maxBytes` (oldest entries evicted first, see
 * `FileSystemOptions`). Entries are not fsynced (a lost entry is only a miss). File names are
 * the hex keys, which carry nothing of the request.
 *
 * The directory and its missing parents are created one level at a time at start-up; a
 * directory that cannot be created fails with `CacheDirectoryError` at once.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeFileSystem = (
  options: FileSystemOptions
): Effect.Effect<Service, CacheDirectoryError, FileSystem.FileSystem | Path.Path | Scope.Scope> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const directory = options.directory
    const timeToLive = Duration.toMillis(Duration.decode(options.timeToLive))
    const { maxBytes, maxEntries, maxEntryBytes } = boundsOf(options)

    const ensureDirectory = ensureDirectoryLevels(fs, path, directory)
    yield* ensureDirectory.pipe(Effect.mapError((reason) => new CacheDirectoryError({ directory, reason })))

    const removeQuietly = (file: string) => Effect.ignore(fs.remove(file))

    const load = (file: string) => loadBounded(fs, file, maxEntryBytes)

    const read = (key: string, file: string): Effect.Effect<Option.Option<CachedReply>, unknown> =>
      Effect.gen(function*() {
        const loaded = yield* load(file)
        if (loaded._tag === "Missing") return Option.none()
        if (loaded._tag === "Unusable") {
          yield* Effect.logWarning(`ResponseCache: an entry file ${loaded.why}; it is removed and read as a miss`)
          yield* removeQuietly(file)
          return Option.none()
        }
        const decoded = decodeFileEntry(loaded.text)
        if (Either.isLeft(decoded) || decoded.right.key !== key) {
          yield* Effect.logWarning(
            "ResponseCache: an entry file is corrupt or does not belong to its key; it is removed and read as a miss"
          )
          yield* removeQuietly(file)
          return Option.none()
        }
        const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
        if (now >= decoded.right.writtenAt + timeToLive) {
          yield* removeQuietly(file)
          return Option.none()
        }
        return Option.some(decoded.right.reply)
      })

    const get = (key: string): Effect.Effect<Option.Option<CachedReply>> => {
      const file = path.join(directory, fileNameOf(key))
      return read(key, file).pipe(
        Effect.catchAllCause((cause) =>
          Effect.as(logFault("ResponseCache: reading an entry failed; treated as a miss")(cause), Option.none())
        ),
        Effect.annotateLogs({ "responseCache.key": key, "responseCache.file": file })
      )
    }

    // What the directory holds, as of the last scan plus this process's writes since (writes
    // made while a scan runs are counted on top of it: at worst an early eviction).
    const usage = { entries: 0, bytes: 0 }
    const written = { entries: 0, bytes: 0 }
    let evicting = false

    /**
     * Scans the directory: removes entry files that are not regular or are oversized, then the
     * oldest entries (by modification time) until both bounds hold with 10 % to spare.
     */
    const evict = Effect.gen(function*() {
      const before = { ...written }
      const names = yield* fs.readDirectory(directory)
      const files: Array<EntryFile> = []
      for (const name of names) {
        if (!name.endsWith(".json") || name.startsWith(".")) continue
        const file = path.join(directory, name)
        const info = yield* Effect.option(fs.stat(file))
        if (Option.isNone(info)) continue
        const size = Number(info.value.size)
        if (info.value.type !== "File" || size > maxEntryBytes) {
          yield* removeQuietly(file)
          continue
        }
        files.push({ file, size, mtime: Option.match(info.value.mtime, { onNone: () => 0, onSome: (d) => d.getTime() }) })
      }
      const { bytes, entries, remove } = chooseEvictions(files, maxEntries, maxBytes)
      for (const f of remove) yield* removeQuietly(f.file)
      usage.entries = entries + written.entries - before.entries
      usage.bytes = bytes + written.bytes - before.bytes
      if (remove.length > 0) {
        yield* Effect.logDebug(`ResponseCache: evicted the ${remove.length} oldest entries to stay within the size bounds`)
      }
    })

    const scope = yield* Effect.scope
    const evictInBackground = Effect.suspend(() => {
      if (evicting) return Effect.void
      evicting = true
      return evict.pipe(
        Effect.catchAllCause(logFault("ResponseCache: evicting old entries failed")),
        Effect.ensuring(Effect.sync(() => {
          evicting = false
        })),
        Effect.forkIn(scope),
        Effect.asVoid
      )
    })

    const set = (key: string, reply: CachedReply): Effect.Effect<void> => {
      if (timeToLive <= 0 || maxEntries === 0 || maxBytes === 0) return Effect.void
      const name = fileNameOf(key)
      const file = path.join(directory, name)
      const write = Effect.gen(function*() {
        const writtenAt = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
        const encoded = entryBytes(key, reply, writtenAt, { maxEntryBytes, maxBytes })
        if (Either.isLeft(encoded)) return yield* Effect.logWarning(encoded.left)
        const bytes = encoded.right
        yield* ensureDirectory
        const temporary = path.join(directory, `.${name}.${randomUUID()}.tmp`)
        yield* fs.writeFile(temporary, bytes, { mode: 0o600 }).pipe(
          Effect.zipRight(fs.rename(temporary, file)),
          Effect.onError(() => removeQuietly(temporary))
        )
        usage.entries += 1
        usage.bytes += bytes.length
        written.entries += 1
        written.bytes += bytes.length
        if (usage.entries > maxEntries || usage.bytes > maxBytes) yield* evictInBackground
      })
      return write.pipe(
        Effect.uninterruptible,
        Effect.catchAllCause(logFault("ResponseCache: storing an entry failed; the reply was not cached")),
        Effect.annotateLogs({ "responseCache.key": key, "responseCache.file": file })
      )
    }

    const sweep = Effect.gen(function*() {
      const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      for (const name of yield* fs.readDirectory(directory)) {
        yield* sweepOne(fs, path.join(directory, name), name, { now, timeToLive, maxEntryBytes })
      }
      // Counts what is left and restores the bounds (another process may have written too).
      yield* evict
    })
    const sweepInterval = options.sweepInterval === undefined
      ? Duration.hours(1)
      : Duration.decode(options.sweepInterval)
    yield* sweep.pipe(
      Effect.catchAllCause(logFault("ResponseCache: sweeping expired entries failed")),
      Effect.repeat(Schedule.spaced(sweepInterval)),
      Effect.forkScoped
    )

    return { get, set }
  })

/**
 * The file-system store as a Layer (see `makeFileSystem`). Needs `FileSystem` and `Path`, for
 * example from `NodeContext.layer`.
 *
 * @example
 * import { NodeContext } from "@effect/platform-node"
 * import { ResponseCache } from "@llm-gateway/core"
 * import * as Layer from "effect/Layer"
 *
 * const CacheLive = ResponseCache.layerFileSystem({ directory: ".cache/llm", timeToLive: "1 day" }).pipe(
 *   Layer.provide(NodeContext.layer)
 * )
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerFileSystem = (
  options: FileSystemOptions
): Layer.Layer<ResponseCache, CacheDirectoryError, FileSystem.FileSystem | Path.Path> =>
  Layer.scoped(ResponseCache, makeFileSystem(options))

// ---------------------------------------------------------------------------------------------
// Persistence (Redis, LMDB, key-value stores)
// ---------------------------------------------------------------------------------------------

/**
 * Options of the persistence-backed store. `storeId` namespaces the keys in the backing store
 * (default `"llm-gateway/response-cache/v1"`); `timeToLive` is handed to the backing store.
 *
 * @since 0.1.0
 * @category Config
 */
export interface PersistenceOptions {
  readonly storeId?: string | undefined
  readonly timeToLive: Duration.DurationInput
}

const decodeStoredReply = Schema.decodeUnknownEither(CachedReply)
const encodeStoredReply = Schema.encodeEither(CachedReply)

/**
 * A store on an `@effect/experimental` `BackingPersistence`: `Persistence.layerMemory`, a
 * `KeyValueStore`, or `Persistence/Redis` for a cache shared by several hosts. Values are
 * validated with `CachedReply` on read (an invalid value is a logged miss and is removed);
 * backing-store errors are logged misses.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makePersistence = (
  options: PersistenceOptions
): Effect.Effect<Service, never, Persistence.BackingPersistence | Scope.Scope> =>
  Effect.gen(function*() {
    const backing = yield* Persistence.BackingPersistence
    const store = yield* backing.make(options.storeId ?? entryFormat)
    const timeToLive = Duration.decode(options.timeToLive)

    const get = (key: string): Effect.Effect<Option.Option<CachedReply>> =>
      store.get(key).pipe(
        Effect.flatMap(Option.match({
          onNone: () => Effect.succeedNone,
          onSome: (value) => {
            const decoded = decodeStoredReply(value)
            return Either.isRight(decoded)
              ? Effect.succeedSome(decoded.right)
              : Effect.logWarning("ResponseCache: a stored value is not a CachedReply; removed and read as a miss").pipe(
                Effect.zipRight(Effect.ignore(store.remove(key))),
                Effect.as(Option.none())
              )
          }
        })),
        Effect.catchAllCause((cause) =>
          Effect.as(logFault("ResponseCache: reading an entry failed; treated as a miss")(cause), Option.none())
        ),
        Effect.annotateLogs({ "responseCache.key": key })
      )

    const set = (key: string, reply: CachedReply): Effect.Effect<void> => {
      if (Duration.isZero(timeToLive)) return Effect.void
      const encoded = encodeStoredReply(reply)
      const write = Either.isLeft(encoded)
        ? Effect.logWarning("ResponseCache: the reply does not match the CachedReply schema; not stored")
        : store.set(key, encoded.right, Duration.isFinite(timeToLive) ? Option.some(timeToLive) : Option.none())
      return write.pipe(
        Effect.catchAllCause(logFault("ResponseCache: storing an entry failed; the reply was not cached")),
        Effect.annotateLogs({ "responseCache.key": key })
      )
    }

    return { get, set }
  })

/**
 * The persistence-backed store as a Layer (see `makePersistence`).
 *
 * @example
 * import * as Persistence from "@effect/experimental/Persistence"
 * import { ResponseCache } from "@llm-gateway/core"
 * import * as Layer from "effect/Layer"
 *
 * const CacheLive = ResponseCache.layerPersistence({ timeToLive: "1 hour" }).pipe(
 *   Layer.provide(Persistence.layerMemory)
 * )
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerPersistence = (
  options: PersistenceOptions
): Layer.Layer<ResponseCache, never, Persistence.BackingPersistence> =>
  Layer.scoped(ResponseCache, makePersistence(options))
