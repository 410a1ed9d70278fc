import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import type { Usage } from "../src/Chat.js"
import * as CostMeter from "../src/CostMeter.js"
import { BudgetExceeded } from "../src/GatewayError.js"

const usage = (promptTokens: number, completionTokens: number): Usage => ({
  promptTokens,
  completionTokens,
  totalTokens: promptTokens + completionTokens
})

const meter = (options?: CostMeter.Options) => CostMeter.make(options)

describe("CostMeter pricing", () => {
  const priceOf = CostMeter.makePrice()

  it("prices usage per million tokens, exactly", () => {
    expect(priceOf("gpt-4o-mini", usage(1_000, 500))).toEqual({
      promptUsd: 0.00015,
      completionUsd: 0.0003,
      totalUsd: 0.00045
    })
    expect(priceOf("gpt-4o", usage(1_234_567, 89_012))).toEqual({
      promptUsd: 3.0864175,
      completionUsd: 0.89012,
      totalUsd: 3.9765375
    })
    expect(priceOf("gpt-4.1-nano", usage(0, 0))).toEqual({ promptUsd: 0, completionUsd: 0, totalUsd: 0 })
    expect(priceOf("o1-pro", usage(1, 1)).totalUsd).toBe(0.00075)
  })

  it("matches the longest prefix at a separator, ignoring case and a provider prefix", () => {
    const perMillion = (model: string) => {
      const cost = priceOf(model, usage(1_000_000, 1_000_000))
      return [cost.promptUsd, cost.completionUsd]
    }
    expect(perMillion("gpt-4o-mini-2024-07-18")).toEqual([0.15, 0.6])
    expect(perMillion("gpt-4o-2024-08-06")).toEqual([2.5, 10])
    expect(perMillion("gpt-4o-2024-05-13")).toEqual([5, 15])
    expect(perMillion("openai/GPT-4o")).toEqual([2.5, 10])
    expect(perMillion("gpt-4-0613")).toEqual([30, 60])
    expect(perMillion("gpt-4-1106-preview")).toEqual([10, 30])
    expect(perMillion("gpt-4-turbo-2024-04-09")).toEqual([10, 30])
    expect(perMillion("gpt-4-32k-0613")).toEqual([60, 120])
    expect(perMillion("gpt-4.1-mini-2025-04-14")).toEqual([0.4, 1.6])
    expect(perMillion("gpt-4.5-preview")).toEqual([75, 150])
    expect(perMillion("gpt-35-turbo-16k")).toEqual([0.5, 1.5])
    expect(perMillion("gpt-3.5-turbo-0125")).toEqual([0.5, 1.5])
    expect(perMillion("o3-mini-2025-01-31")).toEqual([1.1, 4.4])
    expect(perMillion("o3-2025-04-16")).toEqual([2, 8])
    expect(perMillion("o4-mini")).toEqual([1.1, 4.4])
    expect(perMillion("gpt-5.4-mini")).toEqual([0.75, 4.5])
    // `gpt-5` must not price `gpt-5.3`, nor `o1` price `o10`: those are unknown models.
    expect(perMillion("gpt-5.3")).toEqual([30, 60])
    expect(perMillion("o10")).toEqual([30, 60])
    expect(perMillion("my-model")).toEqual([30, 60])
    expect(Option.isNone(CostMeter.lookupPrice(CostMeter.defaultPricing, "claude-3"))).toBe(true)
  })

  it("lets a table override built-in prices and the unknown-model price", () => {
    const custom = CostMeter.makePrice({
      "gpt-4o": { promptPerMillion: 1, completionPerMillion: 2 },
      "*": { promptPerMillion: 0.5, completionPerMillion: 0.25 }
    })
    expect(custom("gpt-4o-2024-11-20", usage(1_000_000, 1_000_000)).totalUsd).toBe(3)
    expect(custom("gpt-4o-mini", usage(1_000_000, 0)).totalUsd).toBe(0.15)
    expect(custom("unknown", usage(2_000_000, 4_000_000)).totalUsd).toBe(2)
  })

  it.effect("sums many requests without drift", () =>
    Effect.gen(function*() {
      const m = yield* meter({ pricing: { m: { promptPerMillion: 0.1, completionPerMillion: 0 } } })
      let floatSum = 0
      for (let i = 0; i < 10; i++) {
        const r = yield* m.reserve("m", 1_000_000, 0)
        floatSum += (yield* m.settle(r, usage(1_000_000, 0))).totalUsd
      }
      expect(floatSum).not.toBe(1)
      expect((yield* m.summary).totalUsd).toBe(1)
    }))

  it.effect("warns once per model priced at the unknown-model default", () =>
    Effect.gen(function*() {
      const logs: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        if (logLevel === LogLevel.Warning) logs.push(String(Array.isArray(message) ? message[0] : message))
      })
      yield* Effect.gen(function*() {
        const m = yield* meter()
        yield* m.reserve("mystery-model", 10, 10)
        yield* m.reserve("mystery-model", 10, 10)
        yield* m.reserve("gpt-4o", 10, 10)
      }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      expect(logs).toHaveLength(1)
      expect(logs[0]).toContain("mystery-model")
    }))

  it.effect("a huge or line-breaking model id is warned about quoted and cut, and not kept", () =>
    Effect.gen(function*() {
      const logs: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        if (logLevel === LogLevel.Warning) logs.push(String(Array.isArray(message) ? message[0] : message))
      })
      const forged = `m\r\nlevel=ERROR forged line ${"x".repeat(100_000)}`
      yield* Effect.gen(function*() {
        const m = yield* meter()
        yield* m.reserve(forged, 10, 10)
        yield* m.reserve(forged, 10, 10)
      }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      expect(logs).toHaveLength(1)
      expect(logs[0]).not.toMatch(/[\r\n]/)
      expect(logs[0]!.length).toBeLessThan(300)
    }))
})

describe("CostMeter reservations", () => {
  it.effect("holds the worst case, settles the real cost, and never counts a settle twice", () =>
    Effect.gen(function*() {
      const m = yield* meter({ budgetUsd: 1 })
      const r = yield* m.reserve("gpt-4o", 1_000, 1_000)
      expect(r.amountUsd).toBe(0.0125)
      expect(yield* m.summary).toMatchObject({ reservedUsd: 0.0125, totalUsd: 0, remainingUsd: 0.9875 })

      const cost = yield* m.settle(r, usage(1_000, 100))
      expect(cost).toEqual({ promptUsd: 0.0025, completionUsd: 0.001, totalUsd: 0.0035 })
      const again = yield* m.settle(r, usage(1_000, 100))
      expect(again).toEqual(cost)
      expect(yield* m.summary).toEqual({
        requests: 1,
        promptTokens: 1_000,
        completionTokens: 100,
        totalUsd: 0.0035,
        reservedUsd: 0,
        budgetUsd: 1,
        remainingUsd: 0.9965
      })

      const unused = yield* m.reserve("gpt-4o", 1_000, 1_000)
      expect(yield* m.settle(unused, undefined)).toEqual({ promptUsd: 0, completionUsd: 0, totalUsd: 0 })
      expect(yield* m.summary).toMatchObject({ requests: 1, totalUsd: 0.0035, reservedUsd: 0 })
    }))

  it.effect("usage above the hold is recorded up to the hold plus one token's price, with a warning", () =>
    Effect.gen(function*() {
      const warnings: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        if (logLevel === LogLevel.Warning) warnings.push(String(message))
      })
      const m = yield* meter({ budgetUsd: 1 })
      // gpt-4o: $2.50 prompt and $10 completion per million tokens; one token costs at most $0.00001.
      for (const reported of [usage(1_000, 1e15), usage(Number.MAX_VALUE, 1e300), usage(1_000, 1_001)]) {
        const r = yield* m.reserve("gpt-4o", 1_000, 1_000)
        const cost = yield* m.settle(r, reported).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
        expect(cost.totalUsd).toBeLessThanOrEqual(r.amountUsd + 0.00001)
      }
      const summary = yield* m.summary
      expect(summary.totalUsd).toBeLessThanOrEqual(3 * (0.0125 + 0.00001))
      expect(summary.completionTokens).toBe(1_000 + 1_000 + 1_001)
      expect(warnings).toHaveLength(3)
      // Negative and NaN counts cost nothing and leave the totals finite.
      const r = yield* m.reserve("gpt-4o", 1_000, 1_000)
      expect((yield* m.settle(r, usage(-5, Number.NaN))).totalUsd).toBe(0)
      expect(Number.isFinite((yield* m.summary).totalUsd)).toBe(true)
    }))

  it.effect("fails with BudgetExceeded naming the budget, its limit, what is committed and what was asked", () =>
    Effect.gen(function*() {
      const m = yield* meter({ budgetUsd: 0.05 })
      yield* m.reserve("gpt-4o", 10_000, 0) // $0.025 held
      const error = yield* Effect.flip(m.reserve("gpt-4o", 10_000, 1)) // $0.02501 asked
      expect(error).toBeInstanceOf(BudgetExceeded)
      expect(error).toMatchObject({ budget: "total", limitUsd: 0.05, spentUsd: 0.025, requestedUsd: 0.02501 })
      expect(error.message).toContain("total budget of $0.05")
      // Reaching the limit exactly is allowed.
      const exact = yield* m.reserve("gpt-4o", 10_000, 0)
      expect(exact.amountUsd).toBe(0.025)
      expect((yield* m.summary).remainingUsd).toBe(0)
    }))

  it.effect("never overspends under concurrent reservations", () =>
    Effect.gen(function*() {
      const m = yield* meter({ budgetUsd: 1 })
      // Each reservation holds $0.03 (1,000 prompt tokens of gpt-4 at $30 per million).
      const results = yield* Effect.forEach(
        Array.from({ length: 100 }, (_, i) => i),
        () => Effect.either(m.reserve("gpt-4", 1_000, 0)),
        { concurrency: "unbounded" }
      )
      const granted = results.filter((r) => r._tag === "Right")
      expect(granted).toHaveLength(33)
      expect((yield* m.summary).reservedUsd).toBe(0.99)
    }))

  it.effect.prop(
    "concurrent reservations never exceed the budget, and each refusal was needed",
    [
      FastCheck.integer({ min: 0, max: 1_000 }),
      FastCheck.array(FastCheck.tuple(FastCheck.integer({ min: 0, max: 50_000 }), FastCheck.integer({ min: 0, max: 5_000 })), {
        maxLength: 60
      })
    ],
    ([budgetCents, requests]) =>
      Effect.gen(function*() {
        const budgetUsd = budgetCents / 100
        const m = yield* meter({ budgetUsd })
        const results = yield* Effect.forEach(
          requests,
          ([prompt, completion]) => Effect.either(m.reserve("gpt-4o", prompt, completion)),
          { concurrency: "unbounded" }
        )
        const price = (prompt: number, completion: number) => prompt * 25 + completion * 100 // 1e-7 USD
        const held = results.reduce((sum, r, i) => r._tag === "Right" ? sum + price(...requests[i]!) : sum, 0)
        expect(held).toBeLessThanOrEqual(budgetCents * 100_000)
        results.forEach((r, i) => {
          if (r._tag === "Left") expect(held + price(...requests[i]!)).toBeGreaterThan(budgetCents * 100_000)
        })
        expect(Math.round((yield* m.summary).reservedUsd * 1e7)).toBe(held)
      }),
    { fastCheck: { numRuns: 50 } }
  )

  it.effect("enforces a periodic budget that resets with the Clock", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.UTC(2026, 0, 1, 12))
      const m = yield* meter({ budgetUsd: 10, periodBudget: { limitUsd: 1, period: "1 day" } })
      const r = yield* m.reserve("gpt-4", 30_000, 0) // $0.90
      yield* m.settle(r, usage(30_000, 0))
      const error = yield* Effect.flip(m.reserve("gpt-4", 10_000, 0)) // $0.30
      expect(error).toMatchObject({ budget: "daily", limitUsd: 1, spentUsd: 0.9, requestedUsd: 0.3 })
      const summary = yield* m.summary
      expect(summary.period).toEqual({
        name: "daily",
        limitUsd: 1,
        spentUsd: 0.9,
        reservedUsd: 0,
        remainingUsd: 0.1,
        resetsAt: Date.UTC(2026, 0, 2)
      })

      yield* TestClock.adjust("11 hours")
      expect(Exit.isFailure(yield* Effect.exit(m.reserve("gpt-4", 10_000, 0)))).toBe(true)
      yield* TestClock.adjust("1 hour") // midnight UTC
      const next = yield* m.reserve("gpt-4", 10_000, 0)
      expect(next.amountUsd).toBe(0.3)
      const after = yield* m.summary
      expect(after.period).toMatchObject({ spentUsd: 0, reservedUsd: 0.3, remainingUsd: 0.7 })
      expect(after).toMatchObject({ totalUsd: 0.9, reservedUsd: 0.3, remainingUsd: 8.8 })
    }))

  it.effect("refuses invalid options at start-up", () =>
    Effect.gen(function*() {
      expect(Exit.isFailure(yield* Effect.exit(meter({ budgetUsd: -1 })))).toBe(true)
      expect(Exit.isFailure(yield* Effect.exit(meter({ budgetUsd: Number.NaN })))).toBe(true)
      expect(
        Exit.isFailure(yield* Effect.exit(meter({ periodBudget: { limitUsd: 1, period: 0 } })))
      ).toBe(true)
    }))
})

describe("CostMeter.layerConfig", () => {
  const withEnv = (env: Record<string, string>) =>
    Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

  const run = <A, E>(env: Record<string, string>, f: (m: CostMeter.Service) => Effect.Effect<A, E>) =>
    Effect.flatMap(CostMeter.CostMeter, f).pipe(
      Effect.provide(CostMeter.layerConfig().pipe(Layer.provide(withEnv(env))))
    )

  it.effect("reads budgets and prices from the environment", () =>
    Effect.gen(function*() {
      const summary = yield* run({
        LLM_GATEWAY_BUDGET_USD: "5",
        LLM_GATEWAY_PERIOD_BUDGET_USD: "0.5",
        LLM_GATEWAY_BUDGET_PERIOD: "1 hour",
        LLM_GATEWAY_PRICING: "{\"acme-large\":{\"promptPerMillion\":1,\"completionPerMillion\":3}}"
      }, (m) =>
        Effect.gen(function*() {
          expect(m.price("acme-large-v2", usage(1_000_000, 1_000_000)).totalUsd).toBe(4)
          return yield* m.summary
        }))
      expect(summary.budgetUsd).toBe(5)
      expect(summary.period).toMatchObject({ name: "hourly", limitUsd: 0.5 })

      const unbounded = yield* run({}, (m) => m.summary)
      expect(unbounded.budgetUsd).toBeUndefined()
      expect(unbounded.period).toBeUndefined()
    }))

  it.effect("fails at start-up naming a malformed variable", () =>
    Effect.gen(function*() {
      const bad = (env: Record<string, string>) => Effect.flip(run(env, (m) => m.summary)).pipe(Effect.map(String))
      expect(yield* bad({ LLM_GATEWAY_BUDGET_USD: "ten" })).toContain("LLM_GATEWAY_BUDGET_USD")
      expect(yield* bad({ LLM_GATEWAY_BUDGET_USD: "-3" })).toContain("LLM_GATEWAY_BUDGET_USD")
      expect(yield* bad({ LLM_GATEWAY_PERIOD_BUDGET_USD: "1", LLM_GATEWAY_BUDGET_PERIOD: "soon" })).toContain(
        "LLM_GATEWAY_BUDGET_PERIOD"
      )
      expect(yield* bad({ LLM_GATEWAY_PRICING: "{\"m\":{\"promptPerMillion\":-1}}" })).toContain(
        "LLM_GATEWAY_PRICING"
      )
    }))
})
