/**
 * Single-flight over real sockets: 100 concurrent identical requests make exactly one upstream
 * call, counted by the simulator server, in each of 50 rounds (a new request each round, so the
 * cache misses and the join-or-lead step decides). A double lead in any round fails the test.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import { AuditLog, Auth, ContextWindow, CostMeter, Gateway, ResponseCache, SafetyFilter, Stage, Transport } from "@llm-gateway/core"
import * as Effect from "effect/Effect"
import { pipe } from "effect/Function"
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

  it.live("model fallback over real sockets: 503s from the first model, the second answers; audit and meter say so", () =>
    Effect.gen(function*() {
      const server = yield* SimulatorServer.SimulatorServer
      const models = Object.fromEntries(
        ["sim:unavailable", "sim:shared"].map((id) => [id, { contextWindow: 128_000, maxOutputTokens: 4_096, encoding: "o200k_base" as const }])
      )
      const gateway = Gateway.layerWith(
        Effect.gen(function*() {
          return pipe(yield* Stage.upstream(), yield* Stage.modelFallback(["sim:shared"]), yield* Stage.cache)
        })
      ).pipe(
        Layer.provideMerge(Layer.mergeAll(
          SafetyFilter.layerDefault,
          ContextWindow.layer({ models }),
          ResponseCache.layerMemory({ capacity: 10, timeToLive: "1 hour" }),
          CostMeter.layerMemory({ pricing: { "sim:": { promptPerMillion: 1, completionPerMillion: 2 } } }),
          AuditLog.layerMemory
        )),
        Layer.provide(
          Transport.layer({
            profile: "openai",
            baseUrl: server.openAiBaseUrl,
            retry: { initialDelay: "5 millis", maxDelay: "10 millis", maxAttempts: 2, deadline: "5 seconds" }
          }).pipe(Layer.provide(Auth.layerStatic(SimulatorApp.defaultApiKey)), Layer.provide(NodeHttpClient.layerUndici))
        )
      )
      yield* Effect.gen(function*() {
        const request = { model: "sim:unavailable", messages: [{ role: "user" as const, content: "Anyone there?" }] }
        const first = yield* Gateway.complete(request)
        expect(first.text).toBe(reply)
        // The transport's two attempts at the first model, then one at the second.
        expect(yield* server.countRequests({ path: "/v1/chat/completions" })).toBe(3)
        // The replay remembers which model answered; nothing is sent again.
        const again = yield* Gateway.complete(request)
        expect(again.cached).toBe(true)
        expect(yield* server.countRequests({ path: "/v1/chat/completions" })).toBe(3)
        const entries = yield* Effect.flatMap(AuditLog.MemoryAuditLog, (log) => log.entries)
        expect(entries.map((e) => [e.model, e.outcome, e.cached])).toEqual([
          ["sim:shared", "success", false],
          ["sim:shared", "success", true]
        ])
        const summary = yield* Effect.flatMap(CostMeter.CostMeter, (meter) => meter.summary)
        expect(summary).toMatchObject({ requests: 1, reservedUsd: 0 })
      }).pipe(Effect.provide(gateway))
    }).pipe(Effect.provide(SimulatorServer.layerServer({ scenarios: [{ name: "shared", reply }] }))), 60_000)
})
