/**
 * Canonical JSON: one spelling for one value, so that a hash of it is stable.
 *
 * Rules: object keys sorted by UTF-16 code units (JavaScript's default string order), no
 * whitespace, object fields whose value is `undefined` (or a function or symbol) omitted,
 * strings and numbers written as `JSON.stringify` writes them. For finite numbers this is the
 * serialization of RFC 8785 (JCS). Non-finite numbers become `null` and `undefined` array
 * items become `null`, as in `JSON.stringify`, so that a value written with `JSON.stringify`
 * and parsed back has the same canonical form as the value before it was written (the audit
 * chain relies on this).
 *
 * @internal
 */

/**
 * The canonical JSON text of `value`. Only plain data is expected (objects, arrays, strings,
 * numbers, booleans, null); a `toJSON` method is honoured like `JSON.stringify` does, and a
 * bigint is written as its decimal string.
 *
 * @internal
 */
export const canonicalJson = (value: unknown): string => {
  // The fast way: a copy with sorted keys, written by `JSON.stringify` in one native pass (string
  // concatenation here costs about twice as much). An object it cannot copy faithfully sends the
  // whole value down the slow way, which gives the same text for everything else.
  if (typeof value === "object" && value !== null) {
    const copy = sortedCopy(value)
    // `toJSON` may give `undefined` (or a function), which `JSON.stringify` leaves unwritten.
    if (copy !== unsupported) return JSON.stringify(copy) ?? "null"
  }
  const out = write(value)
  return out === undefined ? "null" : out
}

/**
 * The same text as `canonicalJson`, written piece by piece without the fast way (tests compare
 * the two).
 *
 * @internal
 */
export const canonicalJsonWritten = (value: unknown): string => write(value) ?? "null"

/** Marks a value `sortedCopy` cannot represent: keys that a plain object would not keep in order. */
const unsupported: unique symbol = Symbol("unsupported")

/**
 * A copy of `value` whose objects are plain objects with their keys inserted in sorted order, so
 * `JSON.stringify` writes them sorted; `toJSON` is applied first and bigints become strings, as
 * `write` does. A key that looks like an array index (V8 enumerates those first, in numeric
 * order) or `__proto__` (which an assignment would not create) makes the copy `unsupported`.
 */
const sortedCopy = (value: object): unknown => {
  if (Array.isArray(value)) {
    const out = new Array<unknown>(value.length)
    for (let i = 0; i < value.length; i++) {
      const item = leaf(value[i])
      if (item === unsupported) return unsupported
      out[i] = item
    }
    return out
  }
  const toJSON = (value as { readonly toJSON?: unknown }).toJSON
  if (typeof toJSON === "function") return leaf(toJSON.call(value))
  const keys = Object.keys(value)
  const n = keys.length
  // Insertion sort: objects have few keys, and it sees at once whether they are sorted already.
  for (let i = 1; i < n; i++) {
    const key = keys[i]!
    let j = i - 1
    while (j >= 0 && keys[j]! > key) {
      keys[j + 1] = keys[j]!
      j--
    }
    keys[j + 1] = key
  }
  const out: Record<string, unknown> = {}
  for (let i = 0; i < n; i++) {
    const key = keys[i]!
    const first = key.charCodeAt(0)
    if ((first >= 0x30 && first <= 0x39) || key === "__proto__") return unsupported
    const item = leaf((value as Record<string, unknown>)[key])
    if (item === unsupported) return unsupported
    out[key] = item
  }
  return out
}

const leaf = (value: unknown): unknown =>
  typeof value === "object" && value !== null
    ? sortedCopy(value)
    : typeof value === "bigint"
    ? value.toString()
    : value

const write = (value: unknown): string | undefined => {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value)
    case "number":
      return Number.isFinite(value) ? JSON.stringify(value) : "null"
    case "boolean":
      return value ? "true" : "false"
    case "bigint":
      return JSON.stringify(value.toString())
    case "undefined":
    case "function":
    case "symbol":
      return undefined
    case "object": {
      if (value === null) return "null"
      if (Array.isArray(value)) {
        let out = "["
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ","
          out += write(value[i]) ?? "null"
        }
        return out + "]"
      }
      const toJSON = (value as { readonly toJSON?: unknown }).toJSON
      if (typeof toJSON === "function") return write(toJSON.call(value))
      const record = value as Record<string, unknown>
      const keys = Object.keys(record).sort()
      let out = "{"
      let first = true
      for (const key of keys) {
        const item = write(record[key])
        if (item === undefined) continue
        if (!first) out += ","
        first = false
        out += JSON.stringify(key) + ":" + item
      }
      return out + "}"
    }
  }
}
