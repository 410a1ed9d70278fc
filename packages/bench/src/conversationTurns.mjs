// Per-turn cost of `Conversation.send` as the history grows: a conversation of 1,000 earlier turns
// against one of 10, same model, same messages' sizes. Each measurement builds the conversation
// (earlier turns as data, as from a store), sends one untimed turn (the first send counts the
// loaded history once), then takes the mean CPU time (user + system: everything runs in this
// process, and CPU time moves less than wall time with other work on the machine) of the next
// sends. The whole pipeline runs (input
// guard, fitting, cache bypassed per send, budget, reply assembly with streaming redaction,
// audit) over an in-memory transport that echoes the newest user message in 20 chunks, so
// neither a socket nor a timer adds noise. The model's window holds about 10 turns: both
// conversations soon send a window of the same size, and what differs is only the history the
// conversation keeps (counting, choosing the window, recording).
import { AuditLog, ContextWindow, Conversation, CostMeter, Gateway, ResponseCache, SafetyFilter, Transport } from "@llm-gateway/core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Stream from "effect/Stream"
import { interleave, median, pairedRatio } from "./stats.mjs"
import { prose } from "./support.mjs"

export const name = "Conversation turns"

const model = "bench-window"
const window = { contextWindow: 1_500, maxOutputTokens: 200, encoding: "o200k_base" }

const question = (salt, turn) => `Question ${salt}.${turn}: ${prose(200, salt * 7919 + turn)}`

/** Earlier turns as the store would hold them: a 200-character question and its echo. */
const history = (salt, turns) =>
  Array.from({ length: turns }, (_, turn) => {
    const content = question(salt, turn)
    return [{ role: "user", content }, { role: "assistant", content: `You said: ${content}` }]
  }).flat()

/** Echoes the newest user message in 20 content chunks, then the finish reason and usage. */
const echoTransport = Layer.succeed(Transport.GatewayTransport, {
  profile: "openai",
  stream: (request) =>
    Stream.suspend(() => {
      const text = `You said: ${request.messages.at(-1).content}`
      const size = Math.ceil(text.length / 20)
      const chunks = []
      for (let at = 0; at < text.length; at += size) {
        chunks.push({ choices: [{ index: 0, delta: { content: text.slice(at, at + size) } }] })
      }
      chunks.push({ choices: [{ index: 0, delta: {}, finish_reason: "stop" }] })
      chunks.push({ choices: [], usage: { prompt_tokens: 1_000, completion_tokens: 50, total_tokens: 1_050 } })
      return Stream.fromIterable(chunks)
    })
})

export const run = async ({ quick }) => {
  const runtime = ManagedRuntime.make(
    Gateway.layer({ profile: "openai" }).pipe(
      Layer.provideMerge(Layer.mergeAll(
        SafetyFilter.layerDefault,
        ContextWindow.layer({ models: { [model]: window } }),
        ResponseCache.layerMemory({ capacity: 100, timeToLive: "1 hour" }),
        CostMeter.layerMemory({ pricing: { [model]: { promptPerMillion: 0.15, completionPerMillion: 0.6 } } }),
        AuditLog.layerMemory
      )),
      Layer.provide(echoTransport)
    )
  )
  const timed = quick ? 10 : 30
  let salt = 1
  const dropped = { 10: [], 1000: [] }
  const turnsOf = (earlier) => async () => {
    const s = salt++
    return runtime.runPromise(Effect.gen(function*() {
      const conversation = yield* Conversation.make({ model, messages: history(s, earlier) })
      const sendOne = (turn) =>
        conversation.send(question(s, turn), { cache: false }).pipe(
          Stream.runFold(0, (n, part) => (part._tag === "ContextTrimmed" ? part.droppedMessages : n))
        )
      yield* sendOne(earlier)
      const start = process.cpuUsage()
      let last = 0
      for (let turn = earlier + 1; turn <= earlier + timed; turn++) last = yield* sendOne(turn)
      const used = process.cpuUsage(start)
      const ms = (used.user + used.system) / 1_000 / timed
      // The answer: every turn recorded, the last one as echoed, the window reported.
      const messages = yield* conversation.messages
      const final = question(s, earlier + timed)
      if (messages.length !== 2 * (earlier + 1 + timed)) throw new Error(`${messages.length} messages recorded`)
      if (messages.at(-1).content !== `You said: ${final}`) throw new Error("wrong reply recorded")
      dropped[earlier].push(last)
      return ms
    }))
  }
  try {
    const samples = await interleave({ 1000: turnsOf(1000), 10: turnsOf(10) }, { rounds: quick ? 3 : 9, warmup: 1 })
    const sentTurns = (earlier) => earlier + 1 + timed - median(dropped[earlier]) / 2
    if (median(dropped[1000]) === 0) throw new Error("the 1,000-turn conversation reported no trimming")
    return {
      name,
      rows: [{
        case: `\`Conversation.send\`, mean CPU time per turn after 1,000 earlier turns vs after 10 (window of about ${Math.round(sentTurns(1000))} turns)`,
        short: "Conversation.send per turn, 1,000 vs 10 turns",
        ours: `${median(samples[1000]).toFixed(2)} ms`,
        peer: `${median(samples[10]).toFixed(2)} ms`,
        ratio: pairedRatio(samples[1000], samples[10]),
        target: 1.5
      }],
      notes: [
        `each turn adds a ${question(1, 1).length}-character question and its echo; ${timed} timed sends per conversation, after one untimed send; the 1,000-turn conversation leaves out ${median(dropped[1000])} messages per send (reported as ContextTrimmed), the 10-turn one ${median(dropped[10])}; target ≤ 1.5× (flat) is this suite's own`
      ]
    }
  } finally {
    await runtime.dispose()
  }
}
