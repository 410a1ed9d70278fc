// Redis stores: the latency one request adds when the response cache, the cost meter and the
// rate limiter live on Redis (`@llm-gateway/core/Redis`, a Redis server on 127.0.0.1) instead
// of in memory. Two gateways, alike but for their stores, answer the same short reply from a
// loopback server; each request is new (a cache miss: cache read, flight lease, budget hold and
// settlement, rate-limit count, cache write), and the two alternate request by request so that
// load moves both alike. Reports p50 and p99 of each and the p50 difference. Needs
// `redis-server` on the PATH (started here on a free port, stopped at the end).
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { AuditLog, Auth, ContextWindow, CostMeter, Gateway, ResponseCache, SafetyFilter, Transport } from "@llm-gateway/core"
import * as Redis from "@llm-gateway/core/Redis"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import { spawn, spawnSync } from "node:child_process"
import { randomUUID } from "node:crypto"
import { createServer } from "node:net"
import { pairedRatio } from "./stats.mjs"
import { apiKey, loopbackServer, model, replyWire } from "./support.mjs"

export const name = "Redis stores"

const pricing = { [model]: { promptPerMillion: 0.15, completionPerMillion: 0.6 } }
// High enough never to wait: a count per request is what is measured.
const rateLimit = { limit: 60_000, window: "1 minute", key: "bench" }

const freePort = () =>
  new Promise((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    })
  })

const runtimeWith = (baseUrl, stores) => {
  const services = Layer.mergeAll(
    SafetyFilter.layer({}),
    ContextWindow.layer({ models: { [model]: { contextWindow: 128_000, maxOutputTokens: 4_096, encoding: "o200k_base" } } }),
    AuditLog.layerMemory,
    stores
  )
  const transport = Transport.layer({ profile: "openai", baseUrl: `${baseUrl}/v1` }).pipe(
    Layer.provide(Auth.layerStatic(Redacted.make(apiKey))),
    Layer.provide(NodeHttpClient.layerUndici)
  )
  return ManagedRuntime.make(
    Gateway.layer({ profile: "openai", rateLimit }).pipe(Layer.provide(services), Layer.provide(transport))
  )
}

const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

const ms = (value) => `${value.toFixed(2)} ms`

export const run = async ({ quick }) => {
  if (spawnSync("redis-server", ["--version"]).status !== 0) {
    throw new Error("redis-server is not on the PATH (apt-get install redis-server)")
  }
  const port = await freePort()
  const redis = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: "ignore"
  })
  const server = await loopbackServer({ reply: () => replyWire(["A short ", "cached ", "answer."]) })
  const memory = runtimeWith(server.baseUrl, Layer.mergeAll(
    ResponseCache.layerMemory({ capacity: 100_000, timeToLive: "1 hour" }),
    // Without a RateLimiter in the context the rate limit counts in memory.
    CostMeter.layerMemory({ budgetUsd: 1_000_000, pricing })
  ))
  const shared = runtimeWith(server.baseUrl, Redis.layerRedis(
    { url: Redacted.make(`redis://127.0.0.1:${port}`), prefix: `llm-gateway-bench:${randomUUID()}:` },
    { cache: { timeToLive: "1 hour" }, meter: { budgetUsd: 1_000_000, pricing } }
  ))
  try {
    await new Promise((resolve) => setTimeout(resolve, 200))
    const requests = quick ? 300 : 2_000
    const warmup = 50
    const samples = { memory: [], redis: [] }
    let n = 0
    const once = async (runtime) => {
      const request = { model, messages: [{ role: "user", content: `Question number ${n++}` }] }
      const start = performance.now()
      const done = await runtime.runPromise(Gateway.complete(request))
      const took = performance.now() - start
      if (done.text !== "A short cached answer." || done.cached) throw new Error("unexpected reply")
      return took
    }
    for (let i = 0; i < warmup + requests; i++) {
      const order = i % 2 === 0 ? ["memory", "redis"] : ["redis", "memory"]
      for (const which of order) {
        const took = await once(which === "memory" ? memory : shared)
        if (i >= warmup) samples[which].push(took)
      }
    }
    // A repeated request is a hit on both: what a hit costs on Redis.
    const hit = { memory: [], redis: [] }
    const repeated = { model, messages: [{ role: "user", content: "The same question again" }] }
    await memory.runPromise(Gateway.complete(repeated))
    await shared.runPromise(Gateway.complete(repeated))
    for (let i = 0; i < (quick ? 100 : 500); i++) {
      for (const which of ["memory", "redis"]) {
        const start = performance.now()
        const done = await (which === "memory" ? memory : shared).runPromise(Gateway.complete(repeated))
        if (!done.cached) throw new Error("a repeated request was not a cache hit")
        hit[which].push(performance.now() - start)
      }
    }
    const row = (label, short, s) => {
      const p50 = { memory: percentile(s.memory, 50), redis: percentile(s.redis, 50) }
      const p99 = { memory: percentile(s.memory, 99), redis: percentile(s.redis, 99) }
      return {
        case: `${label}: p50 / p99 per request (${s.memory.length} requests each, alternating)`,
        short,
        ours: `Redis ${ms(p50.redis)} / ${ms(p99.redis)}`,
        peer: `memory ${ms(p50.memory)} / ${ms(p99.memory)}`,
        ratio: pairedRatio(s.redis, s.memory),
        targetText: `added: p50 ${ms(p50.redis - p50.memory)}, p99 ${ms(p99.redis - p99.memory)}`,
        noTarget: true
      }
    }
    return {
      name,
      rows: [row("cache miss (upstream call)", "Redis miss", samples), row("cache hit", "Redis hit", hit)],
      notes: [
        "a miss makes 9 Redis round trips (cache read; flight lease taken; budget read and compare-and-set for the hold and for the settlement; rate-limit count; cache write; lease released), plus a lease renewal per third of flightLease while a reply streams; a hit makes one. No target: the figure is what sharing costs on this machine"
      ]
    }
  } finally {
    await memory.dispose()
    await shared.dispose()
    await server.close()
    redis.kill("SIGKILL")
  }
}
