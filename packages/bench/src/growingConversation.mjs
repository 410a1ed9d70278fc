// Per-turn cost of a growing conversation: turn n sends the n − 1 earlier turns (user message and
// the assistant's reply) plus a new user message, as a chat application does. Wall time per turn
// from the call to the end of the reply, `Gateway.stream` (everything on) vs the openai client,
// against a loopback server in this process that streams a 60-token reply.
import OpenAI from "openai"
import { interleave, median, pairedRatio } from "./stats.mjs"
import { apiKey, gatewayRuntime, gatewayText, loopbackServer, model, openaiText, prose, replyWire } from "./support.mjs"

export const name = "Growing conversation"

const reply = prose(300, 42)
const pieces = reply.match(/\S+\s*/g)

export const run = async ({ quick }) => {
  let expectedMessages = 0
  const server = await loopbackServer({
    reply: (body) => {
      const { messages } = JSON.parse(body)
      if (messages.length !== expectedMessages) throw new Error(`the request carried ${messages.length} messages, expected ${expectedMessages}`)
      return replyWire(pieces)
    }
  })
  const runtime = gatewayRuntime(server.baseUrl)
  const client = new OpenAI({ apiKey, baseURL: `${server.baseUrl}/v1`, maxRetries: 0 })
  const turns = quick ? 20 : 60
  let salt = 0
  const last = { ours: [], openai: [] }
  const conversationWith = (who, call) => async () => {
    const history = []
    const id = salt++
    const times = []
    for (let turn = 1; turn <= turns; turn++) {
      history.push({ role: "user", content: `Conversation ${id}, turn ${turn}: ${prose(200, turn + id)}` })
      expectedMessages = history.length
      const start = performance.now()
      const text = await call({ model, messages: history })
      times.push(performance.now() - start)
      if (text !== reply) throw new Error(`${who}: wrong reply text at turn ${turn}`)
      history.push({ role: "assistant", content: text })
    }
    last[who].push(times[times.length - 1])
    return times.reduce((a, b) => a + b, 0) / turns
  }
  try {
    const samples = await interleave({
      ours: conversationWith("ours", (request) =>
        gatewayText(runtime, request).then((r) => {
          if (r.cached) throw new Error("the cache answered: turns must differ")
          return r.text
        })),
      openai: conversationWith("openai", (request) => openaiText(client, request))
    }, { rounds: quick ? 3 : 9, warmup: 1 })
    return {
      name,
      rows: [{
        case: `${turns} turns, turn n resends n − 1 turns: \`Gateway.stream\` vs openai client, mean wall time per turn (last turn)`,
        short: `${turns}-turn conversation, per turn`,
        ours: `${median(samples.ours).toFixed(2)} ms (${median(last.ours).toFixed(2)})`,
        peer: `${median(samples.openai).toFixed(2)} ms (${median(last.openai).toFixed(2)})`,
        ratio: pairedRatio(samples.ours, samples.openai),
        target: 1.5
      }],
      notes: [
        `each turn adds a 200-character question and a ${reply.length}-character reply of ${pieces.length} events; target ≤ 1.5× is this suite's own`
      ]
    }
  } finally {
    await runtime.dispose()
    await server.close()
  }
}
