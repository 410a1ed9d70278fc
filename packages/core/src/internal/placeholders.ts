/**
 * Numbered placeholders and their restore, the SafetyFilter side of the "restore" operator:
 * `[EMAIL_1]` for the same address wherever it appears in one request, and a streaming
 * restorer that puts the caller's values back into a reply. The mapping lives in memory for one
 * request only; it is never logged, cached or audited (the gateway must keep it so).
 *
 * @internal
 */
import type { Finding } from "./redaction.js"

/** Placeholder → original value, for one request. */
export interface Numbering {
  /** Replaces each finding of `text` by a numbered placeholder; the same value gets the same one. */
  readonly apply: (text: string, findings: ReadonlyArray<Finding>) => string
  /** The placeholder of one value of `kind`, issued now if it is new. */
  readonly placeholderFor: (kind: string, value: string) => string
  /** How many placeholders were issued. */
  readonly size: () => number
  /**
   * Keeps the numbers of placeholders already written in `text` (a history recorded as sent)
   * from being issued: a new value gets the next free number, never one the text already uses
   * for another value.
   */
  readonly reserve: (text: string) => void
  /** The value behind a placeholder this numbering issued, or `undefined`. */
  readonly valueOf: (placeholder: string) => string | undefined
}

/** A fresh numbering for one request. */
export const makeNumbering = (): Numbering => {
  const byValue = new Map<string, string>()
  const byPlaceholder = new Map<string, string>()
  // The last number used per label (two kinds may share one: `ip-v4`, `ip_v4`).
  const next = new Map<string, number>()
  const placeholderFor = (kind: string, value: string): string => {
    const key = `${kind}\u0000${value}`
    let placeholder = byValue.get(key)
    if (placeholder === undefined) {
      const label = kind.toUpperCase().replace(/[^A-Z0-9]/g, "_")
      const n = (next.get(label) ?? 0) + 1
      next.set(label, n)
      placeholder = `[${label}_${n}]`
      byValue.set(key, placeholder)
      byPlaceholder.set(placeholder, value)
    }
    return placeholder
  }
  return {
    apply: (text, findings) => {
      let out = ""
      let at = 0
      for (const f of findings) {
        out += text.slice(at, f.start) + placeholderFor(f.kind, text.slice(f.start, f.end))
        at = f.end
      }
      return out + text.slice(at)
    },
    placeholderFor,
    size: () => byPlaceholder.size,
    reserve: (text) => {
      if (!text.includes("[")) return
      for (const m of text.matchAll(placeholder)) {
        const at = m[0].lastIndexOf("_")
        const label = m[0].slice(1, at)
        const n = Number(m[0].slice(at + 1, -1))
        if (n > (next.get(label) ?? 0)) next.set(label, n)
      }
    },
    valueOf: (placeholder) => byPlaceholder.get(placeholder)
  }
}

const placeholder = /\[[A-Z0-9_]{1,40}_\d{1,9}\]/g
// A trailing "[" that could still grow into a placeholder: held back until it cannot.
const partial = /\[[A-Z0-9_]{0,50}$/

/** Streaming restore of one reply: for any split, the output equals `restoreAll` of the whole. */
export interface Restorer {
  readonly push: (chunk: string) => string
  readonly end: () => string
}

/** Restores every placeholder `numbering` issued; anything else, including unknown placeholders, stays. */
export const restoreAll = (numbering: Numbering, text: string): string =>
  text.replace(placeholder, (p) => numbering.valueOf(p) ?? p)

/** A streaming restorer: holds back at most one partial placeholder (under 53 characters). */
export const makeRestorer = (numbering: Numbering): Restorer => {
  let held = ""
  return {
    push: (chunk) => {
      const text = held + chunk
      const tail = partial.exec(text)
      const cut = tail === null ? text.length : tail.index
      held = text.slice(cut)
      return restoreAll(numbering, text.slice(0, cut))
    },
    end: () => {
      const rest = held
      held = ""
      return restoreAll(numbering, rest)
    }
  }
}
