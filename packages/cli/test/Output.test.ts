import { describe, expect, it } from "@effect/vitest"
import * as Output from "../src/Output.js"

describe("Output.describeError", () => {
  it("keeps an error on one terminal line: no CR/LF, controls or invisible formatting", () => {
    const error = Object.assign(new Error("bad\r\nerror (Forged): injected\u2028line\u001b[31m red\u202e"), {
      _tag: "UpstreamError"
    })
    const described = Output.describeError(error)
    expect(described._tag).toBe("UpstreamError")
    expect(described.message).toBe("bad error (Forged): injected line [31m red")
  })

  it("cuts a very long message", () => {
    const described = Output.describeError("x".repeat(5_000))
    expect(described._tag).toBe("UnknownError")
    expect(described.message.length).toBe(2_000)
    expect(described.message.endsWith("…")).toBe(true)
  })
})
