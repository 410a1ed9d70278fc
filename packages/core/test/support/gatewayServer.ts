/**
 * A small, scriptable HTTP gateway for integration tests: a real `node:http` server on
 * 127.0.0.1 with an ephemeral port. Each gateway request is answered by the next scripted
 * `Handler` (a status, an SSE body, a reset, a stall …); `/oauth/token` issues fresh tokens
 * (`token-1`, `token-2`, …) so the real Genesys Auth layer can run against it. Every request
 * is recorded, and whether the client closed the connection before the response ended.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"

/** One request as the server saw it. */
export interface RecordedRequest {
  readonly method: string
  readonly url: string
  readonly headers: Http.IncomingHttpHeaders
  readonly body: string
  readonly json: unknown
  /** Settles when the response closes: `"aborted"` if the client went away first. */
  readonly closed: Promise<"finished" | "aborted">
}

/** Answers one gateway request. */
export type Handler = (req: Http.IncomingMessage, res: Http.ServerResponse) => void | Promise<void>

export interface GatewayServer {
  /** `http://127.0.0.1:{port}` */
  readonly url: string
  /** `127.0.0.1:{port}`, usable as a loopback Genesys environment. */
  readonly environment: string
  /** Gateway requests (not token requests), in arrival order. */
  readonly requests: ReadonlyArray<RecordedRequest>
  /** Token requests, in arrival order. */
  readonly tokenRequests: ReadonlyArray<RecordedRequest>
  /** Replaces the script: the n-th gateway request is answered by `handlers[n]`, later ones by 500. */
  readonly script: (...handlers: ReadonlyArray<Handler>) => void
  /** Resets the script and the recorded requests. */
  readonly reset: () => void
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** A `chat.completion.chunk` carrying `text`. */
export const textChunk = (text: string, index = 0) =>
  JSON.stringify({
    id: "chatcmpl-test",
    object: "chat.completion.chunk",
    model: "test-model",
    choices: [{ index, delta: { content: text }, finish_reason: null }]
  })

/** The chunk that ends the reply. */
export const finishChunk = JSON.stringify({
  id: "chatcmpl-test",
  object: "chat.completion.chunk",
  model: "test-model",
  choices: [{ index: 0, delta: {}, finish_reason: "stop" }]
})

/** The usage-only chunk (`choices: []`). */
export const usageChunk = JSON.stringify({
  id: "chatcmpl-test",
  object: "chat.completion.chunk",
  model: "test-model",
  choices: [],
  usage: { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 }
})

/** The whole wire body of a reply made of `tokens`, ending in `[DONE]`. */
export const replyEvents = (tokens: ReadonlyArray<string>): Array<string> => [
  ...tokens.map((t) => textChunk(t)),
  finishChunk,
  usageChunk,
  "[DONE]"
]

const writeHead = (res: Http.ServerResponse, status = 200, headers: Http.OutgoingHttpHeaders = {}) => {
  res.writeHead(status, { "content-type": "text/event-stream", "cache-control": "no-cache", ...headers })
  res.flushHeaders()
}

/** A JSON error response. */
export const status = (code: number, body?: unknown, headers: Http.OutgoingHttpHeaders = {}): Handler => (_req, res) => {
  const text = body === undefined ? "" : JSON.stringify(body)
  res.writeHead(code, { "content-type": "application/json", ...headers })
  res.end(text)
}

/** An SSE body of `events` (each the data of one event), with `delayMs` between them. */
export const sse = (events: ReadonlyArray<string>, options: { readonly delayMs?: number } = {}): Handler =>
async (_req, res) => {
  writeHead(res)
  for (const data of events) {
    if (options.delayMs !== undefined) await sleep(options.delayMs)
    if (res.destroyed) return
    res.write(`data: ${data}\n\n`)
  }
  res.end()
}

/** Writes `events`, then destroys the socket mid-body (a connection reset). */
export const sseThenReset = (events: ReadonlyArray<string>): Handler => async (req, res) => {
  writeHead(res)
  for (const data of events) res.write(`data: ${data}\n\n`)
  await sleep(20)
  req.socket.destroy()
}

/** Writes `events` (and keep-alive comments every `keepAliveMs`, if given), then never ends. */
export const sseThenStall = (
  events: ReadonlyArray<string>,
  options: { readonly keepAliveMs?: number } = {}
): Handler =>
(_req, res) => {
  writeHead(res)
  for (const data of events) res.write(`data: ${data}\n\n`)
  if (options.keepAliveMs !== undefined) {
    const timer = setInterval(() => res.write(": keep-alive\n\n"), options.keepAliveMs)
    res.on("close", () => clearInterval(timer))
  }
}

/** Destroys the connection before sending any header. */
export const resetBeforeHeaders: Handler = (req) => {
  req.socket.destroy()
}

/** Never answers (until the client gives up). */
export const stallBeforeHeaders: Handler = () => {}

/**
 * Starts the server for the current scope; it stops, destroying open connections, when the
 * scope closes.
 */
export const make: Effect.Effect<GatewayServer, never, Scope.Scope> = Effect.acquireRelease(
  Effect.async<{ server: Http.Server; state: GatewayServer }>((resume) => {
    let handlers: ReadonlyArray<Handler> = []
    const requests: Array<RecordedRequest> = []
    const tokenRequests: Array<RecordedRequest> = []
    let tokens = 0

    const server = Http.createServer((req, res) => {
      const parts: Array<Buffer> = []
      req.on("data", (b: Buffer) => parts.push(b))
      req.on("end", () => {
        const body = Buffer.concat(parts).toString("utf8")
        let json: unknown
        try {
          json = JSON.parse(body)
        } catch {
          json = undefined
        }
        const closed = new Promise<"finished" | "aborted">((resolve) => {
          res.on("close", () => resolve(res.writableFinished ? "finished" : "aborted"))
        })
        const recorded: RecordedRequest = {
          method: req.method ?? "",
          url: req.url ?? "",
          headers: req.headers,
          body,
          json,
          closed
        }
        if (req.url === "/oauth/token") {
          tokenRequests.push(recorded)
          tokens++
          res.writeHead(200, { "content-type": "application/json" })
          res.end(JSON.stringify({ access_token: `token-${tokens}`, token_type: "bearer", expires_in: 86400 }))
          return
        }
        const handler = handlers[requests.length] ?? status(500, { message: "no scripted response", status: 500 })
        requests.push(recorded)
        void Promise.resolve(handler(req, res)).catch(() => req.socket.destroy())
      })
    })
    server.keepAliveTimeout = 1000
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resume(Effect.succeed({
        server,
        state: {
          url: `http://127.0.0.1:${port}`,
          environment: `127.0.0.1:${port}`,
          requests,
          tokenRequests,
          script: (...next) => {
            handlers = next
          },
          reset: () => {
            handlers = []
            requests.length = 0
            tokenRequests.length = 0
          }
        }
      }))
    })
  }),
  ({ server }) =>
    Effect.async<void>((resume) => {
      server.closeAllConnections()
      server.close(() => resume(Effect.void))
    })
).pipe(Effect.map(({ state }) => state))
