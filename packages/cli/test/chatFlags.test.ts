/**
 * `chat --conversation`, `--tools` and `--schema`, run as a user runs the CLI (a child process
 * on the sources, no gateway configured, so the embedded simulator answers unless a test starts
 * its own gateway on 127.0.0.1).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Chat from "../src/internal/chat.js"

const cliDir = fileURLToPath(new URL("..", import.meta.url))
const sources = ["--conditions=@llm-gateway/source", "--import", "tsx", "src/bin.ts"]

const env = (extra: Record<string, string> = {}) => {
  const clean: Record<string, string> = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith("GENESYS_") && !key.startsWith("LLM_GATEWAY_")) clean[key] = value
  }
  return { ...clean, NO_COLOR: "1", ...extra }
}

/** Runs the CLI without blocking this process (a server in it may answer; the test worker stays responsive). */
const runCli = (args: ReadonlyArray<string>, extra: Record<string, string> = {}) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [...sources, ...args], { cwd: cliDir, env: env(extra), stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()))
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
    child.on("close", (code) => resolve({ code, stdout, stderr }))
  })

const lastLine = (text: string) => text.trim().split("\n").at(-1)

const dir = () => mkdtempSync(join(tmpdir(), "llm-gateway-chat-flags-"))

/**
 * An OpenAI-compatible gateway on 127.0.0.1 whose every reply calls `get_weather` twice in
 * parallel, the arguments split across chunks as real gateways send them. Keeps the bodies.
 */
const toolCallingGateway = async () => {
  const bodies: Array<any> = []
  const server = createServer((request, response) => {
    let body = ""
    request.on("data", (d: Buffer) => (body += d.toString()))
    request.on("end", () => {
      bodies.push(JSON.parse(body))
      const chunk = (delta: object, finish: string | null = null) =>
        `data: ${JSON.stringify({ id: "c1", object: "chat.completion.chunk", choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
      const call = (index: number, fields: object) => chunk({ tool_calls: [{ index, ...fields }] })
      response.writeHead(200, { "content-type": "text/event-stream" })
      response.end(
        chunk({ role: "assistant", content: null }) +
          call(0, { id: "call_oslo", type: "function", function: { name: "get_weather", arguments: "" } }) +
          call(0, { function: { arguments: "{\"city\":" } }) +
          call(1, { id: "call_bergen", type: "function", function: { name: "get_weather", arguments: "{\"city\"" } }) +
          call(0, { function: { arguments: "\"Oslo\"}" } }) +
          call(1, { function: { arguments: ":\"Bergen\"}" } }) +
          chunk({}, "tool_calls") +
          `data: ${JSON.stringify({ id: "c1", choices: [], usage: { prompt_tokens: 20, completion_tokens: 12, total_tokens: 32 } })}\n\n` +
          "data: [DONE]\n\n"
      )
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    bodies,
    close: () => new Promise<void>((resolve) => server.close(() => resolve()))
  }
}

const weatherTool = {
  name: "get_weather",
  description: "The current weather of a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false }
}

describe("chat --conversation", () => {
  it("keeps the history across runs; a failed turn leaves the file as it was", async () => {
    const file = join(dir(), "chat.json")
    const first = await runCli(["chat", "--conversation", file, "--system", "Be brief.", "My name is Ann."])
    expect(first.code, first.stderr).toBe(0)
    expect(first.stdout).toBe("You said: My name is Ann.\n")
    const afterFirst = JSON.parse(readFileSync(file, "utf8"))
    expect(afterFirst.conversations[0].system).toBe("Be brief.")
    expect(afterFirst.conversations[0].messages).toEqual([
      { role: "user", content: "My name is Ann." },
      { role: "assistant", content: "You said: My name is Ann." }
    ])

    // The second run sends the first turn along: more prompt tokens for a shorter message.
    const second = await runCli(["chat", "--conversation", file, "--jsonl", "And yours?"])
    expect(second.code, second.stderr).toBe(0)
    const finish = JSON.parse(lastLine(second.stdout)!)
    const alone = JSON.parse(lastLine((await runCli(["chat", "--system", "Be brief.", "--jsonl", "And yours?"])).stdout)!)
    expect(finish.usage.promptTokens).toBeGreaterThan(alone.usage.promptTokens)
    const afterSecond = readFileSync(file, "utf8")
    expect(JSON.parse(afterSecond).conversations[0].messages.map((m: { content: string }) => m.content)).toEqual([
      "My name is Ann.",
      "You said: My name is Ann.",
      "And yours?",
      "You said: And yours?"
    ])

    for (const model of ["sim:unavailable", "sim:drop"]) {
      const failed = await runCli(["chat", "--conversation", file, "--model", model, "This turn fails."])
      expect(failed.code).toBe(7)
      expect(readFileSync(file, "utf8")).toBe(afterSecond)
    }
  }, 120_000)

  it("redacts what it keeps, refuses another --system, and names a corrupt file (exit 3)", async () => {
    const base = dir()
    const file = join(base, "chat.json")
    expect((await runCli(["chat", "--conversation", file, "Write to ann@example.com"])).code).toBe(0)
    const kept = readFileSync(file, "utf8")
    expect(kept).not.toContain("ann@example.com")
    expect(kept).toContain("[EMAIL]")

    const other = await runCli(["chat", "--conversation", file, "--system", "Be verbose.", "Hi"])
    expect(other.code).toBe(2)
    expect(lastLine(other.stderr)).toMatch(/^llm-gateway: the conversation in .* has another system instruction/)

    const corrupt = join(base, "corrupt.json")
    writeFileSync(corrupt, "{ not json")
    const bad = await runCli(["chat", "--conversation", corrupt, "Hi"])
    expect(bad.code).toBe(3)
    expect(lastLine(bad.stderr)).toMatch(/^error \(ConversationStoreError\): .*corrupt\.json/)
    expect(readFileSync(corrupt, "utf8")).toBe("{ not json")

    const mixed = await runCli(["chat", "--conversation", file, "--schema", corrupt, "Hi"])
    expect(mixed.code).toBe(2)
    expect(lastLine(mixed.stderr)).toBe("llm-gateway: --conversation cannot be combined with --tools or --schema. See 'llm-gateway chat --help'.")
  }, 120_000)
})

describe("chat --tools", () => {
  it("declares the file's tools on the wire and prints the calls (text, --json, --jsonl)", async () => {
    const gateway = await toolCallingGateway()
    try {
      const file = join(dir(), "tools.json")
      // One plain definition and one in OpenAI's own shape.
      writeFileSync(file, JSON.stringify([weatherTool, { type: "function", function: { name: "get_time", parameters: { type: "object", properties: {} } } }]))
      const common = ["chat", "--profile", "openai", "--base-url", gateway.baseUrl, "--no-cache", "--tools", file]
      const settings = { LLM_GATEWAY_API_KEY: "sk-test-not-real" }

      const text = await runCli([...common, "Weather in Oslo and Bergen?"], settings)
      expect(text.code, text.stderr).toBe(0)
      expect(text.stdout).toBe(
        "[tool call call_oslo: get_weather {\"city\":\"Oslo\"}]\n[tool call call_bergen: get_weather {\"city\":\"Bergen\"}]\n"
      )
      expect(gateway.bodies[0].tools).toEqual([
        { type: "function", function: weatherTool },
        { type: "function", function: { name: "get_time", parameters: { type: "object", properties: {} } } }
      ])

      const json = await runCli([...common, "--json", "Weather?"], settings)
      expect(json.code, json.stderr).toBe(0)
      const result = JSON.parse(json.stdout)
      expect(result.finishReason).toBe("tool_calls")
      expect(result.toolCalls).toEqual([
        { id: "call_oslo", name: "get_weather", arguments: { city: "Oslo" } },
        { id: "call_bergen", name: "get_weather", arguments: { city: "Bergen" } }
      ])

      const jsonl = await runCli([...common, "--jsonl", "Weather?"], settings)
      const parts = jsonl.stdout.trim().split("\n").map((line) => JSON.parse(line))
      expect(parts.filter((p) => p._tag === "ToolCall").map((p) => p.name)).toEqual(["get_weather", "get_weather"])
      expect(parts.at(-1)._tag).toBe("Finish")
    } finally {
      await gateway.close()
    }
  }, 120_000)

  it.effect("a bad tools file is a typed InputError naming the file and the fields", () =>
    Effect.gen(function*() {
      const base = dir()
      const write = (name: string, text: string) => {
        writeFileSync(join(base, name), text)
        return join(base, name)
      }
      const cases: Array<readonly [string, RegExp]> = [
        [join(base, "missing.json"), /missing\.json does not exist$/],
        [base, /is not a regular file$/],
        [write("prose.json", "get_weather(city)"), /prose\.json is not valid JSON$/],
        [write("empty.json", "[]"), /empty\.json must hold a non-empty JSON array of tools/],
        [write("typo.json", JSON.stringify([{ nam: "get_weather" }])), /typo\.json is not a list of tools: .*0\.name: is missing/],
        [write("badname.json", JSON.stringify([{ name: "get weather" }])), /badname\.json is not a list of tools: 0\.name: /],
        [write("twice.json", JSON.stringify([weatherTool, weatherTool])), /twice\.json: 1\.name: the same name as tools\.0$/]
      ]
      for (const [file, message] of cases) {
        const error = yield* Effect.flip(Chat.loadTools(file))
        expect(error._tag, file).toBe("InputError")
        expect(error.message, file).toMatch(/^--tools /)
        expect(error.message, file).toMatch(message)
      }
      expect(yield* Chat.loadTools(write("ok.json", JSON.stringify([weatherTool])))).toEqual([weatherTool])
    }))

  it("a bad tools file ends the command with one line and exit 3", async () => {
    const result = await runCli(["chat", "--profile", "openai", "--tools", join(dir(), "missing.json"), "Hi"])
    expect(result.code).toBe(3)
    expect(lastLine(result.stderr)).toMatch(/^error \(InputError\): --tools .*missing\.json does not exist$/)
  }, 60_000)
})

describe("chat --schema", () => {
  it("asks for JSON of the file's schema: printed as it streams, decoded in --json; a mismatch is exit 7, a bad file exit 3", async () => {
    const base = dir()
    const schema = join(base, "person.json")
    writeFileSync(
      schema,
      JSON.stringify({
        title: "person",
        type: "object",
        properties: { name: { type: "string" }, born: { type: "integer" } },
        required: ["name", "born"],
        additionalProperties: false
      })
    )
    for (const profile of ["gateway", "openai"]) {
      const streamed = await runCli(["chat", "--profile", profile, "--model", "sim:json", "--schema", schema, "Who wrote Dune?"])
      expect(streamed.code, streamed.stderr).toBe(0)
      expect(JSON.parse(streamed.stdout)).toEqual({ name: "You said: Who wrote Dune?", born: 0 })
    }
    const json = await runCli(["chat", "--model", "sim:json", "--schema", schema, "--json", "Who wrote Dune?"])
    expect(JSON.parse(json.stdout).value).toEqual({ name: "You said: Who wrote Dune?", born: 0 })

    const mismatch = await runCli(["chat", "--model", "sim:hello", "--schema", schema, "Who wrote Dune?"])
    expect(mismatch.code).toBe(7)
    // The text that came before the error ends its line.
    expect(mismatch.stdout).toBe("Hello! How can I help you today?\n")
    expect(lastLine(mismatch.stderr)).toBe("error (ReplySchemaMismatch): The structured reply is not JSON.")

    writeFileSync(join(base, "loose.json"), JSON.stringify({ type: "object", properties: { a: { type: "string" } } }))
    const loose = await runCli(["chat", "--model", "sim:json", "--schema", join(base, "loose.json"), "x"])
    expect(loose.code).toBe(9)
    expect(lastLine(loose.stderr)).toContain("responseFormat.jsonSchema.properties.a: is optional")

    writeFileSync(join(base, "list.json"), "[]")
    const notObject = await runCli(["chat", "--schema", join(base, "list.json"), "x"])
    expect(notObject.code).toBe(3)
    expect(lastLine(notObject.stderr)).toMatch(/^error \(InputError\): --schema .*list\.json must hold a JSON Schema object$/)
  }, 120_000)
})
