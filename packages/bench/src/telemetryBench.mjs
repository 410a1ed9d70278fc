// The cost of telemetry per token: `Gateway.stream` as in the streaming benchmark (redaction,
// budget, cache miss, audit), side by side without the `Telemetry` service, with it (spans on
// Effect's native tracer, metrics in the registry), and with it exporting over OTLP/HTTP JSON to
// a loopback receiver in this process. CPU (user + system of this process) per completion token.
//
//   node --conditions=@llm-gateway/source --import tsx packages/bench/src/telemetryBench.mjs [--quick]
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { AuditLog, Auth, ContextWindow, CostMeter, Gateway, ResponseCache, SafetyFilter, Telemetry, Transport } from "@llm-gateway/core"
import * as TelemetryOtlp from "@llm-gateway/core/TelemetryOtlp"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { createServer } from "node:http"
import { fileURLToPath } from "node:url"
import { startServer } from "./gatewayStream.mjs"
import { interleave, median, pairedRatio } from "./stats.mjs"

export const name = "Telemetry"

const sentence = "The quick brown fox jumps over the lazy dog while the river runs quietly past the old mill. "
const reply = sentence.repeat(50)
const model = "sim:bench"
const apiKey = "sim-api-key"


/** An OTLP receiver that reads and discards what it is sent, counting the bytes. */
const startSink = () =>
  new Promise((resolve) => {
    let bytes = 0
    const server = createServer((request, response) => {
      request.on("data", (data) => (bytes += data.length))
      request.on("end", () => response.end("{}"))
    })
    server.listen(0, "127.0.0.1", () =>
      resolve({ url: `http://127.0.0.1:${server.address().port}`, bytes: () => bytes, close: () => server.close() }))
  })

const perToken = (requests, once) => async () => {
  const before = process.cpuUsage()
  let tokens = 0
  for (let i = 0; i < requests; i++) {
    const { text, completionTokens } = await once()
    if (text !== reply) throw new Error(`wrong text (${text.length} characters, expected ${reply.length})`)
    tokens += completionTokens
  }
  const used = process.cpuUsage(before)
  return (used.user + used.system) / tokens
}

export const run = async ({ quick }) => {
  const { child, baseUrl } = await startServer()
  const sink = await startSink()
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
    const runtimeWith = (telemetry) =>
      ManagedRuntime.make(
        Gateway.layer({ profile: "openai" }).pipe(
          Layer.provide(Layer.merge(services, telemetry)),
          Layer.provide(transport)
        )
      )
    const off = runtimeWith(Layer.empty)
    const on = runtimeWith(Telemetry.layer())
    const exported = runtimeWith(
      TelemetryOtlp.layer({ endpoint: sink.url }).pipe(
        Layer.provide(NodeHttpClient.layerUndici)
      )
    )
    let n = 0
    const ask = () => ({ model, messages: [{ role: "user", content: `Tell me a story, number ${n++}.` }] })
    const streamOn = (runtime) => () =>
      runtime.runPromise(
        Gateway.stream(ask()).pipe(
          Stream.runFold({ text: "", completionTokens: 0 }, (acc, part) =>
            part._tag === "TextDelta"
              ? { ...acc, text: acc.text + part.text }
              : part._tag === "Finish"
              ? { ...acc, completionTokens: part.usage.completionTokens }
              : acc)
        )
      )

    const requests = 5
    const samples = await interleave({
      off: perToken(requests, streamOn(off)),
      on: perToken(requests, streamOn(on)),
      exported: perToken(requests, streamOn(exported))
    }, { rounds: quick ? 5 : 15, warmup: 2 })
    await Promise.all([off.dispose(), on.dispose(), exported.dispose()])
    const sent = sink.bytes()
    return {
      name,
      rows: [{
        case: "`Gateway.stream` with `Telemetry.layer()` (spans, metrics) vs without, CPU µs per token",
        ours: `${median(samples.on).toFixed(1)} µs`,
        peer: `${median(samples.off).toFixed(1)} µs`,
        ratio: pairedRatio(samples.on, samples.off),
        short: "telemetry on vs off",
        noTarget: true,
        targetText: "none set"
      }, {
        case: "the same, exporting over OTLP/HTTP JSON to a loopback receiver vs without telemetry",
        ours: `${median(samples.exported).toFixed(1)} µs`,
        peer: `${median(samples.off).toFixed(1)} µs`,
        ratio: pairedRatio(samples.exported, samples.off),
        short: "telemetry exported vs off",
        noTarget: true,
        targetText: "none set"
      }],
      notes: [
        `${requests} requests of ${reply.length} characters per case per round; ${(sent / 1024).toFixed(0)} KiB of OTLP JSON received`
      ]
    }
  } finally {
    child.kill()
    sink.close()
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await run({ quick: process.argv.includes("--quick") })
  for (const row of result.rows) {
    console.log(`${row.case}: ${row.ours} vs ${row.peer}, ratio ${row.ratio.median.toFixed(3)} (${row.ratio.min.toFixed(3)}–${row.ratio.max.toFixed(3)})`)
  }
  for (const note of result.notes) console.log(note)
  await Effect.runPromise(Effect.void)
}
