import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import * as Auth from "../src/Auth.js"
import { InvalidEnvironment } from "../src/Environment.js"
import { AuthError } from "../src/GatewayError.js"
import * as TokenServer from "./support/tokenServer.js"
import { Reply } from "./support/tokenServer.js"

const clientId = "7de3af06-c0b3-4f9b-af45-72f4a1403797"
// A colon and non-ASCII characters: the Basic header is base64 of the raw UTF-8 `id:secret`.
const secret = "Xq9:s3cr3t/+=_é-ÜnïcodeSecretValue"
const basic = `Basic ${Buffer.from(`${clientId}:${secret}`, "utf8").toString("base64")}`

const startServer = (expiresIn?: number) =>
  TokenServer.make({ clientId, clientSecret: secret, ...(expiresIn === undefined ? {} : { expiresIn }) })

const genesys = (server: TokenServer.TokenServer, overrides: Partial<Auth.GenesysOptions> = {}) =>
  Auth.makeGenesys({
    clientId,
    clientSecret: Redacted.make(secret),
    environment: "mypurecloud.com",
    loginUrl: server.url,
    retry: Schedule.stop,
    ...overrides
  })

const fetchLayer: Layer.Layer<HttpClient.HttpClient> = FetchHttpClient.layer

/** Run the test body with the fetch HttpClient. */
const withHttp = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.provide(self, fetchLayer)

const failureOf = <A>(exit: Exit.Exit<A, AuthError>): AuthError => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  const failure = Cause.failureOption(exit.cause)
  if (failure._tag === "None") throw new Error(`expected a typed failure, got ${Cause.pretty(exit.cause)}`)
  return failure.value
}

describe("Auth.layerGenesys wire format", () => {
  for (const [name, layer] of [["fetch", FetchHttpClient.layer], ["undici", NodeHttpClient.layerUndici]] as const) {
    it.scoped(`posts client credentials exactly as the platform expects (${name})`, () =>
      Effect.gen(function*() {
        const server = yield* startServer()
        const auth = yield* genesys(server)
        const token = yield* auth.token
        expect(server.rejections).toEqual([])
        expect(server.requests).toHaveLength(1)
        const request = server.requests[0]!
        expect(request.method).toBe("POST")
        expect(request.path).toBe("/oauth/token")
        expect(request.headers.authorization).toBe(basic)
        expect(request.headers["content-type"]).toMatch(/^application\/x-www-form-urlencoded\b/)
        expect(request.body).toBe("grant_type=client_credentials")
        expect(request.body).not.toContain("scope")
        expect(request.body).not.toContain(clientId)
        expect(Redacted.value(token)).toBe(server.issued[0])
      }).pipe(Effect.provide(layer)))
  }

  it.scoped("derives the token URL from a loopback environment when no login URL is given", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const auth = yield* Auth.makeGenesys({ clientId, clientSecret: Redacted.make(secret), environment: server.host })
      expect(Redacted.value(yield* auth.token)).toBe(server.issued[0])
      expect(server.requests[0]!.path).toBe("/oauth/token")
    }).pipe(withHttp))

  it.scoped("the token is redacted when printed", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const token = yield* (yield* genesys(server)).token
      expect(String(token)).toBe("<redacted>")
      expect(JSON.stringify({ token })).not.toContain(server.issued[0]!)
    }).pipe(withHttp))
})

describe("Auth.layerGenesys caching and refresh", () => {
  it.scoped("caches the token", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const auth = yield* genesys(server)
      const first = yield* auth.token
      yield* TestClock.adjust("1 hour")
      const second = yield* auth.token
      const third = yield* auth.token
      expect(server.requests).toHaveLength(1)
      expect(Redacted.value(second)).toBe(Redacted.value(first))
      expect(Redacted.value(third)).toBe(Redacted.value(first))
    }).pipe(withHttp))

  // Refresh at lifetime - min(300 s, 10 % of lifetime).
  for (const [lifetime, refreshAt] of [[86400, 86100], [600, 540], [3000, 2700], [172800, 172500], [300, 270]] as const) {
    it.scoped(`with expires_in ${lifetime} refreshes at exactly ${refreshAt} s`, () =>
      Effect.gen(function*() {
        const server = yield* startServer(lifetime)
        const auth = yield* genesys(server)
        const first = Redacted.value(yield* auth.token)
        yield* TestClock.adjust(Duration.millis(refreshAt * 1000 - 1))
        expect(Redacted.value(yield* auth.token)).toBe(first)
        expect(server.requests).toHaveLength(1)
        yield* TestClock.adjust(Duration.millis(1))
        const second = Redacted.value(yield* auth.token)
        expect(server.requests).toHaveLength(2)
        expect(second).not.toBe(first)
        expect(second).toBe(server.issued[1])
        // The new token's lifetime counts from its own request.
        yield* TestClock.adjust(Duration.millis(refreshAt * 1000 - 1))
        expect(Redacted.value(yield* auth.token)).toBe(second)
        expect(server.requests).toHaveLength(2)
      }).pipe(withHttp))
  }

  it("refreshMargin is min(300 s, 10 % of the lifetime)", () => {
    expect(Duration.toSeconds(Auth.refreshMargin("86400 seconds"))).toBe(300)
    expect(Duration.toSeconds(Auth.refreshMargin("600 seconds"))).toBe(60)
    expect(Duration.toSeconds(Auth.refreshMargin("3000 seconds"))).toBe(300)
  })

  it.scoped("100 concurrent callers share one token request", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const auth = yield* genesys(server)
      server.pause()
      const fiber = yield* Effect.fork(Effect.all(Array.from({ length: 100 }, () => auth.token), { concurrency: "unbounded" }))
      yield* server.awaitRequests(1)
      server.resume()
      const tokens = yield* Fiber.join(fiber)
      expect(server.requests).toHaveLength(1)
      expect(new Set(tokens.map(Redacted.value))).toEqual(new Set([server.issued[0]]))
    }).pipe(withHttp))

  it.scoped("100 concurrent callers share one failure, and the failure is not cached", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const auth = yield* genesys(server)
      server.enqueue(Reply.oauthError(401, "invalid_client", "Invalid client credentials"))
      server.pause()
      const fiber = yield* Effect.fork(
        Effect.all(Array.from({ length: 100 }, () => Effect.flip(auth.token)), { concurrency: "unbounded" })
      )
      yield* server.awaitRequests(1)
      server.resume()
      const errors = yield* Fiber.join(fiber)
      expect(server.requests).toHaveLength(1)
      for (const error of errors) {
        expect(error).toBeInstanceOf(AuthError)
        expect(error.error).toBe("invalid_client")
      }
      const token = yield* auth.token
      expect(server.requests).toHaveLength(2)
      expect(Redacted.value(token)).toBe(server.issued[0])
    }).pipe(withHttp))

  it.scoped("an interrupted caller does not cancel the request others wait for", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const auth = yield* genesys(server)
      server.pause()
      const first = yield* Effect.fork(auth.token)
      yield* server.awaitRequests(1)
      const second = yield* Effect.fork(auth.token)
      yield* Fiber.interrupt(first)
      server.resume()
      const token = yield* Fiber.join(second)
      expect(Redacted.value(token)).toBe(server.issued[0])
      expect(server.requests).toHaveLength(1)
    }).pipe(withHttp))

  it.scoped("a failed early refresh keeps serving the still-valid token and retries 10 s later", () =>
    Effect.gen(function*() {
      const server = yield* startServer(1000) // refresh at 900 s, expires at 1000 s
      const auth = yield* genesys(server)
      const first = Redacted.value(yield* auth.token)
      yield* TestClock.adjust("900 seconds")
      server.enqueue(Reply.raw(503, "<html>unavailable</html>", "text/html"))
      expect(Redacted.value(yield* auth.token)).toBe(first)
      expect(server.requests).toHaveLength(2)
      yield* TestClock.adjust("9 seconds")
      expect(Redacted.value(yield* auth.token)).toBe(first)
      expect(server.requests).toHaveLength(2)
      yield* TestClock.adjust("1 second")
      const second = Redacted.value(yield* auth.token)
      expect(server.requests).toHaveLength(3)
      expect(second).toBe(server.issued[1])
    }).pipe(withHttp))

  it.scoped("an expired token is never served, even when its refresh fails", () =>
    Effect.gen(function*() {
      const server = yield* startServer(1000)
      const auth = yield* genesys(server)
      yield* auth.token
      yield* TestClock.adjust("1000 seconds")
      server.enqueue(Reply.raw(503, "down", "text/plain"))
      const error = yield* Effect.flip(auth.token)
      expect(error.status).toBe(503)
      expect(server.requests).toHaveLength(2)
    }).pipe(withHttp))
})

describe("Auth.layerGenesys invalidate", () => {
  it.scoped("forgets the current token, but not a stale one", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const auth = yield* genesys(server)
      const t1 = yield* auth.token
      yield* auth.invalidate(t1)
      const t2 = yield* auth.token
      expect(server.requests).toHaveLength(2)
      expect(Redacted.value(t2)).toBe(server.issued[1])
      yield* auth.invalidate(t1) // stale: already replaced
      expect(Redacted.value(yield* auth.token)).toBe(Redacted.value(t2))
      expect(server.requests).toHaveLength(2)
      // Tokens compare by value, not by object identity.
      yield* auth.invalidate(Redacted.make(Redacted.value(t2)))
      expect(Redacted.value(yield* auth.token)).toBe(server.issued[2])
      expect(server.requests).toHaveLength(3)
    }).pipe(withHttp))

  it.scoped("50 concurrent 401s cause one new token request", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const auth = yield* genesys(server)
      const t1 = yield* auth.token
      server.pause()
      const fiber = yield* Effect.fork(
        Effect.all(
          Array.from({ length: 50 }, () => Effect.zipRight(auth.invalidate(t1), auth.token)),
          { concurrency: "unbounded" }
        )
      )
      yield* server.awaitRequests(2)
      server.resume()
      const tokens = yield* Fiber.join(fiber)
      expect(server.requests).toHaveLength(2)
      expect(new Set(tokens.map(Redacted.value))).toEqual(new Set([server.issued[1]]))
    }).pipe(withHttp))

  it.scoped("a token invalidated while its refresh is in flight is not the fallback", () =>
    Effect.gen(function*() {
      const server = yield* startServer(1000)
      const auth = yield* genesys(server)
      const t1 = yield* auth.token
      yield* TestClock.adjust("950 seconds")
      server.enqueue(Reply.raw(502, "bad gateway", "text/plain"))
      server.pause()
      const fiber = yield* Effect.fork(Effect.flip(auth.token))
      yield* server.awaitRequests(2)
      yield* auth.invalidate(t1)
      server.resume()
      const error = yield* Fiber.join(fiber)
      expect(error.status).toBe(502)
    }).pipe(withHttp))
})

describe("Auth.layerGenesys errors", () => {
  const errorCase = (reply: Reply) =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const auth = yield* genesys(server)
      server.enqueue(reply)
      return failureOf(yield* Effect.exit(auth.token))
    })

  it.scoped("maps an OAuth error body to AuthError with its error, description and status", () =>
    Effect.gen(function*() {
      const error = yield* errorCase(Reply.oauthError(401, "invalid_client", "Invalid client credentials"))
      expect(error).toMatchObject({ error: "invalid_client", description: "Invalid client credentials", status: 401 })
      expect(error.message).toContain("invalid_client: Invalid client credentials (HTTP 401)")
      expect(error.isRetryable).toBe(false)
    }).pipe(withHttp))

  it.scoped("keeps an OAuth error without a description", () =>
    Effect.gen(function*() {
      const error = yield* errorCase(Reply.oauthError(400, "unauthorized_client"))
      expect(error).toMatchObject({ error: "unauthorized_client", status: 400 })
      expect(error.description).toBeUndefined()
    }).pipe(withHttp))

  it.scoped("maps an API-shaped error (code, message) from the login host", () =>
    Effect.gen(function*() {
      const error = yield* errorCase(
        Reply.raw(429, JSON.stringify({ message: "Rate limit exceeded", code: "too.many.requests", status: 429 }))
      )
      expect(error).toMatchObject({ error: "too.many.requests", description: "Rate limit exceeded", status: 429 })
      expect(error.isRetryable).toBe(true)
    }).pipe(withHttp))

  it.scoped("an HTML 503 is invalid_response with the status", () =>
    Effect.gen(function*() {
      const error = yield* errorCase(Reply.raw(503, "<html>Service Unavailable</html>", "text/html"))
      expect(error).toMatchObject({ error: "invalid_response", status: 503 })
      expect(error.description).toContain("HTTP 503 without an OAuth error")
      expect(error.isRetryable).toBe(true)
    }).pipe(withHttp))

  for (
    const [name, body, expected] of [
      ["garbage", "<html>hello</html>", "not JSON"],
      ["an empty body", "", "not JSON"],
      ["no expires_in", JSON.stringify({ access_token: "leaked-token-value", token_type: "bearer" }), "expires_in"],
      ["expires_in 0", JSON.stringify({ access_token: "leaked-token-value", token_type: "bearer", expires_in: 0 }), "expires_in"],
      ["expires_in as a string", JSON.stringify({ access_token: "leaked-token-value", token_type: "bearer", expires_in: "3600" }), "expires_in"],
      ["an empty access_token", JSON.stringify({ access_token: "", token_type: "bearer", expires_in: 60 }), "access_token"],
      ["a token type other than bearer", JSON.stringify({ access_token: "leaked-token-value", token_type: "mac", expires_in: 60 }), "not bearer"],
      ["a JSON array", "[1,2,3]", "(root)"]
    ] as const
  ) {
    it.scoped(`a 200 with ${name} is invalid_response`, () =>
      Effect.gen(function*() {
        const error = yield* errorCase(Reply.raw(200, body))
        expect(error).toMatchObject({ error: "invalid_response", status: 200 })
        expect(error.description).toContain(expected)
        expect(error.message).not.toContain("leaked-token-value")
        expect(error.isRetryable).toBe(false)
      }).pipe(withHttp))
  }

  it.scoped("accepts the token type in any case", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const auth = yield* genesys(server)
      server.enqueue({ _tag: "Token", tokenType: "Bearer" })
      expect(Redacted.value(yield* auth.token)).toBe(server.issued[0])
    }).pipe(withHttp))

  it.scoped("an oversized response is invalid_response", () =>
    Effect.gen(function*() {
      const error = yield* errorCase(Reply.raw(200, JSON.stringify({ padding: "x".repeat(100_000) })))
      expect(error).toMatchObject({ error: "invalid_response", status: 200 })
      expect(error.description).toContain("more than")
    }).pipe(withHttp))

  it.scoped("a reset connection is connection_failed", () =>
    Effect.gen(function*() {
      const error = yield* errorCase(Reply.reset)
      expect(error.error).toBe("connection_failed")
      expect(error.status).toBeUndefined()
      expect(error.description).toContain("/oauth/token")
    }).pipe(withHttp))

  it.scoped("a refused connection is connection_failed", () =>
    Effect.gen(function*() {
      // Take a free port, then close its server so nothing listens there.
      const url = yield* Effect.scoped(Effect.map(startServer(), (s) => s.url))
      const auth = yield* Auth.makeGenesys({
        clientId,
        clientSecret: Redacted.make(secret),
        environment: "mypurecloud.com",
        loginUrl: url,
        retry: Schedule.stop
      })
      const error = yield* Effect.flip(auth.token)
      expect(error.error).toBe("connection_failed")
      expect(error.description).toContain(`${url}/oauth/token`)
    }).pipe(withHttp))

  it.scoped("a token request that hangs times out after requestTimeout", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const auth = yield* genesys(server, { requestTimeout: "3 seconds" })
      server.enqueue(Reply.hang)
      const fiber = yield* Effect.fork(Effect.flip(auth.token))
      yield* server.awaitRequests(1)
      yield* TestClock.adjust("2999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 milli")
      const error = yield* Fiber.join(fiber)
      expect(error.error).toBe("timeout")
      expect(error.description).toContain("3s")
      // Not cached: the next call asks again and succeeds.
      expect(Redacted.value(yield* auth.token)).toBe(server.issued[0])
      expect(server.requests).toHaveLength(2)
    }).pipe(withHttp))

  it.scoped("the default request timeout is 10 seconds", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const auth = yield* genesys(server)
      server.enqueue(Reply.hang)
      const fiber = yield* Effect.fork(Effect.flip(auth.token))
      yield* server.awaitRequests(1)
      yield* TestClock.adjust("9999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 milli")
      expect((yield* Fiber.join(fiber)).error).toBe("timeout")
    }).pipe(withHttp))
})

describe("Auth.layerGenesys retry", () => {
  it.scoped("retries 5xx, 429 and connection failures within the schedule", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const auth = yield* genesys(server, { retry: Schedule.recurs(3) })
      server.enqueue(Reply.raw(503, "down", "text/plain"), Reply.oauthError(429, "too_many_requests"), Reply.reset)
      expect(Redacted.value(yield* auth.token)).toBe(server.issued[0])
      expect(server.requests).toHaveLength(4)
    }).pipe(withHttp))

  it.scoped("gives up when the schedule ends", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const auth = yield* genesys(server, { retry: Schedule.recurs(1) })
      server.enqueue(Reply.raw(500, "a", "text/plain"), Reply.raw(502, "b", "text/plain"))
      const error = yield* Effect.flip(auth.token)
      expect(error.status).toBe(502)
      expect(server.requests).toHaveLength(2)
    }).pipe(withHttp))

  it.scoped("never retries a 4xx client error or a bad 200", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const auth = yield* genesys(server, { retry: Schedule.recurs(5) })
      server.enqueue(Reply.oauthError(401, "invalid_client"))
      expect((yield* Effect.flip(auth.token)).error).toBe("invalid_client")
      expect(server.requests).toHaveLength(1)
      server.enqueue(Reply.raw(200, "garbage"))
      expect((yield* Effect.flip(auth.token)).error).toBe("invalid_response")
      expect(server.requests).toHaveLength(2)
    }).pipe(withHttp))

  it.scoped("the default retry waits about 200 ms, then 400 ms, then gives up", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const auth = yield* genesys(server, { retry: undefined })
      server.enqueue(Reply.raw(503, "1", "text/plain"), Reply.raw(503, "2", "text/plain"), Reply.raw(503, "3", "text/plain"))
      const fiber = yield* Effect.fork(Effect.flip(auth.token))
      yield* server.awaitRequests(1)
      // Wait (on real I/O, not on time) until the retry's pause is scheduled on the TestClock.
      const nextSleep = Effect.gen(function*() {
        for (;;) {
          const sleeps = yield* TestClock.sleeps()
          const now = yield* TestClock.currentTimeMillis
          // The pending sleeps are the retry pause and the next attempt's timeout (10 s away).
          const pause = Chunk.findFirst(sleeps, (at) => at - now < 1000)
          if (pause._tag === "Some") return pause.value - now
          yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
        }
      })
      const first = yield* nextSleep
      expect(first).toBeGreaterThanOrEqual(160)
      expect(first).toBeLessThanOrEqual(240)
      yield* TestClock.adjust(Duration.millis(first))
      yield* server.awaitRequests(2)
      const second = yield* nextSleep
      expect(second).toBeGreaterThanOrEqual(320)
      expect(second).toBeLessThanOrEqual(480)
      yield* TestClock.adjust(Duration.millis(second))
      yield* server.awaitRequests(3)
      const error = yield* Fiber.join(fiber)
      expect(error.status).toBe(503)
      expect(server.requests).toHaveLength(3)
    }).pipe(withHttp))
})

describe("Auth secrets", () => {
  it.scoped("neither the secret nor a token appears in any error, log or cause", () =>
    Effect.gen(function*() {
      const logs: Array<string> = []
      const capture = Logger.replace(
        Logger.defaultLogger,
        Logger.make(({ annotations, cause, message }) => {
          logs.push(JSON.stringify({ message, annotations: [...annotations], cause: Cause.pretty(cause) }))
        })
      )
      const run = Effect.gen(function*() {
        const server = yield* startServer(1000)
        const auth = yield* genesys(server)
        const replies = [
          // A server that echoes the secret (and the Basic credentials) back in its error.
          Reply.oauthError(401, `bad secret ${secret}`, `client ${clientId} secret ${secret} header ${basic}`),
          Reply.raw(200, JSON.stringify({ access_token: "tok-in-garbage", token_type: "bearer" })),
          Reply.raw(500, `{"error":"server_error","error_description":"${secret}"}`),
          Reply.reset,
          Reply.raw(200, "not json at all")
        ]
        const errors: Array<AuthError> = []
        for (const reply of replies) {
          server.enqueue(reply)
          const exit = yield* Effect.exit(auth.token)
          if (Exit.isFailure(exit)) {
            errors.push(failureOf(exit))
            logs.push(Cause.pretty(exit.cause))
          }
        }
        server.enqueue(Reply.hang)
        const hanging = yield* Effect.fork(Effect.flip(auth.token))
        yield* server.awaitRequests(server.requests.length + 1)
        yield* TestClock.adjust("10 seconds")
        errors.push(yield* Fiber.join(hanging))
        // Issue real tokens, refresh, invalidate: the happy path logs too.
        const t1 = yield* auth.token
        yield* TestClock.adjust("950 seconds")
        server.enqueue(Reply.raw(503, "x", "text/plain"))
        yield* auth.token // the failed refresh falls back to t1 and logs a warning
        yield* auth.invalidate(t1)
        yield* auth.token
        return { errors, issued: [...server.issued, "tok-in-garbage"] }
      })
      const { errors, issued } = yield* run.pipe(Effect.provide(capture), Logger.withMinimumLogLevel(LogLevel.All))
      expect(errors.length).toBeGreaterThanOrEqual(6)
      expect(issued.length).toBeGreaterThanOrEqual(3)
      expect(errors.map((e) => e.error)).toContain("timeout")
      expect(logs.some((line) => line.includes("Obtained an access token"))).toBe(true)
      expect(logs.some((line) => line.includes("Token refresh failed"))).toBe(true)
      const credentials = basic.slice("Basic ".length)
      const everything = [
        ...logs,
        ...errors.flatMap((e) => [e.message, String(e), JSON.stringify(e), e.stack ?? ""])
      ].join("\n")
      expect(everything).not.toContain(secret)
      expect(everything).not.toContain(credentials)
      for (const token of issued) expect(everything).not.toContain(token)
      // The echoed secret was scrubbed, not dropped with the rest of the message.
      expect(errors[0]!.error).toBe("bad secret <redacted>")
      expect(errors[0]!.description).toContain(`client ${clientId} secret <redacted>`)
    }).pipe(withHttp))
})

describe("Auth.layerGenesys options", () => {
  it.effect("a bad environment fails the Layer with InvalidEnvironment", () =>
    Effect.gen(function*() {
      const error = yield* Layer.build(
        Auth.layerGenesys({ clientId, clientSecret: Redacted.make(secret), environment: "example.com" })
      ).pipe(Effect.scoped, Effect.flip)
      expect(error).toBeInstanceOf(InvalidEnvironment)
      expect(error.message).toContain("example.com")
      expect(error.message).not.toContain(secret)
    }).pipe(withHttp))

  it.effect("a plain-http login URL on a non-loopback host is refused", () =>
    Effect.gen(function*() {
      const error = yield* Layer.build(
        Auth.layerGenesys({
          clientId,
          clientSecret: Redacted.make(secret),
          environment: "mypurecloud.com",
          loginUrl: "http://login.mypurecloud.com"
        })
      ).pipe(Effect.scoped, Effect.flip)
      expect(error).toBeInstanceOf(InvalidEnvironment)
      expect(error.subject).toBe("loginUrl")
      expect(error.reason).toContain("https")
    }).pipe(withHttp))

  it.scoped("a login URL with a path keeps the path", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const auth = yield* genesys(server, { loginUrl: `${server.url}/prefix/` })
      yield* Effect.flip(auth.token) // the test server only serves /oauth/token
      expect(server.requests[0]!.path).toBe("/prefix/oauth/token")
    }).pipe(withHttp))
})

describe("Auth config layers", () => {
  const provide = (vars: Record<string, string>) =>
    Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(vars))))

  const buildError = <E>(layer: Layer.Layer<Auth.Auth, E, HttpClient.HttpClient>, vars: Record<string, string>) =>
    Layer.build(layer.pipe(Layer.provide(provide(vars)))).pipe(Effect.scoped, Effect.flip, withHttp)

  it.scoped("layerGenesysConfig reads the four variables", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const token = yield* Effect.flatMap(Auth.Auth, (auth) => auth.token).pipe(
        Effect.provide(
          Auth.layerGenesysConfig().pipe(
            Layer.provide(provide({
              GENESYS_CLIENT_ID: clientId,
              GENESYS_CLIENT_SECRET: secret,
              GENESYS_ENVIRONMENT: "https://api.mypurecloud.de/",
              GENESYS_LOGIN_URL: server.url
            }))
          )
        )
      )
      expect(Redacted.value(token)).toBe(server.issued[0])
      expect(server.requests[0]!.headers.authorization).toBe(basic)
      expect(server.requests[0]!.body).toBe("grant_type=client_credentials")
    }).pipe(withHttp))

  it.scoped("layerGenesysConfig derives the login URL from a loopback GENESYS_ENVIRONMENT", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const token = yield* Effect.flatMap(Auth.Auth, (auth) => auth.token).pipe(
        Effect.provide(
          Auth.layerGenesysConfig().pipe(
            Layer.provide(provide({ GENESYS_CLIENT_ID: clientId, GENESYS_CLIENT_SECRET: secret, GENESYS_ENVIRONMENT: server.host }))
          )
        )
      )
      expect(Redacted.value(token)).toBe(server.issued[0])
    }).pipe(withHttp))

  const valid = { GENESYS_CLIENT_ID: clientId, GENESYS_CLIENT_SECRET: secret, GENESYS_ENVIRONMENT: "usw2.pure.cloud" }
  for (
    const [name, vars, variable, detail] of [
      ["a missing client id", { ...valid, GENESYS_CLIENT_ID: undefined }, "GENESYS_CLIENT_ID", ""],
      ["an empty client id", { ...valid, GENESYS_CLIENT_ID: "" }, "GENESYS_CLIENT_ID", ""],
      ["a missing secret", { ...valid, GENESYS_CLIENT_SECRET: undefined }, "GENESYS_CLIENT_SECRET", ""],
      ["a missing environment", { ...valid, GENESYS_ENVIRONMENT: undefined }, "GENESYS_ENVIRONMENT", ""],
      ["a bad environment", { ...valid, GENESYS_ENVIRONMENT: "example.com" }, "GENESYS_ENVIRONMENT", "example.com"],
      ["a typo in the environment", { ...valid, GENESYS_ENVIRONMENT: "mypurecloud.con" }, "GENESYS_ENVIRONMENT", "mypurecloud.con"],
      ["an insecure login URL", { ...valid, GENESYS_LOGIN_URL: "http://login.mypurecloud.com" }, "GENESYS_LOGIN_URL", "https"]
    ] as const
  ) {
    it.effect(`layerGenesysConfig fails at start-up naming the variable: ${name}`, () =>
      Effect.gen(function*() {
        const present = Object.fromEntries(Object.entries(vars).filter(([, v]) => v !== undefined)) as Record<string, string>
        const error = yield* buildError(Auth.layerGenesysConfig(), present)
        expect(error._op).toBeDefined() // a ConfigError
        expect(String(error)).toContain(variable)
        expect(String(error)).toContain(detail)
        expect(String(error)).not.toContain(secret)
      }))
  }

  it.effect("layerStaticConfig reads LLM_GATEWAY_API_KEY", () =>
    Effect.gen(function*() {
      const auth = yield* Auth.Auth
      const token = yield* auth.token
      expect(Redacted.value(token)).toBe("sk-test-key")
      yield* auth.invalidate(token)
      expect(Redacted.value(yield* auth.token)).toBe("sk-test-key")
    }).pipe(Effect.provide(Auth.layerStaticConfig().pipe(Layer.provide(provide({ LLM_GATEWAY_API_KEY: "sk-test-key" }))))))

  it.effect("layerStaticConfig fails naming LLM_GATEWAY_API_KEY when it is missing or empty", () =>
    Effect.gen(function*() {
      for (const vars of [{}, { LLM_GATEWAY_API_KEY: "" }]) {
        const error = yield* buildError(Auth.layerStaticConfig(), vars)
        expect(String(error)).toContain("LLM_GATEWAY_API_KEY")
      }
    }))

  const staticKey = Redacted.make("static-key")
  it.effect("layerStatic hands out its token; invalidate changes nothing", () =>
    Effect.gen(function*() {
      const auth = yield* Auth.Auth
      expect(yield* auth.token).toBe(staticKey)
      yield* auth.invalidate(staticKey)
      expect(yield* auth.token).toBe(staticKey)
    }).pipe(Effect.provide(Auth.layerStatic(staticKey))))
})
