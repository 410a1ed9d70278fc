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
      for (const key of ["role", "content", "name"] as const) {
        const r = field(element.value, key, `messages.${i}.${key}`)
        if (r.ok && r.value !== undefined) message[key] = key === "role" ? leaf(r.value) : text(`messages.${i}.${key}`, r.value)
      }
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

  if (issues.length === 0 && total > limits.maxPromptChars) {
    issues.push(
      `request: ${total} characters of messages, system instruction and template exceed the limit of ${limits.maxPromptChars} (maxPromptChars)`
    )
  }
  return issues.length > 0 ? { _tag: "Issues", issues } : { _tag: "Plain", value: out }
}

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
