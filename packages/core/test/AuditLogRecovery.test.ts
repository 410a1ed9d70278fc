/**
 * The pure chain-head recovery `layerFile` runs at start-up: where a chain continues after a
 * clean stop, a torn last line, damaged lines, and when a writer must refuse the file.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Redacted from "effect/Redacted"
import * as AuditLog from "../src/AuditLog.js"

const entry = (n: number): AuditLog.AuditEntry => ({
  requestId: `req-${n}`,
  timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(),
  requestHash: "0".repeat(64),
  model: "gpt-4o-mini",
  outcome: "success",
  cached: false,
  inputRedactions: [],
  outputRedactions: [],
  droppedMessages: 0,
  durationMs: n
})

/** `count` chained lines and the head after them. */
const chain = (count: number, key?: Redacted.Redacted<string>) => {
  let head: AuditLog.ChainHead = { seq: 0, prevHash: "0".repeat(64) }
  const lines: Array<string> = []
  for (let n = 0; n < count; n++) {
    const linked = AuditLog.link(head, entry(n), key)
    lines.push(linked.line)
    head = linked.head
  }
  return { lines, head }
}

const bytes = (text: string) => new TextEncoder().encode(text)
const recover = (text: string, key?: Redacted.Redacted<string>) => AuditLog.recoverHead({ start: 0n, bytes: bytes(text) }, key)

describe("AuditLog.recoverHead", () => {
  it("continues after the newest line of a clean file; an empty file starts the chain", () => {
    const { head, lines } = chain(3)
    expect(recover(lines.join("\n") + "\n")).toEqual({ _tag: "Recovered", head, torn: false, skipped: 0 })
    expect(recover("")).toMatchObject({ _tag: "Recovered", head: { seq: 0 }, torn: false, skipped: 0 })
  })

  it("a torn last line and damaged lines are reported; the chain continues from the newest intact line", () => {
    const { lines } = chain(3)
    const before = chain(2).head
    const damaged = [lines[0], lines[1], "not json", lines[2]!.slice(0, 10)].join("\n")
    expect(recover(damaged)).toEqual({ _tag: "Recovered", head: before, torn: true, skipped: 1 })
  })

  it("ignores the first, partial line of a tail that starts inside the file", () => {
    const { head, lines } = chain(2)
    const text = lines.join("\n") + "\n"
    expect(AuditLog.recoverHead({ start: 5n, bytes: bytes(text.slice(5)) }, undefined)).toEqual({
      _tag: "Recovered",
      head,
      torn: false,
      skipped: 0
    })
  })

  it("refuses a file written in the other mode or with another key", () => {
    const key = Redacted.make("audit-key")
    const keyed = chain(2, key).lines.join("\n") + "\n"
    const plain = chain(2).lines.join("\n") + "\n"
    expect(recover(keyed)).toMatchObject({ _tag: "Refused", reason: expect.stringContaining("HMAC key") })
    expect(recover(plain, key)).toMatchObject({ _tag: "Refused", reason: expect.stringContaining("without an HMAC key") })
    expect(recover(keyed, Redacted.make("another-key"))).toMatchObject({ _tag: "Refused" })
    expect(recover(keyed, key)).toMatchObject({ _tag: "Recovered", head: chain(2, key).head })
  })
})
