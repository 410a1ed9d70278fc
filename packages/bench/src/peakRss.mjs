// Peak RSS and wall time on a 100 MB reply: `Gateway.stream` (everything on) vs the openai client,
// each in its own child process (rssClient.mjs) so that the peak is that client's alone, reading a
// reply streamed by a loopback server in this process, with token-sized events and with ~2 KB events.
// The clients count the text and keep its tail rather than the whole of it, as a proxy would.
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { median, pairedRatio } from "./stats.mjs"
import { chunkEvent, closingEvents, loopbackServer, prose } from "./support.mjs"

export const name = "100 MB reply"

/** The reply: events cycling through `pieces` until `bytes` of wire text, then the closing events. */
const replyOf = (pieces, bytes) => {
  const block = Buffer.from(pieces.map((piece, i) => chunkEvent(piece, i + 1)).join(""))
  const blockChars = pieces.reduce((n, piece) => n + piece.length, 0)
  const blocks = Math.max(1, Math.round(bytes / block.length))
  const tail = pieces.join("").slice(-100)
  return {
    blocks,
    chars: blocks * blockChars,
    tail,
    events: blocks * pieces.length,
    write: (res) => {
      let sent = 0
      const pump = () => {
        while (sent < blocks) {
          sent++
          if (!res.write(block)) return res.once("drain", pump)
        }
        res.end(closingEvents(10, blocks * pieces.length))
      }
      pump()
    }
  }
}

const client = (who, baseUrl, expected) =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [
      "--max-old-space-size=4096",
      fileURLToPath(new URL("./rssClient.mjs", import.meta.url)),
      who,
      baseUrl,
      String(expected.chars)
    ], { stdio: ["ignore", "pipe", "inherit"] })
    let out = ""
    child.stdout.on("data", (data) => (out += data))
    child.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`rssClient ${who} exited with ${code}`))
      const result = JSON.parse(out)
      if (result.chars !== expected.chars) return reject(new Error(`${who}: ${result.chars} characters, expected ${expected.chars}`))
      if (result.tail !== expected.tail) return reject(new Error(`${who}: the reply ends differently`))
      resolve(result)
    })
  })

export const run = async ({ quick }) => {
  const megabytes = quick ? 10 : 100
  const kinds = {
    "token-sized events": prose(8_000, 21).match(/\S+\s*/g),
    "~2 KB events": Array.from({ length: 8 }, (_, i) => prose(2_000, 30 + i))
  }
  let current
  const server = await loopbackServer({ reply: () => current.write })
  const rows = []
  const notes = []
  try {
    for (const [kind, pieces] of Object.entries(kinds)) {
      current = replyOf(pieces, megabytes * 1e6)
      const results = { ours: [], openai: [] }
      for (let round = 0; round < (quick ? 1 : 2); round++) {
        for (const who of round % 2 === 0 ? ["ours", "openai"] : ["openai", "ours"]) results[who].push(await client(who, server.baseUrl, current))
      }
      const of = (who, field) => results[who].map((r) => r[field])
      const mb = (kb) => `${(kb / 1024).toFixed(0)} MB`
      for (const [field, label, fmt] of [["maxRss", "peak RSS", mb], ["wall", "wall time", (ms) => `${(ms / 1000).toFixed(1)} s`]]) {
        rows.push({
          case: `${megabytes} MB reply of ${kind} (${current.events} events): \`Gateway.stream\` vs openai client, ${label}`,
          short: `${kind}, ${label}`,
          ours: fmt(median(of("ours", field))),
          peer: fmt(median(of("openai", field))),
          ratio: pairedRatio(of("ours", field), of("openai", field)),
          target: kind.startsWith("~2 KB") ? 1.5 : Infinity,
          ...(kind.startsWith("~2 KB") ? {} : { targetText: "none set", noTarget: true })
        })
      }
    }
    notes.push(
      `one child process per client and run (${quick ? 1 : 2} each, alternating); peak RSS is the child's maxRSS; the server writes as fast as the client reads, so most reads hold many events; the gateway's \`maxReplyChars\` and the model's \`maxOutputTokens\` are raised above the reply's size (the defaults end it earlier, by design)`
    )
  } finally {
    await server.close()
  }
  return { name, rows, notes }
}
