/**
 * Reads an untrusted request into plain data before Schema decoding sees it.
 *
 * A caller's request may be anything: nested 10,000 deep, full of getters that throw, a Proxy
 * whose traps throw, an object whose `toString` throws, megabytes of text. Schema decoding
 * and its error formatting recurse into whatever they are given and call into it, so this pass
 * reads only the fields a `ChatRequest` has, each at most once and inside `try`, and copies
 * them into fresh objects of a fixed depth. Anything that is not a primitive where a primitive
 * belongs becomes an inert placeholder that Schema rejects with an ordinary issue. Sizes are
 * checked here too, before any text is scanned or tokenized, with issues that name the limit.
 * Issue texts hold field paths and numbers only, never a value.
 *
 * @internal
 */
import type { InputLimits } from "../Chat.js"
import { isModelId, maxModelIdLength } from "../Models.js"
import * as StructuredOutput from "../StructuredOutput.js"
import * as Tool from "../Tool.js"

/** What Schema sees instead of a value it must not touch (an object, function, symbol …). */
const opaque: object = Object.freeze({})

type Read = { readonly ok: true; readonly value: unknown } | { readonly ok: false }

const failed: Read = { ok: false }

const read = (target: object, key: string): Read => {
  try {
    return { ok: true, value: (target as Record<string, unknown>)[key] }
  } catch {
    return failed
  }
}

const isObject = (value: unknown): value is object =>
  (typeof value === "object" && value !== null) || typeof value === "function"

/** A primitive as it is; anything else as `opaque`. */
const leaf = (value: unknown): unknown =>
  value === null || typeof value === "string" || typeof value === "number" || typeof value === "boolean" ||
    value === undefined
    ? value
    : opaque

const isArray = (value: unknown): boolean => {
  try {
    return Array.isArray(value)
  } catch {
    return false
  }
}

const isMap = (value: unknown): value is Map<unknown, unknown> => {
  try {
    return value instanceof Map
  } catch {
    return false
  }
}

const unreadable = (path: string) => `${path}: could not be read (a getter or proxy threw)`

const tooLong = (path: string, length: number, limit: number, name: string) =>
  `${path}: ${length} characters exceed the limit of ${limit} (${name})`

/** A variable name in an issue path: only identifier-like names (what a placeholder can use). */
const variablePath = (name: unknown, index: number): string =>
  typeof name === "string" && /^[_A-Za-z][_A-Za-z0-9]{0,63}$/.test(name)
    ? `prompt.variables.${name}`
    : `prompt.variables (entry ${index + 1})`

/**
 * The result of `intake`: plain data for Schema to decode, or issues that already decide the
 * request is invalid.
 */
export type Intake =
  | { readonly _tag: "Plain"; readonly value: Record<string, unknown> }
  | { readonly _tag: "Issues"; readonly issues: ReadonlyArray<string> }

/** Copies the fields of a `ChatRequest` out of `input` (see the module comment). */
export const intake = (input: unknown, limits: InputLimits): Intake => {
  const issues: Array<string> = []
  if (typeof input !== "object" || input === null || isArray(input)) {
    return { _tag: "Issues", issues: ["request: must be an object with a model and messages"] }
  }
  let total = 0
  const text = (path: string, value: unknown): unknown => {
    if (typeof value === "string") {
      total += value.length
      if (value.length > limits.maxMessageChars) issues.push(tooLong(path, value.length, limits.maxMessageChars, "maxMessageChars"))
    }
    return leaf(value)
  }
  const field = (target: object, key: string, path: string): Read => {
    const r = read(target, key)
    if (!r.ok) issues.push(unreadable(path))
    return r
  }
  const out: Record<string, unknown> = {}
  const copy = (key: string, f: (value: unknown) => unknown) => {
    const r = field(input, key, key)
    if (r.ok && r.value !== undefined) out[key] = f(r.value)
  }

  // A huge id is refused by its length alone, without reading (or copying) its characters.
  copy("model", (model) => {
    if (typeof model === "string" && model.length > maxModelIdLength) {
      issues.push(`model: must be at most ${maxModelIdLength} characters (maxModelIdLength)`)
      return ""
    }
    return leaf(model)
  })
  copy("systemInstruction", (system) => text("systemInstruction", system))
  copy("temperature", leaf)
  copy("maxTokens", leaf)
  copy("cache", leaf)

  copy("messages", (messages) => {
    if (!isArray(messages)) return leaf(messages)
    const length = read(messages as object, "length")
    if (!length.ok || typeof length.value !== "number" || !Number.isSafeInteger(length.value) || length.value < 0) {
      issues.push(unreadable("messages"))
      return []
    }
    if (length.value > limits.maxMessages) {
      issues.push(`messages: ${length.value} messages exceed the limit of ${limits.maxMessages} (maxMessages)`)
      return []
    }
    const copied: Array<unknown> = []
    for (let i = 0; i < length.value; i++) {
      const element = field(messages as object, String(i), `messages.${i}`)
      if (!element.ok) continue
      if (!isObject(element.value) || isArray(element.value)) {
        copied.push(leaf(element.value))
        continue
      }
      const message: Record<string, unknown> = {}
      for (const key of ["role", "content", "name", "toolCallId"] as const) {
        const r = field(element.value, key, `messages.${i}.${key}`)
        if (r.ok && r.value !== undefined) message[key] = key === "role" ? leaf(r.value) : text(`messages.${i}.${key}`, r.value)
      }
      const calls = field(element.value, "toolCalls", `messages.${i}.toolCalls`)
      if (calls.ok && calls.value !== undefined) message["toolCalls"] = copyToolCalls(calls.value, `messages.${i}.toolCalls`)
      copied.push(message)
    }
    return copied
  })

  copy("prompt", (prompt) => {
    if (!isObject(prompt) || isArray(prompt)) return leaf(prompt)
    const copied: Record<string, unknown> = {}
    const template = field(prompt, "template", "prompt.template")
    if (template.ok && template.value !== undefined) copied["template"] = text("prompt.template", template.value)
    const variables = field(prompt, "variables", "prompt.variables")
    if (variables.ok && variables.value !== undefined) copied["variables"] = copyVariables(variables.value, limits, issues)
    return copied
  })

  copy("tools", (tools) => copyTools(tools))
  copy("responseFormat", (format) => copyResponseFormat(format))
  copy("toolChoice", (choice) => {
    if (!isObject(choice) || isArray(choice)) return leaf(choice)
    const name = field(choice, "name", "toolChoice.name")
    return name.ok ? { name: leaf(name.value) } : {}
  })

  if (issues.length === 0 && total > limits.maxPromptChars) {
    issues.push(
      `request: ${total} characters of messages, system instruction and template exceed the limit of ${limits.maxPromptChars} (maxPromptChars)`
    )
  }
  return issues.length > 0 ? { _tag: "Issues", issues } : { _tag: "Plain", value: out }

  /** An array's elements through `f`, or the array as `leaf` when it is not one. */
  function copyArray(value: unknown, path: string, f: (element: unknown, path: string) => unknown): unknown {
    if (!isArray(value)) return leaf(value)
    const length = read(value as object, "length")
    if (!length.ok || typeof length.value !== "number" || !Number.isSafeInteger(length.value) || length.value < 0) {
      issues.push(unreadable(path))
      return []
    }
    if (length.value > maxToolItems) {
      issues.push(`${path}: ${length.value} entries exceed the limit of ${maxToolItems}`)
      return []
    }
    const copied: Array<unknown> = []
    for (let i = 0; i < length.value; i++) {
      const element = field(value as object, String(i), `${path}.${i}`)
      if (element.ok) copied.push(f(element.value, `${path}.${i}`))
    }
    return copied
  }

  /** The tool calls of an assistant message: `id`, `name`, `arguments` (JSON text, counted). */
  function copyToolCalls(calls: unknown, path: string): unknown {
    return copyArray(calls, path, (call, at) => {
      if (!isObject(call) || isArray(call)) return leaf(call)
      const copied: Record<string, unknown> = {}
      for (const key of ["id", "name", "arguments"] as const) {
        const r = field(call, key, `${at}.${key}`)
        if (r.ok && r.value !== undefined) copied[key] = text(`${at}.${key}`, r.value)
      }
      return copied
    })
  }

  /**
   * The tools: one made by `Tool.make` is kept as it is (its Schema decodes the arguments; it
   * was built by our own constructor), a plain definition is copied with its JSON Schema
   * (bounded in depth and size, counted against the prompt's characters).
   */
  function copyTools(tools: unknown): unknown {
    return copyArray(tools, "tools", (tool, at) => {
      if (!isObject(tool) || isArray(tool)) return leaf(tool)
      const copied: Record<string, unknown> = {}
      for (const key of ["name", "description"] as const) {
        const r = field(tool, key, `${at}.${key}`)
        if (r.ok && r.value !== undefined) copied[key] = text(`${at}.${key}`, r.value)
      }
      const parameters = field(tool, "parameters", `${at}.parameters`)
      if (parameters.ok && parameters.value !== undefined) {
        const json = copyJson(parameters.value, `${at}.parameters`)
        if (json.ok) {
          total += json.chars
          copied["parameters"] = json.value
        }
      }
      if (!Tool.isTool(tool)) return copied
      const schema = field(tool, "schema", `${at}.schema`)
      return schema.ok ? { ...copied, [Tool.TypeId]: Tool.TypeId, schema: schema.value } : copied
    })
  }

  /**
   * The response format: one made by `StructuredOutput.make` keeps its Schema (which decodes
   * the reply), a plain one is copied; its JSON Schema is copied like a tool's parameters.
   */
  function copyResponseFormat(format: unknown): unknown {
    if (!isObject(format) || isArray(format)) return leaf(format)
    const copied: Record<string, unknown> = {}
    for (const key of ["name", "description"] as const) {
      const r = field(format, key, `responseFormat.${key}`)
      if (r.ok && r.value !== undefined) copied[key] = text(`responseFormat.${key}`, r.value)
    }
    const strict = field(format, "strict", "responseFormat.strict")
    if (strict.ok && strict.value !== undefined) copied["strict"] = leaf(strict.value)
    const jsonSchema = field(format, "jsonSchema", "responseFormat.jsonSchema")
    if (jsonSchema.ok && jsonSchema.value !== undefined) {
      const json = copyJson(jsonSchema.value, "responseFormat.jsonSchema")
      if (json.ok) {
        total += json.chars
        copied["jsonSchema"] = json.value
      }
    }
    if (!StructuredOutput.isStructuredOutput(format)) return copied
    const schema = field(format, "schema", "responseFormat.schema")
    return schema.ok ? { ...copied, [StructuredOutput.TypeId]: StructuredOutput.TypeId, schema: schema.value } : copied
  }

  /**
   * A JSON value (a JSON Schema) copied as plain data
: at most `maxJsonDepth` deep and
   * `limits.maxMessageChars` characters of keys and strings; anything else is an issue.
   */
  function copyJson(value: unknown, path: string): { readonly ok: true; readonly value: unknown; readonly chars: number } | {
    readonly ok: false
  } {
    let chars = 0
    let bad: string | undefined
    const walk = (v: unknown, depth: number): unknown => {
      if (bad !== undefined) return null
      // Every value counts one character, so a huge array of numbers is bounded too.
      chars += 1
      if (chars > limits.maxMessageChars) {
        bad = `more than ${limits.maxMessageChars} characters (maxMessageChars)`
        return null
      }
      if (v === null || typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v))) return v
      if (typeof v === "string") {
        chars += v.length
        return v
      }
      if (!isObject(v) || depth >= maxJsonDepth) {
        bad = depth >= maxJsonDepth ? `nests deeper than ${maxJsonDepth} levels` : "must be JSON (objects, arrays, strings, numbers, booleans, null)"
        return null
      }
      try {
        if (isArray(v)) {
          const length = (v as ArrayLike<unknown>).length
          if (chars + length > limits.maxMessageChars) {
            bad = `more than ${limits.maxMessageChars} characters (maxMessageChars)`
            return null
          }
          return Array.from(v as ArrayLike<unknown>, (e) => walk(e, depth + 1))
        }
        const out: Record<string, unknown> = {}
        for (const key of Object.keys(v)) {
          chars += key.length
          if (chars > limits.maxMessageChars) {
            bad = `more than ${limits.maxMessageChars} characters (maxMessageChars)`
            return null
          }
          Object.defineProperty(out, key, { value: walk((v as Record<string, unknown>)[key], depth + 1), enumerable: true, writable: true, configurable: true })
        }
        return out
      } catch {
        bad = "could not be read (a getter or proxy threw)"
        return null
      }
    }
    const copied = walk(value, 0)
    if (bad === undefined && chars > limits.maxMessageChars) bad = `more than ${limits.maxMessageChars} characters (maxMessageChars)`
    if (bad !== undefined) {
      issues.push(`${path}: ${bad}`)
      return { ok: false }
    }
    return { ok: true, value: copied, chars }
  }
}

/** The most tools of a request, and tool calls of one message. */
const maxToolItems = 1_000
/** The deepest a tool's JSON Schema may nest. */
const maxJsonDepth = 64

/**
 * Template variables as a fresh `Map` of strings, from a `Map` or from an object's own
 * enumerable properties (`__proto__` included when it is one), or `opaque` for anything else.
 */
const copyVariables = (variables: unknown, limits: InputLimits, issues: Array<string>): unknown => {
  if (!isObject(variables) || isArray(variables)) return leaf(variables)
  let entries: Array<readonly [unknown, Read]>
  try {
    if (isMap(variables)) {
      if (variables.size > limits.maxVariables) {
        issues.push(`prompt.variables: ${variables.size} variables exceed the limit of ${limits.maxVariables} (maxVariables)`)
        return new Map()
      }
      entries = Array.from(variables, ([key, value]) => [key, { ok: true, value }] as const)
    } else {
      const keys = Object.keys(variables)
      if (keys.length > limits.maxVariables) {
        issues.push(`prompt.variables: ${keys.length} variables exceed the limit of ${limits.maxVariables} (maxVariables)`)
        return new Map()
      }
      entries = keys.map((key) => [key, read(variables, key)] as const)
    }
  } catch {
    issues.push(unreadable("prompt.variables"))
    return new Map()
  }
  const copied = new Map<string, string>()
  entries.forEach(([key, value], index) => {
    const path = variablePath(key, index)
    if (typeof key !== "string") issues.push(`${path}: a variable name must be a string`)
    else if (!value.ok) issues.push(unreadable(path))
    else if (typeof value.value !== "string") issues.push(`${path}: must be a string`)
    else if (value.value.length > limits.maxMessageChars) {
      issues.push(tooLong(path, value.value.length, limits.maxMessageChars, "maxMessageChars"))
    } else copied.set(key, value.value)
  })
  return copied
}

/**
 * The model id of an untrusted request for the audit entry of a request that may not decode:
 * the id when it is a valid one, otherwise "" (never the raw value, which may be huge or hold
 * a CR/LF).
 */
export const modelIdOf = (input: unknown): string => {
  if (!isObject(input)) return ""
  const model = read(input, "model")
  return model.ok && isModelId(model.value) ? model.value : ""
}
