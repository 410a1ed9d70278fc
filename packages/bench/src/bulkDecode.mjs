// Bulk decode: tens of MB of chat.completion.chunk events in 64 KiB reads, through the exact body
// decoder the transport uses (`Transport.decodeBody`: SSE parsing, then JSON and chunk decoding)
// as a Stream over Uint8Array reads, against eventsource-parser + JSON.parse over the same reads.
import { Transport } from "@llm-gateway/core"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { createParser } from "eventsource-parser"
import { interleave, median, pairedRatio } from "./stats.mjs"
import { prose, readsStream, replyWire, splitReads, wallMs } from "./support.mjs"

export const name = "Bulk decode"

/** Token-sized pieces of prose (a word and its space), as a model streams them. */
const tokensOf = (text) => text.match(/\S+\s*/g)

export const run = async ({ quick }) => {
  const megabytes = quick ? 10 : 50
  const words = tokensOf(prose(200_000))
  const pieces = []
  let wire = ""
  // Build about `megabytes` MB of events.
  const per = replyWire(words).length / words.length
  const count = Math.ceil((megabytes * 1e6) / per)
  for (let i = 0; i < count; i++) pieces.push(words[i % words.length])
  wire = replyWire(pieces)
  const bytes = new TextEncoder().encode(wire)
  const reads = splitReads(bytes, 64 * 1024)
  const expected = pieces.join("")
  const expectedEvents = pieces.length + 2 // the finish and the usage chunk

  const check = (who, events, text) => {
    if (events !== expectedEvents) throw new Error(`${who}: ${events} chunks, expected ${expectedEvents}`)
    if (text !== expected) throw new Error(`${who}: wrong text (${text.length} characters, expected ${expected.length})`)
  }

  const decodeOurs = Effect.suspend(() =>
    readsStream(reads).pipe(
      Transport.decodeBody(),
      Stream.runFold({ events: 0, parts: [] }, (acc, chunk) => {
        acc.events++
        const content = chunk.choices[0]?.delta?.content
        if (typeof content === "string") acc.parts.push(content)
        return acc
      })
    )
  )
  const ours = async () => {
    let result
    const ms = await wallMs(async () => {
      result = await Effect.runPromise(decodeOurs)
    })
    check("ours", result.events, result.parts.join(""))
    return ms
  }
  const peer = async () => {
    let events = 0
    const parts = []
    const ms = await wallMs(async () => {
      const parser = createParser({
        onEvent: (event) => {
          if (event.data === "[DONE]") return
          const chunk = JSON.parse(event.data)
          events++
          const content = chunk.choices[0]?.delta?.content
          if (typeof content === "string") parts.push(content)
        }
      })
      const decoder = new TextDecoder()
      for (const read of reads) parser.feed(decoder.decode(read, { stream: true }))
      parser.feed(decoder.decode())
    })
    check("eventsource-parser", events, parts.join(""))
    return ms
  }
  const samples = await interleave({ ours, peer }, { rounds: quick ? 3 : 9, warmup: 1 })
  const mb = bytes.length / 1e6
  return {
    name,
    rows: [{
      case: `${mb.toFixed(0)} MB of token-sized chunk events in 64 KiB reads: \`Transport.decodeBody\` vs eventsource-parser + JSON.parse (wall time)`,
      short: `${mb.toFixed(0)} MB in 64 KiB reads vs eventsource-parser (time)`,
      ours: `${(mb / (median(samples.ours) / 1000)).toFixed(0)} MB/s`,
      peer: `${(mb / (median(samples.peer) / 1000)).toFixed(0)} MB/s`,
      ratio: pairedRatio(samples.ours, samples.peer),
      target: 1 / 1.5,
      targetText: "≤ 0.67× (≥ 1.5× the speed)"
    }],
    notes: [`${expectedEvents} events, ${reads.length} reads; ratio is time, ours ÷ peer`]
  }
}
