/**
 * A small, real Genesys Cloud token endpoint for tests: `POST /oauth/token` on 127.0.0.1 with an
 * ephemeral port. It checks the request exactly as the platform expects it (Basic credentials,
 * form body `grant_type=client_credentials` and nothing else), issues opaque tokens with a
 * configurable `expires_in`, can be scripted to answer errors, garbage, hang or reset, and
 * records every request.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"

/** What the server does with the next valid request. */
export type Reply =
  | { readonly _tag: "Token"; readonly expiresIn?: number; readonly tokenType?: string }
  | { readonly _tag: "OAuthError"; readonly status: number; readonly error: string; readonly description?: string }
  | { readonly _tag: "Raw"; readonly status: number; readonly body: string; readonly contentType?: string }
  | { readonly _tag: "Hang" }
  | { readonly _tag: "Reset" }

export const Reply = {
  token: (expiresIn?: number): Reply => ({ _tag: "Token", ...(expiresIn === undefined ? {} : { expiresIn }) }),
  oauthError: (status: number, error: string, description?: string): Reply => ({
    _tag: "OAuthError",
    status,
    error,
    ...(description === undefined ? {} : { description })
  }),
  raw: (status: number, body: string, contentType = "application/json"): Reply => ({ _tag: "Raw", status, body, contentType }),
  hang: { _tag: "Hang" } as Reply,
  reset: { _tag: "Reset" } as Reply
}

export interface RecordedRequest {
  readonly method: string
  readonly path: string
  readonly headers: Http.IncomingHttpHeaders
  readonly body: string
}

export interface TokenServerOptions {
  readonly clientId: string
  readonly clientSecret: string
  /** `expires_in` of issued tokens, in seconds (default 86400). */
  readonly expiresIn?: number
}

export interface TokenServer {
  /** `http://127.0.0.1:{port}`: the login base URL. */
  readonly url: string
  /** `127.0.0.1:{port}`: usable as a loopback environment. */
  readonly host: string
  readonly requests: ReadonlyArray<RecordedRequest>
  /** Tokens issued so far, in order. */
  readonly issued: ReadonlyArray<string>
  /** Requests that broke the wire format, with what was wrong. */
  readonly rejections: ReadonlyArray<string>
  /** Answer the next valid requests with these replies, in order; afterwards issue tokens. */
  readonly enqueue: (...replies: ReadonlyArray<Reply>) => void
  /** Hold every answer until `resume`. */
  readonly pause: () => void
  readonly resume: () => void
  /** Completes once at least `n` requests have arrived. */
  readonly awaitRequests: (n: number) => Effect.Effect<void>
}

const json = (res: Http.ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { "content-type": "application/json" })
  res.end(JSON.stringify(body))
}

/** Start a token server for the lifetime of the scope. */
export const make = (options: TokenServerOptions): Effect.Effect<TokenServer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const requests: Array<RecordedRequest> = []
    const issued: Array<string> = []
    const rejections: Array<string> = []
    const queue: Array<Reply> = []
    const waiters: Array<{ readonly n: number; readonly resolve: () => void }> = []
    let paused: Array<() => void> | undefined
    const expected = `Basic ${Buffer.from(`${options.clientId}:${options.clientSecret}`, "utf8").toString("base64")}`

    const answer = (req: Http.IncomingMessage, res: Http.ServerResponse, body: string) => {
      const contentType = (req.headers["content-type"] ?? "").split(";")[0]!.trim()
      if (req.method !== "POST" || req.url !== "/oauth/token") {
        rejections.push(`${req.method} ${req.url}`)
        return json(res, 404, { error: "not_found", error_description: "only POST /oauth/token is served" })
      }
      if (req.headers.authorization !== expected) {
        rejections.push("authorization")
        return json(res, 401, { error: "invalid_client", error_description: "client authentication failed" })
      }
      if (contentType !== "application/x-www-form-urlencoded" || body !== "grant_type=client_credentials") {
        rejections.push(`body ${contentType} ${body}`)
        return json(res, 400, { error: "invalid_request", error_description: "expected grant_type=client_credentials" })
      }
      const reply = queue.shift() ?? Reply.token()
      switch (reply._tag) {
        case "Token": {
          const token = `token-${issued.length + 1}-${Math.random().toString(36).slice(2)}`
          issued.push(token)
          return json(res, 200, {
            access_token: token,
            token_type: reply.tokenType ?? "bearer",
            expires_in: reply.expiresIn ?? options.expiresIn ?? 86400
          })
        }
        case "OAuthError":
          return json(res, reply.status, {
            error: reply.error,
            ...(reply.description === undefined ? {} : { error_description: reply.description })
          })
        case "Raw":
          res.writeHead(reply.status, { "content-type": reply.contentType ?? "text/plain" })
          return res.end(reply.body)
        case "Hang":
          return
        case "Reset":
          return req.socket.destroy()
      }
    }

    const server = Http.createServer((req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (chunk: Buffer) => chunks.push(chunk))
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8")
        requests.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers, body })
        for (const waiter of waiters.filter((w) => requests.length >= w.n)) {
          waiters.splice(waiters.indexOf(waiter), 1)
          waiter.resolve()
        }
        const respond = () => answer(req, res, body)
        if (paused === undefined) respond()
        else paused.push(respond)
      })
    })

    yield* Effect.acquireRelease(
      Effect.async<void>((resume) => {
        server.listen(0, "127.0.0.1", () => resume(Effect.void))
      }),
      () =>
        Effect.async<void>((resume) => {
          server.closeAllConnections()
          server.close(() => resume(Effect.void))
        })
    )
    const port = (server.address() as AddressInfo).port

    return {
      url: `http://127.0.0.1:${port}`,
      host: `127.0.0.1:${port}`,
      requests,
      issued,
      rejections,
      enqueue: (...replies) => {
        queue.push(...replies)
      },
      pause: () => {
        paused ??= []
      },
      resume: () => {
        const held = paused ?? []
        paused = undefined
        for (const respond of held) respond()
      },
      awaitRequests: (n) =>
        Effect.async<void>((resume) => {
          if (requests.length >= n) return resume(Effect.void)
          waiters.push({ n, resolve: () => resume(Effect.void) })
        })
    } satisfies TokenServer
  })
