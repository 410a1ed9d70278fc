import { describe, expect, it } from "@effect/vitest"
import type * as Clock from "effect/Clock"
import * as Timers from "../src/internal/transportTimers.js"

describe("transport timers", () => {
  it("requests started together share one CPU-time reading, and a meter asked at once reads nothing", () => {
    // A live clock (real time) that does not move while the meters are made and asked.
    const now = Date.now()
    const clock = { unsafeCurrentTimeMillis: () => now } as unknown as Clock.Clock
    const original = process.cpuUsage
    let calls = 0
    process.cpuUsage = (previous?: NodeJS.CpuUsage) => {
      calls++
      return original.call(process, previous)
    }
    const answers: Array<number> = []
    try {
      const meters = Array.from({ length: 100 }, () => Timers.starvationMeter(clock))
      // Asked right away, as the watchdog does when a request starts: under the tolerance.
      for (const starved of meters) answers.push(starved())
    } finally {
      process.cpuUsage = original
    }
    expect(answers.every((lost) => lost === 0)).toBe(true)
    expect(calls).toBeLessThanOrEqual(1)
  })
})

describe("readingMaxAge", () => {
  it("is a twentieth of the shortest deadline, from 50 ms to 2 s", () => {
    expect(Timers.readingMaxAge(30_000, 60_000)).toBe(1_500)
    expect(Timers.readingMaxAge(Infinity, 10_000)).toBe(500)
    expect(Timers.readingMaxAge(100)).toBe(50)
    expect(Timers.readingMaxAge(0)).toBe(50)
    expect(Timers.readingMaxAge(Infinity, Infinity)).toBe(2_000)
  })
})
