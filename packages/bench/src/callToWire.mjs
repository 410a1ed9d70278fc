// Call → request on the wire: from calling `Gateway.stream` (everything on) or the openai client to
// the last byte of the request arriving at a loopback server in this process, for a 20-message
// (about 10 KB) and a 200-message conversation. Warm: many calls, p50/p99 and paired ratios of
// round medians. Cold: the first call of a fresh process (runtime or client already built), in a
// child process per sample (coldCall.mjs), against the warm calls of the same process.
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import OpenAI from "openai"
import { interleave, median, pairedRatio } from "./stats.mjs"
import { apiKey, gatewayRuntime, gatewayText, loopbackServer, model, openaiText, percentile, prose, replyWire } from "./support.mjs"

export const name = "Call to wire"

const replyPieces = ["Sure", ", here", " it is."]
const expected = replyPieces.join("")

/** A conversation of `count` messages of about 500 characters, ending with a user message. */
export const conversation = (count, salt) =>
  Array.from({ length: count }, (_, i) => ({
    role: (count - 1 - i) % 2 === 0 ? "user" : "assistant",
    content: (i === count - 1 ? `Question ${salt}: ` : "") + prose(400 + ((i * 71) % 200), i + 1)
  }))

/** Measures call → arrival for one call; `call(request)` returns the reply's text. */
export const timedCall = (server) => async (call, request) => {
  let arrivedAt
  server.expect = (at) => (arrivedAt = at)
  const start = performance.now()
  const text = await call(request)
  if (text !== expected) throw new Error(`wrong reply text: ${JSON.stringify(text.slice(0, 40))}`)
  if (arrivedAt === undefined) throw new Error("no request arrived")
  return arrivedAt - start
}

export const startServer = async () => {
  const hooks = { expect: undefined }
  const server = await loopbackServer({
    reply: (body) => {
      const request = JSON.parse(body)
      if (!Array.isArray(request.messages) || request.messages.length === 0) throw new Error("no messages")
      return replyWire(replyPieces)
    },
    onRequest: (at) => hooks.expect?.(at)
  })
  return Object.assign(hooks, server)
}

const coldRun = (who, count) =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(new URL("./coldCall.mjs", import.meta.url)), who, String(count)], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    let out = ""
    child.stdout.on("data", (data) => (out += data))
    child.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`coldCall ${who} exited with ${code}`))))
  })

export const run = async ({ quick }) => {
  const server = await startServer()
  const runtime = gatewayRuntime(server.baseUrl)
  const client = new OpenAI({ apiKey, baseURL: `${server.baseUrl}/v1`, maxRetries: 0 })
  const time = timedCall(server)
  const rows = []
  const notes = []
  let salt = 0
  try {
    for (const count of [20, 200]) {
      const all = { ours: [], openai: [] }
      const perRound = quick ? 8 : 20
      const warmup = 2
      const calls = { ours: 0, openai: 0 }
      const caseOf = (who, call) => async () => {
        const got = []
        for (let i = 0; i < perRound; i++) got.push(await time(call, { model, messages: conversation(count, salt++) }))
        // The percentiles, like the ratios, leave the warm-up rounds out.
        if (calls[who]++ >= warmup) all[who].push(...got)
        return median(got)
      }
      const samples = await interleave({
        ours: caseOf("ours", (request) =>
          gatewayText(runtime, request).then((r) => {
            if (r.cached) throw new Error("the cache answered: requests must differ")
            return r.text
          })),
        openai: caseOf("openai", (request) => openaiText(client, request))
      }, { rounds: quick ? 5 : 15, warmup })
      const size = JSON.stringify(conversation(count, 0)).length
      const p = (who, q) => percentile(all[who], q)
      const d50 = p("ours", 50) - p("openai", 50)
      const d99 = p("ours", 99) - p("openai", 99)
      rows.push({
        case: `warm, ${count} messages (${(size / 1000).toFixed(0)} KB): \`Gateway.stream\` vs openai client, p50 / p99`,
        short: `warm, ${count} messages`,
        ours: `${p("ours", 50).toFixed(2)} / ${p("ours", 99).toFixed(2)} ms (+${d50.toFixed(2)} / +${d99.toFixed(2)})`,
        peer: `${p("openai", 50).toFixed(2)} / ${p("openai", 99).toFixed(2)} ms`,
        ratio: pairedRatio(samples.ours, samples.openai),
        target: Infinity,
        targetText: "≤ +1 ms p50, ≤ +3 ms p99",
        met: d50 <= 1 && d99 <= 3
      })
    }
    // Cold: fresh processes, alternating.
    const cold = { ours: [], openai: [] }
    for (let i = 0; i < (quick ? 3 : 7); i++) {
      for (const who of i % 2 === 0 ? ["ours", "openai"] : ["openai", "ours"]) cold[who].push(await coldRun(who, 20))
    }
    const first = (who) => median(cold[who].map((r) => r.first))
    const warm = (who) => median(cold[who].map((r) => r.warm))
    const extra = first("ours") - warm("ours")
    rows.push({
      case: "cold, 20 messages: first call of a fresh process (runtime / client built), over a warm call of it",
      short: "cold first call, 20 messages",
      ours: `${first("ours").toFixed(1)} ms (warm ${warm("ours").toFixed(2)}, +${extra.toFixed(1)})`,
      peer: `${first("openai").toFixed(1)} ms (warm ${warm("openai").toFixed(2)}, +${(first("openai") - warm("openai")).toFixed(1)})`,
      ratio: pairedRatio(cold.ours.map((r) => r.first), cold.openai.map((r) => r.first)),
      target: Infinity,
      targetText: "≤ +50 ms over warm",
      met: extra <= 50
    })
    notes.push(
      `warm: ${quick ? 5 : 15} rounds of ${quick ? 8 : 20} calls per case, each conversation differs (no cache hit); the ratio is of round medians`,
      `cold: ${quick ? 3 : 7} child processes per client; building the runtime (${median(cold.ours.map((r) => r.build)).toFixed(0)} ms, ours) or client (${median(cold.openai.map((r) => r.build)).toFixed(0)} ms) is before the call and not counted`
    )
  } finally {
    await runtime.dispose()
    await server.close()
  }
  return { name, rows, notes }
}
