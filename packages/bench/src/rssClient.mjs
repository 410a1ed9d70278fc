// One child process of peakRss.mjs: reads the whole reply with `Gateway.stream` or the openai
// client, counting its characters and keeping its last 100. Prints { wall, maxRss, chars, tail }.
import { Gateway } from "@llm-gateway/core"
import * as Stream from "effect/Stream"
import OpenAI from "openai"
import { apiKey, gatewayRuntime, model } from "./support.mjs"

const [who, baseUrl, charsText] = process.argv.slice(2)
const request = { model, messages: [{ role: "user", content: "Tell me a very long story." }] }
let chars = 0
let tail = ""
const take = (text) => {
  chars += text.length
  tail = (tail + text).slice(-100)
}
let wall
if (who === "ours") {
  const runtime = gatewayRuntime(baseUrl, { maxReplyChars: Number(charsText) * 2, maxOutputTokens: Number(charsText) })
  await runtime.runtime()
  const start = performance.now()
  await runtime.runPromise(Gateway.stream(request).pipe(Stream.runFold(0, (n, part) => {
    if (part._tag === "TextDelta") take(part.text)
    return n + 1
  })))
  wall = performance.now() - start
  await runtime.dispose()
} else {
  const client = new OpenAI({ apiKey, baseURL: `${baseUrl}/v1`, maxRetries: 0 })
  const start = performance.now()
  const stream = await client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } })
  for await (const chunk of stream) take(chunk.choices[0]?.delta?.content ?? "")
  wall = performance.now() - start
}
process.stdout.write(JSON.stringify({ wall, maxRss: process.resourceUsage().maxRSS, chars, tail }))
process.exit(0)
