/**
 * A JSON value that conforms to a JSON Schema, built deterministically from the schema alone:
 * what the `json` scenario answers. Covers what `JSONSchema.make` writes and OpenAI's strict
 * mode accepts: `$ref` into `$defs`, `const`, `enum`, `anyOf` (first member that is not null),
 * type lists, objects (every property), arrays (`minItems`, at least one item), strings
 * (`minLength`, a few `format`s), numbers and integers (`minimum`, `exclusiveMinimum`),
 * booleans and null. Strings hold `text`. Recursion and size are bounded.
 */

const maxDepth = 24
const maxItems = 100

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const formats: Readonly<Record<string, string>> = {
  "date-time": "2024-01-01T00:00:00Z",
  date: "2024-01-01",
  time: "00:00:00",
  uuid: "00000000-0000-4000-8000-000000000000",
  uri: "https://example.org/"
}

/** An example of `schema`; `text` fills strings. */
export const example = (schema: unknown, text: string): unknown => {
  const root = isRecord(schema) ? schema : {}
  const defs = isRecord(root["$defs"]) ? root["$defs"] : {}
  const go = (node: unknown, depth: number): unknown => {
    if (!isRecord(node) || depth > maxDepth) return null
    const ref = node["$ref"]
    if (typeof ref === "string") {
      // Keywords beside a reference (a refinement's `minimum`) narrow what it refers to.
      const { $ref: _ref, ...beside } = node
      const target = ref.startsWith("#/$defs/") ? defs[ref.slice(8)] : undefined
      return isRecord(target) ? go({ ...target, ...beside }, depth + 1) : null
    }
    if ("const" in node) return node["const"]
    if (Array.isArray(node["enum"]) && node["enum"].length > 0) return node["enum"][0]
    const anyOf = node["anyOf"]
    if (Array.isArray(anyOf) && anyOf.length > 0) {
      return go(anyOf.find((member) => !(isRecord(member) && member["type"] === "null")) ?? anyOf[0], depth + 1)
    }
    const types = Array.isArray(node["type"]) ? node["type"] : [node["type"]]
    const type = types.find((t) => t !== "null") ?? types[0]
    switch (type) {
      case "object": {
        const out: Record<string, unknown> = {}
        const properties = isRecord(node["properties"]) ? node["properties"] : {}
        for (const [key, sub] of Object.entries(properties)) out[key] = go(sub, depth + 1)
        return out
      }
      case "array": {
        const min = typeof node["minItems"] === "number" ? node["minItems"] : 1
        const count = Math.min(Math.max(min, 1), maxItems)
        return Array.from({ length: count }, () => go(node["items"], depth + 1))
      }
      case "string": {
        const format = typeof node["format"] === "string" ? formats[node["format"]] : undefined
        const min = typeof node["minLength"] === "number" ? Math.min(node["minLength"], 10_000) : 0
        const value = format ?? text
        return value.length >= min ? value : value.padEnd(min, ".")
      }
      case "integer":
      case "number": {
        const min = typeof node["minimum"] === "number"
          ? node["minimum"]
          : typeof node["exclusiveMinimum"] === "number"
          ? node["exclusiveMinimum"] + 1
          : 0
        return type === "integer" ? Math.ceil(min) : min
      }
      case "boolean":
        return true
      default:
        return null
    }
  }
  return go(root, 0)
}
