/**
 * Tool-call arguments: redaction of their values (so the JSON stays valid whatever a recognizer
 * writes), and completing a streamed call into a `ToolCall` or a `ToolCallError` (parse, check,
 * decode with the tool's Schema), Effect-free. Issues name paths and what is wrong, never a value.
 */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Tool from "../Tool.js"
import { ToolCall, ToolCallError } from "../Part.js"
import { formatPath } from "./issues.js"

/** At most this many issues are reported for one call. */
const maxIssues = 10
const maxIssueLength = 200

/** Arguments nested deeper than this are malformed (the walks below recurse). */
export const maxDepth = 64

/**
 * A JSON value with every string (keys included) passed through `redact`, and every number
 * whose text a recognizer changes replaced by the redacted text (a string): a phone number sent
 * as a number leaves as `"[PHONE]"`, still valid JSON. `changed` says whether anything changed;
 * `tooDeep` that the value nests deeper than `maxDepth` (what is deeper is left out).
 */
export const redactJson = (
  value: unknown,
  redact: (text: string) => string
): { readonly value: unknown; readonly changed: boolean; readonly tooDeep: boolean } => {
  let changed = false
  let tooDeep = false
  const walk = (v: unknown, depth: number): unknown => {
    if (depth > maxDepth) {
      tooDeep = true
      return null
    }
    if (typeof v === "string") {
      const r = redact(v)
      if (r !== v) changed = true
      return r
    }
    if (typeof v === "number") {
      const text = String(v)
      const r = redact(text)
      if (r === text) return v
      changed = true
      return r
    }
    if (Array.isArray(v)) return v.map((item) => walk(item, depth + 1))
    if (typeof v === "object" && v !== null) {
      const out: Record<string, unknown> = {}
      for (const [key, item] of Object.entries(v)) {
        const k = redact(key)
        if (k !== key) changed = true
        Object.defineProperty(out, k, { value: walk(item, depth + 1), enumerable: true, writable: true, configurable: true })
      }
      return out
    }
    return v
  }
  const out = walk(value, 0)
  return { value: out, changed, tooDeep }
}

/** `JSON.parse` without throwing. */
const parseJson = (text: string): { readonly ok: true; readonly value: unknown } | { readonly ok: false } => {
  try {
    return { ok: true, value: JSON.parse(text) }
  } catch {
    return { ok: false }
  }
}

/**
 * Arguments JSON text with its values redacted: valid JSON is parsed, redacted by value and
 * written back (unchanged text stays as it was); anything else is redacted as text.
 */
export const redactArguments = (text: string, redact: (text: string) => string): string => {
  const parsed = parseJson(text)
  if (!parsed.ok) return redact(text)
  const redacted = redactJson(parsed.value, redact)
  if (redacted.tooDeep) return redact(text)
  return redacted.changed ? JSON.stringify(redacted.value) : text
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/** The issues of a Schema mismatch: the path and the kind of each, never a value. */
const schemaIssues = (error: ParseResult.ParseError): Array<string> => {
  try {
    const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
    const lines = [...new Set(issues.map((issue) => {
      const what = issue._tag === "Missing"
        ? "is missing"
        : issue._tag === "Unexpected"
        ? "is not expected"
        : issue._tag === "Forbidden"
        ? "cannot be checked"
        : "does not match the tool's Schema"
      const line = `${formatPath(issue.path, "arguments")}: ${what}`
      return line.length > maxIssueLength ? `${line.slice(0, maxIssueLength - 3)}...` : line
    }))]
    // A union reports each member that did not match: one line per path and kind is enough.
    return lines.length > maxIssues ? [...lines.slice(0, maxIssues), `and ${lines.length - maxIssues} more`] : lines
  } catch {
    return ["arguments: could not be decoded"]
  }
}

const toolNamePattern = /^[a-zA-Z0-9_-]{1,64}$/

/** Whether a text is a valid tool name. */
export const isToolName = (name: string): boolean => toolNamePattern.test(name)

/** A streamed tool call, assembled: what `complete` turns into a part. */
export interface Assembled {
  readonly index: number
  readonly id: string
  readonly name: string
  /** The arguments' JSON text as received (raw: never stored, logged or returned). */
  readonly raw: string
}

/**
 * Completes an assembled call: the name must be valid and, when the request declared tools,
 * one of them; the arguments must be a JSON object; they are redacted by value (counted by
 * `redact`) and, for a tool made by `Tool.make`, decoded with its Schema. The raw text is
 * dropped here: a `ToolCall` holds the redacted arguments, a `ToolCallError` none.
 */
export const complete = (
  call: Assembled,
  tools: ReadonlyArray<Tool.AnyTool> | undefined,
  redact: (text: string) => string
): ToolCall | ToolCallError => {
  const { id, index, name } = call
  const error = (reason: ToolCallError["reason"], issues: ReadonlyArray<string>) =>
    new ToolCallError({ index, id, name: toolNamePattern.test(name) ? name : "", reason, issues })
  if (!toolNamePattern.test(name)) return error("invalidName", [])
  const declared = tools?.find((tool) => tool.name === name)
  if (tools !== undefined && tools.length > 0 && declared === undefined) return error("unknownTool", [])
  // An empty text is an empty arguments object (some gateways send none for a tool without parameters).
  const parsed = call.raw.trim().length === 0 ? { ok: true as const, value: {} } : parseJson(call.raw)
  if (!parsed.ok || !isRecord(parsed.value)) return error("malformed", [])
  const redacted = redactJson(parsed.value, redact)
  if (redacted.tooDeep) return error("malformed", [`arguments: nest deeper than ${maxDepth} levels`])
  const rawArguments = redacted.changed || call.raw.trim().length === 0 ? JSON.stringify(redacted.value) : call.raw
  return decodeArguments({ index, id, name, value: redacted.value, rawArguments }, declared)
}

/**
 * The `ToolCall` of redacted arguments (already parsed), decoded with the tool's Schema when it
 * was made by `Tool.make`, or the `ToolCallError` of a mismatch. A cached call is replayed
 * through here too, so it is decoded exactly as it was the first time.
 */
export const decodeArguments = (
  call: { readonly index: number; readonly id: string; readonly name: string; readonly value: unknown; readonly rawArguments: string },
  declared: Tool.AnyTool | undefined
): ToolCall | ToolCallError => {
  const { id, index, name, rawArguments } = call
  if (declared === undefined || !Tool.isTool(declared)) {
    return new ToolCall({ index, id, name, arguments: call.value, rawArguments })
  }
  const decoded = Schema.decodeUnknownEither(declared.schema as Schema.Schema<unknown, unknown, never>)(call.value, {
    errors: "all",
    onExcessProperty: "ignore"
  })
  return Either.isRight(decoded)
    ? new ToolCall({ index, id, name, arguments: decoded.right, rawArguments })
    : new ToolCallError({ index, id, name, reason: "invalid", issues: schemaIssues(decoded.left) })
}

/** Re-decodes a stored call (its redacted arguments text) for a replay from the cache. */
export const replay = (
  call: { readonly index: number; readonly id: string; readonly name: string; readonly rawArguments: string },
  tools: ReadonlyArray<Tool.AnyTool> | undefined
): ToolCall | ToolCallError => {
  const parsed = parseJson(call.rawArguments)
  if (!parsed.ok || !isRecord(parsed.value)) {
    return new ToolCallError({ index: call.index, id: call.id, name: call.name, reason: "malformed", issues: [] })
  }
  return decodeArguments({ ...call, value: parsed.value }, tools?.find((tool) => tool.name === call.name))
}
