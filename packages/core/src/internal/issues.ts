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
