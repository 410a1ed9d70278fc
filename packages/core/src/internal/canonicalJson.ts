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
  const out = write(value)
  return out === undefined ? "null" : out
}

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
