/**
 * PromptTemplate: `$`-placeholders with the semantics of Python's `string.Template`, so
 * templates shared with Python services render the same here.
 *
 * - `$name` and `${name}` are placeholders; a name is an ASCII identifier `[_a-zA-Z][_a-zA-Z0-9]*`
 *   (`$name` takes the longest such run, so `${name}s` is how to write a suffix).
 * - `$$` is a literal `$`.
 * - Any other `$` (before a digit, a space, the end, `{` without a valid `name}` …) is an
 *   invalid placeholder.
 * - Substituted values are inserted as they are, never scanned for placeholders again.
 *
 * Errors carry the 1-based line and column of the offending `$`, counted as Python counts them
 * (code points; every line break `str.splitlines` knows ends a line, `\r\n` counting once).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { TemplateError } from "./GatewayError.js"

/**
 * The values to substitute, by placeholder name: a plain object (own properties only, so
 * `$constructor` or `$__proto__` never reach the prototype) or a `Map`.
 *
 * @since 0.1.0
 * @category Models
 */
export type Variables = Readonly<Record<string, string>> | ReadonlyMap<string, string>

const DOLLAR = 0x24
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d

const isIdentifierStart = (c: number) => (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f

const isIdentifierPart = (c: number) => isIdentifierStart(c) || (c >= 0x30 && c <= 0x39)

/** The end of the identifier starting at `start` (`start` itself when there is none). */
const identifierEnd = (template: string, start: number): number => {
  if (start >= template.length || !isIdentifierStart(template.charCodeAt(start))) return start
  let end = start + 1
  while (end < template.length && isIdentifierPart(template.charCodeAt(end))) end++
  return end
}

/** One `$` and what follows it. `end` is where literal text resumes. */
type Placeholder =
  | { readonly _tag: "Escaped"; readonly start: number; readonly end: number }
  | { readonly _tag: "Named"; readonly start: number; readonly end: number; readonly name: string }
  | { readonly _tag: "Invalid"; readonly start: number; readonly end: number }

/** Reads the placeholder at `start` (the index of a `$`), as Python's pattern would. */
const placeholderAt = (template: string, start: number): Placeholder => {
  const next = template.charCodeAt(start + 1)
  if (next === DOLLAR) return { _tag: "Escaped", start, end: start + 2 }
  const named = identifierEnd(template, start + 1)
  if (named > start + 1) return { _tag: "Named", start, end: named, name: template.slice(start + 1, named) }
  if (next === OPEN_BRACE) {
    const braced = identifierEnd(template, start + 2)
    if (braced > start + 2 && template.charCodeAt(braced) === CLOSE_BRACE) {
      return { _tag: "Named", start, end: braced + 1, name: template.slice(start + 2, braced) }
    }
  }
  // Python's `invalid` alternative matches the `$` alone; scanning resumes right after it.
  return { _tag: "Invalid", start, end: start + 1 }
}

const lookup = (variables: Variables, name: string): string | undefined => {
  if (variables instanceof Map) {
    const value = (variables as ReadonlyMap<string, string>).get(name)
    return value === undefined ? undefined : String(value)
  }
  const record = variables as Readonly<Record<string, string>>
  return Object.prototype.hasOwnProperty.call(record, name) ? String(record[name]) : undefined
}

const isLineBreak = (c: number) =>
  c === 0x0a || c === 0x0b || c === 0x0c || c === 0x0d || c === 0x1c || c === 0x1d || c === 0x1e ||
  c === 0x85 || c === 0x2028 || c === 0x2029

/** The 1-based line and column of the character at `index`, as Python's `string.Template` reports them. */
const position = (template: string, index: number): { readonly line: number; readonly column: number } => {
  let line = 1
  let column = 1
  for (let i = 0; i < index; i++) {
    const c = template.charCodeAt(i)
    if (isLineBreak(c)) {
      if (c === 0x0d && template.charCodeAt(i + 1) === 0x0a && i + 1 < index) i++
      line++
      column = 1
      continue
    }
    // A surrogate pair is one code point.
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < index) {
      const d = template.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) i++
    }
    column++
  }
  return { line, column }
}

const render = (template: string, variables: Variables, strict: boolean): Either.Either<string, TemplateError> => {
  let out = ""
  let last = 0
  let at = template.indexOf("$")
  while (at !== -1) {
    out += template.slice(last, at)
    const placeholder = placeholderAt(template, at)
    switch (placeholder._tag) {
      case "Escaped": {
        out += "$"
        break
      }
      case "Named": {
        const value = lookup(variables, placeholder.name)
        if (value !== undefined) {
          out += value
        } else if (strict) {
          return Either.left(
            new TemplateError({ reason: "MissingVariable", key: placeholder.name, ...position(template, at) })
          )
        } else {
          out += template.slice(placeholder.start, placeholder.end)
        }
        break
      }
      case "Invalid": {
        if (strict) {
          return Either.left(new TemplateError({ reason: "InvalidPlaceholder", ...position(template, at) }))
        }
        out += "$"
        break
      }
    }
    last = placeholder.end
    at = template.indexOf("$", last)
  }
  return Either.right(out + template.slice(last))
}

/**
 * Renders a template, failing on the first problem from the left: a placeholder whose variable
 * is missing (`TemplateError{reason: "MissingVariable", key, line, column}`) or an invalid
 * placeholder (`TemplateError{reason: "InvalidPlaceholder", line, column}`). Like Python's
 * `Template.substitute`.
 *
 * @since 0.1.0
 * @category Rendering
 */
export const substitute = (template: string, variables: Variables): Effect.Effect<string, TemplateError> =>
  Effect.suspend(() => render(template, variables, true))

/**
 * The length of what `safeSubstitute` would return (and `substitute`, when it succeeds),
 * computed without building the text: a short template can repeat a long variable many times,
 * so callers bound the result before rendering it.
 *
 * @since 0.1.0
 * @category Rendering
 */
export const renderedLength = (template: string, variables: Variables): number => {
  let length = 0
  let last = 0
  let at = template.indexOf("$")
  while (at !== -1) {
    length += at - last
    const placeholder = placeholderAt(template, at)
    if (placeholder._tag === "Named") {
      const value = lookup(variables, placeholder.name)
      length += value === undefined ? placeholder.end - placeholder.start : value.length
    } else {
      length += 1
    }
    last = placeholder.end
    at = template.indexOf("$", last)
  }
  return length + template.length - last
}

/**
 * Renders a template without failing: placeholders without a variable and invalid placeholders
 * stay exactly as written; `$$` still becomes `$`. Like Python's `Template.safe_substitute`.
 *
 * @since 0.1.0
 * @category Rendering
 */
export const safeSubstitute = (template: string, variables: Variables): string =>
  Either.getOrThrow(render(template, variables, false))

/**
 * Escapes literal text for use inside a template (every `$` doubled), so that rendering gives
 * the text back unchanged.
 *
 * @since 0.1.0
 * @category Utils
 */
export const escape = (text: string): string => text.replaceAll("$", () => "$$")

const placeholders = function*(template: string): Generator<Placeholder> {
  let at = template.indexOf("$")
  while (at !== -1) {
    const placeholder = placeholderAt(template, at)
    yield placeholder
    at = template.indexOf("$", placeholder.end)
  }
}

/**
 * The placeholder names a template uses, in order of first use, without duplicates; invalid
 * placeholders are ignored. Like Python's `Template.get_identifiers`.
 *
 * @since 0.1.0
 * @category Utils
 */
export const identifiers = (template: string): ReadonlyArray<string> => {
  const names = new Set<string>()
  for (const placeholder of placeholders(template)) {
    if (placeholder._tag === "Named") names.add(placeholder.name)
  }
  return [...names]
}

/**
 * Whether a template has no invalid placeholder (missing variables are not checked). Like
 * Python's `Template.is_valid`.
 *
 * @since 0.1.0
 * @category Guards
 */
export const isValid = (template: string): boolean => {
  for (const placeholder of placeholders(template)) {
    if (placeholder._tag === "Invalid") return false
  }
  return true
}
