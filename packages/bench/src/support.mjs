// Shared pieces of the benchmarks: the wire text of an OpenAI chat stream, a loopback SSE server,
// the gateway with every stage on (as in gatewayStream.mjs), a one-chunk-per-read Stream source,
// percentiles, and CPU/wall timers.
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { AuditLog, Auth, ContextWindow, CostMeter, Gateway, ResponseCache, SafetyFilter, Transport } from "@llm-gateway/core"
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { createServer } from "node:http"

export const model = "sim:bench"
export const apiKey = "sim-api-key"

/** The `data:` line of one chat.completion.chunk carrying `content`. */
export const chunkEvent = (content, i = 0) =>
  `data: ${
    JSON.stringify({
      id: "chatcmpl-bench",
      object: "chat.completion.chunk",
      created: 1_700_000_000,
      model,
      choices: [{ index: 0, delta: i === 0 ? { role: "assistant", content } : { content }, finish_reason: null }]
    })
  }\n\n`

/** The closing events: finish reason, usage, `[DONE]`. */
export const closingEvents = (promptTokens, completionTokens) =>
  `data: ${
    JSON.stringify({
      id: "chatcmpl-bench",
      object: "chat.completion.chunk",
      created: 1_700_000_000,
      model,
      choices: [{ index: 0, delta: {}, finish_reason: "stop" }]
    })
  }\n\n` +
  `data: ${
    JSON.stringify({
      id: "chatcmpl-bench",
      object: "chat.completion.chunk",
      created: 1_700_000_000,
      model,
      choices: [],
      usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens }
    })
  }\n\n` +
  "data: [DONE]\n\n"

/** A whole reply as wire text, one event per piece. */
export const replyWire = (pieces, promptTokens = 10) =>
  pieces.map((piece, i) => chunkEvent(piece, i)).join("") + closingEvents(promptTokens, pieces.length)

/** A Stream that emits each element of `reads` as its own Chunk, as a network read would arrive. */
export const readsStream = (reads) =>
  Stream.fromChannel(Channel.suspend(() => {
    let i = 0
    const loop = Channel.suspend(() => (i < reads.length ? Channel.zipRight(Channel.write(Chunk.of(reads[i++])), loop) : Channel.void))
    return loop
  }))

/** Splits bytes into reads of `size` bytes. */
export const splitReads = (bytes, size) => {
  const reads = []
  for (let at = 0; at < bytes.length; at += size) reads.push(bytes.subarray(at, Math.min(at + size, bytes.length)))
  return reads
}

/**
 * A loopback HTTP server on 127.0.0.1 that answers every POST with `reply(body)` (wire text or a
 * function writing to the response) after reading the whole request; `onRequest(arrivedAt, body)`
 * sees the time (performance.now()) the last byte of the request arrived.
 */
export const loopbackServer = async ({ reply, onRequest }) => {
  const server = createServer((req, res) => {
    const parts = []
    req.on("data", (data) => parts.push(data))
    req.on("end", () => {
      const arrivedAt = performance.now()
      const body = Buffer.concat(parts).toString("utf8")
      onRequest?.(arrivedAt, body)
      let answer
      try {
        answer = reply(body)
      } catch (error) {
        // A request the benchmark did not expect fails the client's call, and so the case.
        res.writeHead(400, { "content-type": "application/json" })
        return res.end(JSON.stringify({ error: { message: `bench server: ${error.message}` } }))
      }
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })
      if (typeof answer === "function") answer(res)
      else res.end(answer)
    })
  })
  server.keepAliveTimeout = 60_000
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address()
  return { baseUrl: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(resolve)) }
}

/**
 * A ManagedRuntime of the gateway with everything on, as in gatewayStream.mjs: input and
 * streaming output redaction, context fitting, a budget, a memory cache, an in-memory audit log.
 */
export const gatewayRuntime = (baseUrl, { maxReplyChars, maxOutputTokens = 16_000 } = {}) => {
  const services = Layer.mergeAll(
    SafetyFilter.layer({}),
    ContextWindow.layer({ models: { [model]: { contextWindow: 1_000_000 + maxOutputTokens, maxOutputTokens, encoding: "o200k_base" } } }),
    ResponseCache.layerMemory({ capacity: 1_000, timeToLive: "1 hour" }),
    CostMeter.layerMemory({ budgetUsd: 1_000_000_000, pricing: { [model]: { promptPerMillion: 0.15, completionPerMillion: 0.6 } } }),
    AuditLog.layerMemory
  )
  const transport = Transport.layer({ profile: "openai", baseUrl: `${baseUrl}/v1` }).pipe(
    Layer.provide(Auth.layerStatic(Redacted.make(apiKey))),
    Layer.provide(NodeHttpClient.layerUndici)
  )
  return ManagedRuntime.make(
    Gateway.layer({ profile: "openai", ...(maxReplyChars === undefined ? {} : { maxReplyChars }) }).pipe(
      Layer.provide(services),
      Layer.provide(transport)
    )
  )
}

/** Runs `Gateway.stream(request)` to the end; the reply's text and whether the cache answered. */
export const gatewayText = (runtime, request) =>
  runtime.runPromise(
    Gateway.stream(request).pipe(
      Stream.runFold({ text: "", cached: false }, (acc, part) =>
        part._tag === "TextDelta"
          ? { text: acc.text + part.text, cached: acc.cached }
          : part._tag === "Finish"
          ? { text: acc.text, cached: part.cached === true }
          : acc)
    )
  )

/** The reply's text through the openai client's streaming. */
export const openaiText = async (client, request) => {
  const stream = await client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } })
  let text = ""
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ""
  return text
}

/** The p-th percentile (0–100) of numbers, nearest rank. */
export const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]
}

/** Wall milliseconds of an async function. */
export const wallMs = async (f) => {
  const start = performance.now()
  await f()
  return performance.now() - start
}

/** English-like prose of about `chars` characters, deterministic. */
export const prose = (chars, seed = 1) => {
  const words = ("the of and to in a is that for it as was with be by on not he this are or his from at which but have an " +
    "they you were her she there one all we their been has would when if more will out so up said what about into than " +
    "them can only other time new some could these two may first then do any like my now over such our man me even most " +
    "made after also did many before must through back years where much your way well down should because each just those " +
    "people how too little state good very make world still own see men work long get here between both life being under " +
    "never day same another know while last might us great old year off come since against go came right used take three").split(" ")
  let x = seed
  const next = () => (x = (x * 1103515245 + 12345) % 2147483648)
  let out = ""
  let sentence = 0
  while (out.length < chars) {
    const word = words[next() % words.length]
    out += sentence === 0 ? word[0].toUpperCase() + word.slice(1) : word
    sentence++
    if (sentence > 8 && next() % 6 === 0) {
      out += next() % 4 === 0 ? ", " : ". "
      if (!out.endsWith(", ")) sentence = 0
    } else out += " "
  }
  return out.slice(0, chars)
}
