/**
 * The normalised view the built-in block rules judge: obfuscation folded away so that "h4ck",
 * "m a l w a r e", a Cyrillic "а" in "hаck" or a zero-width space inside a word read as the
 * plain word. The view is for judging only: what is sent and stored is the caller's text.
 *
 * Steps, in order: Unicode NFKC; removal of zero-width characters, soft hyphens and joiners;
 * lower case; Cyrillic and Greek letters that look like Latin ones folded to them; leetspeak
 * digits and symbols inside a word folded to letters; runs of three or more single letters
 * separated by one space or punctuation mark joined into one word. Linear in the text.
 *
 * @internal
 */

const invisible = /[\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0]/g

/** Lower-case Cyrillic and Greek letters drawn like a Latin letter (Unicode confusables). */
const lookAlikes: Record<string, string> = {
  // Cyrillic
  "а": "a", "в": "b", "с": "c", "ԁ": "d", "е": "e", "ё": "e", "һ": "h", "і": "i", "ї": "i", "ј": "j",
  "к": "k", "ӏ": "l", "м": "m", "н": "h", "о": "o", "р": "p", "ԛ": "q", "г": "r", "ѕ": "s", "т": "t",
  "у": "y", "ү": "y", "х": "x", "ԝ": "w", "ѡ": "w", "ь": "b", "п": "n", "и": "u", "з": "3",
  // Greek
  "α": "a", "β": "b", "ϲ": "c", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
  "τ": "t", "υ": "u", "χ": "x", "γ": "y", "ω": "w", "μ": "u", "ϳ": "j", "ѵ": "v"
}
const lookAlikePattern = new RegExp(`[${Object.keys(lookAlikes).join("")}]`, "gu")

/** Leetspeak: digits and symbols standing for letters. */
const leet: Record<string, string> = {
  "0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t",
  "@": "a", "$": "s", "!": "i", "|": "l", "+": "t", "€": "e", "£": "l"
}

// A word that may mix letters with leet characters ("h4ck", "m@lw@re", "$teal"); numbers stay.
const leetToken = /[\p{L}0-9@$!|+€£]+/gu
// "!", "|" and "+" only before a letter: "hack!" and "c++" keep them
const leetChar = /[013457@$€£]|[!|+](?=\p{L})/gu
const letter = /\p{L}/u

// Three or more single letters, each followed by one separator: "m a l w a r e", "h.a.c.k".
// The same separator throughout, so "b.u.i.l.d r.a.n.s.o.m" keeps its two words.
const spacedLetters = /(?<![\p{L}\p{N}])\p{L}([ .\-_*·•/])\p{L}(?![\p{L}\p{N}])(?:\1\p{L}(?![\p{L}\p{N}])){1,}/gu

/** Joins a run of spaced letters; a leading "i" or "a" before a spaced word stays a word. */
const joinRun = (run: string): string => {
  const joined = run.replace(/[ .\-_*·•/]/g, "")
  return (joined[0] === "i" || joined[0] === "a") && run[1] === " " && joined.length >= 4
    ? joined[0] + " " + joined.slice(1)
    : joined
}

/** The normalised view of `text` (see the module comment). */
export const normalize = (text: string): string => {
  let view = text.normalize("NFKC").replace(invisible, "").toLowerCase()
  view = view.replace(lookAlikePattern, (c) => lookAlikes[c] ?? c)
  view = view.replace(leetToken, (token) => letter.test(token) ? token.replace(leetChar, (c) => leet[c] ?? c) : token)
  view = view.replace(spacedLetters, joinRun)
  return view
}
