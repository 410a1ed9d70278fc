import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { readFileSync } from "node:fs"
import { program } from "./readmeExample.js"

describe("README", () => {
  it("the usage example is this file, verbatim", () => {
    const readme = readFileSync(new URL("../../../README.md", import.meta.url), "utf8")
    const section = readme.slice(readme.indexOf("## Use it in an Effect service"))
    const block = /```ts\n([\s\S]*?)```/.exec(section)?.[1]
    expect(block).toBe(readFileSync(new URL("./readmeExample.ts", import.meta.url), "utf8"))
  })

  it.effect("the usage example runs and streams the simulator's reply", () =>
    Effect.gen(function*() {
      const text = yield* program
      expect(text).toBe("You said: Translate into Spanish: Hello")
    }))
})
