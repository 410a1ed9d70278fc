import { describe, expect, it } from "@effect/vitest"
import * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
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

describe("Output.describeConfigError", () => {
  it("says in words which variable is missing and what to do, never the value", () => {
    const described = Output.describeError(ConfigError.MissingData(["LLM_GATEWAY_API_KEY"], "Expected LLM_GATEWAY_API_KEY to exist"))
    expect(described._tag).toBe("ConfigError")
    expect(described.message).toMatch(/^LLM_GATEWAY_API_KEY is not set \(the gateway named by LLM_GATEWAY_BASE_URL/)
    expect(described.message).toContain("set LLM_GATEWAY_API_KEY, or unset LLM_GATEWAY_BASE_URL to use the embedded simulator")
    expect(described.message).not.toContain("Missing data")
  })

  it("names every variable of a combined error once, preferring invalid data over missing", () => {
    const error = ConfigError.And(
      ConfigError.Or(
        ConfigError.MissingData(["GENESYS_ENVIRONMENT"], "missing"),
        ConfigError.InvalidData(["GENESYS_ENVIRONMENT"], "Expected a Genesys Cloud region.")
      ),
      ConfigError.MissingData(["GENESYS_CLIENT_SECRET"], "missing")
    )
    expect(Output.describeConfigError(error)).toBe(
      "GENESYS_ENVIRONMENT is invalid: Expected a Genesys Cloud region (set your Genesys Cloud region, e.g. mypurecloud.com or mypurecloud.de); " +
        "GENESYS_CLIENT_SECRET is not set (Genesys Cloud client credentials need the secret of the OAuth client named by GENESYS_CLIENT_ID)."
    )
  })
})

describe("Output.useColor", () => {
  it("colours only a terminal, and never with NO_COLOR or TERM=dumb", () => {
    expect(Output.useColor({ isTTY: true }, {})).toBe(true)
    expect(Output.useColor({ isTTY: false }, {})).toBe(false)
    expect(Output.useColor({}, {})).toBe(false)
    expect(Output.useColor({ isTTY: true }, { NO_COLOR: "1" })).toBe(false)
    expect(Output.useColor({ isTTY: true }, { NO_COLOR: "" })).toBe(true)
    expect(Output.useColor({ isTTY: true }, { TERM: "dumb" })).toBe(false)
  })
})

describe("Output.lineLogger", () => {
  it("writes one line per record: level, message, annotations and the first line of a cause", () => {
    const lines: Array<string> = []
    const logger = Output.lineLogger((line) => lines.push(line), false)
    Effect.runSync(
      Effect.gen(function*() {
        yield* Effect.logWarning("Unknown model:\nusing the fallback").pipe(Effect.annotateLogs({ model: "m\r\nx", window: 8192 }))
        yield* Effect.logError("writing failed", new Error("disk full\n    at stack"))
      }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
    )
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatch(/^warning: Unknown model: using the fallback \[(model=m x, window=8192|window=8192, model=m x)\]\n$/)
    expect(lines[1]).toBe("error: writing failed Error: disk full     at stack\n")
    expect(lines.every((line) => line.indexOf("\n") === line.length - 1)).toBe(true)
  })
})
