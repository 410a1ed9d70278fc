import { describe, expect, it } from "@effect/vitest"
import * as ChatCommand from "../src/ChatCommand.js"
import * as DemoCommand from "../src/DemoCommand.js"
import * as Argv from "../src/internal/argv.js"
import * as SimCommand from "../src/SimCommand.js"

const specs = { chat: ChatCommand.spec, demo: DemoCommand.spec, sim: SimCommand.spec }
const check = (...args: ReadonlyArray<string>) => Argv.check("llm-gateway", args, specs)

describe("command line check", () => {
  it("accepts what the README shows", () => {
    expect(check("chat", "Hello")).toBeUndefined()
    expect(check("chat", "--template", "Hi $name", "--var", "name=Ann", "--system", "Be brief.", "--json")).toBeUndefined()
    expect(check("chat", "--max-tokens=5", "--temperature", "0.2", "--no-cache", "hi")).toBeUndefined()
    expect(check("chat", "--", "--a message that starts with dashes")).toBeUndefined()
    expect(check("sim", "--port", "8080", "--scenario", "scenarios.json")).toBeUndefined()
    expect(check("demo")).toBeUndefined()
    expect(check("--help")).toBeUndefined()
    expect(check("chat", "--help")).toBeUndefined()
    expect(check()).toBeUndefined()
  })

  it("names an unknown option, and the subcommand's help", () => {
    expect(check("chat", "--bogus", "hi")).toBe(
      "unknown option --bogus for 'chat'. See 'llm-gateway chat --help'."
    )
    expect(check("demo", "--x")).toBe("unknown option --x for 'demo'. See 'llm-gateway demo --help'.")
  })

  it("names an unknown command and lists the known ones", () => {
    expect(check("frob")).toBe(`unknown command "frob": expected one of chat, demo, sim. See 'llm-gateway --help'.`)
  })

  it("names the flag and what it expects for a bad or missing value", () => {
    expect(check("chat", "--max-tokens", "abc", "hi")).toBe(
      `--max-tokens expects a positive whole number, got "abc". See 'llm-gateway chat --help'.`
    )
    expect(check("chat", "--max-tokens", "1e3", "hi")).toContain("--max-tokens expects a positive whole number")
    expect(check("chat", "--temperature=3", "hi")).toContain(`--temperature expects a number from 0 to 2, got "3"`)
    expect(check("chat", "--var", "novalue", "hi")).toContain(`--var expects a template variable as key=value`)
    expect(check("chat", "--model")).toContain("--model expects a model id, but no value was given")
    expect(check("chat", "--model", "--json", "hi")).toContain("--model expects a model id, but no value was given")
    expect(check("sim", "--port", "99999")).toContain("--port expects a port number from 0 to 65535")
    expect(check("chat", "--json=yes", "hi")).toBe("--json takes no value. See 'llm-gateway chat --help'.")
  })

  it("refuses extra arguments", () => {
    expect(check("chat", "hi", "extra")).toContain("'chat' takes at most 1 argument")
    expect(check("demo", "now")).toBe("'demo' takes no arguments. See 'llm-gateway demo --help'.")
  })

  it("keeps a long value short in the message", () => {
    const message = check("chat", "--max-tokens", "x".repeat(10_000), "hi")!
    expect(message.length).toBeLessThan(200)
  })
})
