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
  /** What a match is replaced by when not `marker` (an operator: mask, pseudonym); pure. */
  readonly replace?: (match: string) => string
}

/**
 * Patterns every match of which holds a character of a class (the email pattern an `@`, the
 * IPv6 one a `:`), registered by the module that made the pattern. Keyed by the pattern object,
 * so a recognizer built with another pattern has none. The scan then searches only where such
 * a character is within `maxLength`: prose without an `@` costs the email pattern nothing.
 */
export const requiredCharacter = new WeakMap<RegExp, RegExp>()

/** Where a match was found in the input: offsets in UTF-16 code units, never the value. */
export interface Finding {
  readonly kind: string
  readonly start: number
  readonly end: number
}

/** A recognizer prepared for scanning. */
interface Compiled {
  readonly kind: string
  readonly marker: string
  readonly regex: RegExp
  /** The same pattern anchored at `lastIndex`: tries one position, never searches ahead. */
  readonly sticky: RegExp
  readonly maxLength: number
  readonly inAlphabet: (code: number) => boolean
  readonly isStart: (code: number) => boolean
  /** Finds the next possible start (see `startGate`), or `undefined`: ask `isStart` per character. */
  readonly gate: RegExp | undefined
  /** Whether the pattern is Unicode-aware (never starts inside a surrogate pair). */
  readonly unicode: boolean
  /** Finds the characters every match holds one of (`requiredCharacter`), if known. */
  readonly required: RegExp | undefined
  /** The one character `required` stands for when it is a single literal (`indexOf` finds it). */
  readonly requiredChar: string | undefined
  readonly accept: (match: string) => number
  readonly replace: ((match: string) => string) | undefined
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

/** A one-character class as written: `[...]`, or one escape such as `\d` or `\p{L}`. */
const oneClass = /^(?:\[(?:[^\\\]]|\\.)*\]|\\[dDwWsS]|\\[pP]\{[^}]*\})$/s

/**
 * A searching RegExp for the characters `isStart` accepts: V8 looks for a class many times
 * faster than a loop over `charCodeAt`. Like `isStart` it also accepts every surrogate (and, when
 * Unicode-aware, every astral character). `undefined` for a class it cannot be sure to read
 * as one character.
 */
const startGate = (cls: RegExp | undefined): RegExp | undefined => {
  if (cls === undefined || !oneClass.test(cls.source)) return undefined
  const flags = cls.flags.replace(/[gy]/g, "")
  const astral = /[uv]/.test(flags) ? String.raw`|[\u{10000}-\u{10FFFF}]` : ""
  try {
    return new RegExp(String.raw`${cls.source}|[\uD800-\uDFFF]` + astral, flags + "g")
  } catch {
    return undefined
  }
}

/** The character a class such as `/@/` or `/:/` stands for, or `undefined` if it is not one literal. */
const literalOf = (cls: RegExp | undefined): string | undefined =>
  cls !== undefined && cls.flags.replace(/[gyuvsmd]/g, "") === "" && /^[^\\^$.*+?()[\]{}|/]$/.test(cls.source)
    ? cls.source
    : undefined

const requiredGate = (pattern: RegExp): RegExp | undefined => {
  const cls = requiredCharacter.get(pattern)
  return cls === undefined ? undefined : new RegExp(cls.source, cls.flags.replace(/[gy]/g, "") + "g")
}

/**
 * Where the first required character (see `requiredCharacter`) at or after `at` is, or the end
 * of the text. A match holding it starts at most `maxLength - 1` before it.
 */
const requiredAt = (r: Compiled, text: string, at: number): number => {
  if (r.requiredChar !== undefined) {
    const found = text.indexOf(r.requiredChar, at)
    workCounter.steps += (found < 0 ? text.length : found) - at + 1
    return found < 0 ? text.length : found
  }
  const gate = r.required!
  gate.lastIndex = at
  const m = gate.exec(text)
  // A Unicode-aware class may report a pair that `at` is inside of at the pair's start.
  const found = m === null ? text.length : Math.max(at, m.index)
  workCounter.steps += found - at + 1
  return found
}

const compile = (spec: RecognizerSpec): Compiled => {
  const validate = spec.validate
  const sticky = new RegExp(spec.pattern.source, spec.pattern.flags.replace(/[gy]/g, "") + "y")
  return {
    kind: spec.kind,
    marker: spec.marker,
    regex: new RegExp(spec.pattern.source, spec.pattern.flags.replace(/[gy]/g, "") + "g"),
    sticky,
    maxLength: spec.maxLength,
    inAlphabet: charPredicate(spec.alphabet),
    isStart: charPredicate(spec.start ?? spec.alphabet),
    gate: startGate(spec.start ?? spec.alphabet),
    unicode: sticky.unicode || sticky.flags.includes("v"),
    required: requiredGate(spec.pattern),
    requiredChar: literalOf(requiredCharacter.get(spec.pattern)),
    replace: spec.replace,
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
 * Work done by the scanner, for tests that bound it (positions a pattern was tried at, plus
 * characters looked at to find where a stream must hold back). Only ever incremented.
 */
export const workCounter = { steps: 0 }

/** Scratch state of one scan: each recognizer's next accepted match, found lazily. */
const UNKNOWN = -2
const NONE = -1

/** The position after the code point at `at`. */
const nextCodePoint = (text: string, at: number): number =>
  at + (isHighSurrogate(text.charCodeAt(at)) && isLowSurrogate(text.charCodeAt(at + 1)) ? 2 : 1)

/** The accepted length of the match `m` of `r`, or 0 when it does not count as a match. */
const acceptedLength = (r: Compiled, m: RegExpExecArray): number =>
  // An empty match is no match, nor one that reaches the declared bound: with its lookahead
  // it examined more than `maxLength` characters. (This also keeps a greedy, unbounded
  // pattern such as `[A-Z]+(?![A-Z])` consistent between whole and streamed text.)
  m[0].length === 0 || m[0].length >= r.maxLength ? 0 : r.accept(m[0])

/** Up to this many characters a stream's scan first looks which recognizers can start in them. */
const presentMaxChars = 256

/** Anchored tries in one search after which one searching RegExp takes over. */
const anchoredTries = 8

/** Below this many characters a loop over them costs less than a call of the gate. */
const gateMinChars = 48

/**
 * The first position in `[at, limit)` that may start a match of `r` (`limit` if none). A
 * searching RegExp reads on to the end of the text, so it is used only when the text below
 * `limit` is at least as long as the rest: a stream then never searches its held-back text
 * more than a bounded number of times, however the text is split.
 */
const nextStart = (r: Compiled, text: string, at: number, limit: number): number => {
  const n = text.length
  const gate = r.gate
  if (gate !== undefined && limit - at >= gateMinChars && n - limit <= limit - at) {
    gate.lastIndex = at
    const m = gate.exec(text)
    // A Unicode-aware gate reports a pair that `at` is inside of at the pair's start: `at`
    // itself is then a surrogate, which `isStart` accepts too.
    const found = m === null ? n : m.index < at ? at : m.index
    workCounter.steps += Math.min(found, n) - at + 1
    return found < limit ? found : limit
  }
  while (at < limit && !r.isStart(text.charCodeAt(at))) {
    workCounter.steps++
    at++
  }
  return at
}

/**
 * The first accepted match of `r` starting in `[from, limit)`, written to `starts[i]`/`ends[i]`
 * (`NONE` if there is none). The pattern is tried where a match may start (`nextStart`), and
 * after `anchoredTries` failed tries (start characters are common: an email's letters) one
 * searching RegExp finds the rest, under the same condition as `nextStart`'s search. The answer
 * is the same either way (the leftmost accepted match).
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
  const n = text.length
  let at = from
  let tries = 0
  // The next required character: below it by `maxLength - 1` or more no match can start.
  let q = -1
  while (at < limit) {
    // Like a search, looking for it reads on to the end of the text (see `nextStart`).
    if (r.required !== undefined && at > q && n - limit <= limit - at) {
      q = requiredAt(r, text, at)
      if (q >= n) break
      at = Math.max(at, q - r.maxLength + 1)
      if (at >= limit) break
    }
    if (tries >= anchoredTries && n - limit <= limit - at) {
      searchNext(r, text, at, limit, i, starts, ends)
      return
    }
    at = nextStart(r, text, at, limit)
    if (at >= limit) break
    workCounter.steps++
    // A Unicode-aware search never starts inside a surrogate pair; neither may this one.
    if (r.unicode && isLowSurrogate(text.charCodeAt(at)) && at > 0 && isHighSurrogate(text.charCodeAt(at - 1))) {
      at++
      continue
    }
    tries++
    const regex = r.sticky
    regex.lastIndex = at
    const m = regex.exec(text)
    const len = m === null ? 0 : acceptedLength(r, m)
    if (len > 0) {
      starts[i] = at
      ends[i] = at + len
      return
    }
    at = nextCodePoint(text, at)
  }
  starts[i] = NONE
}

/** `findNext` by one searching RegExp from `from`. */
const searchNext = (
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
  let q = -1
  while (at < limit) {
    if (r.required !== undefined && at > q) {
      q = requiredAt(r, text, at)
      if (q >= text.length) break
      at = Math.max(at, q - r.maxLength + 1)
      if (at >= limit) break
    }
    regex.lastIndex = at
    const m = regex.exec(text)
    workCounter.steps += (m === null ? text.length : m.index) - at + 1
    if (m === null || m.index >= limit) break
    const len = acceptedLength(r, m)
    if (len > 0) {
      starts[i] = m.index
      ends[i] = m.index + len
      return
    }
    at = nextCodePoint(text, m.index)
  }
  starts[i] = NONE
}

/** Arrays a stream's scans reuse (one slot per recognizer). */
interface Scratch {
  readonly starts: Array<number>
  readonly ends: Array<number>
}

/**
 * Which recognizers may start a match at some character of `text[from, to)`: bit `i` for
 * recognizer `i` (all bits from the 31st on). A table per character code, filled from
 * `isStart` as characters are first seen; one pass over the text instead of one per recognizer.
 */
const startsPresent = (recs: ReadonlyArray<Compiled>): (text: string, from: number, to: number) => number => {
  const k = recs.length
  if (k > 31) return () => -1
  const maskOf = (code: number): number => {
    let mask = 0
    for (let i = 0; i < k; i++) if (recs[i]!.isStart(code)) mask |= 1 << i
    return mask
  }
  const ascii = new Int32Array(128).fill(-1)
  const other = new Map<number, number>()
  return (text, from, to) => {
    let present = 0
    for (let j = from; j < to; j++) {
      const code = text.charCodeAt(j)
      let mask: number | undefined
      if (code < 128) {
        mask = ascii[code]!
        if (mask === -1) mask = ascii[code] = maskOf(code)
      } else {
        mask = other.get(code)
        if (mask === undefined) {
          mask = maskOf(code)
          if (other.size < 65_536) other.set(code, mask)
        }
      }
      present |= mask
    }
    workCounter.steps += to - from
    return present
  }
}

/**
 * Redacts `text` from `from` up to `limit` (matches start before `limit`; one may end after
 * it), appending the output to `out` and counting matches per recognizer in `counts`. Below
 * `limit` every decision must be final (`limit` is the text's length when the text is
 * complete). Returns the position up to which the text was consumed.
 */
const scan = (
  recs: ReadonlyArray<Compiled>,
  text: string,
  from: number,
  limit: number,
  out: Array<string>,
  counts: Array<number>,
  findings?: Array<Finding>,
  present = -1,
  scratch?: Scratch
): number => {
  const k = recs.length
  const starts = scratch?.starts ?? new Array<number>(k)
  const ends = scratch?.ends ?? new Array<number>(k).fill(0)
  // A recognizer none of whose start characters occur below `limit` has no match there.
  for (let i = 0; i < k; i++) starts[i] = i > 30 || (present & (1 << i)) !== 0 ? UNKNOWN : NONE
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
    const r = recs[best]!
    out.push(r.replace === undefined ? r.marker : r.replace(text.slice(bestStart, ends[best]!)))
    counts[best]!++
    p = ends[best]!
    if (findings !== undefined) findings.push({ kind: recs[best]!.kind, start: bestStart, end: p })
  }
  const cut = Math.max(p, limit)
  if (cut > p) out.push(text.slice(p, cut))
  return cut
}

/**
 * Where a stream must hold back, kept up to date as text arrives so that no push looks at
 * earlier text again. For each recognizer: `runStart`, the start of the trailing run of its
 * alphabet, and `hold`, the first start character at or after the lowest position whose
 * decision could still change (the run's start, the scan position, or `maxLength - 1` before
 * the end, whichever is last), or the end of the text. All three bounds only grow, so `hold`
 * only moves forward and every character is looked at once per recognizer.
 */
interface Holds {
  readonly runStart: Int32Array
  readonly hold: Int32Array
  /** How much of the text the runs have seen. */
  seen: number
}

const makeHolds = (k: number): Holds => ({ runStart: new Int32Array(k), hold: new Int32Array(k), seen: 0 })

/** Brings `holds` up to `text` and returns the smallest hold (see `Holds`). */
const advanceHolds = (recs: ReadonlyArray<Compiled>, holds: Holds, text: string, from: number): number => {
  const n = text.length
  const seen = holds.seen
  let limit = n
  for (let i = 0; i < recs.length; i++) {
    const r = recs[i]!
    // The trailing run, looked at from the end back to the first character outside the alphabet.
    let j = n
    while (j > seen && r.inAlphabet(text.charCodeAt(j - 1))) j--
    workCounter.steps += n - j + 1
    const runStart = j > seen ? j : holds.runStart[i]!
    holds.runStart[i] = runStart
    const h = nextStart(r, text, Math.max(holds.hold[i]!, runStart, from, n - r.maxLength + 1), n)
    holds.hold[i] = h
    if (h < limit) limit = h
  }
  holds.seen = n
  return limit
}

/** Moves every position in `holds` back by `by` (the buffer lost that many characters at its start). */
const shiftHolds = (holds: Holds, by: number): void => {
  for (let i = 0; i < holds.hold.length; i++) {
    holds.runStart[i] = holds.runStart[i]! - by
    holds.hold[i] = holds.hold[i]! - by
  }
  holds.seen -= by
}

/** Streaming redaction state for one text. */
export interface Stream {
  readonly push: (chunk: string) => string
  readonly end: () => string
  readonly redactions: () => ReadonlyArray<RedactionCount>
}

/** A prepared set of recognizers. */
export interface Engine {
  readonly redact: (text: string) => {
    readonly text: string
    readonly redactions: ReadonlyArray<RedactionCount>
    readonly findings: ReadonlyArray<Finding>
  }
  /** Redacts and adds the per-recognizer counts to `counts` (for aggregating many texts), and the matches to `findings`. */
  readonly redactInto: (text: string, counts: Array<number>, findings?: Array<Finding>) => string
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

  const redactInto = (text: string, counts: Array<number>, findings?: Array<Finding>): string => {
    if (recs.length === 0 || text.length === 0) return text
    const out: Array<string> = []
    scan(recs, text, 0, text.length, out, counts, findings)
    return out.length === 1 ? out[0]! : out.join("")
  }

  const present = startsPresent(recs)
  const stream = (): Stream => {
    const counts = new Array<number>(recs.length).fill(0)
    const scratch: Scratch = { starts: new Array<number>(recs.length), ends: new Array<number>(recs.length).fill(0) }
    // `buffer` holds up to `contextLength` characters already emitted (for lookbehind), then
    // the text not yet emitted, which starts at `pos`.
    let buffer = ""
    let pos = 0
    const holds = makeHolds(recs.length)
    return {
      push: (chunk) => {
        if (chunk.length === 0) return ""
        if (recs.length === 0) return chunk
        buffer += chunk
        // A trailing high surrogate is half a character: its meaning depends on what follows,
        // so it is not looked at until the next push.
        const text = isHighSurrogate(buffer.charCodeAt(buffer.length - 1)) ? buffer.slice(0, -1) : buffer
        let limit = advanceHolds(recs, holds, text, pos)
        // never cut a surrogate pair in two
        if (
          limit > pos && limit < text.length && isHighSurrogate(text.charCodeAt(limit - 1)) &&
          isLowSurrogate(text.charCodeAt(limit))
        ) limit--
        // Nothing new is final: the held-back text is not looked at again.
        if (limit <= pos) return ""
        const out: Array<string> = []
        // Short pushes (a token) are gated by one pass over their characters; long ones search.
        const cut = scan(
          recs,
          text,
          pos,
          limit,
          out,
          counts,
          undefined,
          limit - pos <= presentMaxChars ? present(text, pos, limit) : -1,
          scratch
        )
        let keep = Math.max(0, cut - contextLength)
        if (keep > 0 && isLowSurrogate(buffer.charCodeAt(keep))) keep--
        if (keep > 0) {
          buffer = buffer.slice(keep)
          shiftHolds(holds, keep)
        }
        pos = cut - keep
        return out.length === 1 ? out[0]! : out.join("")
      },
      end: () => {
        const out: Array<string> = []
        if (pos < buffer.length) scan(recs, buffer, pos, buffer.length, out, counts)
        buffer = ""
        pos = 0
        holds.runStart.fill(0)
        holds.hold.fill(0)
        holds.seen = 0
        return out.join("")
      },
      redactions: () => summarize(counts)
    }
  }

  return {
    redact: (text) => {
      const counts = new Array<number>(recs.length).fill(0)
      const findings: Array<Finding> = []
      if (recs.length === 0 || text.length === 0) return { text, redactions: [], findings }
      const out: Array<string> = []
      scan(recs, text, 0, text.length, out, counts, findings)
      return { text: out.length === 1 ? out[0]! : out.join(""), redactions: summarize(counts), findings }
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
  if (spec.replace !== undefined && typeof spec.replace !== "function") {
    return { field: "replace", message: "must be a function" }
  }
  return undefined
}
