import { describe, expect, it } from "@effect/vitest"
import * as Argv from "../src/internal/argv.js"
import { specs } from "../src/main.js"

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
    expect(check("frob")).toBe(
      `unknown command "frob": expected one of chat, demo, models, audit, cost, sim. See 'llm-gateway --help'.`
    )
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

  it("names a value flag given twice; --var may repeat", () => {
    expect(check("chat", "--temperature", "1", "--temperature=2", "hi")).toBe(
      "--temperature is given more than once. See 'llm-gateway chat --help'."
    )
    expect(check("chat", "--template", "$a $b", "--var", "a=1", "--var", "b=2")).toBeUndefined()
  })

  it("accepts the chat flags of issue 14", () => {
    expect(check("chat", "--profile", "openai", "--base-url", "https://api.openai.com/v1", "hi")).toBeUndefined()
    expect(check("chat", "--cache-dir", ".llm-cache", "--budget", "0.05", "--jsonl", "-q", "hi")).toBeUndefined()
    expect(check("chat", "--quiet")).toBeUndefined()
  })

  it("names a bad chat flag value", () => {
    expect(check("chat", "--profile", "azure", "hi")).toBe(
      `--profile expects gateway or openai, got "azure". See 'llm-gateway chat --help'.`
    )
    expect(check("chat", "--base-url", "api.openai.com", "hi")).toContain(
      `--base-url expects an http(s) URL such as https://api.openai.com/v1, got "api.openai.com"`
    )
    expect(check("chat", "--base-url=ftp://x", "hi")).toContain("--base-url expects an http(s) URL")
    expect(check("chat", "--budget", "-1", "hi")).toContain(`--budget expects a number of US dollars, 0 or more, got "-1"`)
    expect(check("chat", "--budget", "lots", "hi")).toContain("--budget expects a number of US dollars")
    expect(check("chat", "--jsonl=1")).toBe("--jsonl takes no value. See 'llm-gateway chat --help'.")
  })

  it("checks nested commands: audit verify, cost report", () => {
    expect(check("audit", "verify", "a.jsonl", "b.jsonl", "--json", "--key-env", "MY_KEY", "--chain")).toBeUndefined()
    expect(check("cost", "report", "--since", "2026-11-01", "--csv", "a.jsonl", "b.jsonl")).toBeUndefined()
    expect(check("models", "--json")).toBeUndefined()
    expect(check("audit", "--help")).toBeUndefined()
    expect(check("audit", "verify", "--help")).toBeUndefined()
    expect(check("audit")).toBe("'audit' needs a command: verify. See 'llm-gateway audit --help'.")
    expect(check("audit", "check", "a.jsonl")).toBe(
      `unknown command "audit check": expected 'audit verify'. See 'llm-gateway audit --help'.`
    )
    expect(check("audit", "verify")).toBe(
      "'audit verify' needs at least one audit file. See 'llm-gateway audit verify --help'."
    )
    expect(check("audit", "verify", "--bogus", "a.jsonl")).toBe(
      "unknown option --bogus for 'audit verify'. See 'llm-gateway audit verify --help'."
    )
    expect(check("audit", "verify", "--anchor", `41:${"ab".repeat(32)}`, "a.jsonl")).toBeUndefined()
    expect(check("audit", "verify", "--anchor", "41", "a.jsonl")).toContain("--anchor expects SEQ:HASH")
    expect(check("audit", "verify", "--key-env", "not a name", "a.jsonl")).toContain(
      "--key-env expects the name of an environment variable"
    )
    expect(check("cost", "report", "--since", "last week", "a.jsonl")).toContain(
      `--since expects a UTC date such as 2026-11-01 or a time such as 2026-11-01T12:00:00Z, got "last week"`
    )
    expect(check("cost", "report", "--json", "a.jsonl", "--csv")).toBeUndefined()
    expect(check("models", "extra")).toBe("'models' takes no arguments. See 'llm-gateway models --help'.")
  })
})
