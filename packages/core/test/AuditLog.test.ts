import * as PlatformError from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import { NodeContext, NodeFileSystem, NodePath } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import { createHash } from "node:crypto"
import { tmpdir } from "node:os"
import * as AuditLog from "../src/AuditLog.js"

const entry = (n: number, overrides: Partial<AuditLog.AuditEntry> = {}): AuditLog.AuditEntry => ({
  requestId: `req-${n}`,
  timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(),
  requestHash: createHash("sha256").update(String(n)).digest("hex"),
  model: "gpt-4o-mini",
  outcome: "success",
  finishReason: "stop",
  cached: n % 2 === 0,
  usage: { promptTokens: 10 + n, completionTokens: 5, totalTokens: 15 + n },
  usageSource: "gateway",
  cost: { promptUsd: 0.0000015, completionUsd: 0.000003, totalUsd: 0.0000045 },
  inputRedactions: [{ kind: "email", count: 1 }],
  outputRedactions: [],
  droppedMessages: 0,
  durationMs: 120 + n,
  ...overrides
})

/** Sorted-key JSON written independently of the library, to pin the documented hash. */
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

const chainOf = (n: number) =>
  Effect.gen(function*() {
    const audit = yield* AuditLog.AuditLog
    for (let i = 0; i < n; i++) yield* audit.append(entry(i))
    return yield* (yield* AuditLog.MemoryAuditLog).lines
  }).pipe(Effect.provide(AuditLog.layerMemory))

const captureLogs = () => {
  const logs: Array<{ level: LogLevel.LogLevel; message: string; line: string | undefined }> = []
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    logs.push({
      level: logLevel,
      message: Array.isArray(message) ? String(message[0]) : String(message),
      line: Option.getOrUndefined(HashMap.get(annotations, "auditLog.line")) as string | undefined
    })
  })
  return { logs, layer: Logger.replace(Logger.defaultLogger, logger) }
}

describe("AuditLog chain", () => {
  it.effect("links every line to the one before with the documented hash", () =>
    Effect.gen(function*() {
      const lines = yield* chainOf(3)
      let prevHash = AuditLog.genesisHash
      lines.forEach((line, i) => {
        const { hash, prevHash: linked, ...body } = JSON.parse(line)
        expect(body.seq).toBe(i)
        expect(linked).toBe(prevHash)
        expect(hash).toBe(createHash("sha256").update(prevHash + sortedJson(body)).digest("hex"))
        expect(body).toEqual({ ...entry(i), seq: i })
        prevHash = hash
      })
      expect(AuditLog.verify(lines)).toEqual({
        _tag: "Valid",
        entries: 3,
        lastSeq: 2,
        lastHash: prevHash,
        head: { seq: 3, prevHash }
      })
      expect(AuditLog.verify([])).toMatchObject({ _tag: "Valid", entries: 0, lastSeq: undefined })
    }))

  it.effect("records only the fields the schema declares", () =>
    Effect.gen(function*() {
      const audit = yield* AuditLog.AuditLog
      const memory = yield* AuditLog.MemoryAuditLog
      const leaky = {
        ...entry(1),
        prompt: "my card is 4111 1111 1111 1111",
        authorization: "Bearer secret-token",
        usage: { promptTokens: 1, completionTokens: 2, totalTokens: 3, raw: "reply text" }
      }
      yield* audit.append(leaky)
      const [line] = yield* memory.lines
      expect(line).not.toContain("4111")
      expect(line).not.toContain("secret-token")
      expect(line).not.toContain("reply text")
      expect(Object.keys(JSON.parse(line!)).sort()).toEqual(
        [...Object.keys(entry(1)), "seq", "prevHash", "hash"].sort()
      )
      const [recorded] = yield* memory.entries
      expect(recorded!.usage).toEqual({ promptTokens: 1, completionTokens: 2, totalTokens: 3 })
    }).pipe(Effect.provide(AuditLog.layerMemory)))

  it.effect("still records an entry outside the schema, and reports it", () =>
    Effect.gen(function*() {
      const { layer, logs } = captureLogs()
      const lines = yield* Effect.gen(function*() {
        const audit = yield* AuditLog.AuditLog
        yield* audit.append(entry(0, { droppedMessages: 1.5 }))
        return yield* (yield* AuditLog.MemoryAuditLog).lines
      }).pipe(Effect.provide(Layer.merge(AuditLog.layerMemory, layer)))
      expect(lines).toHaveLength(1)
      expect(AuditLog.verify(lines)._tag).toBe("Valid")
      expect(logs.filter((_) => _.level === LogLevel.Error)).toHaveLength(1)
    }))

  it.effect("detects an edited field, a removed, inserted or moved line, and a cut-off line", () =>
    Effect.gen(function*() {
      const lines = yield* chainOf(5)
      const at = (report: AuditLog.VerifyReport) =>
        report._tag === "Invalid" ? [report.line, report.reason, report.validEntries] : report._tag

      const edited = [...lines]
      edited[2] = edited[2]!.replace("\"durationMs\":122", "\"durationMs\":1")
      expect(edited[2]).not.toBe(lines[2])
      expect(at(AuditLog.verify(edited))).toEqual([3, "hash-mismatch", 2])

      expect(at(AuditLog.verify([...lines.slice(0, 2), ...lines.slice(3)]))).toEqual([3, "broken-link", 2])
      expect(at(AuditLog.verify([lines[0]!, lines[2]!, lines[1]!, lines[3]!, lines[4]!]))).toEqual([2, "broken-link", 1])
      expect(at(AuditLog.verify([...lines.slice(0, 3), lines[2]!, ...lines.slice(3)]))).toEqual([4, "broken-link", 3])
      expect(at(AuditLog.verify([...lines.slice(0, 4), lines[4]!.slice(0, 40)]))).toEqual([5, "malformed", 4])
      expect(at(AuditLog.verify([...lines.slice(0, 2), "", ...lines.slice(2)]))).toEqual([3, "malformed", 2])
      expect(at(AuditLog.verify(lines.slice(1)))).toEqual([1, "broken-link", 0])

      // A line re-hashed after its seq was changed still breaks the sequence.
      const { hash: _, prevHash, ...body } = JSON.parse(lines[2]!)
      const reSeq = { ...body, seq: 7 }
      const forged = JSON.stringify({ ...reSeq, prevHash, hash: AuditLog.lineHash(prevHash, reSeq) })
      expect(at(AuditLog.verify([...lines.slice(0, 2), forged, ...lines.slice(3)]))).toEqual([3, "out-of-sequence", 2])
    }))

  it.effect("detects lines removed from the end, or a rewritten chain, against an anchor", () =>
    Effect.gen(function*() {
      const lines = yield* chainOf(5)
      const report = AuditLog.verify(lines)
      if (report._tag !== "Valid") return expect.fail("expected a valid chain")
      const anchor = { seq: report.lastSeq!, hash: report.lastHash }
      expect(AuditLog.verify(lines, { anchor })._tag).toBe("Valid")
      expect(AuditLog.verify(lines.slice(0, 3))._tag).toBe("Valid")
      expect(AuditLog.verify(lines.slice(0, 3), { anchor })).toMatchObject({
        _tag: "Invalid",
        line: 4,
        reason: "truncated"
      })

      // Someone with write access recomputes the whole chain with one value changed.
      let head: AuditLog.ChainHead = { seq: 0, prevHash: AuditLog.genesisHash }
      const rewritten = Array.from({ length: 5 }, (_, i) => {
        const linked = AuditLog.link(head, entry(i, i === 1 ? { cached: true } : {}))
        head = linked.head
        return linked.line
      })
      expect(AuditLog.verify(rewritten)._tag).toBe("Valid")
      expect(AuditLog.verify(rewritten, { anchor })).toMatchObject({ line: 5, reason: "anchor-mismatch" })
    }))

  it.effect.prop(
    "reports the first tampered line for any edit, removal or swap",
    [
      FastCheck.integer({ min: 2, max: 12 }),
      FastCheck.constantFrom("edit" as const, "remove" as const, "swap" as const),
      FastCheck.nat()
    ],
    ([n, tamper, seed]) =>
      Effect.gen(function*() {
        const lines = [...(yield* chainOf(n))]
        const i = seed % (tamper === "swap" ? n - 1 : n)
        let expected: number
        if (tamper === "edit") {
          lines[i] = lines[i]!.replace(`"requestId":"req-${i}"`, `"requestId":"req-x"`)
          expected = i + 1
        } else if (tamper === "remove") {
          lines.splice(i, 1)
          // Removing the last line leaves a shorter, valid chain (see the anchor test).
          expected = i === n - 1 ? 0 : i + 1
        } else {
          ;[lines[i], lines[i + 1]] = [lines[i + 1]!, lines[i]!]
          expected = i + 1
        }
        const report = AuditLog.verify(lines)
        if (expected === 0) expect(report).toMatchObject({ _tag: "Valid", entries: n - 1 })
        else expect(report).toMatchObject({ _tag: "Invalid", line: expected })
      }),
    { fastCheck: { numRuns: 50 } }
  )

  it.effect("writes one chained JSON line per entry to the Console", () =>
    Effect.gen(function*() {
      const printed: Array<string> = []
      const console = yield* Effect.console
      const capture: Console.Console = { ...console, log: (...args) => Effect.sync(() => printed.push(args.join(" "))) }
      yield* Effect.gen(function*() {
        const audit = yield* AuditLog.AuditLog
        yield* Effect.forEach([0, 1, 2, 3], (i) => audit.append(entry(i)), { concurrency: "unbounded" })
      }).pipe(Effect.provide(AuditLog.layerConsole), Effect.withConsole(capture))
      expect(printed).toHaveLength(4)
      expect(AuditLog.verify(printed)).toMatchObject({ _tag: "Valid", entries: 4 })
    }))
})

describe("AuditLog.layerFile", () => {
  const tempFile = Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const dir = yield* fs.makeTempDirectoryScoped({ prefix: "llm-gateway-audit-" })
    return `${dir}/logs/audit.jsonl`
  })

  const appendAll = (path: string, entries: ReadonlyArray<AuditLog.AuditEntry>, concurrency: number | "unbounded" = 1) =>
    Effect.gen(function*() {
      const audit = yield* AuditLog.AuditLog
      yield* Effect.forEach(entries, (e) => audit.append(e), { concurrency, discard: true })
    }).pipe(Effect.provide(AuditLog.layerFile(path)))

  it.scoped("continues one chain across layer instances, and verifyFile checks it", () =>
    Effect.gen(function*() {
      const path = yield* tempFile
      yield* appendAll(path, [entry(0), entry(1)])
      yield* appendAll(path, [entry(2), entry(3)])
      const report = yield* AuditLog.verifyFile(path)
      expect(report).toMatchObject({ _tag: "Valid", entries: 4, lastSeq: 3 })
      const fs = yield* FileSystem.FileSystem
      const lines = (yield* fs.readFileString(path)).split("\n")
      expect(lines).toHaveLength(5)
      expect(lines[4]).toBe("")
      expect(lines.slice(0, 4).map((l) => JSON.parse(l).requestId)).toEqual(["req-0", "req-1", "req-2", "req-3"])
      expect(((yield* fs.stat(path)).mode & 0o777).toString(8)).toBe("600")
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("never interleaves concurrent appends", () =>
    Effect.gen(function*() {
      const path = yield* tempFile
      yield* appendAll(path, Array.from({ length: 100 }, (_, i) => entry(i)), "unbounded")
      expect(yield* AuditLog.verifyFile(path)).toMatchObject({ _tag: "Valid", entries: 100 })
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("reports tampering in the file by line number", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* tempFile
      yield* appendAll(path, Array.from({ length: 5 }, (_, i) => entry(i)))
      const original = yield* fs.readFileString(path)
      const lines = original.split("\n").slice(0, -1)
      const check = (text: string) =>
        Effect.zipRight(fs.writeFileString(path, text), AuditLog.verifyFile(path)).pipe(
          Effect.map((r) => (r._tag === "Invalid" ? [r.line, r.reason] : r._tag))
        )
      expect(yield* check(original)).toBe("Valid")
      expect(yield* check(original.replace("\"req-3\"", "\"req-9\""))).toEqual([4, "hash-mismatch"])
      expect(yield* check([...lines.slice(0, 1), ...lines.slice(2)].join("\n") + "\n")).toEqual([2, "broken-link"])
      expect(yield* check([lines[0], lines[1], lines[3], lines[2], lines[4]].join("\n") + "\n")).toEqual([
        3,
        "broken-link"
      ])
      expect(yield* check(original.slice(0, original.length - 30))).toEqual([5, "malformed"])
      expect(yield* check(original.slice(0, original.length - 1))).toBe("Valid")
      expect(yield* check(original + "\n")).toEqual([6, "malformed"])
      expect(yield* check(original + "x".repeat(2 * 1024 * 1024) + "\n")).toEqual([6, "malformed"])
      expect(yield* check(original.replace("req-2", "r\u00e9q-2"))).toEqual([3, "hash-mismatch"])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("keeps a cut-off last line, ends it, and continues from the newest intact line", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* tempFile
      yield* appendAll(path, [entry(0), entry(1), entry(2)])
      const text = yield* fs.readFileString(path)
      yield* fs.writeFileString(path, text.slice(0, text.length - 25)) // a crash during the third write
      const { layer, logs } = captureLogs()
      yield* appendAll(path, [entry(3)]).pipe(Effect.provide(layer))
      expect(logs.filter((_) => _.level === LogLevel.Error).map((_) => _.message).join()).toContain("cut off")
      expect(yield* AuditLog.verifyFile(path)).toMatchObject({ _tag: "Invalid", line: 3, reason: "malformed" })
      const lines = (yield* fs.readFileString(path)).split("\n")
      expect(lines).toHaveLength(5)
      // The new line links to line 2, the newest intact one: without the cut-off line the chain holds.
      expect(AuditLog.verify([lines[0]!, lines[1]!, lines[3]!])).toMatchObject({ _tag: "Valid", entries: 3 })
      expect(JSON.parse(lines[3]!).requestId).toBe("req-3")
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("refuses a device or a directory at once instead of reading it forever", () =>
    Effect.gen(function*() {
      const device = yield* Effect.flip(AuditLog.verifyFile("/dev/zero"))
      expect(device).toBeInstanceOf(AuditLog.AuditFileError)
      expect(device.message).toContain("not a regular file")
      const directory = yield* Effect.flip(AuditLog.verifyFile(tmpdir()))
      expect(directory.message).toContain("not a regular file (directory)")
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("fails with AuditFileError when the file cannot be read", () =>
    Effect.gen(function*() {
      const path = yield* tempFile
      const error = yield* Effect.flip(AuditLog.verifyFile(path))
      expect(error).toBeInstanceOf(AuditLog.AuditFileError)
      expect(error.message).toContain(path)
    }).pipe(Effect.provide(NodeContext.layer)))

  describe("write failures", () => {
    /** A file system whose appends fail (after writing half the bytes) while `failures` > 0. */
    const flaky = () => {
      const control = { failures: 0 }
      const wrap = (file: FileSystem.File): FileSystem.File => ({
        [FileSystem.FileTypeId]: FileSystem.FileTypeId,
        fd: file.fd,
        get stat() {
          return file.stat
        },
        get sync() {
          return file.sync
        },
        seek: (offset, from) => file.seek(offset, from),
        read: (buffer) => file.read(buffer),
        readAlloc: (size) => file.readAlloc(size),
        truncate: (length) => file.truncate(length),
        write: (buffer) => file.write(buffer),
        writeAll: (buffer) =>
          control.failures > 0
            ? Effect.suspend(() => {
              control.failures--
              return file.writeAll(buffer.subarray(0, Math.floor(buffer.length / 2))).pipe(
                Effect.zipRight(
                  Effect.fail(
                    new PlatformError.SystemError({
                      reason: "Unknown",
                      module: "FileSystem",
                      method: "writeAll",
                      pathOrDescriptor: file.fd,
                      description: "simulated disk fault"
                    })
                  )
                )
              )
            })
            : file.writeAll(buffer)
      })
      const layer = Layer.effect(
        FileSystem.FileSystem,
        Effect.map(FileSystem.FileSystem, (fs) => ({
          ...fs,
          open: (path: string, options?: FileSystem.OpenFileOptions) => Effect.map(fs.open(path, options), wrap)
        }))
      ).pipe(Layer.provide(NodeFileSystem.layer), Layer.merge(NodePath.layer))
      return { control, layer }
    }

    it.scoped("logs, keeps the line, cuts partial bytes and writes it on the next append", () =>
      Effect.gen(function*() {
        const { control, layer } = flaky()
        const captured = captureLogs()
        const path = yield* tempFile.pipe(Effect.provide(NodeContext.layer))
        yield* Effect.gen(function*() {
          const audit = yield* AuditLog.AuditLog
          yield* audit.append(entry(0))
          control.failures = 2
          yield* audit.append(entry(1)) // fails, half a line is written
          yield* audit.append(entry(2)) // the retry of line 2 fails again, line 3 waits
          expect(control.failures).toBe(0)
          // The partial bytes of the failed writes were cut off again: the file holds line 1 only.
          expect(yield* AuditLog.verifyFile(path)).toMatchObject({ _tag: "Valid", entries: 1 })
          yield* audit.append(entry(3))
        }).pipe(Effect.provide(AuditLog.layerFile(path)), Effect.provide(Layer.merge(layer, captured.layer)))
        expect(yield* AuditLog.verifyFile(path).pipe(Effect.provide(NodeContext.layer))).toMatchObject({
          _tag: "Valid",
          entries: 4
        })
        const errors = captured.logs.filter((_) => _.level === LogLevel.Error)
        expect(errors).toHaveLength(1)
        expect(errors[0]!.message).toContain("kept in memory and retried")
        expect(captured.logs.some((_) => _.level === LogLevel.Info && _.message.includes("works again"))).toBe(true)
      }))

    it.scoped("retries kept lines in the background on the Clock", () =>
      Effect.gen(function*() {
        const { control, layer } = flaky()
        const path = yield* tempFile.pipe(Effect.provide(NodeContext.layer))
        const entries = Effect.map(AuditLog.verifyFile(path), (r) => (r._tag === "Valid" ? r.entries : -1))
        yield* Effect.gen(function*() {
          const audit = yield* AuditLog.AuditLog
          control.failures = 1
          yield* audit.append(entry(0))
          expect(yield* entries).toBe(0)
          yield* TestClock.adjust("5 seconds")
          // The retry runs on its own fiber; let its file operations complete.
          for (let i = 0; i < 100 && (yield* entries) === 0; i++) {
            yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
          }
          expect(yield* entries).toBe(1)
        }).pipe(Effect.provide(AuditLog.layerFile(path)), Effect.provide(layer))
      }))

    it.scoped("logs every line it could not write when the Layer closes", () =>
      Effect.gen(function*() {
        const { control, layer } = flaky()
        const captured = captureLogs()
        const path = yield* tempFile.pipe(Effect.provide(NodeContext.layer))
        yield* Effect.gen(function*() {
          const audit = yield* AuditLog.AuditLog
          yield* audit.append(entry(0))
          control.failures = Number.POSITIVE_INFINITY
          yield* audit.append(entry(1))
          yield* audit.append(entry(2))
        }).pipe(Effect.provide(AuditLog.layerFile(path)), Effect.provide(Layer.merge(layer, captured.layer)))
        const kept = captured.logs.filter((_) => _.line !== undefined).map((_) => JSON.parse(_.line!).requestId)
        expect(kept).toEqual(["req-1", "req-2"])
        expect(yield* AuditLog.verifyFile(path).pipe(Effect.provide(NodeContext.layer))).toMatchObject({
          _tag: "Valid",
          entries: 1
        })
      }))
  })
})
