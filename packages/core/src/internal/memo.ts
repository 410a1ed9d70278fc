/**
 * Per-message memos: a conversation resends its earlier turns with every request, and their
 * redaction and token counts do not change. Memos are keyed by a SHA-256 of the text, never by
 * the text itself, so a memo holds no more of a prompt than its hash (and whatever redacted
 * value the caller stores).
 *
 * @internal
 */
import * as Crypto from "node:crypto"

/** One-shot hashing (Node ≥ 20.12) is cheaper than a `Hash` object per text. */
const oneShot = (Crypto as { readonly hash?: (algorithm: string, data: string, encoding: "base64") => string }).hash

const wellFormed = (String.prototype as { readonly isWellFormed?: () => boolean }).isWellFormed

/**
 * The memo key of `text`: its SHA-256 (base64), or `undefined` when the text holds a lone
 * surrogate. UTF-8 hashing turns every lone surrogate into U+FFFD, so two such texts could share
 * a key; they are not memoised.
 */
export const contentKey = (text: string): string | undefined => {
  if (wellFormed === undefined) {
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i)
      if (c >= 0xd800 && c <= 0xdfff) return undefined
    }
  } else if (!wellFormed.call(text)) return undefined
  return oneShot === undefined
    ? Crypto.createHash("sha256").update(text).digest("base64")
    : oneShot("sha256", text, "base64")
}

/** What an entry costs besides its own weight: the key (44 characters) and the Map's slot. */
export const entryOverhead = 64

/**
 * A least-recently-used map whose entries carry a weight (characters held, plus `overhead` per
 * entry); the least recently used entries are evicted while the total exceeds `maxWeight`. An entry heavier than
 * `maxWeight` alone is not stored. A `Map` keeps insertion order, so re-inserting on every hit
 * makes its first key the least recently used one.
 */
export interface Lru<V> {
  readonly get: (key: string) => V | undefined
  readonly set: (key: string, value: V, weight: number) => void
  /** Current total weight (entries' weights plus `overhead` each). */
  readonly weight: () => number
  readonly size: () => number
}

export const makeLru = <V>(maxWeight: number, overhead: number = entryOverhead): Lru<V> => {
  const entries = new Map<string, { readonly value: V; readonly weight: number }>()
  let total = 0
  return {
    get: (key) => {
      const entry = entries.get(key)
      if (entry === undefined) return undefined
      entries.delete(key)
      entries.set(key, entry)
      return entry.value
    },
    set: (key, value, weight) => {
      const cost = weight + overhead
      const old = entries.get(key)
      if (old !== undefined) {
        entries.delete(key)
        total -= old.weight
      }
      if (cost > maxWeight) return
      entries.set(key, { value, weight: cost })
      total += cost
      while (total > maxWeight) {
        const oldest = entries.keys().next().value as string
        total -= entries.get(oldest)!.weight
        entries.delete(oldest)
      }
    },
    weight: () => total,
    size: () => entries.size
  }
}
