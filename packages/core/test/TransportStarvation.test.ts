/**
 * The handshake deadline when this process is starved: a reply that arrived while the event
 * loop was blocked must be read, not aborted and re-sent. The gateway runs in another process
 * (a blocked loop here must not stop it from answering), over real sockets on 127.0.0.1.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { spawn } from "node:child_process"
import * as Auth from "../src/Auth.js"
import * as Timers from "../src/internal/transportTimers.js"
import * as Transport from "../src/Transport.js"

/**
 * A gateway in a child process: prints `port N`, then `request N` when a request has arrived
 * and answers it (headers and a short SSE reply) 100 ms later. Under `/two/`, it answers at
 * once with a first event, prints `first N`, and sends the rest 100 ms later.
 */
const serverScript = `
const http = require("http")
let n = 0
const chunk = (content) => "data: " + JSON.stringify({ id: "c", object: "chat.completion.chunk", created: 0, model: "m",
  choices: [{ index: 0, delta: { content }, finish_reason: null }] }) + "\\n\\n"
const server = http.createServer((req, res) => {
  req.resume()
  req.on("end", () => {
    n++
    process.stdout.write("request " + n + "\\n")
    if (req.url.startsWith("/two/")) {
      res.writeHead(200, { "content-type": "text/event-stream" })
      res.write(chunk("hello"), () => process.stdout.write("first " + n + "\\n"))
      setTimeout(() => res.end(chunk(" again") + "data: [DONE]\\n\\n"), 100)
      return
    }
    setTimeout(() => {
      res.writeHead(200, { "content-type": "text/event-stream" })
      res.end(chunk("hello") + "data: [DONE]\\n\\n")
    }, 100)
  })
})
server.listen(0, "127.0.0.1", () => process.stdout.write("port " + server.address().port + "\\n"))
process.stdin.on("end", () => process.exit(0))
process.stdin.resume()
`

/** Starts the child gateway; `lines` receives every line it prints. */
const childGateway = Effect.acquireRelease(
  Effect.async<{ readonly port: number; readonly lines: Array<string>; readonly kill: () => void }, Error>((resume) => {
    const child = spawn(process.execPath, ["-e", serverScript], { stdio: ["pipe", "pipe", "inherit"] })
    const lines: Array<string> = []
    let buffer = ""
    child.stdout!.on("data", (data: Buffer) => {
      buffer += data.toString("utf8")
      let newline: number
      while ((newline = buffer.indexOf("\n")) !== -1) {
        const line = buffer.slice(0, newline)
        buffer = buffer.slice(newline + 1)
        lines.push(line)
        if (line.startsWith("port ")) {
          resume(Effect.succeed({ port: Number(line.slice(5)), lines, kill: () => child.kill("SIGKILL") }))
        }
      }
    })
    child.on("exit", (code) => resume(Effect.fail(new Error(`the gateway process exited (${code})`))))
  }),
  (gateway) => Effect.sync(gateway.kill)
)

/** Blocks this thread: what a starved process looks like to its timers. */
const blockFor = (ms: number) => {
  const end = Date.now() + ms
  while (Date.now() < end) {
    // busy
  }
}

/** The transport against the child gateway, built in the test's scope. */
const transportFor = (baseUrl: string, timeouts: Transport.Options["timeouts"]) =>
  Effect.map(
    Layer.build(
      Transport.layer({
        profile: "openai",
        baseUrl,
        retry: { initialDelay: "5 millis", maxDelay: "20 millis", maxAttempts: 4, deadline: "30 seconds" },
        timeouts
      }).pipe(Layer.provide(Auth.layerStatic(Redacted.make("key"))), Layer.provide(NodeHttpClient.layerUndici))
    ),
    Context.get(Transport.GatewayTransport)
  )

const hello = {
  model: "m",
  system: undefined,
  messages: [{ role: "user" as const, content: "Hi" }],
  temperature: undefined,
  maxTokens: undefined
}

/** Blocks the thread in the check phase: the next loop turn starts with the clock past the
 * deadline and with the data waiting, as after a stretch without CPU. */
const blockedLoopTurn = (ms: number) =>
  Effect.async<void>((resume) => {
    setImmediate(() => {
      blockFor(ms)
      resume(Effect.void)
    })
  })

const textOf = (chunks: Chunk.Chunk<{ readonly choices: ReadonlyArray<{ readonly delta: { readonly content?: string | null | undefined } }> }>) =>
  Chunk.toArray(chunks).map((c) => c.choices[0]?.delta.content ?? "").join("")

describe("deadlines under starvation", () => {
  it.scopedLive("a reply that arrived while the event loop was blocked is read, not re-sent", () =>
    Effect.gen(function*() {
      const gateway = yield* childGateway
      const transport = yield* transportFor(`http://127.0.0.1:${gateway.port}/v1`, {
        handshake: "1 second",
        firstToken: "30 seconds",
        idle: "30 seconds",
        total: "60 seconds"
      })
      const fiber = yield* Effect.fork(Stream.runCollect(transport.stream(hello)))
      // The request has reached the gateway, whose answer comes 100 ms later: block longer
      // than the handshake deadline, so the answer waits unread in the socket when the
      // deadline's timer runs (Node runs due timers before it polls for I/O).
      while (!gateway.lines.includes("request 1")) yield* Effect.sleep(Duration.millis(5))
      yield* blockedLoopTurn(1_500)
      expect(textOf(yield* Fiber.join(fiber))).toBe("hello")
      // One upstream call: the accepted request was not aborted and sent again.
      yield* Effect.sleep(Duration.millis(200))
      expect(gateway.lines.filter((l) => l.startsWith("request "))).toEqual(["request 1"])
    }), 30_000)

  it.scopedLive("an event that arrived while the event loop was blocked is read, not an idle timeout", () =>
    Effect.gen(function*() {
      const gateway = yield* childGateway
      const transport = yield* transportFor(`http://127.0.0.1:${gateway.port}/two/v1`, {
        handshake: "30 seconds",
        firstToken: "30 seconds",
        idle: "1 second",
        total: "60 seconds"
      })
      const fiber = yield* Effect.fork(Stream.runCollect(transport.stream(hello)))
      while (!gateway.lines.includes("first 1")) yield* Effect.sleep(Duration.millis(5))
      // Let the first event in, then block past the idle deadline while the rest arrives.
      yield* Effect.sleep(Duration.millis(20))
      yield* blockedLoopTurn(1_500)
      expect(textOf(yield* Fiber.join(fiber))).toBe("hello again")
    }), 30_000)

  it.effect("on a TestClock the handshake deadline is exactly its length", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Timers.responsiveSleep(Duration.seconds(2)))
      yield* TestClock.adjust("1999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(fiber)
    }))
})
