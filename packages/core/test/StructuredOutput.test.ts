import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as AuditLog from "../src/AuditLog.js"
import type { OutboundRequest } from "../src/Chat.js"
import type { ChatChunk } from "../src/ChatChunk.js"
import * as ContextWindow from "../src/ContextWindow.js"
import * as CostMeter from "../src/CostMeter.js"
import * as Gateway from "../src/Gateway.js"
import { ReplySchemaMismatch } from "../src/GatewayError.js"
import * as ResponseCache from "../src/ResponseCache.js"
import * as SafetyFilter from "../src/SafetyFilter.js"
import * as StructuredOutput from "../src/StructuredOutput.js"
import { GatewayTransport, requestBody } from "../src/Transport.js"

const Person = Schema.Struct({
  name: Schema.String,
  age: Schema.Int,
  email: Schema.NullOr(Schema.String)
}).annotations({ identifier: "Person" })

/** A reply of `text` cut into pieces of 5 characters, then a finish chunk. */
const reply = (text: string, finishReason = "stop"): Array<ChatChunk> => {
  const chunks: Array<ChatChunk> = []
  for (let i = 0; i < text.length; i += 5) chunks.push({ choices: [{ index: 0, delta: { content: text.slice(i, i + 5) } }] })
  chunks.push({ choices: [{ index: 0, delta: {}, finish_reason: finishReason }] })
  return chunks
}

/** A gateway whose transport answers every request with `text` and records what it was sent. */
const gatewayAnswering = (text: string, finishReason = "stop") => {
  const calls: Array<OutboundRequest> = []
  const transport = Layer.succeed(GatewayTransport, {
    stream: (request) =>
      Stream.suspend(() => {
        calls.push(request)
        return Stream.fromIterable(reply(text, finishReason))
      })
  })
  const layer = Gateway.layer().pipe(
    Layer.provideMerge(Layer.mergeAll(
      SafetyFilter.layerDefault,
      ContextWindow.layer(),
      ResponseCache.layerMemory({ capacity: 100, timeToLive: "1 hour" }),
      CostMeter.layerMemory({}),
      AuditLog.layerMemory
    )),
    Layer.provide(transport)
  )
  return { calls, layer }
}

const ask = { model: "gpt-4o-mini", messages: [{ role: "user" as const, content: "Who is Ada?" }] }

describe("StructuredOutput", () => {
  it.effect("completeObject decodes the reply and sends the schema on both profiles", () => {
    const { calls, layer } = gatewayAnswering(`{"name":"Ada Lovelace","age":36,"email":null}`)
    return Effect.gen(function*() {
      const done = yield* Gateway.completeObject(ask, Person)
      expect(done.value).toEqual({ name: "Ada Lovelace", age: 36, email: null })
      expect(done.text).toBe(`{"name":"Ada Lovelace","age":36,"email":null}`)
      expect(calls).toHaveLength(1)
      const format = calls[0]!.responseFormat!
      expect(format.name).toBe("Person")
      expect(format.strict).toBe(true)
      // The root is the object itself, not a $ref; no $schema line.
      expect(format.jsonSchema["type"]).toBe("object")
      expect(format.jsonSchema["$schema"]).toBeUndefined()
      expect(format.jsonSchema["additionalProperties"]).toBe(false)
      expect(format.jsonSchema["required"]).toEqual(["name", "age", "email"])

      const openai = requestBody("openai", calls[0]!)
      expect(openai["response_format"]).toEqual({
        type: "json_schema",
        json_schema: { name: "Person", schema: format.jsonSchema, strict: true }
      })

      const gateway = requestBody("gateway", { ...calls[0]!, system: "Be brief." })
      expect(Object.keys(gateway).sort()).toEqual(["messages", "modelId", "stream", "systemInstruction"])
      const system = gateway["systemInstruction"] as string
      expect(system.startsWith("Be brief.\n\n")).toBe(true)
      expect(system).toContain(`JSON Schema named "Person"`)
      expect(StructuredOutput.schemaOfInstruction(system)).toEqual(format.jsonSchema)
    }).pipe(Effect.provide(layer))
  })

  it.effect("the stream's Finish carries the decoded value; a cached replay is decoded again", () => {
    const { calls, layer } = gatewayAnswering("```json\n{\"name\":\"Ada\",\"age\":36,\"email\":null}\n```")
    return Effect.gen(function*() {
      const request = { ...ask, responseFormat: StructuredOutput.make(Person) }
      for (const cached of [false, true]) {
        const parts = Chunk.toReadonlyArray(yield* Stream.runCollect(Gateway.stream(request)))
        const finish = parts.at(-1)!
        expect(finish._tag).toBe("Finish")
        if (finish._tag !== "Finish") return
        expect(finish.cached).toBe(cached)
        // A Markdown code fence around the JSON is removed before parsing.
        expect(finish.value).toEqual({ name: "Ada", age: 36, email: null })
      }
      expect(calls).toHaveLength(1)
    }).pipe(Effect.provide(layer))
  })

  it.effect("a mismatch names paths and what was expected, never a value; it is audited and not cached", () => {
    const { calls, layer } = gatewayAnswering(`{"name":"Grace Hopper","age":"eighty-five","email":7,"extra":"secret-value"}`)
    return Effect.gen(function*() {
      const Strict = Schema.Struct({
        name: Schema.String,
        age: Schema.Int.annotations({ message: (issue) => `bad age ${String(issue.actual)}` }),
        email: Schema.NullOr(Schema.String)
      })
      const error = yield* Effect.flip(Gateway.completeObject(ask, Strict))
      expect(error).toBeInstanceOf(ReplySchemaMismatch)
      if (error._tag !== "ReplySchemaMismatch") return
      expect(error.reason).toBe("schema")
      expect(error.issues.some((issue) => issue.startsWith("age: expected"))).toBe(true)
      expect(error.issues.some((issue) => issue === "email: expected string | null")).toBe(true)
      for (const text of [error.message, ...error.issues]) {
        expect(text).not.toContain("eighty")
        expect(text).not.toContain("Grace")
        expect(text).not.toContain("bad age")
        expect(text).not.toContain("7")
      }
      const entries = yield* Effect.flatMap(AuditLog.MemoryAuditLog, (log) => log.entries)
      expect(entries.at(-1)?.errorTag).toBe("ReplySchemaMismatch")
      // Not stored: the same request goes upstream again.
      yield* Effect.flip(Gateway.completeObject(ask, Strict))
      expect(calls).toHaveLength(2)
    }).pipe(Effect.provide(layer))
  })

  it.effect("a reply that is not JSON, or was cut, is a typed error without its text", () =>
    Effect.gen(function*() {
      const prose = gatewayAnswering("Sure! Ada Lovelace was 36.")
      const notJson = yield* Effect.flip(Gateway.completeObject(ask, Person).pipe(Effect.provide(prose.layer)))
      expect(notJson._tag === "ReplySchemaMismatch" && notJson.reason).toBe("not_json")
      expect(notJson.message).not.toContain("Ada")

      const cut = gatewayAnswering(`{"name":"Ada","ag`, "length")
      const truncated = yield* Effect.flip(Gateway.completeObject(ask, Person).pipe(Effect.provide(cut.layer)))
      expect(truncated._tag === "ReplySchemaMismatch" && truncated.reason).toBe("truncated")
    }))

  it.effect("redaction applies to the reply: an email inside a string field still parses, redacted", () => {
    const { layer } = gatewayAnswering(`{"name":"Ada","age":36,"email":"ada@example.com"}`)
    return Effect.gen(function*() {
      const done = yield* Gateway.completeObject(ask, Person)
      expect(done.value).toEqual({ name: "Ada", age: 36, email: "[EMAIL]" })
      expect(done.redactions.output).toEqual([{ kind: "email", count: 1 }])
    }).pipe(Effect.provide(layer))
  })

  it.effect("the cache key includes the response schema", () => {
    const { layer } = gatewayAnswering("{}")
    return Effect.gen(function*() {
      const Other = Schema.Struct({ name: Schema.String })
      const key = (request: Parameters<typeof Gateway.prepare>[0]) => Effect.map(Gateway.prepare(request), (p) => p.requestHash)
      const plain = yield* key(ask)
      const person = yield* key({ ...ask, responseFormat: StructuredOutput.make(Person) })
      const personAgain = yield* key({ ...ask, responseFormat: StructuredOutput.make(Person) })
      const other = yield* key({ ...ask, responseFormat: StructuredOutput.make(Other, { name: "Person" }) })
      const loose = yield* key({ ...ask, responseFormat: StructuredOutput.make(Person, { strict: false }) })
      expect(person).toBe(personAgain)
      expect(new Set([plain, person, other, loose]).size).toBe(4)
    }).pipe(Effect.provide(layer))
  })

  it.effect("what strict mode cannot express is refused before any call, with paths", () => {
    const { calls, layer } = gatewayAnswering(`{"name":"Ada"}`)
    return Effect.gen(function*() {
      const Loose = Schema.Struct({
        name: Schema.String,
        nickname: Schema.optional(Schema.String),
        scores: Schema.Record({ key: Schema.String, value: Schema.Number })
      })
      const error = yield* Effect.flip(Gateway.completeObject(ask, Loose))
      expect(error._tag).toBe("InvalidRequest")
      if (error._tag !== "InvalidRequest") return
      expect(error.issues).toContain(
        "responseFormat.jsonSchema.properties.nickname: is optional; strict mode needs every property required (declare it with Schema.NullOr)"
      )
      expect(error.issues.some((i) => i.startsWith("responseFormat.jsonSchema.properties.scores.additionalProperties"))).toBe(true)
      const root = yield* Effect.flip(Gateway.completeObject(ask, Schema.Array(Schema.String)))
      expect(root._tag === "InvalidRequest" && root.issues[0]).toContain("the root must be an object")
      expect(calls).toHaveLength(0)

      // Without strict mode the same Schema is sent.
      const done = yield* Gateway.completeObject(ask, Loose.pipe(Schema.omit("scores")), { strict: false })
      expect(done.value).toEqual({ name: "Ada" })
      expect(calls[0]!.responseFormat!.strict).toBe(false)
    }).pipe(Effect.provide(layer))
  })

  it.effect("PII in the schema is refused; a Schema without a JSON Schema is an InvalidRequest", () => {
    const { calls, layer } = gatewayAnswering("{}")
    return Effect.gen(function*() {
      const pii = yield* Effect.flip(Gateway.completeObject(ask, Person, { description: "as jane@example.com writes it" }))
      expect(pii._tag === "InvalidRequest" && pii.issues[0]).toContain("(email)")
      expect(pii.message).not.toContain("jane@")
      const Opaque = Schema.Struct({ at: Schema.declare((u): u is symbol => typeof u === "symbol") })
      const opaque = yield* Effect.flip(Gateway.completeObject(ask, Opaque))
      expect(opaque._tag === "InvalidRequest" && opaque.issues[0]).toContain("responseFormat: the Schema has no JSON Schema")
      expect(calls).toHaveLength(0)
    }).pipe(Effect.provide(layer))
  })

  it.effect("a plain JSON Schema format gives the parsed JSON", () => {
    const { calls, layer } = gatewayAnswering(`{"city":"Osaka"}`)
    return Effect.gen(function*() {
      const jsonSchema = {
        type: "object",
        properties: { city: { type: "string" } },
        required: ["city"],
        additionalProperties: false
      }
      const done = yield* Gateway.complete({ ...ask, responseFormat: { name: "city", jsonSchema } })
      expect(done.value).toEqual({ city: "Osaka" })
      expect(calls[0]!.responseFormat).toEqual({ name: "city", jsonSchema, strict: true })
    }).pipe(Effect.provide(layer))
  })

  it("decodeReply: a refusal, and a recursive Schema against a deeply nested reply", () => {
    const refused = StructuredOutput.decodeReply(StructuredOutput.make(Person), {
      text: "",
      finishReason: "stop",
      refusal: "I cannot.",
      redacted: false
    })
    expect(Either.isLeft(refused) && refused.left.reason).toBe("refused")
    interface Tree {
      readonly children: ReadonlyArray<Tree>
    }
    const Tree: Schema.Schema<Tree> = Schema.Struct({ children: Schema.Array(Schema.suspend(() => Tree)) }).annotations({
      identifier: "Tree"
    })
    const deep = "{\"children\":[".repeat(5_000) + "]}".repeat(5_000)
    const result = StructuredOutput.decodeReply(StructuredOutput.make(Schema.Struct({ tree: Tree })), {
      text: `{"tree":${deep}}`,
      finishReason: "stop",
      redacted: false
    })
    // Either decoded or a typed mismatch, never a thrown stack overflow.
    expect(Either.isRight(result) || result.left._tag === "ReplySchemaMismatch").toBe(true)
  })
})
