// Live decode: one chat.completion.chunk event per network read, as a model streams tokens.
// Ours is the transport's body decoder (`Transport.decodeBody`) over a Stream that emits each read
// as its own Chunk; the peers are eventsource-parser + JSON.parse fed read by read (no I/O
// framework around it) and the openai package's own decoder (`Stream.fromSSEResponse` over a web
// Response whose body yields one read per pull, its only entry point).
import { Transport } from "@llm-gateway/core"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { createParser } from "eventsource-parser"
import { Stream as OpenAIStream } from "openai/streaming"
import { interleave, median, pairedRatio } from "./stats.mjs"
import { chunkEvent, closingEvents, prose, readsStream } from "./support.mjs"

export const name = "Live decode"

export const run = async ({ quick }) => {
  const count = quick ? 5_000 : 20_000
  const words = prose(count * 8).match(/\S+\s*/g)
  const pieces = Array.from({ length: count }, (_, i) => words[i % words.length])
  const encoder = new TextEncoder()
  const reads = [
    ...pieces.map((piece, i) => encoder.encode(chunkEvent(piece, i))),
    ...closingEvents(10, count).split(/(?<=\n\n)/).map((event) => encoder.encode(event))
  ]
  const expected = pieces.join("")
  const expectedEvents = count + 2
  const check = (who, events, text) => {
    if (events !== expectedEvents) throw new Error(`${who}: ${events} chunks, expected ${expectedEvents}`)
    if (text !== expected) throw new Error(`${who}: wrong text (${text.length} characters, expected ${expected.length})`)
  }
  const perEvent = (ms) => (ms * 1000) / reads.length

  const decodeOurs = Effect.suspend(() =>
    readsStream(reads).pipe(
      Transport.decodeBody(),
      Stream.runFold({ events: 0, text: "" }, (acc, chunk) => {
        acc.events++
        const content = chunk.choices[0]?.delta?.content
        if (typeof content === "string") acc.text += content
        return acc
      })
    )
  )
  const ours = async () => {
    const start = performance.now()
    const { events, text } = await Effect.runPromise(decodeOurs)
    const ms = performance.now() - start
    check("ours", events, text)
    return perEvent(ms)
  }
  const eventsourceParser = async () => {
    let events = 0
    let text = ""
    const start = performance.now()
    const parser = createParser({
      onEvent: (event) => {
        if (event.data === "[DONE]") return
        const chunk = JSON.parse(event.data)
        events++
        const content = chunk.choices[0]?.delta?.content
        if (typeof content === "string") text += content
      }
    })
    const decoder = new TextDecoder()
    for (const read of reads) parser.feed(decoder.decode(read, { stream: true }))
    const ms = performance.now() - start
    check("eventsource-parser", events, text)
    return perEvent(ms)
  }
  const openai = async () => {
    let events = 0
    let text = ""
    const start = performance.now()
    let i = 0
    const body = new ReadableStream({
      pull: (controller) => (i < reads.length ? controller.enqueue(reads[i++]) : controller.close())
    }, { highWaterMark: 0 })
    const stream = OpenAIStream.fromSSEResponse(new Response(body), new AbortController())
    for await (const chunk of stream) {
      events++
      const content = chunk.choices[0]?.delta?.content
      if (typeof content === "string") text += content
    }
    const ms = performance.now() - start
    check("openai", events, text)
    return perEvent(ms)
  }
  const samples = await interleave({ ours, eventsourceParser, openai }, { rounds: quick ? 5 : 15, warmup: 2 })
  const oursText = `${median(samples.ours).toFixed(2)} µs/event`
  return {
    name,
    rows: [{
      case: "one event per read: `Transport.decodeBody` vs eventsource-parser + JSON.parse",
      short: "one event per read vs eventsource-parser",
      ours: oursText,
      peer: `${median(samples.eventsourceParser).toFixed(2)} µs/event`,
      ratio: pairedRatio(samples.ours, samples.eventsourceParser),
      target: 1.5
    }, {
      case: "one event per read: `Transport.decodeBody` vs the openai package's decoder (`Stream.fromSSEResponse`)",
      short: "one event per read vs the openai decoder",
      ours: oursText,
      peer: `${median(samples.openai).toFixed(2)} µs/event`,
      ratio: pairedRatio(samples.ours, samples.openai),
      target: 0.5
    }],
    notes: [
      `${reads.length} reads of one event each per case per round; ours reads an Effect Stream that emits one Chunk per read, eventsource-parser is fed in a plain loop, the openai decoder reads a web ReadableStream (its only entry), one read per pull`
    ]
  }
}
