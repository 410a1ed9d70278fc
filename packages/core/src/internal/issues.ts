/**
 * The one way a parse error is reported where the values may be secret or user text (a token
 * response, a gateway's event, a request): the paths of the fields that did not match, never
 * their values.
 */
import * as ParseResult from "effect/ParseResult"

/** A path as dotted text; `root` names the whole value. Symbol keys are not printed. */
export const formatPath = (path: ReadonlyArray<PropertyKey>, root: string): string =>
  path.length === 0 ? root : path.map((key) => typeof key === "symbol" ? "[symbol]" : String(key)).join(".")

/** The distinct paths of the fields that did not match, in order. */
export const paths = (error: ParseResult.ParseError, root = "(root)"): ReadonlyArray<string> => [
  ...new Set(ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) => formatPath(issue.path, root)))
]

/** What a schema expects, from its annotations or its structure (never from a value), cut. */
const expected = (ast: unknown): string => {
  let text: string
  try {
    text = String(ast)
  } catch {
    text = "another value"
  }
  return text.length > 120 ? `${text.slice(0, 117)}...` : text
}

/**
 * The issues of a failed decode as `path: what was expected` lines, built from the schema
 * alone: neither the value nor a message (a custom message may quote the value) is read. At
 * most `max` lines, then a count of the rest.
 */
export const describe = (error: ParseResult.ParseError, root: string, max = 20): ReadonlyArray<string> => {
  const lines: Array<string> = []
  let more = 0
  const push = (path: ReadonlyArray<PropertyKey>, text: string) => {
    if (lines.length < max) lines.push(`${formatPath(path, root)}: ${text}`)
    else more++
  }
  const walk = (issue: ParseResult.ParseIssue, path: ReadonlyArray<PropertyKey>, depth: number): void => {
    // Schemas nest as deep as their values; a pathological one is reported where it ends.
    if (depth > 200) return push(path, "does not match")
    switch (issue._tag) {
      case "Pointer":
        return walk(issue.issue, [...path, ...(Array.isArray(issue.path) ? issue.path : [issue.path])], depth + 1)
      case "Composite": {
        const inner = Array.isArray(issue.issues) ? issue.issues : [issue.issues]
        // A union none of whose members matched at this place: one line naming the union.
        if (issue.ast._tag === "Union" && inner.every((i) => i._tag === "Type")) return push(path, `expected ${expected(issue.ast)}`)
        for (const i of inner) walk(i, path, depth + 1)
        return
      }
      case "Refinement":
        return issue.kind === "From" ? walk(issue.issue, path, depth + 1) : push(path, `expected ${expected(issue.ast)}`)
      case "Transformation":
        return walk(issue.issue, path, depth + 1)
      case "Type":
        return push(path, `expected ${expected(issue.ast)}`)
      case "Missing":
        return push(path, "is missing")
      case "Unexpected":
        return push(path, "is not expected")
      case "Forbidden":
        return push(path, "cannot be checked here")
    }
  }
  walk(error.issue, [], 0)
  if (more > 0) lines.push(`and ${more} more`)
  return lines
}
