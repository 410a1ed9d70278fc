/**
 * The redaction engine behind SafetyFilter: one left-to-right scanner shared by whole-text
 * redaction and streaming redaction, so that both give the same answer by construction.
 *
 * How a text is redacted. From the current position `p`, every recognizer finds its first
 * accepted match at or after `p` (a regex match that its `validate` accepts; a rejected
 * candidate at `s` makes the search resume at the next code point after `s`). The leftmost
 * match wins, ties go to the recognizer listed first; it is replaced by its marker and the scan
 * resumes at its end. Text between matches is copied.
 *
 * Why streaming gives the same answer. Each recognizer declares `maxLength` (the most
 * characters its pattern examines from the start of a match, lookahead included), an
 * `alphabet` (every character a match can consume; a lookahead may read the first character
 * outside it, no further) and a `start` set (characters a match can begin with). Lookbehind
 * may read at most `contextLength` characters back. Then whether a recognizer matches at `s`,
 * and how long the match is, depends only on the text from `s - contextLength` up to the first
 * character outside the alphabet or up to `s + maxLength`, whichever comes first. When the
 * buffered text ends at `n`, the decision at `s` can still change only if `s` is a start
 * character, everything from `s` to `n` is in the alphabet and `n < s + maxLength`: the
 * recognizer's "hold" is the first such `s`. Below the smallest hold of all recognizers every
 * decision is final, so the scanner commits matches and copies text up to there and keeps the
 * rest. That is at most `maxLength - 1` characters per recognizer (plus `contextLength` of
 * already-emitted context for lookbehind): the memory bound. A "match" longer than
 * `maxLength` cannot exist, because the patterns are bounded to it.
 *
 * @internal
 */
import type { RedactionCount } from "../Chat.js"

/** How many characters of already-emitted text a stream keeps for lookbehind. */
export const contextLength = 64

/** The largest `maxLength` a recognizer may declare: bounds what a stream holds back. */
export const maxLengthLimit = 4096

/** What the engine needs from a recognizer (the public `Recognizer` has this shape). */
export interface RecognizerSpec {
  readonly kind: string
  readonly marker: string
  readonly pattern: RegExp
  readonly maxLength: number
  readonly alphabet?: RegExp
  readonly start?: RegExp
  readonly validate?: (match: string) => boolean | number
}

/** A recognizer prepared for scanning. */
interface Compiled {
  readonly marker: string
  readonly regex: RegExp
  readonly maxLength: number
  readonly inAlphabet: (code: number) => boolean
  readonly isStart: (code: number) => boolean
  readonly accept: (match: string) => number
}

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff
const isLowSurrogate = (code: number) => code >= 0xdc00 && code <= 0xdfff

/** Strips the stateful `g`/`y` flags so a RegExp can be tested without `lastIndex` effects. */
export const stateless = (re: RegExp): RegExp => new RegExp(re.source, re.flags.replace(/[gy]/g, ""))

/**
 * A fast membership test for a one-character class. ASCII answers are cached in a table,
 * others in a map (bounded by the 64 K code units). A surrogate code unit answers "yes": an
 * astral character may belong to the class, and "yes" only makes the stream hold a little
 * more, never less.
 */
const charPredicate = (cls: RegExp | undefined): (code: number) => boolean => {
  if (cls === undefined) return () => true
  const re = stateless(cls)
  const ascii = new Int8Array(128)
  const other = new Map<number, boolean>()
  return (code) => {
    if (code < 128) {
      let v = ascii[code]!
      if (v === 0) {
        v = re.test(String.fromCharCode(code)) ? 1 : -1
        ascii[code] = v
      }
      return v === 1
    }
    if (code >= 0xd800 && code <= 0xdfff) return true
    let v = other.get(code)
    if (v === undefined) {
      v = re.test(String.fromCharCode(code))
      other.set(code, v)
    }
    return v
  }
}

const compile = (spec: RecognizerSpec): Compiled => {
  const validate = spec.validate
  return {
    marker: spec.marker,
    regex: new RegExp(spec.pattern.source, spec.pattern.flags.replace(/[gy]/g, "") + "g"),
    maxLength: spec.maxLength,
    inAlphabet: charPredicate(spec.alphabet),
    isStart: charPredicate(spec.start ?? spec.alphabet),
    accept: validate === undefined
      ? (match) => match.length
      : (match) => {
        const verdict = validate(match)
        if (verdict === true) return match.length
        if (verdict === false) return 0
        return Number.isInteger(verdict) && verdict > 0 ? Math.min(verdict, match.length) : 0
      }
  }
}

/**
 * The first position `s >= from` where the recognizer's decision could still change once more
 * text arrives after `text` (see the module comment), or `text.length` if there is none.
 */
const holdOf = (r: Compiled, text: string, from: number): number => {
  const n = text.length
  const lo = Math.max(from, n - r.maxLength + 1)
  let i = n
  while (i > lo && r.inAlphabet(text.charCodeAt(i - 1))) i--
  for (let j = i; j < n; j++) {
    if (r.isStart(text.charCodeAt(j))) return j
  }
  return n
}

/** Scratch state of one scan: each recognizer's next accepted match, found lazily. */
const UNKNOWN = -2
const NONE = -1

/**
 * The first accepted match of `r` starting in `[from, limit)`, written to `starts[i]`/`ends[i]`
 * (`NONE` if there is none).
 */
const findNext = (
  r: Compiled,
  text: string,
  from: number,
  limit: number,
  i: number,
  starts: Array<number>,
  ends: Array<number>
): void => {
  let at = from
  const regex = r.regex
  while (at < limit) {
    regex.lastIndex = at
    const m = regex.exec(text)
    if (m === null || m.index >= limit) break
    // An empty match is no match, nor one that reaches the declared bound: with its lookahead
    // it examined more than `maxLength` characters. (This also keeps a greedy, unbounded
    // pattern such as `[A-Z]+(?![A-Z])` consistent between whole and streamed text.)
    const len = m[0].length === 0 || m[0].length >= r.maxLength ? 0 : r.accept(m[0])
    if (len > 0) {
      starts[i] = m.index
      ends[i] = m.index + len
      return
    }
    at = m.index + (isHighSurrogate(text.charCodeAt(m.index)) && isLowSurrogate(text.charCodeAt(m.index + 1)) ? 2 : 1)
  }
  starts[i] = NONE
}

/**
 * Redacts `text` from `from`, appending the output to `out` and counting matches per
 * recognizer in `counts`. With `final`, the text is complete and everything is decided;
 * otherwise only what no further text can change. Returns the position up to which the text
 * was consumed.
 */
const scan = (
  recs: ReadonlyArray<Compiled>,
  text: string,
  from: number,
  final: boolean,
  out: Array<string>,
  counts: Array<number>
): number => {
  const n = text.length
  const k = recs.length
  let limit = n
  if (!final) {
    for (let i = 0; i < k; i++) {
      const h = holdOf(recs[i]!, text, from)
      if (h < limit) limit = h
    }
    // never cut a surrogate pair in two
    if (limit > from && limit < n && isHighSurrogate(text.charCodeAt(limit - 1)) && isLowSurrogate(text.charCodeAt(limit))) {
      limit--
    }
  }
  const starts = new Array<number>(k).fill(UNKNOWN)
  const ends = new Array<number>(k).fill(0)
  let p = from
  for (;;) {
    let best = -1
    let bestStart = limit
    for (let i = 0; i < k; i++) {
      const s = starts[i]!
      if (s === UNKNOWN || (s >= 0 && s < p)) findNext(recs[i]!, text, p, limit, i, starts, ends)
      const start = starts[i]!
      if (start >= 0 && start < bestStart) {
        best = i
        bestStart = start
      }
    }
    if (best < 0) break
    if (bestStart > p) out.push(text.slice(p, bestStart))
    out.push(recs[best]!.marker)
    counts[best]!++
    p = ends[best]!
  }
  const cut = Math.max(p, limit)
  if (cut > p) out.push(text.slice(p, cut))
  return cut
}

/** Streaming redaction state for one text. */
export interface Stream {
  readonly push: (chunk: string) => string
  readonly end: () => string
  readonly redactions: () => ReadonlyArray<RedactionCount>
}

/** A prepared set of recognizers. */
export interface Engine {
  readonly redact: (text: string) => { readonly text: string; readonly redactions: ReadonlyArray<RedactionCount> }
  /** Redacts and adds the per-recognizer counts to `counts` (for aggregating many texts). */
  readonly redactInto: (text: string, counts: Array<number>) => string
  readonly summarize: (counts: ReadonlyArray<number>) => ReadonlyArray<RedactionCount>
  readonly stream: () => Stream
}

/** Prepares an engine; the specs must already be validated. */
export const makeEngine = (specs: ReadonlyArray<RecognizerSpec>): Engine => {
  const recs = specs.map(compile)
  const kinds = specs.map((s) => s.kind)

  const summarize = (counts: ReadonlyArray<number>): ReadonlyArray<RedactionCount> => {
    const byKind = new Map<string, number>()
    for (let i = 0; i < counts.length; i++) {
      const c = counts[i]!
      if (c > 0) byKind.set(kinds[i]!, (byKind.get(kinds[i]!) ?? 0) + c)
    }
    return Array.from(byKind, ([kind, count]) => ({ kind, count }))
  }

  const redactInto = (text: string, counts: Array<number>): string => {
    if (recs.length === 0 || text.length === 0) return text
    const out: Array<string> = []
    scan(recs, text, 0, true, out, counts)
    return out.length === 1 ? out[0]! : out.join("")
  }

  const stream = (): Stream => {
    const counts = new Array<number>(recs.length).fill(0)
    // `buffer` holds up to `contextLength` characters already emitted (for lookbehind), then
    // the text not yet emitted, which starts at `pos`.
    let buffer = ""
    let pos = 0
    return {
      push: (chunk) => {
        if (chunk.length === 0) return ""
        if (recs.length === 0) return chunk
        buffer += chunk
        // A trailing high surrogate is half a character: its meaning depends on what follows,
        // so it is not looked at until the next push.
        const text = isHighSurrogate(buffer.charCodeAt(buffer.length - 1)) ? buffer.slice(0, -1) : buffer
        const out: Array<string> = []
        const cut = scan(recs, text, pos, false, out, counts)
        let keep = Math.max(0, cut - contextLength)
        if (keep > 0 && isLowSurrogate(buffer.charCodeAt(keep))) keep--
        if (keep > 0) buffer = buffer.slice(keep)
        pos = cut - keep
        return out.length === 1 ? out[0]! : out.join("")
      },
      end: () => {
        const out: Array<string> = []
        if (pos < buffer.length) scan(recs, buffer, pos, true, out, counts)
        buffer = ""
        pos = 0
        return out.join("")
      },
      redactions: () => summarize(counts)
    }
  }

  return {
    redact: (text) => {
      const counts = new Array<number>(recs.length).fill(0)
      const redacted = redactInto(text, counts)
      return { text: redacted, redactions: summarize(counts) }
    },
    redactInto,
    summarize,
    stream
  }
}

/**
 * Why a recognizer cannot be used, or `undefined`. Keeps the engine's assumptions honest: a
 * bounded `maxLength`, a RegExp pattern, one-character classes.
 */
export const checkSpec = (spec: RecognizerSpec): { readonly field: string; readonly message: string } | undefined => {
  if (typeof spec.kind !== "string" || spec.kind.length === 0) {
    return { field: "kind", message: "must be a non-empty string" }
  }
  if (typeof spec.marker !== "string") return { field: "marker", message: "must be a string" }
  if (!(spec.pattern instanceof RegExp)) return { field: "pattern", message: "must be a RegExp" }
  if (!Number.isInteger(spec.maxLength) || spec.maxLength < 1 || spec.maxLength > maxLengthLimit) {
    return { field: "maxLength", message: `must be an integer from 1 to ${maxLengthLimit}` }
  }
  if (spec.alphabet !== undefined && !(spec.alphabet instanceof RegExp)) {
    return { field: "alphabet", message: "must be a RegExp matching one character" }
  }
  if (spec.start !== undefined && !(spec.start instanceof RegExp)) {
    return { field: "start", message: "must be a RegExp matching one character" }
  }
  if (spec.validate !== undefined && typeof spec.validate !== "function") {
    return { field: "validate", message: "must be a function" }
  }
  return undefined
}
