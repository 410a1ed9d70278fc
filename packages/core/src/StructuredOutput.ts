/**
 * Structured output: a request may ask for a reply that is one JSON value of a given shape.
 * Declare the shape with an Effect `Schema` (`make`: the JSON Schema is derived with
 * `JSONSchema.make` and the Schema is kept, so the reply is decoded with it) or give a plain
 * `ResponseFormat` with a JSON Schema of your own (the reply is then only checked to be JSON).
 *
 * On the wire, the `openai` profile sends `response_format: {type: "json_schema", json_schema:
 * {name, description, schema, strict}}`. The `gateway` profile's body has no such field, so
 * there the schema goes as an instruction appended to the system instruction (`instruction`):
 * the model is asked, not forced, and a reply that does not conform ends in
 * `ReplySchemaMismatch`.
 *
 * @example
 * import { Gateway, StructuredOutput } from "@llm-gateway/core"
 * import * as Schema from "effect/Schema"
 *
 * const Person = Schema.Struct({ name: Schema.String, age: Schema.NullOr(Schema.Int) })
 *
 * // Either the typed accessor …
 * export const person = Gateway.completeObject({ model: "gpt-4o-mini", prompt: { template: "Who wrote Dune?", variables: {} } }, Person)
 * // … or the format on any request; the stream's `Finish.value` carries the decoded value.
 * export const parts = Gateway.stream({
 *   model: "gpt-4o-mini",
 *   messages: [{ role: "user", content: "Who wrote Dune?" }],
 *   responseFormat: StructuredOutput.make(Person, { name: "person" })
 * })
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as JSONSchema from "effect/JSONSchema"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import { ReplySchemaMismatch } from "./GatewayError.js"
import * as Issues from "./internal/issues.js"
import { parseOption } from "./internal/json.js"
import { JsonSchemaObject } from "./Tool.js"

/**
 * The name of a response format: 1 to 64 letters, digits, `_` and `-` (the OpenAI wire
 * format's rule).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const FormatName = Schema.String.pipe(
  Schema.pattern(/^[a-zA-Z0-9_-]{1,64}$/, {
    message: () => "a response format name must be 1 to 64 letters, digits, '_' or '-'"
  })
)

/**
 * A response format as plain data: `name`, an optional `description`, `jsonSchema` (the JSON
 * Schema of the reply, an object at its root) and `strict` (default `true`: the request is
 * refused before it is sent when the schema uses what OpenAI's strict mode does not support,
 * see `strictIssues`).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ResponseFormat = Schema.Struct({
  name: FormatName,
  description: Schema.optional(Schema.String),
  jsonSchema: JsonSchemaObject,
  strict: Schema.optional(Schema.Boolean)
})

/**
 * A response format as plain data (see the `ResponseFormat` Schema).
 *
 * @since 0.1.0
 * @category Models
 */
export type ResponseFormat = typeof ResponseFormat.Type

/**
 * The brand of a response format made by `make`.
 *
 * @since 0.1.0
 * @category Symbols
 */
export const TypeId: unique symbol = Symbol.for("@llm-gateway/core/StructuredOutput")

/**
 * The brand of a response format made by `make`.
 *
 * @since 0.1.0
 * @category Symbols
 */
export type TypeId = typeof TypeId

/**
 * A response format declared from an Effect `Schema`: its `jsonSchema` was derived from
 * `schema`, which also decodes the reply.
 *
 * @since 0.1.0
 * @category Models
 */
export interface StructuredOutput<A = unknown, I = unknown> extends ResponseFormat {
  readonly [TypeId]: TypeId
  readonly schema: Schema.Schema<A, I, never>
}

/**
 * Whether a value is a response format made by `make`.
 *
 * @since 0.1.0
 * @category Guards
 */
export const isStructuredOutput = (u: unknown): u is StructuredOutput => {
  try {
    return Predicate.hasProperty(u, TypeId) && Schema.isSchema((u as StructuredOutput).schema)
  } catch {
    return false
  }
}

/**
 * A response format made by `make`, accepted as it is (its Schema is kept) where requests are
 * decoded.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const DeclaredFormat: Schema.Schema<StructuredOutput> = Schema.declare(isStructuredOutput, {
  identifier: "StructuredOutput",
  message: () => "must be a response format made by StructuredOutput.make"
})

/**
 * A response format in a request: one made by `make` or a plain `ResponseFormat`.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const AnyResponseFormat = Schema.Union(DeclaredFormat, ResponseFormat)

/**
 * A response format in a request: one made by `make` or a plain `ResponseFormat`.
 *
 * @since 0.1.0
 * @category Models
 */
export type AnyResponseFormat = StructuredOutput | ResponseFormat

/**
 * The JSON Schema of an Effect `Schema` as a response format carries it: `JSONSchema.make`
 * without the `$schema` line, and with a top-level `$ref` (a Schema with an identifier)
 * replaced by its definition, since the reply's root must be an object. Throws when the
 * Schema has no JSON Schema (as `JSONSchema.make` does).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const jsonSchemaOf = <A, I>(schema: Schema.Schema<A, I, never>): JsonSchemaObject => {
  const { $schema: _meta, ...root } = JSONSchema.make(schema) as unknown as Record<string, unknown>
  const ref = root["$ref"]
  const defs = root["$defs"]
  if (typeof ref === "string" && ref.startsWith("#/$defs/") && Predicate.isRecord(defs) && Object.keys(root).length === 2) {
    const target = defs[ref.slice("#/$defs/".length)]
    // The definition stays in `$defs` too: a recursive schema refers to it.
    if (Predicate.isRecord(target)) return { ...target, $defs: defs }
  }
  return root
}

const defaultName = (ast: SchemaAST.AST): string => {
  const id = Option.getOrUndefined(SchemaAST.getIdentifierAnnotation(ast))
  return id !== undefined && /^[a-zA-Z0-9_-]{1,64}$/.test(id) ? id : "reply"
}

/**
 * Declares a response format from an Effect `Schema` of an object. The name defaults to the
 * Schema's identifier annotation when it is a valid name, else `reply`. Strict mode needs every
 * field required: declare a field the model may leave empty as `Schema.NullOr(...)`, not
 * `Schema.optional`, or pass `strict: false`. The reply is decoded from JSON with `schema`, so
 * declare its encoded side as plain JSON. Throws when the Schema has no JSON Schema;
 * `Gateway.completeObject` turns that into an `InvalidRequest`.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = <A, I>(
  schema: Schema.Schema<A, I, never>,
  options?: {
    readonly name?: string | undefined
    readonly description?: string | undefined
    readonly strict?: boolean | undefined
  }
): StructuredOutput<A, I> => ({
  [TypeId]: TypeId,
  name: options?.name ?? defaultName(schema.ast),
  ...(options?.description === undefined ? {} : { description: options.description }),
  jsonSchema: jsonSchemaOf(schema),
  ...(options?.strict === undefined ? {} : { strict: options.strict }),
  schema
})

/**
 * A response format as plain data, as it goes on the wire and into the cache key: the Schema
 * and brand of a made format left out, `strict` made explicit.
 *
 * @since 0.1.0
 * @category Encoding
 */
export const toPlain = (format: AnyResponseFormat): ResponseFormat => ({
  name: format.name,
  ...(format.description === undefined ? {} : { description: format.description }),
  jsonSchema: format.jsonSchema,
  strict: format.strict !== false
})

/**
 * The `response_format` field of an OpenAI chat completions request.
 *
 * @since 0.1.0
 * @category Encoding
 */
export const openAiResponseFormat = (format: ResponseFormat): Record<string, unknown> => ({
  type: "json_schema",
  json_schema: {
    name: format.name,
    ...(format.description === undefined ? {} : { description: format.description }),
    schema: format.jsonSchema,
    strict: format.strict !== false
  }
})

const instructionHead = "Answer with one JSON value and nothing else: no prose before or after it, no code fence."

/**
 * The instruction the `gateway` profile appends to the system instruction (its body has no
 * `response_format`): the schema's JSON on the last line.
 *
 * @since 0.1.0
 * @category Encoding
 */
export const instruction = (format: ResponseFormat): string =>
  `${instructionHead} The value must conform to the JSON Schema named "${format.name}"${
    format.description === undefined ? "" : ` (${format.description.replace(/\s+/g, " ")})`
  }, given on the next line.\n${JSON.stringify(format.jsonSchema)}`

/**
 * The JSON Schema of the last `instruction` in a system text, if any (the simulator reads it
 * to answer in shape on the gateway profile).
 *
 * @since 0.1.0
 * @category Decoding
 */
export const schemaOfInstruction = (system: string): JsonSchemaObject | undefined => {
  const at = system.lastIndexOf(instructionHead)
  if (at < 0) return undefined
  const start = system.indexOf("\n", at)
  if (start < 0) return undefined
  const end = system.indexOf("\n", start + 1)
  const parsed = parseOption(system.slice(start + 1, end < 0 ? undefined : end))
  return Option.isSome(parsed) && Predicate.isRecord(parsed.value) ? parsed.value as JsonSchemaObject : undefined
}

/**
 * A place in a JSON Schema that OpenAI's strict mode does not accept, and why.
 *
 * @since 0.1.0
 * @category Models
 */
export interface StrictIssue {
  readonly path: ReadonlyArray<PropertyKey>
  readonly message: string
}

const unsupportedKeywords = [
  "allOf",
  "oneOf",
  "not",
  "if",
  "then",
  "else",
  "dependentRequired",
  "dependentSchemas",
  "patternProperties",
  "propertyNames",
  "unevaluatedProperties",
  "unevaluatedItems",
  "minProperties",
  "maxProperties"
]

const maxStrictIssues = 20

/**
 * What OpenAI's strict mode would refuse in a JSON Schema, found before the request is sent:
 * a root that is not an object; an object that allows other properties (`additionalProperties`
 * must be `false`, so a `Schema.Record` has no strict form); a property not listed in
 * `required` (a `Schema.optional` field: use `Schema.NullOr`); keywords strict mode does not
 * support (`allOf`, `oneOf`, `not`, `if`/`then`/`else`, `patternProperties`, `propertyNames`,
 * `unevaluated*`, `dependent*`, `min/maxProperties`). At most 20 issues. OpenAI's size limits
 * (properties, nesting depth, enum sizes) are left to the server.
 *
 * @since 0.1.0
 * @category Utils
 */
export const strictIssues = (jsonSchema: JsonSchemaObject): Array<StrictIssue> => {
  const issues: Array<StrictIssue> = []
  const push = (path: ReadonlyArray<PropertyKey>, message: string) => {
    if (issues.length < maxStrictIssues) issues.push({ path, message })
  }
  if (jsonSchema["type"] !== "object") push([], `the root must be an object (type "object"): wrap the reply in a Struct`)
  const walk = (node: unknown, path: ReadonlyArray<PropertyKey>, depth: number): void => {
    if (issues.length >= maxStrictIssues) return
    if (depth > 64) return push(path, "nests deeper than 64 levels")
    if (Array.isArray(node)) return node.forEach((item, i) => walk(item, [...path, i], depth + 1))
    if (!Predicate.isRecord(node)) return
    for (const keyword of unsupportedKeywords) {
      if (keyword in node) push([...path, keyword], "is not supported in strict mode")
    }
    const properties = node["properties"]
    if (node["type"] === "object" || properties !== undefined) {
      if (node["additionalProperties"] !== false) {
        push([...path, "additionalProperties"], "must be false in strict mode (a Record has no strict form)")
      }
      if (Predicate.isRecord(properties)) {
        const required = Array.isArray(node["required"]) ? node["required"] : []
        for (const key of Object.keys(properties)) {
          if (!required.includes(key)) {
            push([...path, "properties", key], "is optional; strict mode needs every property required (declare it with Schema.NullOr)")
          }
        }
      }
    }
    for (const key of ["properties", "$defs", "definitions"]) {
      const record = node[key]
      if (Predicate.isRecord(record)) for (const [name, sub] of Object.entries(record)) walk(sub, [...path, key, name], depth + 1)
    }
    for (const key of ["items", "prefixItems", "anyOf", "additionalProperties"]) {
      if (node[key] !== undefined) walk(node[key], [...path, key], depth + 1)
    }
  }
  walk(jsonSchema, [], 0)
  return issues
}

/** A reply wrapped in a Markdown code fence (some models add one despite the instruction). */
const fenced = /^```[A-Za-z0-9_-]*[ \t]*\r?\n([\s\S]*?)\r?\n?```$/

/**
 * Decodes a structured reply: the text (already redacted; a surrounding Markdown code fence
 * is removed) is parsed as JSON and, for a format made by `make`, decoded with its Schema. A
 * failure is a `ReplySchemaMismatch` whose issues name paths and what was expected, never a
 * value of the reply.
 *
 * @since 0.1.0
 * @category Decoding
 */
export const decodeReply = (
  format: AnyResponseFormat,
  reply: {
    readonly text: string
    readonly finishReason: string
    readonly refusal?: string | undefined
    readonly redacted: boolean
  }
): Either.Either<unknown, ReplySchemaMismatch> => {
  const fail = (reason: ReplySchemaMismatch["reason"], issues: ReadonlyArray<string> = []) =>
    Either.left(new ReplySchemaMismatch({ reason, issues, redacted: reply.redacted }))
  const trimmed = reply.text.trim()
  if (trimmed.length === 0 && reply.refusal !== undefined) return fail("refused")
  const parsed = parseOption(fenced.exec(trimmed)?.[1] ?? trimmed)
  if (Option.isNone(parsed)) {
    return fail(reply.finishReason === "length" || reply.finishReason === "content_filter" ? "truncated" : "not_json")
  }
  if (!isStructuredOutput(format)) return Either.right(parsed.value)
  try {
    const decoded = Schema.decodeUnknownEither(format.schema, { errors: "all" })(parsed.value)
    return Either.isRight(decoded) ? Either.right(decoded.right) : fail("schema", Issues.describe(decoded.left, "reply"))
  } catch {
    // A reply nested deeper than the stack allows, under a recursive Schema.
    return fail("schema", ["reply: nests too deeply to decode"])
  }
}
