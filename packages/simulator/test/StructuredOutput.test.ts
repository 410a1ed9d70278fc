/**
 * Structured output over real sockets, on both wire profiles: what reached the simulator (a
 * strict `response_format` on `/v1`, an instruction in `systemInstruction` on the gateway
 * endpoint, whose body keeps its five fields), and the `json` scenario's answer decoded.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import {
  AuditLog,
  Auth,
  ContextWindow,
  CostMeter,
  Gateway,
  ResponseCache,
  SafetyFilter,
  StructuredOutput,
  Transport
} from "@llm-gateway/core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Script from "../src/Script.js"
import * as SimulatorApp from "../src/SimulatorApp.js"
import * as SimulatorServer from "../src/SimulatorServer.js"

const client = { clientId: "structured-client", clientSecret: Redacted.make("structured-client-secret-4e1f") }

const Answer = Schema.Struct({
  summary: Schema.String,
  confidence: Schema.Number,
  tags: Schema.Array(Schema.Literal("history", "science")),
  source: Schema.NullOr(Schema.String)
}).annotations({ identifier: "Answer" })

const gatewayFor = (server: SimulatorServer.Service, profile: Transport.Profile) =>
  Gateway.layer({ profile }).pipe(
    Layer.provideMerge(Layer.mergeAll(
      SafetyFilter.layerDefault,
      ContextWindow.layer(),
      ResponseCache.layerMemory({ capacity: 10, timeToLive: "1 minute" }),
      CostMeter.layerMemory({}),
      AuditLog.layerMemory
    )),
    Layer.provide(
      Transport.layer({ profile, baseUrl: profile === "gateway" ? server.baseUrl : server.openAiBaseUrl }).pipe(
        Layer.provide(
          profile === "gateway"
            ? Auth.layerGenesys({ ...client, environment: "localhost", loginUrl: server.baseUrl })
            : Auth.layerStatic(SimulatorApp.defaultApiKey)
        ),
        Layer.provide(NodeHttpClient.layerUndici)
      )
    )
  )

describe("structured output against the simulator server", () => {
  for (const profile of ["openai", "gateway"] as const) {
    it.live(`${profile} profile: the schema reaches the wire and the json scenario's reply decodes`, () =>
      Effect.gen(function*() {
        const server = yield* SimulatorServer.SimulatorServer
        const done = yield* Gateway.completeObject(
          { model: "sim:json", systemInstruction: "Be exact.", messages: [{ role: "user", content: "Ada Lovelace" }] },
          Answer
        ).pipe(Effect.provide(gatewayFor(server, profile)))
        expect(done.value).toEqual({ summary: "You said: Ada Lovelace", confidence: 0, tags: ["history"], source: "You said: Ada Lovelace" })

        const chat = (yield* server.requests).filter((r) => r.path !== "/oauth/token")
        expect(chat).toHaveLength(1)
        const body = chat[0]!.body as Record<string, unknown>
        const jsonSchema = StructuredOutput.make(Answer).jsonSchema
        if (profile === "openai") {
          expect(body["response_format"]).toEqual({
            type: "json_schema",
            json_schema: { name: "Answer", schema: jsonSchema, strict: true }
          })
          expect(body["messages"]).toEqual([
            { role: "system", content: "Be exact." },
            { role: "user", content: "Ada Lovelace" }
          ])
        } else {
          expect(Object.keys(body).sort()).toEqual(["messages", "modelId", "stream", "systemInstruction"])
          const system = body["systemInstruction"] as string
          expect(system.startsWith("Be exact.\n\n")).toBe(true)
          expect(StructuredOutput.schemaOfInstruction(system)).toEqual(jsonSchema)
        }
      }).pipe(Effect.provide(SimulatorServer.layerServer({ clients: [client] }))), 60_000)
  }

  it("the json scenario answers {reply} without a schema, and fits formats, minimums and references", () => {
    const messages = [{ role: "user", content: "Hi" }]
    expect(JSON.parse(Script.jsonReply({ messages }))).toEqual({ reply: "You said: Hi" })
    const Event = Schema.Struct({ count: Schema.Int.pipe(Schema.greaterThanOrEqualTo(3)), note: Schema.NullOr(Schema.String) })
      .annotations({ identifier: "Event" })
    const Events = Schema.Struct({ events: Schema.Array(Event), kind: Schema.Literal("x") })
    const value = JSON.parse(Script.jsonReply({ messages, responseSchema: StructuredOutput.make(Events).jsonSchema }))
    expect(Schema.decodeUnknownSync(Events)(value)).toEqual({ events: [{ count: 3, note: "You said: Hi" }], kind: "x" })
    const dated = { type: "object", properties: { at: { type: "string", format: "date-time" } } }
    expect(JSON.parse(Script.jsonReply({ messages, responseSchema: dated }))).toEqual({ at: "2024-01-01T00:00:00Z" })
  })
})
