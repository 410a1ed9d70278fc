import { AuditLog, ContextWindow, CostMeter, Gateway, ResponseCache, SafetyFilter } from "@llm-gateway/core"
import { SimulatorLayer } from "@llm-gateway/simulator"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"

// Production: replace SimulatorLayer.layer() with
//   Transport.layerConfig().pipe(Layer.provideMerge(Auth.layerGenesysConfig()), Layer.provide(NodeHttpClient.layerUndici))
const GatewayLive = Gateway.layer({ systemInstruction: "You are a helpful assistant." }).pipe(
  Layer.provide(Layer.mergeAll(
    SafetyFilter.layerDefault,
    ContextWindow.layer(),
    ResponseCache.layerMemory({ capacity: 1_000, timeToLive: "10 minutes" }),
    CostMeter.layerMemory({ budgetUsd: 5 }),
    AuditLog.layerMemory
  )),
  Layer.provide(SimulatorLayer.layer())
)

export const program = Gateway.stream({
  model: "gpt-4o-mini",
  prompt: { template: "Translate into $language: $text", variables: { language: "Spanish", text: "Hello" } }
}).pipe(
  Stream.runFold("", (text, part) => (part._tag === "TextDelta" ? text + part.text : text)),
  Effect.provide(GatewayLive)
)
