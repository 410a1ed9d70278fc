/**
 * The output block policy: block rules judged on the reply as it streams, sentence by
 * sentence, after PII redaction. A sentence ends after a line break, after `.`, `!`, `?` or
 * `…` followed by white space, after `。`, `！` or `？`, or at `maxSentenceChars`; where a
 * sentence ends depends on the text alone, so every split of a reply into pushes judges the
 * same sentences and gives the same outcome. A sentence is held until it ends (at most
 * `maxSentenceChars`), so nothing is emitted before it is judged.
 *
 * A matching rule whose action is `fail` ends the reply before that sentence; one whose action
 * is `mask` replaces what it matched (its RegExp's matches in the sentence as written, or the
 * whole sentence when only a function or the normalised view matched) by `[BLOCKED]`.
 *
 * @internal
 */

/** One rule as the judge uses it. */
export interface OutputRule {
  readonly category: string
  readonly rule: string
  readonly action: "fail" | "mask"
  /** Whether the rule matches a sentence (leading white space removed). */
  readonly matches: (sentence: string) => boolean
  /** A global RegExp finding the spans to mask in the text as written, if the rule has one. */
  readonly spans: RegExp | undefined
}

/** The longest sentence: a longer run without an end is judged in pieces of this length. */
export const maxSentenceChars = 1_000

/** What a masked span becomes. */
export const blockedMarker = "[BLOCKED]"

/** Streaming judgement of one reply. */
export interface Judge {
  /** Judged text that may be emitted now. Empty once a `fail` rule matched. */
  readonly push: (text: string) => string
  /** Judges and returns the last sentence. */
  readonly end: () => string
  /** The `fail` rule that matched, if any. */
  readonly violation: () => OutputRule | undefined
  /** How many spans or sentences were masked. */
  readonly masked: () => number
}

const isTerminal = (c: string) => c === "." || c === "!" || c === "?" || c === "\u2026"
const isFullWidthTerminal = (c: string) => c === "\u3002" || c === "\uff01" || c === "\uff1f"
const isSpace = (c: string) => /\s/.test(c)
const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff

/** A judge over `rules` (in the policy's order: the first matching `fail` rule is reported). */
export const makeJudge = (rules: ReadonlyArray<OutputRule>): Judge => {
  const failing = rules.filter((r) => r.action === "fail")
  const masking = rules.filter((r) => r.action === "mask")
  let pending = ""
  /** How far `pending` was searched for a sentence end. */
  let searched = 0
  let violation: OutputRule | undefined
  let masked = 0

  const judge = (sentence: string): string => {
    const body = sentence.trimStart()
    if (body.length === 0) return sentence
    for (const r of failing) {
      if (r.matches(body)) {
        violation = r
        return ""
      }
    }
    let out = body
    for (const r of masking) {
      if (!r.matches(out)) continue
      let n = 0
      const spanned = r.spans === undefined ? out : out.replace(r.spans, () => {
        n++
        return blockedMarker
      })
      if (n > 0) {
        out = spanned
        masked += n
      } else {
        // Matched by a function or only on the normalised view: the whole sentence goes.
        masked++
        out = blockedMarker
        break
      }
    }
    return sentence.slice(0, sentence.length - body.length) + out
  }

  /** The end of the first sentence of `pending`, or -1 when it may still grow. */
  const sentenceEnd = (): number => {
    const limit = Math.min(pending.length, maxSentenceChars)
    for (let i = searched; i < limit; i++) {
      const c = pending[i]!
      if (c === "\n" || isFullWidthTerminal(c)) return i + 1
      if (isTerminal(c)) {
        if (i + 1 >= pending.length) {
          searched = i
          return -1
        }
        if (isSpace(pending[i + 1]!)) return i + 1
      }
    }
    if (pending.length >= maxSentenceChars) {
      // Cut at the limit, never inside a surrogate pair.
      return isHighSurrogate(pending.charCodeAt(maxSentenceChars - 1)) ? maxSentenceChars - 1 : maxSentenceChars
    }
    searched = pending.length
    return -1
  }

  return {
    push: (text) => {
      if (violation !== undefined) return ""
      pending += text
      let out = ""
      for (let end = sentenceEnd(); end >= 0; end = sentenceEnd()) {
        const sentence = pending.slice(0, end)
        pending = pending.slice(end)
        searched = 0
        const judged = judge(sentence)
        if (violation !== undefined) {
          // The sentences before the matching one were judged safe: they go out.
          pending = ""
          return out
        }
        out += judged
      }
      return out
    },
    // After a push no sentence in `pending` has ended: the rest is the last sentence.
    end: () => {
      const rest = pending
      pending = ""
      searched = 0
      if (violation !== undefined || rest.length === 0) return ""
      return judge(rest)
    },
    violation: () => violation,
    masked: () => masked
  }
}
