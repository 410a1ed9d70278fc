import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import {
  AuthError,
  BadRequest,
  ConnectionError,
  PermissionDenied,
  QuotaExhausted,
  RateLimited,
  RequestTimeout,
  StreamProtocolError,
  UpstreamError
} from "../src/GatewayError.js"
import * as RetryPolicy from "../src/RetryPolicy.js"

const upstream = (status: number) => new UpstreamError({ status, partial: false })
const rateLimited = (seconds?: number) =>
  new RateLimited(seconds === undefined ? { status: 429 } : { status: 429, retryAfter: Duration.seconds(seconds) })

/**
 * Runs an attempt that fails with `failures` in order (then succeeds with "ok") under `policy`,
 * letting the TestClock run every sleep, and reports when each attempt started (ms after the
 * first one).
 */
const drive = <E>(policy: Schedule.Schedule<unknown, E>, failures: ReadonlyArray<E>) =>
  Effect.gen(function*() {
    const times: Array<number> = []
    const start = yield* Clock.currentTimeMillis
    let i = 0
    const attempt = Effect.gen(function*() {
      times.push((yield* Clock.currentTimeMillis) - start)
      const failure = failures[i++]
      return failure === undefined ? "ok" : yield* Effect.fail(failure)
    })
    const fiber = yield* Effect.fork(Effect.retry(attempt, policy))
    yield* TestClock.adjust(Duration.hours(1))
    const exit = yield* Fiber.await(fiber)
    return { times, exit }
  })

const noJitter = { jitter: false } as const

describe("parseRetryAfter", () => {
  const now = Date.UTC(2024, 10, 6, 8, 49, 30)

  it("reads delta-seconds", () => {
    expect(RetryPolicy.parseRetryAfter({ "retry-after": "120" }, now)).toEqual(Option.some(Duration.seconds(120)))
    expect(RetryPolicy.parseRetryAfter({ "retry-after": " 0 " }, now)).toEqual(Option.some(Duration.seconds(0)))
  })

  it("prefers retry-after-ms, and falls back to Retry-After when it is malformed", () => {
    expect(RetryPolicy.parseRetryAfter({ "retry-after-ms": "250", "retry-after": "3" }, now)).toEqual(
      Option.some(Duration.millis(250))
    )
    expect(RetryPolicy.parseRetryAfter({ "retry-after-ms": "1.5" }, now)).toEqual(Option.some(Duration.millis(1.5)))
    expect(RetryPolicy.parseRetryAfter({ "retry-after-ms": "soon", "retry-after": "3" }, now)).toEqual(
      Option.some(Duration.seconds(3))
    )
  })

  it("reads the three HTTP-date forms of RFC 9110 as UTC", () => {
    const expected = Option.some(Duration.seconds(7))
    expect(RetryPolicy.parseRetryAfter({ "retry-after": "Wed, 06 Nov 2024 08:49:37 GMT" }, now)).toEqual(expected)
    expect(RetryPolicy.parseRetryAfter({ "retry-after": "Wednesday, 06-Nov-24 08:49:37 GMT" }, now)).toEqual(expected)
    expect(RetryPolicy.parseRetryAfter({ "retry-after": "Wed Nov  6 08:49:37 2024" }, now)).toEqual(expected)
  })

  it("reads a two-digit year more than 50 years ahead as the past century", () => {
    const at = RetryPolicy.parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT", now)
    expect(at).toEqual(Option.some(Date.UTC(1994, 10, 6, 8, 49, 37)))
    const soon = RetryPolicy.parseHttpDate("Sunday, 06-Nov-50 08:49:37 GMT", now)
    expect(soon).toEqual(Option.some(Date.UTC(2050, 10, 6, 8, 49, 37)))
  })

  it("turns a date in the past into zero", () => {
    expect(RetryPolicy.parseRetryAfter({ "retry-after": "Sun, 06 Nov 1994 08:49:37 GMT" }, now)).toEqual(
      Option.some(Duration.zero)
    )
  })

  it("accepts a Date for now, any header case and repeated values", () => {
    expect(RetryPolicy.parseRetryAfter({ "Retry-After": ["2", "9"] }, new Date(now))).toEqual(
      Option.some(Duration.seconds(2))
    )
  })

  it("ignores what is not a delay", () => {
    for (
      const value of [
        "-1",
        "1.5",
        "1e3",
        "soon",
        "",
        "Wed, 31 Feb 2024 08:49:37 GMT",
        "Wed, 06 Nov 2024 25:49:37 GMT",
        "Xyz, 06 Nov 2024 08:49:37 GMT",
        "2024-11-06T08:49:37Z"
      ]
    ) {
      expect(RetryPolicy.parseRetryAfter({ "retry-after": value }, now)).toEqual(Option.none())
    }
    expect(RetryPolicy.parseRetryAfter({}, now)).toEqual(Option.none())
  })

  it.prop("round-trips any IMF-fixdate written by Date#toUTCString", [
    FastCheck.integer({ min: 0, max: 4_000_000_000 }),
    FastCheck.integer({ min: 0, max: 86_400 * 400 })
  ], ([nowSeconds, aheadSeconds]) => {
    const nowMs = nowSeconds * 1000
    const header = new Date(nowMs + aheadSeconds * 1000).toUTCString()
    expect(RetryPolicy.parseRetryAfter({ "retry-after": header }, nowMs)).toEqual(
      Option.some(Duration.seconds(aheadSeconds))
    )
  })
})

describe("RetryPolicy.make", () => {
  it.effect("backs off exponentially and succeeds once the server recovers", () =>
    Effect.gen(function*() {
      const { exit, times } = yield* drive(RetryPolicy.make(noJitter), [upstream(503), upstream(502), upstream(500)])
      expect(exit).toEqual(Exit.succeed("ok"))
      expect(times).toEqual([0, 500, 1500, 3500])
    }))

  it.effect("caps each delay at maxDelay", () =>
    Effect.gen(function*() {
      const policy = RetryPolicy.make({ ...noJitter, maxAttempts: 6, maxDelay: "1500 millis" })
      const { times } = yield* drive(policy, Array.from({ length: 5 }, () => upstream(503)))
      expect(times).toEqual([0, 500, 1500, 3000, 4500, 6000])
    }))

  it.effect("stops after maxAttempts and fails with the last error", () =>
    Effect.gen(function*() {
      const errors = [upstream(503), upstream(504), new ConnectionError({ reason: "ECONNRESET", partial: false })]
      const { exit, times } = yield* drive(RetryPolicy.make({ ...noJitter, maxAttempts: 3 }), [...errors, upstream(500)])
      expect(times).toHaveLength(3)
      expect(exit).toEqual(Exit.fail(errors[2]))
    }))

  it.effect("maxAttempts 1 never retries", () =>
    Effect.gen(function*() {
      const { times } = yield* drive(RetryPolicy.make({ maxAttempts: 1 }), [upstream(503)])
      expect(times).toEqual([0])
    }))

  it.effect("retries exactly the transient failures", () =>
    Effect.gen(function*() {
      const retried = [
        upstream(408),
        rateLimited(),
        upstream(500),
        upstream(502),
        upstream(503),
        upstream(504),
        new ConnectionError({ reason: "ECONNREFUSED", partial: false }),
        new RequestTimeout({ phase: "handshake", after: Duration.seconds(1), partial: false })
      ]
      const fatal = [
        new BadRequest({ status: 400 }),
        new AuthError({ error: "unauthorized", status: 401 }),
        new PermissionDenied({ status: 403 }),
        new BadRequest({ status: 404 }),
        new BadRequest({ status: 422 }),
        new QuotaExhausted({ status: 429 }),
        upstream(501),
        new UpstreamError({ status: 503, partial: true }),
        new ConnectionError({ reason: "ECONNRESET", partial: true }),
        new RequestTimeout({ phase: "idle", after: Duration.seconds(1), partial: true }),
        new RequestTimeout({ phase: "firstToken", after: Duration.seconds(1), partial: false }),
        new StreamProtocolError({ reason: "bad", partial: false }),
        new Error("not ours")
      ]
      for (const error of retried) {
        const { exit, times } = yield* drive(RetryPolicy.make(noJitter), [error])
        expect(exit, error.message).toEqual(Exit.succeed("ok"))
        expect(times).toHaveLength(2)
      }
      for (const error of fatal) {
        const { exit, times } = yield* drive(RetryPolicy.make(noJitter), [error])
        expect(exit, error.message).toEqual(Exit.fail(error))
        expect(times).toEqual([0])
      }
    }))

  it.effect("waits exactly what Retry-After asks, without jitter", () =>
    Effect.gen(function*() {
      const { exit, times } = yield* drive(RetryPolicy.make(), [rateLimited(7), rateLimited(0)]).pipe(
        Effect.withRandom(Random.fixed([0]))
      )
      expect(exit).toEqual(Exit.succeed("ok"))
      expect(times).toEqual([0, 7000, 7000])
    }))

  it.effect("fails fast with RateLimited when the server asks for more than maxRetryAfter", () =>
    Effect.gen(function*() {
      const error = rateLimited(120)
      const { exit, times } = yield* drive(RetryPolicy.make({ maxRetryAfter: "60 seconds" }), [error])
      expect(times).toEqual([0])
      expect(exit).toEqual(Exit.fail(error))
      const failure = Exit.isFailure(exit) ? exit.cause : undefined
      expect(JSON.stringify(failure)).toContain("RateLimited")
    }))

  it.effect("fails fast when the server's wait would end after the deadline", () =>
    Effect.gen(function*() {
      const error = rateLimited(9)
      const policy = RetryPolicy.make({ ...noJitter, deadline: "10 seconds", maxAttempts: 10 })
      const { exit, times } = yield* drive(policy, [upstream(503), upstream(503), error])
      expect(times).toEqual([0, 500, 1500])
      expect(exit).toEqual(Exit.fail(error))
    }))

  it.effect("never starts a backoff retry after the deadline", () =>
    Effect.gen(function*() {
      const policy = RetryPolicy.make({ ...noJitter, initialDelay: "1 second", deadline: "2 seconds", maxAttempts: 10 })
      const { exit, times } = yield* drive(policy, Array.from({ length: 9 }, () => upstream(503)))
      expect(times).toEqual([0, 1000])
      expect(Exit.isFailure(exit)).toBe(true)
    }))

  it.effect("jitter reads the Random service, so tests can fix it", () =>
    Effect.gen(function*() {
      const low = yield* drive(RetryPolicy.make(), [upstream(503), upstream(503)]).pipe(
        Effect.withRandom(Random.fixed([0]))
      )
      expect(low.times).toEqual([0, 400, 1200])
      const mid = yield* drive(RetryPolicy.make({ jitter: { min: 0.5, max: 1.5 } }), [upstream(503)]).pipe(
        Effect.withRandom(Random.fixed([0.5]))
      )
      expect(mid.times).toEqual([0, 500])
    }))

  it.effect("the default policy retries 3 times within the deadline", () =>
    Effect.gen(function*() {
      const { times } = yield* drive(RetryPolicy.defaults, Array.from({ length: 10 }, () => upstream(503))).pipe(
        Effect.withRandom(Random.fixed([0.5]))
      )
      expect(times).toEqual([0, 500, 1500, 3500])
    }))

  it.effect("reports each retry as a Step", () =>
    Effect.gen(function*() {
      const steps: Array<RetryPolicy.Step> = []
      const policy = RetryPolicy.make(noJitter).pipe(Schedule.tapOutput((step) => Effect.sync(() => steps.push(step))))
      yield* drive(policy, [upstream(503), rateLimited(3)])
      expect(steps.slice(0, 2)).toEqual([
        { retry: 1, delay: Duration.millis(500), elapsed: Duration.zero },
        { retry: 2, delay: Duration.seconds(3), elapsed: Duration.millis(500) }
      ])
    }))

  it.effect("honourRetryAfter composes with user-built schedules", () =>
    Effect.gen(function*() {
      const policy = Schedule.spaced("1 second").pipe(
        RetryPolicy.honourRetryAfter(),
        Schedule.intersect(Schedule.recurs(5)),
        Schedule.whileInput(RetryPolicy.isRetryable)
      )
      const { exit, times } = yield* drive(policy, [upstream(503), rateLimited(4), new BadRequest({ status: 400 })])
      expect(times).toEqual([0, 1000, 5000])
      expect(Exit.isFailure(exit)).toBe(true)
    }))

  it.effect.prop("never exceeds maxAttempts or the deadline, whatever the failures", [
    FastCheck.array(
      FastCheck.oneof(
        FastCheck.constant(upstream(503)),
        FastCheck.integer({ min: 0, max: 30 }).map((s) => rateLimited(s)),
        FastCheck.constant(new ConnectionError({ reason: "reset", partial: false }))
      ),
      { maxLength: 12 }
    ),
    FastCheck.integer({ min: 1, max: 8 }),
    FastCheck.integer({ min: 0, max: 40 }),
    FastCheck.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })
  ], ([failures, maxAttempts, deadlineSeconds, random]) =>
    Effect.gen(function*() {
      const policy = RetryPolicy.make({ maxAttempts, deadline: Duration.seconds(deadlineSeconds) })
      const { exit, times } = yield* drive(policy, failures)
      expect(times.length).toBeLessThanOrEqual(maxAttempts)
      expect(times[times.length - 1]! - times[0]!).toBeLessThanOrEqual(deadlineSeconds * 1000)
      if (Exit.isSuccess(exit)) expect(times.length).toBe(failures.length + 1)
    }).pipe(Effect.withRandom(Random.fixed([random]))), { fastCheck: { numRuns: 200 } })
})
