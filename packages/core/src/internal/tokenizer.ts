/**
 * Token counting with the tiktoken encodings shipped by js-tiktoken.
 *
 * The rank tables and pre-tokenization patterns come from `js-tiktoken/ranks/<encoding>`; the
 * byte-pair merge is done here so that its cost stays O(n log n) in the length of a pre-token:
 * user input can hold long runs without spaces (base64 blobs, rules of dashes, padding), and a
 * merge that rescans all pairs after every step would block the event loop for seconds on them.
 * The merge order is tiktoken's (lowest rank first, leftmost on ties), so counts are identical.
 *
 * Each encoding is built once per process, when a ContextWindow layer preloads it (or on first
 * use), and shared by every layer: building `o200k_base` takes a noticeable fraction of a
 * second, so it never happens at import time and never twice.
 *
 * @internal
 */
import type { Encoding } from "../Models.js"

/** A ready tokenizer for one encoding. */
export interface Tokenizer {
  readonly encoding: Encoding
  /**
   * Tokens of `text`; special-token spellings such as `<|endoftext|>` count as plain text. Any
   * length works: a text longer than `sliceLength` is counted slice by slice (see `slices`).
   */
  readonly count: (text: string) => number
}

/**
 * The longest text handed to the pre-tokenizing RegExp at once. V8's RegExp backtracking stack
 * overflows on one run of a few million letters (CJK or Cyrillic text without spaces), so long
 * texts are cut first (see `slices`).
 */
export const sliceLength = 65_536

const isHigh = (c: number) => c >= 0xd800 && c <= 0xdbff
const isLow = (c: number) => c >= 0xdc00 && c <= 0xdfff

/** JavaScript's `\s`, which both encodings' patterns use. */
const isSpace = (c: number): boolean =>
  c === 0x20 || (c >= 0x09 && c <= 0x0d) ||
  (c >= 0x80 &&
    (c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f ||
      c === 0x205f || c === 0x3000 || c === 0xfeff))

const letterOrNumber = /^[\p{L}\p{N}]$/u

/**
 * Whether every pre-token of `text` ends or starts at `i`, whatever precedes or follows, in
 * both encodings' patterns: (1) after a letter or digit, before whitespace: no pattern
 * alternative consumes a letter or digit and then whitespace, and whitespace fails every test
 * such an alternative makes next just as the end of the text does; (2) after a line feed,
 * before anything but whitespace or `/`: only the whitespace alternatives and the `[\r\n/]*`
 * tail of punctuation consume a line feed, and `\s*[\r\n]+` (listed before `\s+(?!\S)`) ends
 * there both in the whole text and in the text cut at `i`.
 */
export const isBoundary = (text: string, i: number): boolean => {
  const c = text.charCodeAt(i)
  const p = text.charCodeAt(i - 1)
  if (p === 0x0a) return !isSpace(c) && c !== 0x2f
  if (!isSpace(c)) return false
  if (p < 0x80) return (p >= 0x30 && p <= 0x39) || (p >= 0x41 && p <= 0x5a) || (p >= 0x61 && p <= 0x7a)
  const from = isLow(p) && i >= 2 && isHigh(text.charCodeAt(i - 2)) ? i - 2 : i - 1
  return letterOrNumber.test(text.slice(from, i))
}

/**
 * `text` cut into slices of at most `max` characters whose counts add up to the count of the
 * whole text: each cut is the last pre-token boundary (`isBoundary`) within reach. A run longer
 * than `max` without any boundary (a megabyte of CJK letters, a base64 blob) is cut at `max`
 * (never inside a surrogate pair); only there may the sum differ from the whole text's count,
 * by about one token per cut. With `force: false` such a run is not cut but searched to its end
 * (tests use this to check the boundaries on short slices).
 */
export const slices = function*(text: string, max: number = sliceLength, force = true): Generator<string> {
  const n = text.length
  let start = 0
  while (n - start > max) {
    const hi = start + max
    let cut = -1
    for (let i = hi; i > start; i--) {
      if (isBoundary(text, i)) {
        cut = i
        break
      }
    }
    if (cut < 0) {
      if (force) {
        cut = isHigh(text.charCodeAt(hi - 1)) && isLow(text.charCodeAt(hi)) && hi - 1 > start ? hi - 1 : hi
      } else {
        cut = hi + 1
        while (cut < n && !isBoundary(text, cut)) cut++
        if (cut >= n) break
      }
    }
    yield text.slice(start, cut)
    start = cut
  }
  yield text.slice(start)
}

interface RankFile {
  readonly pat_str: string
  readonly bpe_ranks: string
}

const importRanks = (encoding: Encoding): Promise<RankFile> => {
  switch (encoding) {
    case "o200k_base":
      return import("js-tiktoken/ranks/o200k_base").then((m) => m.default)
    case "cl100k_base":
      return import("js-tiktoken/ranks/cl100k_base").then((m) => m.default)
  }
}

/**
 * Parses the compressed rank file: lines of `! <offset> <base64 token> <base64 token> ...`.
 * Tokens are keyed by their bytes as a Latin-1 string (one char per byte), which `atob` yields
 * directly and which is far cheaper to hash than a list of numbers.
 */
const parseRanks = (bpeRanks: string): Map<string, number> => {
  const ranks = new Map<string, number>()
  for (const line of bpeRanks.split("\n")) {
    if (line.length === 0) continue
    const fields = line.split(" ")
    const offset = Number.parseInt(fields[1]!, 10)
    for (let i = 2; i < fields.length; i++) ranks.set(atob(fields[i]!), offset + i - 2)
  }
  return ranks
}

/**
 * `source` with every capturing group made non-capturing (`(` → `(?:` outside character classes
 * and escapes): the count never reads a group, and a match without captures costs less.
 */
export const nonCapturing = (source: string): string => {
  let out = ""
  let inClass = false
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!
    if (c === "\\") {
      out += c + (source[i + 1] ?? "")
      i++
      continue
    }
    if (inClass) inClass = c !== "]"
    else if (c === "[") inClass = true
    else if (c === "(" && source[i + 1] !== "?") {
      out += "(?:"
      continue
    }
    out += c
  }
  return out
}

/**
 * The tokens whose bytes are valid UTF-8, keyed by their text: most pre-tokens are one token,
 * and this answers them without converting the piece to bytes. ASCII tokens share their key
 * string with `ranks`.
 */
const wholeTokens = (ranks: ReadonlyMap<string, number>): Set<string> => {
  const whole = new Set<string>()
  for (const key of ranks.keys()) {
    let ascii = true
    for (let i = 0; i < key.length; i++) {
      if (key.charCodeAt(i) > 0x7f) {
        ascii = false
        break
      }
    }
    if (ascii) {
      whole.add(key)
      continue
    }
    // Invalid UTF-8 decodes to U+FFFD and does not encode back to the same bytes.
    const text = Buffer.from(key, "latin1").toString("utf8")
    if (utf8Key(text) === key) whole.add(text)
  }
  return whole
}

/** The UTF-8 bytes of `text` as a Latin-1 string; lone surrogates become U+FFFD like `TextEncoder`. */
export const utf8Key = (text: string): string => {
  let ascii = true
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) > 0x7f) {
      ascii = false
      break
    }
  }
  if (ascii) return text
  const bytes: Array<number> = []
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i)
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00)
        i++
      }
    }
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd
    if (c < 0x80) bytes.push(c)
    else if (c < 0x800) bytes.push(0xc0 | (c >> 6), 0x80 | (c & 0x3f))
    else if (c < 0x10000) bytes.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f))
    else bytes.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 0x3f), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f))
  }
  let out = ""
  for (let i = 0; i < bytes.length; i += 4096) {
    out += String.fromCharCode.apply(null, bytes.slice(i, i + 4096))
  }
  return out
}

/** The most merged pieces one `count` call remembers. */
const MERGED_PER_CALL = 4_096

/** Pre-tokens up to this many bytes are merged with the simple array algorithm. */
const SMALL_PIECE = 48

/**
 * Byte-pair merge of one pre-token, returning the number of tokens. The array algorithm: find
 * the lowest-ranked adjacent pair (leftmost on ties), merge it, update its two neighbours.
 */
export const mergeCountSmall = (piece: string, ranks: ReadonlyMap<string, number>): number => {
  const n = piece.length
  const starts: Array<number> = new Array(n + 1)
  for (let i = 0; i <= n; i++) starts[i] = i
  const pairRank: Array<number> = new Array(n - 1)
  for (let i = 0; i < n - 1; i++) pairRank[i] = ranks.get(piece.slice(i, i + 2)) ?? Infinity
  let parts = n
  while (parts > 1) {
    let best = Infinity
    let at = -1
    for (let k = 0; k < parts - 1; k++) {
      if (pairRank[k]! < best) {
        best = pairRank[k]!
        at = k
      }
    }
    if (at < 0) break
    starts.splice(at + 1, 1)
    pairRank.splice(at, 1)
    parts--
    if (at < parts - 1) pairRank[at] = ranks.get(piece.slice(starts[at]!, starts[at + 2]!)) ?? Infinity
    if (at > 0) pairRank[at - 1] = ranks.get(piece.slice(starts[at - 1]!, starts[at + 1]!)) ?? Infinity
  }
  return parts
}

/**
 * Byte-pair merge of a long pre-token in O(n log n): parts form a linked list over byte
 * offsets, candidate pairs sit in a binary heap ordered by (rank, offset) and stale entries are
 * skipped when popped. Popping the least valid entry picks exactly the pair the array algorithm
 * would pick, so both produce the same parts.
 */
export const mergeCountLarge = (piece: string, ranks: ReadonlyMap<string, number>): number => {
  const n = piece.length
  // next[i]: start of the part after the part starting at i (n at the end); prev[i] likewise.
  const next = new Int32Array(n + 1)
  const prev = new Int32Array(n + 1)
  const alive = new Uint8Array(n)
  const rankAt = new Float64Array(n)
  for (let i = 0; i < n; i++) {
    next[i] = i + 1
    prev[i] = i - 1
    alive[i] = 1
  }
  // Heap of rank * 2^32 + offset (exact in a double: ranks < 2^20, offsets < 2^32).
  const SHIFT = 4294967296
  let heap = new Float64Array(Math.max(16, n))
  let size = 0
  const push = (value: number) => {
    if (size === heap.length) {
      const bigger = new Float64Array(heap.length * 2)
      bigger.set(heap)
      heap = bigger
    }
    let i = size++
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (heap[parent]! <= value) break
      heap[i] = heap[parent]!
      i = parent
    }
    heap[i] = value
  }
  const pop = (): number => {
    const top = heap[0]!
    const last = heap[--size]!
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      if (left >= size) break
      const right = left + 1
      const child = right < size && heap[right]! < heap[left]! ? right : left
      if (heap[child]! >= last) break
      heap[i] = heap[child]!
      i = child
    }
    heap[i] = last
    return top
  }
  const pairRank = (start: number): number => {
    const mid = next[start]!
    if (mid >= n) return Infinity
    return ranks.get(piece.slice(start, next[mid]!)) ?? Infinity
  }
  const update = (start: number) => {
    const rank = pairRank(start)
    rankAt[start] = rank
    if (rank !== Infinity) push(rank * SHIFT + start)
  }
  for (let i = 0; i < n; i++) update(i)
  let parts = n
  while (size > 0) {
    const entry = pop()
    const rank = Math.floor(entry / SHIFT)
    const start = entry - rank * SHIFT
    if (alive[start] === 0 || rankAt[start] !== rank) continue
    // Merge the part at `start` with the one after it.
    const mid = next[start]!
    alive[mid] = 0
    next[start] = next[mid]!
    if (next[mid]! < n) prev[next[mid]!] = start
    parts--
    update(start)
    if (prev[start]! >= 0) update(prev[start]!)
  }
  return parts
}

/** ASCII tokens up to this many characters are in the `AsciiTokens` table. */
const ASCII_TOKEN_MAX = 32

/**
 * The ASCII tokens in an open-addressing table keyed by an FNV-1a hash of their characters, so
 * that a pre-token of ASCII text (most of English prose and of code) is looked up where it lies
 * in the text: no string is made of it, nor hashed by the engine.
 */
interface AsciiTokens {
  /** Slot → index + 1 of a token, 0 when empty. */
  readonly slots: Int32Array
  readonly mask: number
  /** Every token's characters, one after the other; token i is `chars[starts[i], starts[i + 1])`. */
  readonly chars: string
  readonly starts: Int32Array
}

const asciiTokens = (whole: ReadonlySet<string>): AsciiTokens => {
  const tokens: Array<string> = []
  for (const token of whole) {
    if (token.length > ASCII_TOKEN_MAX) continue
    let ascii = true
    for (let i = 0; i < token.length && ascii; i++) ascii = token.charCodeAt(i) < 0x80
    if (ascii) tokens.push(token)
  }
  let size = 1
  while (size < tokens.length * 2) size *= 2
  const slots = new Int32Array(size)
  const mask = size - 1
  const starts = new Int32Array(tokens.length + 1)
  for (let t = 0; t < tokens.length; t++) {
    const token = tokens[t]!
    starts[t + 1] = starts[t]! + token.length
    let h = 0x811c9dc5
    for (let i = 0; i < token.length; i++) h = Math.imul(h ^ token.charCodeAt(i), 0x01000193)
    let slot = h & mask
    while (slots[slot] !== 0) slot = (slot + 1) & mask
    slots[slot] = t + 1
  }
  return { slots, mask, chars: tokens.join(""), starts }
}

/** Whether `text[from, to)` is an ASCII token (1), ASCII but not a token (0), or not ASCII (-1). */
const lookupAscii = (table: AsciiTokens, text: string, from: number, to: number): number => {
  let h = 0x811c9dc5
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i)
    if (c >= 0x80) return -1
    h = Math.imul(h ^ c, 0x01000193)
  }
  const { chars, mask, slots, starts } = table
  const len = to - from
  for (let slot = h & mask; slots[slot] !== 0; slot = (slot + 1) & mask) {
    const t = slots[slot]! - 1
    const start = starts[t]!
    if (starts[t + 1]! - start !== len) continue
    let i = 0
    while (i < len && chars.charCodeAt(start + i) === text.charCodeAt(from + i)) i++
    if (i === len) return 1
  }
  return 0
}

const makeTokenizer = (encoding: Encoding, file: RankFile): Tokenizer => {
  const ranks = parseRanks(file.bpe_ranks)
  const whole = wholeTokens(ranks)
  const ascii = asciiTokens(whole)
  // Sticky: the pattern matches at every position (its alternatives cover every character), so
  // trying it where the last piece ended finds what a search would, and `test` makes no array.
  const pattern = new RegExp(nonCapturing(file.pat_str), "uy")
  /**
   * Counts of the pieces merged during one `count` call: a word that recurs in a text (and
   * multilingual words rarely are one token) is merged once. It lives only as long as the call,
   * so no text outlives the request that brought it.
   */
  let merged: Map<string, number> | undefined
  const mergeCount = (key: string): number => {
    merged ??= new Map()
    let n = merged.get(key)
    if (n === undefined) {
      n = key.length <= SMALL_PIECE ? mergeCountSmall(key, ranks) : mergeCountLarge(key, ranks)
      if (merged.size < MERGED_PER_CALL) merged.set(key, n)
    }
    return n
  }
  const countSlice = (text: string): number => {
    const n = text.length
    let tokens = 0
    let at = 0
    // `count` is synchronous and never re-entered, so one RegExp with its lastIndex is safe.
    while (at < n) {
      pattern.lastIndex = at
      if (!pattern.test(text) || pattern.lastIndex <= at) {
        at++
        continue
      }
      const end = pattern.lastIndex
      const len = end - at
      const found = len === 1 && text.charCodeAt(at) < 0x80 ? 1 : len <= ASCII_TOKEN_MAX ? lookupAscii(ascii, text, at, end) : -1
      if (found === 1) tokens += 1
      else {
        const piece = text.slice(at, end)
        if (found === -1 && whole.has(piece)) tokens += 1
        else {
          const key = utf8Key(piece)
          tokens += key.length === 1 ? 1 : mergeCount(key)
        }
      }
      at = end
    }
    return tokens
  }
  const count = (text: string): number => {
    try {
      if (text.length <= sliceLength) return countSlice(text)
      let tokens = 0
      for (const slice of slices(text)) tokens += countSlice(slice)
      return tokens
    } finally {
      merged = undefined
    }
  }
  return { encoding, count }
}

const loaded = new Map<Encoding, Promise<Tokenizer>>()

/**
 * The tokenizer of `encoding`, built on first request and shared afterwards (concurrent first
 * requests share one build). A failed import is not cached, so a later call tries again.
 */
export const load = (encoding: Encoding): Promise<Tokenizer> => {
  const existing = loaded.get(encoding)
  if (existing !== undefined) return existing
  const building = importRanks(encoding).then((file) => makeTokenizer(encoding, file))
  loaded.set(encoding, building)
  building.catch(() => loaded.delete(encoding))
  return building
}

/** The tokenizer of `encoding` if it is already built (no loading). */
export const peek = (encoding: Encoding): Promise<Tokenizer> | undefined => loaded.get(encoding)
