/**
 * Single-flight over real sockets: 100 concurrent identical requests make exactly one upstream
 * call, counted by the simulator server, in each of 50 rounds (a new request each round, so the
 * cache misses and the join-or-lead step decides). A double lead in any round fails the test.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import { AuditLog, Auth, ContextWindow, CostMeter, Gateway, ResponseCache, SafetyFilter, Transport } from "@llm-gateway/core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as SimulatorApp from "../src/SimulatorApp.js"
import * as SimulatorServer from "../src/SimulatorServer.js"

const reply = "One answer, shared by every identical request in flight."

describe("Gateway single-flight against the simulator server", () => {
  it.live("100 concurrent identical requests make exactly 1 upstream call, 50 rounds in a row", () =>
    Effect.gen(function*() {
      const server = yield* SimulatorServer.SimulatorServer
      const gateway = Gateway.layer({ profile: "openai" }).pipe(
        Layer.provideMerge(Layer.mergeAll(
          SafetyFilter.layerDefault,
          ContextWindow.layer({ models: { "sim:shared": { contextWindow: 128_000, maxOutputTokens: 4_096, encoding: "o200k_base" } } }),
          ResponseCache.layerMemory({ capacity: 100, timeToLive: "1 hour" }),
          CostMeter.layerMemory({ pricing: { "sim:shared": { promptPerMillion: 0.15, completionPerMillion: 0.6 } } }),
          AuditLog.layerMemory
        )),
        Layer.provide(
          Transport.layer({ profile: "openai", baseUrl: server.openAiBaseUrl }).pipe(
            Layer.provide(Auth.layerStatic(SimulatorApp.defaultApiKey)),
            Layer.provide(NodeHttpClient.layerUndici)
          )
        )
      )
      yield* Effect.gen(function*() {
        const callsPerRound: Array<number> = []
        for (let round = 0; round < 50; round++) {
          const before = yield* server.countRequests({ path: "/v1/chat/completions" })
          const request = { model: "sim:shared", messages: [{ role: "user" as const, content: `Round ${round}` }] }
          const results = yield* Effect.all(
            Array.from({ length: 100 }, () => Gateway.complete(request)),
            { concurrency: "unbounded" }
          )
          callsPerRound.push((yield* server.countRequests({ path: "/v1/chat/completions" })) - before)
          expect(results.every((r) => r.text === reply)).toBe(true)
          expect(results.filter((r) => !r.cached)).toHaveLength(1)
        }
        expect(callsPerRound).toEqual(Array(50).fill(1))
        expect(yield* Effect.flatMap(AuditLog.MemoryAuditLog, (log) => log.entries)).toHaveLength(5_000)
      }).pipe(Effect.provide(gateway))
    }).pipe(Effect.provide(SimulatorServer.layerServer({ scenarios: [{ name: "shared", reply }] }))), 120_000)
})
