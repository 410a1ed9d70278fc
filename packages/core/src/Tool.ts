/**
 * Tools a model may call: a name, a description and the JSON Schema of the arguments object.
 * Declare one from an Effect `Schema` with `make` (the JSON Schema is derived with
 * `JSONSchema.make` and the Schema is kept, so the arguments of a call are decoded with it), or
 * give a plain `ToolDefinition` with a JSON Schema of your own.
 *
 * @example
 * import { Tool } from "@llm-gateway/core"
 * import * as Schema from "effect/Schema"
 *
 * export const getWeather = Tool.make({
 *   name: "get_weather",
 *   description: "The current weather of a city",
 *   parameters: Schema.Struct({ city: Schema.String, unit: Schema.optional(Schema.Literal("C", "F")) })
 * })
 *
 * @since 0.1.0
 */
import * as JSONSchema from "effect/JSONSchema"
import * as ParseResult from "effect/ParseResult"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"

/**
 * The longest tool name the OpenAI wire format accepts.
 *
 * @since 0.1.0
 * @category Config
 */
export const maxNameLength = 64

/**
 * A tool name: 1 to 64 letters, digits, `_` and `-` (the OpenAI wire format's rule).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ToolName = Schema.String.pipe(
  Schema.pattern(/^[a-zA-Z0-9_-]{1,64}$/, {
    message: () => "a tool name must be 1 to 64 letters, digits, '_' or '-'"
  })
)

/**
 * The JSON Schema of a tool's arguments: a JSON object (its `type` should be `"object"`).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const JsonSchemaObject = Schema.Record({ key: Schema.String, value: Schema.Unknown })

/**
 * A JSON Schema object, as `JsonSchemaObject` decodes it.
 *
 * @since 0.1.0
 * @category Models
 */
export type JsonSchemaObject = typeof JsonSchemaObject.Type

/**
 * A tool as plain data: `name`, an optional `description` (the model reads it to decide when to
 * call the tool) and `parameters`, the JSON Schema of its arguments object (no parameters when
 * left out).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ToolDefinition = Schema.Struct({
  name: ToolName,
  description: Schema.optional(Schema.String),
  parameters: Schema.optional(JsonSchemaObject)
})

/**
 * A tool as plain data (see the `ToolDefinition` Schema).
 *
 * @since 0.1.0
 * @category Models
 */
export type ToolDefinition = typeof ToolDefinition.Type

/**
 * The brand of a tool made by `make`.
 *
 * @since 0.1.0
 * @category Symbols
 */
export const TypeId: unique symbol = Symbol.for("@llm-gateway/core/Tool")

/**
 * The brand of a tool made by `make`.
 *
 * @since 0.1.0
 * @category Symbols
 */
export type TypeId = typeof TypeId

/**
 * A tool declared from an Effect `Schema`: a `ToolDefinition` whose `parameters` were derived
 * from `schema`, which also decodes the arguments of every call to it (a mismatch is a
 * `Part.ToolCallError`, never a crash).
 *
 * @since 0.1.0
 * @category Models
 */
export interface Tool<A = unknown, I = unknown> extends ToolDefinition {
  readonly [TypeId]: TypeId
  readonly parameters: JsonSchemaObject
  readonly schema: Schema.Schema<A, I, never>
}

/**
 * Whether a value is a tool made by `make`.
 *
 * @since 0.1.0
 * @category Guards
 */
export const isTool = (u: unknown): u is Tool => {
  try {
    return Predicate.hasProperty(u, TypeId) && Schema.isSchema((u as Tool).schema)
  } catch {
    return false
  }
}

/**
 * A tool made by `make`, accepted as it is (its Schema is kept) where requests are decoded.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const DeclaredTool: Schema.Schema<Tool> = Schema.declare(isTool, {
  identifier: "Tool",
  message: () => "must be a tool made by Tool.make"
})

/**
 * A tool in a request: one made by `make` (kept as it is, with its Schema, once its name and
 * parameters are checked) or a plain definition.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const AnyTool: Schema.Schema<AnyTool, typeof ToolDefinition.Encoded | Tool> = Schema.declare(
  [ToolDefinition],
  {
    decode: (definition) => (input, options) =>
      isTool(input)
        ? ParseResult.map(
          ParseResult.decodeUnknown(definition)({
            name: input.name,
            ...(input.description === undefined ? {} : { description: input.description }),
            parameters: input.parameters
          }, options),
          () => input
        )
        : ParseResult.decodeUnknown(definition)(input, options),
    encode: (definition) => (input, options) =>
      isTool(input) ? ParseResult.succeed(input) : ParseResult.encodeUnknown(definition)(input, options)
  },
  { identifier: "AnyTool" }
)

/**
 * A tool in a request: one made by `make` or a plain definition.
 *
 * @since 0.1.0
 * @category Models
 */
export type AnyTool = Tool | ToolDefinition

/**
 * Declares a tool whose arguments are described by an Effect `Schema` (of an object). The JSON
 * Schema sent on the wire is `JSONSchema.make(parameters)` without its `$schema` line; the
 * arguments of a call are decoded with `parameters` (from JSON, so declare the encoded side as
 * plain JSON: strings, numbers, booleans, arrays, objects).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = <A, I>(options: {
  readonly name: string
  readonly description?: string | undefined
  readonly parameters: Schema.Schema<A, I, never>
}): Tool<A, I> => {
  const { $schema: _meta, ...parameters } = JSONSchema.make(options.parameters)
  return {
    [TypeId]: TypeId,
    name: options.name,
    ...(options.description === undefined ? {} : { description: options.description }),
    parameters: parameters as JsonSchemaObject,
    schema: options.parameters
  }
}

/**
 * Which tools the model may call: `auto` (the model decides, the default when tools are given),
 * `none` (answer with text), `required` (call at least one tool) or `{ name }` (call that tool).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ToolChoice = Schema.Union(
  Schema.Literal("auto", "none", "required"),
  Schema.Struct({ name: ToolName })
)

/**
 * Which tools the model may call (see the `ToolChoice` Schema).
 *
 * @since 0.1.0
 * @category Models
 */
export type ToolChoice = typeof ToolChoice.Type

/**
 * What is wrong with a request's tools and tool choice, as issues that name paths, never values:
 * duplicate names, a parameters schema that is not of type `"object"`, a choice naming a tool
 * that was not declared, a choice without tools.
 *
 * @since 0.1.0
 * @category Utils
 */
export const requestIssues = (
  tools: ReadonlyArray<ToolDefinition> | undefined,
  choice: ToolChoice | undefined
): Array<{ readonly path: ReadonlyArray<PropertyKey>; readonly message: string }> => {
  const issues: Array<{ readonly path: ReadonlyArray<PropertyKey>; readonly message: string }> = []
  const seen = new Map<string, number>()
  tools?.forEach((tool, i) => {
    const first = seen.get(tool.name)
    if (first !== undefined) issues.push({ path: ["tools", i, "name"], message: `the same name as tools.${first}` })
    else seen.set(tool.name, i)
    const type = tool.parameters?.["type"]
    if (tool.parameters !== undefined && type !== undefined && type !== "object") {
      issues.push({ path: ["tools", i, "parameters", "type"], message: `the arguments must be a JSON object (type "object")` })
    }
  })
  if (choice !== undefined && choice !== "none" && choice !== "auto" && (tools === undefined || tools.length === 0)) {
    issues.push({ path: ["toolChoice"], message: "a tool choice needs tools" })
  } else if (typeof choice === "object" && !seen.has(choice.name)) {
    issues.push({ path: ["toolChoice", "name"], message: "names no tool of the request" })
  }
  return issues
}
