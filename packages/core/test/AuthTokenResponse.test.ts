/**
 * What a broken or hostile token endpoint can answer with a 200: an absurd lifetime, or a
 * token that cannot be sent in a header. Both end typed (or clamped), never in a defect or a
 * retry loop.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import * as Auth from "../src/Auth.js"
import type { AuthError } from "../src/GatewayError.js"
import * as TokenServer from "./support/tokenServer.js"
import { Reply } from "./support/tokenServer.js"

const clientId = "client-id"
const secret = "client-secret-value"

const genesys = (server: TokenServer.TokenServer, retry: Schedule.Schedule<unknown, AuthError> = Schedule.stop) =>
  Auth.makeGenesys({ clientId, clientSecret: Redacted.make(secret), environment: "mypurecloud.com", loginUrl: server.url, retry })

const tokenBody = (fields: Record<string, unknown>) =>
  Reply.raw(200, JSON.stringify({ access_token: "tok-1", token_type: "bearer", expires_in: 3600, ...fields }))

const failureOf = <A>(exit: Exit.Exit<A, AuthError>): AuthError => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  const failure = Cause.failureOption(exit.cause)
  if (failure._tag === "None") throw new Error(`expected a typed failure, got ${Cause.pretty(exit.cause)}`)
  return failure.value
}

describe("Auth token response", () => {
  it.scoped("an absurd expires_in is clamped to 48 hours: every request works and the token is still refreshed", () =>
    Effect.gen(function*() {
      const server = yield* TokenServer.make({ clientId, clientSecret: secret })
      server.enqueue(tokenBody({ expires_in: 1e13 }))
      const auth = yield* genesys(server)
      // The debug log of the expiry date used to throw "Invalid time value" on every request.
      const first = yield* auth.token.pipe(Logger.withMinimumLogLevel(LogLevel.Debug))
      expect(Redacted.value(first)).toBe("tok-1")
      expect(Redacted.value(yield* auth.token)).toBe("tok-1")
      expect(server.requests).toHaveLength(1)
      // Replaced 300 s before the clamped expiry, like any 48-hour token.
      yield* TestClock.adjust(Duration.subtract(Auth.maxTokenLifetime, Duration.seconds(301)))
      yield* auth.token
      expect(server.requests).toHaveLength(1)
      yield* TestClock.adjust(Duration.seconds(2))
      const renewed = yield* auth.token
      expect(server.requests).toHaveLength(2)
      expect(Redacted.value(renewed)).toBe(server.issued[0])
    }).pipe(Effect.provide(FetchHttpClient.layer)))

  it.scoped("a negative, zero or non-numeric expires_in is invalid_response", () =>
    Effect.gen(function*() {
      const server = yield* TokenServer.make({ clientId, clientSecret: secret })
      const auth = yield* genesys(server)
      for (const expires_in of [-1, 0, "3600", null, 1e400]) {
        server.enqueue(tokenBody({ expires_in }))
        const error = failureOf(yield* Effect.exit(auth.token))
        expect(error.error).toBe("invalid_response")
        expect(error.description).toContain("expires_in")
      }
    }).pipe(Effect.provide(FetchHttpClient.layer)))

  it.scoped("a token with a CR/LF is a typed AuthError about an unusable token, not retried", () =>
    Effect.gen(function*() {
      const server = yield* TokenServer.make({ clientId, clientSecret: secret })
      const auth = yield* genesys(server, Schedule.recurs(3))
      for (const token of ["abc\r\nX-Injected: yes", "two words", "tök"]) {
        server.enqueue(tokenBody({ access_token: token }))
        const before = server.requests.length
        const error = failureOf(yield* Effect.exit(auth.token))
        expect(error._tag).toBe("AuthError")
        expect(error.error).toBe("invalid_response")
        expect(error.message).toContain("unusable token")
        expect(error.message).not.toContain(token)
        expect(error.isRetryable).toBe(false)
        expect(server.requests.length - before).toBe(1)
      }
    }).pipe(Effect.provide(FetchHttpClient.layer)))

  it.effect("a static key that cannot be sent in a header fails typed, in code and from configuration", () =>
    Effect.gen(function*() {
      const bad = Auth.makeStatic(Redacted.make("key\r\nX-Injected: yes"))
      const error = failureOf(yield* Effect.exit(bad.token))
      expect(error.error).toBe("invalid_token")
      expect(error.message).not.toContain("X-Injected")
      const good = Auth.makeStatic(Redacted.make("sk-abc.DEF_123"))
      expect(Redacted.value(yield* good.token)).toBe("sk-abc.DEF_123")
      const fromConfig = yield* Effect.flip(
        Layer.build(Auth.layerStaticConfig()).pipe(
          Effect.scoped,
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["LLM_GATEWAY_API_KEY", "key\nX-Injected: yes"]])))
        )
      )
      expect(String(fromConfig)).toContain("LLM_GATEWAY_API_KEY")
      expect(String(fromConfig)).not.toContain("X-Injected")
    }))
})
