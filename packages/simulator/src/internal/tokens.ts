/**
 * The simulator's own deterministic tokenizer. It only decides how a reply is cut into
 * streamed pieces and what usage numbers to report; it is not a model tokenizer, and its
 * counts are close to, not equal to, a real BPE count (about four characters per token).
 *
 * @internal
 */

// A word with the whitespace before it, a run of punctuation with the whitespace before it,
// or trailing whitespace: the same shape as the pieces GPT-style tokenizers produce.
const PIECE = /\s*[\p{L}\p{M}\p{N}_]+|\s*[^\s\p{L}\p{M}\p{N}_]+|\s+/gu

const MAX_PIECE = 6
const SPLIT_PIECE = 4

/** Cuts `text` into tokens. Joining the tokens gives back `text` exactly. */
export const tokenize = (text: string): Array<string> => {
  const out: Array<string> = []
  for (const match of text.matchAll(PIECE)) {
    const piece = match[0]
    // Split by code point, never inside a surrogate pair, so every token is a valid string.
    const points = Array.from(piece)
    if (points.length <= MAX_PIECE) {
      out.push(piece)
      continue
    }
    for (let i = 0; i < points.length; i += SPLIT_PIECE) {
      out.push(points.slice(i, i + SPLIT_PIECE).join(""))
    }
  }
  return out
}

/** How many tokens `text` has by the simulator's tokenizer. */
export const count = (text: string): number => tokenize(text).length
