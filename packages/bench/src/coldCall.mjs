// One fresh process for the cold case of callToWire.mjs: builds the gateway runtime or the openai
// client, then times its first call and 10 warm ones against a loopback server in this process.
// Prints { build, first, warm } in milliseconds.
import OpenAI from "openai"
import { conversation, startServer, timedCall } from "./callToWire.mjs"
import { median } from "./stats.mjs"
import { apiKey, gatewayRuntime, gatewayText, model, openaiText } from "./support.mjs"

const [who, countText] = process.argv.slice(2)
const count = Number(countText)
const server = await startServer()
const time = timedCall(server)
const buildStart = performance.now()
let call
let runtime
if (who === "ours") {
  runtime = gatewayRuntime(server.baseUrl)
  await runtime.runtime()
  call = (request) => gatewayText(runtime, request).then((r) => r.text)
} else {
  const client = new OpenAI({ apiKey, baseURL: `${server.baseUrl}/v1`, maxRetries: 0 })
  call = (request) => openaiText(client, request)
}
const build = performance.now() - buildStart
const first = await time(call, { model, messages: conversation(count, 0) })
const warm = []
for (let i = 1; i <= 10; i++) warm.push(await time(call, { model, messages: conversation(count, i) }))
await runtime?.dispose()
await server.close()
process.stdout.write(JSON.stringify({ build, first, warm: median(warm) }))
process.exit(0)
