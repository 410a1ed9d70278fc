/**
 * The audit file's single-writer lock (in one process and across processes, stale locks) and
 * keyed (HMAC-SHA-256) chains.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import { type ChildProcess, spawn } from "node:child_process"
import { createHash, createHmac } from "node:crypto"
import { fileURLToPath } from "node:url"
import * as AuditLog from "../src/AuditLog.js"

const entry = (n: number): AuditLog.AuditEntry => ({
  requestId: `req-${n}`,
  timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(),
  requestHash: createHash("sha256").update(String(n)).digest("hex"),
  model: "gpt-4o-mini",
  outcome: "success",
  cached: false,
  inputRedactions: [],
  outputRedactions: [],
  droppedMessages: 0,
  durationMs: n
})

const key = Redacted.make("audit-hmac-key-for-tests")

/** Sorted-key JSON written independently of the library, to pin the documented HMAC. */
const sortedJson = (value: unknown): string =>
  Array.isArray(value)
    ? `[${value.map(sortedJson).join(",")}]`
    : value !== null && typeof value === "object"
    ? `{${
      Object.keys(value).sort().filter((k) => (value as Record<string, unknown>)[k] !== undefined).map((k) =>
        `${JSON.stringify(k)}:${sortedJson((value as Record<string, unknown>)[k])}`
      ).join(",")
    }}`
    : JSON.stringify(value)

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex")

/** Links entries into lines, keyed when `k` is given. */
const chain = (n: number, k?: Redacted.Redacted<string>): Array<string> => {
  let head: AuditLog.ChainHead = { seq: 0, prevHash: AuditLog.genesisHash }
  const lines: Array<string> = []
  for (let i = 0; i < n; i++) {
    const linked = AuditLog.link(head, entry(i), k)
    lines.push(linked.line)
    head = linked.head
  }
  return lines
}

/** What a forger with write access but without the key does: edit, then recompute plain hashes. */
const forge = (lines: ReadonlyArray<string>, at: number, keepAlg: boolean): Array<string> => {
  const out: Array<string> = []
  let prevHash = AuditLog.genesisHash
  lines.forEach((line, i) => {
    const { hash: _hash, prevHash: _prev, ...body } = JSON.parse(line) as Record<string, unknown>
    if (i === at) body.model = "forged-model"
    if (i >= at && !keepAlg) delete body.alg
    const hash = i < at ? _hash as string : sha256(prevHash + sortedJson(body))
    out.push(JSON.stringify({ ...body, prevHash, hash }))
    prevHash = hash
  })
  return out
}

describe("AuditLog keyed chains (HMAC-SHA-256)", () => {
  it("hashes keyed lines with HMAC-SHA-256 over the documented material", () => {
    const [first] = chain(1, key)
    const { hash, prevHash, ...body } = JSON.parse(first!)
    expect(body.alg).toBe("hmac-sha256")
    expect(prevHash).toBe(AuditLog.genesisHash)
    expect(hash).toBe(createHmac("sha256", Redacted.value(key)).update(prevHash + sortedJson(body)).digest("hex"))
    expect(first).not.toContain(Redacted.value(key))
  })

  it("verifies a keyed chain only with its key", () => {
    const lines = chain(4, key)
    expect(AuditLog.verify(lines, { key })).toMatchObject({ _tag: "Valid", entries: 4 })
    const unkeyed = AuditLog.verify(lines)
    expect(unkeyed).toMatchObject({ _tag: "Invalid", line: 1, reason: "key-required", validEntries: 0 })
    expect(unkeyed._tag === "Invalid" && unkeyed.message).toContain("pass the audit key")
    expect(AuditLog.verify(lines, { key: Redacted.make("another-key") })).toMatchObject({
      _tag: "Invalid",
      line: 1,
      reason: "hash-mismatch"
    })
  })

  it("rejects a forged line whose plain hashes were recomputed, when a key is set", () => {
    const lines = chain(5, key)
    // Keeping `alg`: the recomputed plain SHA-256 is not the HMAC.
    expect(AuditLog.verify(forge(lines, 2, true), { key })).toMatchObject({ line: 3, reason: "hash-mismatch" })
    // Dropping `alg` from the forged line on: an unkeyed line in a keyed verification.
    const unkeyedForgery = forge(lines, 2, false)
    expect(AuditLog.verify(unkeyedForgery, { key })).toMatchObject({ line: 3, reason: "not-keyed", validEntries: 2 })
    // A whole chain rewritten unkeyed is refused from its first line.
    const rewritten = forge(lines, 0, false)
    expect(AuditLog.verify(rewritten)._tag).toBe("Valid")
    expect(AuditLog.verify(rewritten, { key })).toMatchObject({ line: 1, reason: "not-keyed" })
  })

  it("still verifies unkeyed chains without a key, and refuses them under one", () => {
    const lines = chain(3)
    expect(lines.every((l) => !("alg" in JSON.parse(l)))).toBe(true)
    expect(AuditLog.verify(lines)).toMatchObject({ _tag: "Valid", entries: 3 })
    expect(AuditLog.verify(lines, { key })).toMatchObject({ _tag: "Invalid", line: 1, reason: "not-keyed" })
  })
})

const tempFile = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const dir = yield* fs.makeTempDirectoryScoped({ prefix: "llm-gateway-audit-lock-" })
  return `${dir}/audit.jsonl`
})

const appendAll = (path: string, n: number, options: AuditLog.FileOptions = {}) =>
  Effect.gen(function*() {
    const audit = yield* AuditLog.AuditLog
    for (let i = 0; i < n; i++) yield* audit.append(entry(i))
  }).pipe(Effect.provide(AuditLog.layerFile(path, options)))

describe("AuditLog.layerFile with a key", () => {
  it.scoped("continues a keyed chain across instances; verifyFile needs the key", () =>
    Effect.gen(function*() {
      const path = yield* tempFile
      yield* appendAll(path, 2, { key })
      yield* appendAll(path, 2, { key })
      expect(yield* AuditLog.verifyFile(path, { key })).toMatchObject({ _tag: "Valid", entries: 4 })
      expect(yield* AuditLog.verifyFile(path)).toMatchObject({ _tag: "Invalid", line: 1, reason: "key-required" })
      const text = yield* (yield* FileSystem.FileSystem).readFileString(path)
      expect(text).not.toContain(Redacted.value(key))
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("refuses to continue a file written in the other mode or with another key", () =>
    Effect.gen(function*() {
      const keyed = yield* tempFile
      yield* appendAll(keyed, 1, { key })
      const noKey = yield* Effect.flip(appendAll(keyed, 1))
      expect(noKey._tag).toBe("AuditFileError")
      expect(noKey.message).toContain("written with an HMAC key")
      const wrongKey = yield* Effect.flip(appendAll(keyed, 1, { key: Redacted.make("wrong") }))
      expect(wrongKey.message).toContain("verifies with the given HMAC key")
      const plain = yield* tempFile
      yield* appendAll(plain, 1)
      const keyedOnPlain = yield* Effect.flip(appendAll(plain, 1, { key }))
      expect(keyedOnPlain.message).toContain("written without an HMAC key")
      // Nothing was appended by the refused writers.
      expect(yield* AuditLog.verifyFile(keyed, { key })).toMatchObject({ _tag: "Valid", entries: 1 })
      expect(yield* AuditLog.verifyFile(plain)).toMatchObject({ _tag: "Valid", entries: 1 })
      const empty = yield* Effect.flip(appendAll(yield* tempFile, 1, { key: Redacted.make("") }))
      expect(empty.message).toContain("audit key is empty")
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("layerFileConfig reads LLM_GATEWAY_AUDIT_KEY; an empty one is a ConfigError", () =>
    Effect.gen(function*() {
      const path = yield* tempFile
      const withEnv = (env: Record<string, string>) =>
        Effect.gen(function*() {
          yield* (yield* AuditLog.AuditLog).append(entry(0))
        }).pipe(
          Effect.provide(AuditLog.layerFileConfig(path)),
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
        )
      yield* withEnv({ LLM_GATEWAY_AUDIT_KEY: Redacted.value(key) })
      expect(yield* AuditLog.verifyFile(path, { key })).toMatchObject({ _tag: "Valid", entries: 1 })
      const error = yield* Effect.flip(withEnv({ LLM_GATEWAY_AUDIT_KEY: "" }))
      expect(error._tag).toBe("ConfigError")
      expect(String(error)).toContain("LLM_GATEWAY_AUDIT_KEY")
    }).pipe(Effect.provide(NodeContext.layer)))
})

// ---------------------------------------------------------------------------------------------
// The writer lock
// ---------------------------------------------------------------------------------------------

const writerScript = fileURLToPath(new URL("./support/auditWriter.ts", import.meta.url))
const coreDir = fileURLToPath(new URL("..", import.meta.url))

/** Starts a writer process on `path`; resolves with its first line of output. */
const startWriter = (path: string) =>
  Effect.acquireRelease(
    Effect.async<{ readonly child: ChildProcess; readonly said: string }, Error>((resume) => {
      const child = spawn(process.execPath, ["--import", "tsx", writerScript, path], {
        cwd: coreDir,
        stdio: ["pipe", "pipe", "inherit"]
      })
      let out = ""
      child.stdout!.on("data", (data: Buffer) => {
        out += data.toString("utf8")
        const newline = out.indexOf("\n")
        if (newline !== -1) resume(Effect.succeed({ child, said: out.slice(0, newline) }))
      })
      child.on("exit", (code) => resume(Effect.fail(new Error(`writer exited (${code}) after: ${out}`))))
    }),
    ({ child }) => Effect.sync(() => child.kill("SIGKILL"))
  )

/** Waits for a child process to end. */
const exited = (child: ChildProcess) =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
  })

describe("AuditLog.layerFile writer lock", () => {
  it.scoped("a second writer in the same process fails at start; the lock goes with the first", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* tempFile
      yield* Effect.gen(function*() {
        yield* (yield* AuditLog.AuditLog).append(entry(0))
        const second = yield* Effect.flip(appendAll(path, 1))
        expect(second._tag).toBe("AuditLogLocked")
        expect(second).toMatchObject({ path, lockFile: `${path}.lock`, pid: process.pid })
        expect(second.message).toContain(`${path}.lock`)
        expect(second.message).toContain("already being written")
        expect(yield* fs.exists(`${path}.lock`)).toBe(true)
        yield* (yield* AuditLog.AuditLog).append(entry(1))
      }).pipe(Effect.provide(AuditLog.layerFile(path)))
      expect(yield* fs.exists(`${path}.lock`)).toBe(false)
      // No duplicate sequence numbers: one chain of two lines.
      expect(yield* AuditLog.verifyFile(path)).toMatchObject({ _tag: "Valid", entries: 2 })
      yield* appendAll(path, 1)
      expect(yield* AuditLog.verifyFile(path)).toMatchObject({ _tag: "Valid", entries: 3 })
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("a writer in another process holds the file; its lock is taken over once it is gone", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* tempFile
      const { child, said } = yield* startWriter(path)
      expect(said).toBe("ready")
      const locked = yield* Effect.flip(appendAll(path, 1))
      expect(locked).toMatchObject({ _tag: "AuditLogLocked", pid: child.pid })

      // And the other way round: this process writes, the other process is refused.
      child.kill("SIGKILL") // dies without its finalizer: the lock stays, stale
      yield* exited(child)
      expect(yield* fs.exists(`${path}.lock`)).toBe(true)
      const logs: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        if (logLevel === LogLevel.Warning) logs.push(String(Array.isArray(message) ? message[0] : message))
      })
      yield* Effect.gen(function*() {
        yield* (yield* AuditLog.AuditLog).append(entry(1))
        const other = yield* startWriter(path)
        expect(other.said).toMatch(/^AuditLogLocked: .*already being written by process \d+/)
        expect(other.said).toContain(String(process.pid))
      }).pipe(
        Effect.provide(AuditLog.layerFile(path)),
        Effect.provide(Logger.replace(Logger.defaultLogger, logger))
      )
      expect(logs.some((l) => l.includes("taking over the stale lock") && l.includes(String(child.pid)))).toBe(true)
      expect(yield* AuditLog.verifyFile(path)).toMatchObject({ _tag: "Valid", entries: 2 })
      expect(yield* fs.exists(`${path}.lock`)).toBe(false)
    }).pipe(Effect.provide(NodeContext.layer)), 60_000)

  it.scoped("a lock file being written (no pid yet) is respected; an old unreadable one is stale", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* tempFile
      yield* fs.writeFileString(`${path}.lock`, "")
      expect(yield* Effect.flip(appendAll(path, 1))).toMatchObject({ _tag: "AuditLogLocked" })
      const old = new Date(Date.now() - 60_000)
      yield* fs.utimes(`${path}.lock`, old, old)
      yield* appendAll(path, 1)
      expect(yield* AuditLog.verifyFile(path)).toMatchObject({ _tag: "Valid", entries: 1 })
    }).pipe(Effect.provide(NodeContext.layer)))
})
