import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { describe, expect, it } from "@effect/vitest"
import { AuditLog } from "@llm-gateway/core"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseAnchor } from "../src/AuditCommand.js"
import { describe as describeReport, type FileReport, verifyFiles } from "../src/internal/audit.js"

const entry = (i: number): AuditLog.AuditEntry => ({
  requestId: `req-${i}`,
  timestamp: `2026-11-0${1 + (i % 3)}T10:00:00.000Z`,
  requestHash: "a".repeat(64),
  model: "gpt-4o-mini",
  outcome: "success",
  cached: false,
  usage: { promptTokens: 10 + i, completionTokens: 5, totalTokens: 15 + i },
  usageSource: "gateway",
  cost: { promptUsd: 0.000001, completionUsd: 0.000002, totalUsd: 0.000003 },
  inputRedactions: [],
  outputRedactions: [],
  droppedMessages: 0,
  durationMs: 12
})

/** The lines of a real chain of `count` entries, as `AuditLog.layerFile` writes them. */
const chain = (count: number, key?: Redacted.Redacted<string>): Array<string> => {
  let head: AuditLog.ChainHead = { seq: 0, prevHash: AuditLog.genesisHash }
  const lines: Array<string> = []
  for (let i = 0; i < count; i++) {
    const linked = AuditLog.link(head, entry(i), key)
    lines.push(linked.line)
    head = linked.head
  }
  return lines
}

const dir = mkdtempSync(join(tmpdir(), "llm-gateway-audit-verify-"))
let n = 0
const write = (text: string): string => {
  const file = join(dir, `log-${n++}.jsonl`)
  writeFileSync(file, text)
  return file
}
const asFile = (lines: ReadonlyArray<string>) => write(lines.map((l) => `${l}\n`).join(""))

const verifyOne = (file: string, key?: Redacted.Redacted<string>) =>
  verifyFiles([file], { key }).pipe(Effect.map((reports) => reports[0]!), Effect.provide(NodeFileSystem.layer))

const broken = (report: FileReport) => {
  if (report.ok || "error" in report) throw new Error(`expected a broken chain, got ${JSON.stringify(report)}`)
  return { line: report.line, kind: report.kind }
}

describe("audit verify", () => {
  it.effect("an intact file: OK with the entry count and the last line to anchor", () =>
    Effect.gen(function*() {
      const lines = chain(5)
      const report = yield* verifyOne(asFile(lines))
      expect(report).toEqual({
        file: expect.any(String),
        ok: true,
        entries: 5,
        lastSeq: 4,
        lastHash: JSON.parse(lines[4]!).hash,
        keyed: false
      })
      expect(describeReport(report)).toMatch(/: OK, 5 entries \(last line: seq 4, hash [0-9a-f]{64}\)$/)
    }))

  it.effect("an edited entry: hash-mismatch at its line", () =>
    Effect.gen(function*() {
      const lines = chain(5)
      lines[2] = lines[2]!.replace(`"promptTokens":12`, `"promptTokens":2`)
      expect(broken(yield* verifyOne(asFile(lines)))).toEqual({ line: 3, kind: "hash-mismatch" })
    }))

  it.effect("a deleted entry: broken-link at the line that followed it", () =>
    Effect.gen(function*() {
      const lines = chain(5)
      lines.splice(2, 1)
      expect(broken(yield* verifyOne(asFile(lines)))).toEqual({ line: 3, kind: "broken-link" })
    }))

  it.effect("two entries swapped: broken-link at the first moved line", () =>
    Effect.gen(function*() {
      const lines = chain(5)
      ;[lines[1], lines[2]] = [lines[2]!, lines[1]!]
      expect(broken(yield* verifyOne(asFile(lines)))).toEqual({ line: 2, kind: "broken-link" })
    }))

  it.effect("a cut-off last line: malformed at that line", () =>
    Effect.gen(function*() {
      const lines = chain(5)
      const text = lines.map((l) => `${l}\n`).join("")
      const file = write(text.slice(0, text.length - Math.floor(lines[4]!.length / 2)))
      const report = yield* verifyOne(file)
      expect(broken(report)).toEqual({ line: 5, kind: "malformed" })
      expect(describeReport(report)).toContain("BROKEN at line 5 (malformed)")
      expect(describeReport(report)).toContain("4 entries before it are intact")
    }))

  it.effect("a forged line appended with a made-up hash: hash-mismatch at the new line", () =>
    Effect.gen(function*() {
      const lines = chain(5)
      const last = JSON.parse(lines[4]!)
      lines.push(JSON.stringify({ ...entry(9), seq: 5, prevHash: last.hash, hash: "f".repeat(64) }))
      expect(broken(yield* verifyOne(asFile(lines)))).toEqual({ line: 6, kind: "hash-mismatch" })
    }))

  it.effect("a keyed log: a line forged with a recomputed plain SHA-256 is not-keyed; a wrong key is hash-mismatch", () =>
    Effect.gen(function*() {
      const key = Redacted.make("correct-horse")
      const lines = chain(4, key)
      expect(yield* verifyOne(asFile(lines), key)).toMatchObject({ ok: true, entries: 4, keyed: true })
      const last = JSON.parse(lines[3]!)
      const body = { ...AuditLog.link({ seq: 4, prevHash: last.hash }, entry(9)).entry }
      const { hash: _hash, prevHash, ...rest } = body
      const forged = { ...rest, prevHash, hash: AuditLog.lineHash(prevHash, rest) }
      expect(broken(yield* verifyOne(asFile([...lines, JSON.stringify(forged)]), key))).toEqual({ line: 5, kind: "not-keyed" })
      const withOtherKey = AuditLog.link({ seq: 4, prevHash: last.hash }, entry(9), Redacted.make("guess")).line
      expect(broken(yield* verifyOne(asFile([...lines, withOtherKey]), key))).toEqual({ line: 5, kind: "hash-mismatch" })
      // Without the key a keyed log cannot be verified at all.
      expect(broken(yield* verifyOne(asFile(lines)))).toEqual({ line: 1, kind: "key-required" })
    }))

  it.effect("an unkeyed log cannot tell a recomputed appended line from a real one (why the docs advise a key)", () =>
    Effect.gen(function*() {
      const lines = chain(3)
      const last = JSON.parse(lines[2]!)
      const forged = AuditLog.link({ seq: 3, prevHash: last.hash }, { ...entry(9), cost: { promptUsd: 0, completionUsd: 0, totalUsd: 0 } })
      expect(yield* verifyOne(asFile([...lines, forged.line]))).toMatchObject({ ok: true, entries: 4 })
    }))

  it.effect("lines cut from the end: a valid shorter chain, found with --anchor as truncated", () =>
    Effect.gen(function*() {
      const lines = chain(5)
      const anchor = { seq: 4, hash: JSON.parse(lines[4]!).hash as string }
      const cut = asFile(lines.slice(0, 3))
      expect(yield* verifyOne(cut)).toMatchObject({ ok: true, entries: 3 })
      const report = yield* verifyFiles([cut], { anchor }).pipe(Effect.map((r) => r[0]!), Effect.provide(NodeFileSystem.layer))
      expect(broken(report)).toEqual({ line: 4, kind: "truncated" })
      const whole = yield* verifyFiles([asFile(lines)], { anchor }).pipe(Effect.provide(NodeFileSystem.layer))
      expect(whole[0]).toMatchObject({ ok: true, entries: 5 })
      expect(parseAnchor(`4:${anchor.hash}`)).toEqual(anchor)
      expect(parseAnchor("4:abc")).toBeUndefined()
    }))

  it.effect("rotated files verify as one chain with --chain, and a missing file is reported, not thrown", () =>
    Effect.gen(function*() {
      const lines = chain(6)
      const first = asFile(lines.slice(0, 3))
      const second = asFile(lines.slice(3))
      const separately = yield* verifyFiles([first, second]).pipe(Effect.provide(NodeFileSystem.layer))
      expect(separately.map((r) => r.ok)).toEqual([true, false])
      const chained = yield* verifyFiles([first, second], { chain: true }).pipe(Effect.provide(NodeFileSystem.layer))
      expect(chained).toMatchObject([{ ok: true, entries: 3 }, { ok: true, entries: 3, lastSeq: 5 }])
      const missing = yield* verifyOne(join(dir, "nope.jsonl"))
      expect(missing).toMatchObject({ ok: false, error: { _tag: "AuditFileError" } })
      // Endless input is refused, not read forever.
      expect(yield* verifyOne("/dev/zero")).toMatchObject({ ok: false, error: { message: "The audit log /dev/zero is not a regular file." } })
    }))
})
