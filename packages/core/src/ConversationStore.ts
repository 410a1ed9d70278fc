/**
 * ConversationStore: where conversations are kept between runs, as a service with Layers:
 * `layerMemory` (this process only) and `layerFile` (one JSON file holding any number of
 * conversations, replaced atomically on every save). The interface is four operations on
 * `Conversation.ConversationData`, so a store on another medium (Redis, a database) is one more
 * Layer.
 *
 * @example
 * import { ConversationStore } from "@llm-gateway/core"
 * import * as Effect from "effect/Effect"
 * import * as Stream from "effect/Stream"
 *
 * // Continues the conversation "support-42" (created when absent) and saves the new turn.
 * export const reply = (question: string) =>
 *   Effect.gen(function*() {
 *     const conversation = yield* ConversationStore.open({ id: "support-42", model: "gpt-4o-mini" })
 *     yield* conversation.send(question).pipe(Stream.runDrain)
 *     yield* ConversationStore.save(conversation)
 *   })
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { randomUUID } from "node:crypto"
import type * as ContextWindow from "./ContextWindow.js"
import * as Conversation from "./Conversation.js"
import type * as Gateway from "./Gateway.js"
import type { InvalidRequest } from "./GatewayError.js"
import * as BoundedFile from "./internal/boundedFile.js"
import { ensureDirectory } from "./internal/directory.js"
import { formatPath } from "./internal/issues.js"

/**
 * Why a store could not be used:
 *
 * - `corrupt`: the file is not JSON, or not a conversation file (`detail` names the fields, never
 *   their values), or not a regular file.
 * - `version`: the file was written by another version of the format.
 * - `tooLarge`: the file, or what a save would write, exceeds the store's `maxBytes`.
 * - `io`: reading, writing or renaming failed (for a shared store: it did not answer).
 * - `conflict`: a shared store holds a history that is not the one this save continues
 *   (another process rewrote it); nothing was written.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const StoreFailure = Schema.Literal("corrupt", "version", "tooLarge", "io", "conflict")

/**
 * Why a store could not be used (see the `StoreFailure` Schema).
 *
 * @since 0.1.0
 * @category Models
 */
export type StoreFailure = typeof StoreFailure.Type

/**
 * A conversation store could not be used. `store` names it (the file's path, or `memory`);
 * `reason` says what kind of failure it was and `detail` what exactly, never a message's text.
 * Nothing was changed: a failed save leaves the file as it was.
 *
 * @since 0.1.0
 * @category Errors
 */
export class ConversationStoreError extends Schema.TaggedError<ConversationStoreError>(
  "@llm-gateway/core/ConversationStoreError"
)("ConversationStoreError", {
  store: Schema.String,
  reason: StoreFailure,
  detail: Schema.String
}) {
  override get message(): string {
    const fix = this.reason === "corrupt"
      ? "Restore the file from a backup or move it away to start afresh."
      : this.reason === "version"
      ? "Open it with the version of the library that wrote it, or move it away to start afresh."
      : this.reason === "tooLarge"
      ? "Start a new conversation, or raise maxBytes."
      : this.reason === "conflict"
      ? "Load the conversation again and repeat the turn."
      : this.store.startsWith("redis:")
      ? "Check that Redis is up and reachable (LLM_GATEWAY_REDIS_URL)."
      : "Check that the path is writable and on a regular file system."
    return `The conversation store ${this.store} cannot be used: ${this.detail}. ${fix}`
  }
}

/**
 * A store of conversations by id. `save` replaces a conversation of the same id; `delete` of an
 * unknown id does nothing.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Service {
  readonly load: (id: string) => Effect.Effect<Option.Option<Conversation.ConversationData>, ConversationStoreError>
  readonly save: (conversation: Conversation.ConversationData) => Effect.Effect<void, ConversationStoreError>
  readonly delete: (id: string) => Effect.Effect<void, ConversationStoreError>
  /** The ids of the stored conversations. */
  readonly list: Effect.Effect<ReadonlyArray<string>, ConversationStoreError>
}

/**
 * The ConversationStore service.
 *
 * @since 0.1.0
 * @category Services
 */
export class ConversationStore extends Context.Tag("@llm-gateway/core/ConversationStore")<
  ConversationStore,
  Service
>() {}

/**
 * A store in this process's memory: conversations are copied in and out, so a saved one does not
 * change when the conversation goes on.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeMemory: Effect.Effect<Service> = Effect.sync(() => {
  const entries = new Map<string, Conversation.ConversationData>()
  const copy = (data: Conversation.ConversationData): Conversation.ConversationData => ({
    ...data,
    messages: data.messages.slice()
  })
  return ConversationStore.of({
    load: (id) => Effect.sync(() => Option.map(Option.fromNullable(entries.get(id)), copy)),
    save: (data) => Effect.sync(() => void entries.set(data.id, copy(data))),
    delete: (id) => Effect.sync(() => void entries.delete(id)),
    list: Effect.sync(() => [...entries.keys()])
  })
})

/**
 * The in-memory store as a Layer.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerMemory: Layer.Layer<ConversationStore> = Layer.effect(ConversationStore, makeMemory)

/**
 * The version of the file format `layerFile` writes and reads.
 *
 * @since 0.1.0
 * @category Config
 */
export const fileVersion = 1

/**
 * What a conversation file holds: `{ "version": 1, "conversations": [...] }`.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ConversationFile = Schema.Struct({
  version: Schema.Literal(fileVersion),
  conversations: Schema.Array(Conversation.ConversationData)
})

/**
 * The decoded contents of a conversation file.
 *
 * @since 0.1.0
 * @category Models
 */
export type ConversationFile = typeof ConversationFile.Type

/**
 * Options of `layerFile`: `path` of the JSON file (created on the first save, with its missing
 * directories) and `maxBytes`, the largest file read or written (default `defaultMaxBytes`).
 *
 * @since 0.1.0
 * @category Config
 */
export interface FileOptions {
  readonly path: string
  readonly maxBytes?: number | undefined
}

/**
 * The default bound of a conversation file: 64 MiB.
 *
 * @since 0.1.0
 * @category Config
 */
export const defaultMaxBytes = 64 * 1024 * 1024

const decodeFile = Schema.decodeUnknownEither(ConversationFile)

/**
 * Interprets a conversation file's text (pure): its conversations, or why it cannot be used.
 * The version is checked before the contents, so a newer file is reported as such rather than
 * as corrupt.
 *
 * @since 0.1.0
 * @category Utils
 */
export const parseFile = (
  text: string
): { readonly _tag: "Ok"; readonly file: ConversationFile } | {
  readonly _tag: "Unusable"
  readonly reason: "corrupt" | "version"
  readonly detail: string
} => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return { _tag: "Unusable", reason: "corrupt", detail: "it is not JSON" }
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return { _tag: "Unusable", reason: "corrupt", detail: "it is not a conversation file (not a JSON object)" }
  }
  const version = (json as { readonly version?: unknown }).version
  if (version === undefined) {
    return { _tag: "Unusable", reason: "corrupt", detail: "it is not a conversation file (no version field)" }
  }
  if (version !== fileVersion) {
    const found = typeof version === "number" ? String(version) : "not a number"
    return {
      _tag: "Unusable",
      reason: "version",
      detail: `its format version is ${found}; this library reads version ${fileVersion}`
    }
  }
  const decoded = decodeFile(json)
  if (decoded._tag === "Left") {
    const issues = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)
    const paths = [...new Set(issues.map((issue) => formatPath(issue.path, "(root)")))]
    const shown = paths.slice(0, 5).join(", ") + (paths.length > 5 ? ` and ${paths.length - 5} more` : "")
    return { _tag: "Unusable", reason: "corrupt", detail: `invalid fields: ${shown}` }
  }
  const seen = new Set<string>()
  for (const [i, c] of decoded.right.conversations.entries()) {
    if (seen.has(c.id)) return { _tag: "Unusable", reason: "corrupt", detail: `conversations.${i}.id repeats an earlier id` }
    seen.add(c.id)
  }
  return { _tag: "Ok", file: decoded.right }
}

const describe = (error: unknown): string =>
  typeof error === "object" && error !== null && "message" in error ? String(error.message) : String(error)

/**
 * A store in one JSON file (see `ConversationFile`). Every save reads the file, replaces the
 * conversation and writes the whole file to a temporary file beside it (mode 0600), flushed to
 * disk, then renamed over it: a reader, or a crash, sees the old file or the new one, never
 * half of one. Saves within the process are serialised; two processes saving the same file at
 * once keep the last save (use one file per process, or another store). A file that is not
 * JSON, not a conversation file or of another version is a `ConversationStoreError` naming it;
 * it is never overwritten.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeFile = (
  options: FileOptions
): Effect.Effect<Service, never, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const file = path.resolve(options.path)
    const maxBytes = options.maxBytes ?? defaultMaxBytes
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
      return yield* Effect.dieMessage("ConversationStore.layerFile: maxBytes must be a positive integer")
    }
    const fail = (reason: StoreFailure, detail: string) => new ConversationStoreError({ store: file, reason, detail })
    const lock = yield* Effect.makeSemaphore(1)

    const read: Effect.Effect<ReadonlyArray<Conversation.ConversationData>, ConversationStoreError> = Effect.gen(
      function*() {
        const found = yield* BoundedFile.readText(fs, file, maxBytes).pipe(
          Effect.mapError((error) => fail("io", `reading failed (${describe(error)})`))
        )
        switch (found._tag) {
          case "Missing":
            return []
          case "NotAFile":
            return yield* fail("corrupt", "it is not a regular file")
          case "TooLarge":
            return yield* fail("tooLarge", `it is larger than ${maxBytes} bytes (maxBytes)`)
          case "Text": {
            const parsed = parseFile(found.text)
            if (parsed._tag === "Unusable") return yield* fail(parsed.reason, parsed.detail)
            return parsed.file.conversations
          }
        }
      }
    )

    const write = (conversations: ReadonlyArray<Conversation.ConversationData>) =>
      Effect.gen(function*() {
        const body: ConversationFile = { version: fileVersion, conversations }
        const bytes = new TextEncoder().encode(JSON.stringify(body) + "\n")
        if (bytes.length > maxBytes) {
          return yield* fail("tooLarge", `the save would write ${bytes.length} bytes, more than ${maxBytes} (maxBytes)`)
        }
        yield* ensureDirectory(fs, path, path.dirname(file)).pipe(Effect.mapError((why) => fail("io", why)))
        const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${randomUUID()}.tmp`)
        const replace = Effect.scoped(Effect.gen(function*() {
          const handle = yield* fs.open(temporary, { flag: "wx", mode: 0o600 })
          yield* handle.writeAll(bytes)
          yield* handle.sync
        })).pipe(Effect.zipRight(fs.rename(temporary, file)))
        yield* replace.pipe(
          Effect.onError(() => Effect.ignore(fs.remove(temporary))),
          Effect.mapError((error) => fail("io", `writing failed (${describe(error)})`))
        )
      })

    const change = (
      f: (conversations: ReadonlyArray<Conversation.ConversationData>) => ReadonlyArray<Conversation.ConversationData> | undefined
    ) =>
      lock.withPermits(1)(Effect.gen(function*() {
        const next = f(yield* read)
        if (next !== undefined) yield* write(next)
      }))

    return ConversationStore.of({
      load: (id) => Effect.map(read, (all) => Option.fromNullable(all.find((c) => c.id === id))),
      save: (data) =>
        change((all) => {
          const at = all.findIndex((c) => c.id === data.id)
          return at < 0 ? [...all, data] : all.map((c, i) => (i === at ? data : c))
        }),
      delete: (id) => change((all) => (all.some((c) => c.id === id) ? all.filter((c) => c.id !== id) : undefined)),
      list: Effect.map(read, (all) => all.map((c) => c.id))
    })
  })

/**
 * The file store as a Layer (see `makeFile`). Needs `FileSystem` and `Path`, e.g. from
 * `@effect/platform-node`'s `NodeContext.layer`.
 *
 * @example
 * import { ConversationStore } from "@llm-gateway/core"
 * import * as NodeContext from "@effect/platform-node/NodeContext"
 * import * as Layer from "effect/Layer"
 *
 * export const StoreLive = ConversationStore.layerFile({ path: "conversations.json" }).pipe(
 *   Layer.provide(NodeContext.layer)
 * )
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerFile = (
  options: FileOptions
): Layer.Layer<ConversationStore, never, FileSystem.FileSystem | Path.Path> =>
  Layer.effect(ConversationStore, makeFile(options))

/**
 * The conversation `options.id` from the store in the context, or a new one made from `options`
 * when the store has none. A stored conversation keeps its own model and system instruction
 * (give another model per send with `SendOptions.model`).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const open = (
  options: Conversation.Options & { readonly id: string }
): Effect.Effect<
  Conversation.Conversation,
  ConversationStoreError | InvalidRequest,
  ConversationStore | Gateway.Gateway | ContextWindow.ContextWindow
> =>
  Effect.flatMap(ConversationStore, (store) =>
    Effect.flatMap(store.load(options.id), (found) =>
      Option.match(found, {
        onNone: () => Conversation.make(options),
        onSome: Conversation.fromData
      })))

/**
 * Saves a conversation (its data as it is now) to the store in the context.
 *
 * @since 0.1.0
 * @category Accessors
 */
export const save = (
  conversation: Conversation.Conversation
): Effect.Effect<void, ConversationStoreError, ConversationStore> =>
  Effect.flatMap(ConversationStore, (store) => Effect.flatMap(conversation.data, store.save))
