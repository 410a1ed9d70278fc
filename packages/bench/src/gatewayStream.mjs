// End to end CPU per token through a loopback server: `Gateway.stream` with everything on
// (input and streaming output redaction, a budget, a memory cache that misses because every
// request differs, an in-memory audit log) against the official `openai` streaming client, both
// reading the same reply from the simulator HTTP server running in another process. The figure
// is this process's CPU time (user + system, process.cpuUsage) per completion token.
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { AuditLog, Auth, ContextWindow, CostMeter, Gateway, ResponseCache, SafetyFilter, Transport } from "@llm-gateway/core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import OpenAI from "openai"
import { interleave, median, pairedRatio } from "./stats.mjs"

export const name = "Streaming CPU"

const sentence = "The quick brown fox jumps over the lazy dog while the river runs quietly past the old mill. "
const reply = sentence.repeat(50)
const model = "sim:bench"
const apiKey = "sim-api-key"

/** The simulator HTTP server in another process, answering every request with `reply`. */
export const startServer = () =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [
      fileURLToPath(new URL("./simServer.mjs", import.meta.url)),
      JSON.stringify([{ name: "bench", reply }])
    ], { stdio: ["ignore", "pipe", "inherit"] })
    let out = ""
    child.stdout.on("data", (data) => {
      out += data
      const line = out.split("\n")[0]
      if (out.includes("\n")) resolve({ child, baseUrl: line.trim() })
    })
    child.on("exit", (code) => reject(new Error(`simulator server exited with ${code}`)))
  })

// CPU (user + system of this process) and wall time per completion token, over `requests` calls.
const perToken = (requests, once) => async () => {
  const before = process.cpuUsage()
  const start = performance.now()
  let tokens = 0
  for (let i = 0; i < requests; i++) {
    const { text, completionTokens } = await once()
    if (text !== reply) throw new Error(`wrong text (${text.length} characters, expected ${reply.length})`)
    tokens += completionTokens
  }
  const used = process.cpuUsage(before)
  return { cpu: (used.user + used.system) / tokens, wall: ((performance.now() - start) * 1000) / tokens }
}

// BENCH_GATEWAY_BASELINE=<path of another build's dist/Gateway.js> adds that Gateway to the same
// rounds (same services, same server), for a before/after comparison of a change.
const baselinePath = process.env.BENCH_GATEWAY_BASELINE

export const run = async ({ quick }) => {
  const { child, baseUrl } = await startServer()
  try {
    const services = Layer.mergeAll(
      SafetyFilter.layer({}),
      ContextWindow.layer({ models: { [model]: { contextWindow: 128_000, maxOutputTokens: 16_000, encoding: "o200k_base" } } }),
      ResponseCache.layerMemory({ capacity: 1_000, timeToLive: "1 hour" }),
      CostMeter.layerMemory({ budgetUsd: 1_000_000, pricing: { "sim:bench": { promptPerMillion: 0.15, completionPerMillion: 0.6 } } }),
      AuditLog.layerMemory
    )
    const transport = Transport.layer({ profile: "openai", baseUrl: `${baseUrl}/v1` }).pipe(
      Layer.provide(Auth.layerStatic(Redacted.make(apiKey))),
      Layer.provide(NodeHttpClient.layerUndici)
    )
    const runtimeOf = (G) => ManagedRuntime.make(G.layer({ profile: "openai" }).pipe(Layer.provide(services), Layer.provide(transport)))
    const runtime = runtimeOf(Gateway)
    const baseline = baselinePath === undefined ? undefined : await import(baselinePath)
    const baselineRuntime = baseline === undefined ? undefined : runtimeOf(baseline)
    const client = new OpenAI({ apiKey, baseURL: `${baseUrl}/v1`, maxRetries: 0 })
    let n = 0
    const ask = () => ({ model, messages: [{ role: "user", content: `Tell me a story, number ${n++}.` }] })

    const streamWith = (G, rt) => () =>
      rt.runPromise(
        G.stream(ask()).pipe(
          Stream.runFold({ text: "", completionTokens: 0 }, (acc, part) =>
            part._tag === "TextDelta"
              ? { ...acc, text: acc.text + part.text }
              : part._tag === "Finish"
              ? { ...acc, completionTokens: part.usage.completionTokens, cached: part.cached }
              : acc)
        )
      ).then((r) => {
        if (r.cached) throw new Error("the cache hit: requests must differ")
        return r
      })
    const ours = streamWith(Gateway, runtime)
    const peer = async () => {
      const stream = await client.chat.completions.create({
        ...ask(),
        stream: true,
        stream_options: { include_usage: true }
      })
      let text = ""
      let completionTokens = 0
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta?.content ?? ""
        if (chunk.usage) completionTokens = chunk.usage.completion_tokens
      }
      return { text, completionTokens }
    }

    const requests = 5
    const samples = await interleave({
      "Gateway.stream": perToken(requests, ours),
      "openai": perToken(requests, peer),
      ...(baseline === undefined ? {} : { baseline: perToken(requests, streamWith(baseline, baselineRuntime)) })
    }, { rounds: quick ? 5 : 15, warmup: 2 })
    await runtime.dispose()
    if (baselineRuntime !== undefined) await baselineRuntime.dispose()
    const cpu = (key) => samples[key].map((sample) => sample.cpu)
    const wall = (key) => samples[key].map((sample) => sample.wall)
    const a = cpu("Gateway.stream")
    const b = cpu("openai")
    return {
      name,
      rows: [{
        case: "`Gateway.stream` (redaction, budget, cache miss, audit) vs `openai` streaming, CPU µs per token, loopback simulator",
        ours: `${median(a).toFixed(1)} µs`,
        peer: `${median(b).toFixed(1)} µs`,
        ratio: pairedRatio(a, b),
        short: "CPU per token",
        target: 1
      }, {
        case: "the same, wall time µs per token",
        ours: `${median(wall("Gateway.stream")).toFixed(1)} µs`,
        peer: `${median(wall("openai")).toFixed(1)} µs`,
        ratio: pairedRatio(wall("Gateway.stream"), wall("openai")),
        short: "wall per token",
        noTarget: true,
        targetText: "none set"
      }, ...(baseline === undefined ? [] : [{
        case: `\`Gateway.stream\` vs the baseline build (${baselinePath}), CPU µs per token`,
        ours: `${median(a).toFixed(1)} µs`,
        peer: `${median(cpu("baseline")).toFixed(1)} µs`,
        ratio: pairedRatio(a, cpu("baseline")),
        target: 1
      }])],
      notes: [`${requests} requests of ${reply.length} characters per case per round; the server runs in another process`]
    }
  } finally {
    child.kill()
  }
}
