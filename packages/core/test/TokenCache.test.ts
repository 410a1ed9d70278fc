/**
 * The refresh-ahead, single-flight token cache on its own, around a scripted exchange, on the
 * TestClock: one fetch for any number of callers, a refresh at the refresh time and not before,
 * the old token kept through a failed refresh, and a refused token replaced.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import { AuthError } from "../src/GatewayError.js"
import * as TokenCache from "../src/internal/tokenCache.js"

/** An exchange that issues `token-N` valid for 100 s (refresh at 90 s), or fails when told to. */
const scripted = (options: { gate?: Deferred.Deferred<void> } = {}) => {
  const log = { fetches: 0, failNext: false }
  const fetch = Effect.gen(function*() {
    log.fetches++
    if (options.gate !== undefined) yield* Deferred.await(options.gate)
    if (log.failNext) {
      log.failNext = false
      return yield* new AuthError({ error: "temporarily_unavailable", status: 503 })
    }
    const now = yield* Clock.currentTimeMillis
    return { token: Redacted.make(`token-${log.fetches}`), refreshAt: now + 90_000, expiresAt: now + 100_000 }
  })
  return { log, fetch }
}

const value = (token: Redacted.Redacted<string>) => Redacted.value(token)

describe("TokenCache", () => {
  it.scoped("100 concurrent callers share one fetch", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const { fetch, log } = scripted({ gate })
      const cache = yield* TokenCache.make(fetch)
      const fibers = yield* Effect.forEach(Array.from({ length: 100 }), () => Effect.fork(cache.token))
      yield* Effect.yieldNow()
      yield* Deferred.succeed(gate, void 0)
      const tokens = yield* Effect.forEach(fibers, Fiber.join)
      expect(new Set(tokens.map(value))).toEqual(new Set(["token-1"]))
      expect(log.fetches).toBe(1)
    }))

  it.scoped("refreshes at the refresh time, not before", () =>
    Effect.gen(function*() {
      const { fetch, log } = scripted()
      const cache = yield* TokenCache.make(fetch)
      expect(value(yield* cache.token)).toBe("token-1")
      yield* TestClock.adjust("89 seconds")
      expect(value(yield* cache.token)).toBe("token-1")
      expect(log.fetches).toBe(1)
      yield* TestClock.adjust("1 second")
      expect(value(yield* cache.token)).toBe("token-2")
      expect(log.fetches).toBe(2)
    }))

  it.scoped("a failed refresh keeps the still-valid token and tries again after a pause", () =>
    Effect.gen(function*() {
      const { fetch, log } = scripted()
      const cache = yield* TokenCache.make(fetch)
      yield* cache.token
      yield* TestClock.adjust("90 seconds")
      log.failNext = true
      expect(value(yield* cache.token)).toBe("token-1")
      expect(log.fetches).toBe(2)
      // Within the pause (half the 10 s left here: 5 s) the old token is served without a fetch.
      yield* TestClock.adjust("4 seconds")
      expect(value(yield* cache.token)).toBe("token-1")
      expect(log.fetches).toBe(2)
      yield* TestClock.adjust("1 second")
      expect(value(yield* cache.token)).toBe("token-3")
    }))

  it.scoped("a failure without a valid token fails the callers, and the next call fetches again", () =>
    Effect.gen(function*() {
      const { fetch, log } = scripted()
      const cache = yield* TokenCache.make(fetch)
      log.failNext = true
      const error = yield* Effect.flip(cache.token)
      expect(error).toMatchObject({ _tag: "AuthError", status: 503 })
      expect(value(yield* cache.token)).toBe("token-2")
    }))

  it.scoped("invalidating a refused token fetches a new one; invalidating another does nothing", () =>
    Effect.gen(function*() {
      const { fetch, log } = scripted()
      const cache = yield* TokenCache.make(fetch)
      const first = yield* cache.token
      yield* cache.invalidate(Redacted.make("some-other-token"))
      expect(value(yield* cache.token)).toBe("token-1")
      yield* cache.invalidate(first)
      expect(value(yield* cache.token)).toBe("token-2")
      expect(log.fetches).toBe(2)
    }))

  it.scoped("an interrupted caller does not cancel the fetch others wait for", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const { fetch, log } = scripted({ gate })
      const cache = yield* TokenCache.make(fetch)
      const first = yield* Effect.fork(cache.token)
      const second = yield* Effect.fork(cache.token)
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(first)
      yield* Deferred.succeed(gate, void 0)
      expect(value(yield* Fiber.join(second))).toBe("token-1")
      expect(log.fetches).toBe(1)
    }))
})
