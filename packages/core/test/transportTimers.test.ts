import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Timers from "../src/internal/transportTimers.js"

describe("transport timers", () => {
  it.live("requests started together share one CPU-time reading, and a meter asked at once reads nothing", () =>
    Effect.gen(function*() {
      const clock = yield* Effect.clock
      const original = process.cpuUsage
      let calls = 0
      process.cpuUsage = (previous?: NodeJS.CpuUsage) => {
        calls++
        return original.call(process, previous)
      }
      try {
        const meters = Array.from({ length: 100 }, () => Timers.starvationMeter(clock))
        // Asked right away (as the watchdog does when a request starts): under the tolerance.
        for (const starved of meters) expect(starved()).toBe(0)
      } finally {
        process.cpuUsage = original
      }
      // One reading (none if an earlier one is recent), two if the clock moved past its age in between.
      expect(calls).toBeLessThanOrEqual(2)
    }))
})
