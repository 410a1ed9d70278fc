import { NodeContext } from "@effect/platform-node"
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as AuditLog from "../src/AuditLog.js"
import * as ContextWindow from "../src/ContextWindow.js"
import type * as Conversation from "../src/Conversation.js"
import * as ConversationStore from "../src/ConversationStore.js"
import * as CostMeter from "../src/CostMeter.js"
import * as Gateway from "../src/Gateway.js"
import * as ResponseCache from "../src/ResponseCache.js"
import * as SafetyFilter from "../src/SafetyFilter.js"
import { GatewayTransport } from "../src/Transport.js"

const made: Array<string> = []
const tempDir = () => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "conversation-store-"))
  made.push(dir)
  return dir
}
afterAll(() => {
  for (const dir of made) Fs.rmSync(dir, { recursive: true, force: true })
})

const sample = (id: string, turns = 1): Conversation.ConversationData => ({
  id,
  model: "gpt-4o-mini",
  system: "Be brief.",
  messages: Array.from({ length: turns }, (_, i) => [
    { role: "user" as const, content: `question ${i}` },
    { role: "assistant" as const, content: `answer ${i}` }
  ]).flat()
})

const fileStore = (path: string, maxBytes?: number) =>
  Effect.provide(ConversationStore.makeFile({ path, maxBytes }), NodeContext.layer)

describe("ConversationStore", () => {
  it.effect("memory: save, load, list, delete; a saved conversation is a copy", () =>
    Effect.gen(function*() {
      const store = yield* ConversationStore.makeMemory
      const data = sample("a")
      yield* store.save(data)
      ;(data.messages as Array<Conversation.ConversationData["messages"][number]>).push({ role: "user", content: "later" })
      expect(Option.getOrThrow(yield* store.load("a")).messages).toHaveLength(2)
      yield* store.save(sample("b"))
      expect(yield* store.list).toEqual(["a", "b"])
      yield* store.delete("a")
      expect(yield* store.load("a")).toEqual(Option.none())
      expect(yield* store.list).toEqual(["b"])
    }))

  it.effect("file: round trip of several conversations, version 1, mode 0600, delete", () =>
    Effect.gen(function*() {
      const path = Path.join(tempDir(), "nested", "conversations.json")
      const store = yield* fileStore(path)
      expect(yield* store.load("a")).toEqual(Option.none())
      expect(yield* store.list).toEqual([])
      yield* store.save(sample("a"))
      yield* store.save(sample("b", 2))
      yield* store.save(sample("a", 3))
      expect(yield* store.list).toEqual(["a", "b"])
      expect(Option.getOrThrow(yield* store.load("a"))).toEqual(sample("a", 3))
      const json = JSON.parse(Fs.readFileSync(path, "utf8"))
      expect(json.version).toBe(1)
      expect(Fs.statSync(path).mode & 0o777).toBe(0o600)
      // A second store on the same file sees the same conversations.
      const again = yield* fileStore(path)
      expect(Option.getOrThrow(yield* again.load("b"))).toEqual(sample("b", 2))
      yield* store.delete("a")
      yield* store.delete("nobody")
      expect(yield* again.list).toEqual(["b"])
    }))

  it.effect("file: concurrent saves of one store all land (each read-modify-write in turn)", () =>
    Effect.gen(function*() {
      const path = Path.join(tempDir(), "c.json")
      const store = yield* fileStore(path)
      const ids = Array.from({ length: 20 }, (_, i) => `c${i}`)
      yield* Effect.forEach(ids, (id) => store.save(sample(id)), { concurrency: "unbounded", discard: true })
      expect([...(yield* store.list)].sort()).toEqual([...ids].sort())
    }))

  it.effect("file: a save replaces the file by rename (a new inode), leaving no temporary file", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const path = Path.join(dir, "c.json")
      const store = yield* fileStore(path)
      yield* store.save(sample("a"))
      const before = Fs.statSync(path).ino
      // A reader holding the old file keeps reading the old contents.
      const held = Fs.openSync(path, "r")
      yield* store.save(sample("a", 4))
      expect(Fs.statSync(path).ino).not.toBe(before)
      const old = JSON.parse(Fs.readFileSync(held, "utf8"))
      Fs.closeSync(held)
      expect(old.conversations[0].messages).toHaveLength(2)
      expect(Fs.readdirSync(dir)).toEqual(["c.json"])
    }))

  it.effect("file: a corrupt file is a typed error naming it, and is never overwritten", () =>
    Effect.gen(function*() {
      const path = Path.join(tempDir(), "c.json")
      Fs.writeFileSync(path, "{\"version\": 1, \"conversations\": [")
      const store = yield* fileStore(path)
      const error = yield* Effect.flip(store.load("a"))
      expect(error._tag).toBe("ConversationStoreError")
      expect(error.reason).toBe("corrupt")
      expect(error.store).toBe(path)
      expect(error.message).toContain(path)
      const saving = yield* Effect.flip(store.save(sample("a")))
      expect(saving.reason).toBe("corrupt")
      expect(Fs.readFileSync(path, "utf8")).toBe("{\"version\": 1, \"conversations\": [")
    }))

  it.effect("file: invalid fields are named by path, never by value", () =>
    Effect.gen(function*() {
      const path = Path.join(tempDir(), "c.json")
      const secret = "secret value 4111 1111 1111 1111"
      Fs.writeFileSync(path, JSON.stringify({
        version: 1,
        conversations: [{ id: "a", model: "gpt-4o-mini", messages: [{ role: "wizard", content: secret }] }]
      }))
      const error = yield* Effect.flip((yield* fileStore(path)).list)
      expect(error.reason).toBe("corrupt")
      expect(error.detail).toContain("conversations.0.messages.0")
      expect(error.message).not.toContain("secret")
      expect(error.message).not.toContain("wizard")
    }))

  it.effect("file: another format version is a typed version error", () =>
    Effect.gen(function*() {
      const path = Path.join(tempDir(), "c.json")
      Fs.writeFileSync(path, JSON.stringify({ version: 2, conversations: [], extra: true }))
      const error = yield* Effect.flip((yield* fileStore(path)).load("a"))
      expect(error.reason).toBe("version")
      expect(error.message).toContain("version is 2")
      expect(error.message).toContain(path)
      Fs.writeFileSync(path, JSON.stringify({ conversations: [] }))
      expect((yield* Effect.flip((yield* fileStore(path)).load("a"))).reason).toBe("corrupt")
    }))

  it.effect("file: bounded in size both ways; a directory or an unwritable place is a typed error", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const path = Path.join(dir, "c.json")
      const store = yield* fileStore(path, 400)
      yield* store.save(sample("a"))
      const content = Fs.readFileSync(path, "utf8")
      const tooBig = yield* Effect.flip(store.save(sample("a", 20)))
      expect(tooBig.reason).toBe("tooLarge")
      expect(Fs.readFileSync(path, "utf8")).toBe(content)
      Fs.writeFileSync(path, JSON.stringify({ version: 1, conversations: [sample("x", 30)] }))
      expect((yield* Effect.flip(store.load("x"))).reason).toBe("tooLarge")
      Fs.mkdirSync(Path.join(dir, "d.json"))
      expect((yield* Effect.flip((yield* fileStore(Path.join(dir, "d.json"))).list)).reason).toBe("corrupt")
      Fs.writeFileSync(Path.join(dir, "plain"), "")
      const unwritable = yield* Effect.flip((yield* fileStore(Path.join(dir, "plain", "c.json"))).save(sample("a")))
      expect(unwritable.reason).toBe("io")
    }))

  it.effect("open continues a stored conversation or starts one; save stores its turns", () => {
    const transport = Layer.succeed(GatewayTransport, {
      stream: () =>
        Stream.fromIterable([
          { choices: [{ index: 0, delta: { content: "noted" } }] },
          { choices: [{ index: 0, delta: {}, finish_reason: "stop" }] }
        ])
    })
    const layer = Layer.mergeAll(
      Gateway.layer().pipe(
        Layer.provideMerge(Layer.mergeAll(SafetyFilter.layerDefault, ContextWindow.layer(), AuditLog.layerMemory)),
        Layer.provide(Layer.mergeAll(ResponseCache.layerMemory({ capacity: 10, timeToLive: "1 hour" }), CostMeter.layerMemory({}))),
        Layer.provide(transport)
      ),
      ConversationStore.layerFile({ path: Path.join(tempDir(), "c.json") }).pipe(Layer.provide(NodeContext.layer))
    )
    return Effect.gen(function*() {
      const first = yield* ConversationStore.open({ id: "support-42", model: "gpt-4o-mini", system: "Be brief." })
      expect(yield* first.messages).toEqual([])
      yield* first.send("Remember 7").pipe(Stream.runDrain)
      yield* ConversationStore.save(first)
      const second = yield* ConversationStore.open({ id: "support-42", model: "ignored-when-stored" })
      expect(second.model).toBe("gpt-4o-mini")
      expect(second.system).toBe("Be brief.")
      expect(yield* second.messages).toEqual([
        { role: "user", content: "Remember 7" },
        { role: "assistant", content: "noted" }
      ])
    }).pipe(Effect.provide(layer))
  })
})
