import { describe, expect, it } from "@effect/vitest"
import { spawn, spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const cliDir = fileURLToPath(new URL("..", import.meta.url))
// The sources, as `pnpm cli` runs them: no build step, workspace packages resolved to src/.
const sources = ["--conditions=@llm-gateway/source", "--import", "tsx", "src/bin.ts"]

/** Runs the CLI as a user would, with no gateway credentials in the environment. */
const runCli = (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const clean: Record<string, string> = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith("GENESYS_") && !key.startsWith("LLM_GATEWAY_")) clean[key] = value
  }
  const result = spawnSync(process.execPath, [...sources, ...args], {
    cwd: cliDir,
    env: { ...clean, NO_COLOR: "1", ...env },
    encoding: "utf8",
    timeout: 60_000
  })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

describe("llm-gateway CLI", () => {
  it("demo: streams the Spanish reply, shows the cache hit, and never prints the email", () => {
    const { code, stdout, stderr } = runCli(["demo"])
    expect(stderr).toBe("")
    expect(code).toBe(0)
    expect(stdout).toContain("Mi pedido n.º 12345 no ha llegado")
    expect(stdout).toContain("redacted before sending: email x1")
    expect(stdout).toContain("answered from the cache")
    expect(stdout).toContain("hash chain verified")
    expect(stdout).toMatch(/what reached the gateway \(1 request\)/)
    expect(stdout).toContain("my email is [EMAIL]")
    expect(stdout).not.toContain("test@example.com")
    expect(stdout).not.toContain("example.com")
  })

  it("chat --json: one JSON object with text, usage, cost and redactions", () => {
    const { code, stdout } = runCli([
      "chat",
      "--json",
      "--template",
      "Reply to $who about $topic",
      "--var",
      "who=jane.doe@example.org",
      "--var",
      "topic=billing",
      "--system",
      "Be brief."
    ])
    expect(code).toBe(0)
    const result = JSON.parse(stdout)
    expect(Object.keys(result).sort()).toEqual(
      ["cached", "cost", "finishReason", "redactions", "text", "usage", "usageSource"].sort()
    )
    // The simulator's default scenario echoes what reached it.
    expect(result.text).toContain("[EMAIL]")
    expect(stdout).not.toContain("jane.doe@example.org")
    expect(result.usage.totalTokens).toBe(result.usage.promptTokens + result.usage.completionTokens)
    expect(result.redactions.input).toEqual([{ kind: "email", count: 1 }])
    expect(result.cached).toBe(false)
  })

  it("chat --json: stdout holds only the JSON object, warnings go to stderr", () => {
    const { code, stdout, stderr } = runCli(["chat", "--json", "--model", "house-model-7", "hi"])
    expect(code).toBe(0)
    expect(JSON.parse(stdout).text).toBe("You said: hi")
    expect(stderr).toContain("house-model-7")
  })

  it("chat --audit-file: appends hash-chained lines without the email, across runs", () => {
    const file = join(mkdtempSync(join(tmpdir(), "llm-gateway-audit-")), "audit.jsonl")
    expect(runCli(["chat", "--json", "--audit-file", file, "I am ann@example.com"]).code).toBe(0)
    expect(runCli(["chat", "--json", "--audit-file", file, "hello"]).code).toBe(0)
    const lines = readFileSync(file, "utf8").trim().split("\n").map((line) => JSON.parse(line))
    expect(lines.map((line) => line.seq)).toEqual([0, 1])
    expect(lines[1].prevHash).toBe(lines[0].hash)
    expect(lines[0].inputRedactions).toEqual([{ kind: "email", count: 1 }])
    expect(readFileSync(file, "utf8")).not.toContain("ann@example.com")
  })

  it("chat --json: a failure exits non-zero with a typed error object", () => {
    const { code, stdout } = runCli(["chat", "--json", "--template", "Hello $name"])
    expect(code).toBe(1)
    const result = JSON.parse(stdout)
    expect(result.error._tag).toBe("TemplateError")
    expect(result.error.message).toContain("$name")
  })

  it("chat --json: a gateway that echoes the bearer token and an email shows neither", () => {
    // The embedded simulator's echo-secrets scenario puts "Bearer <token>", the token and
    // jane.doe@example.com in the message, code, contextId and correlation header of a 400.
    const { code, stdout, stderr } = runCli(["chat", "--json", "--model", "sim:echo-secrets", "hi"])
    expect(code).toBe(1)
    const result = JSON.parse(stdout)
    expect(result.error._tag).toBe("BadRequest")
    expect(result.error.message).toContain("code: Bearer <redacted> / <redacted> / [EMAIL]")
    expect(result.error.message).toContain("correlation: Bearer <redacted>")
    for (const output of [stdout, stderr]) {
      expect(output).not.toMatch(/Bearer (?!<redacted>)/)
      expect(output).not.toContain("jane.doe")
      expect(output).not.toContain("simulator-secret")
    }
  })

  it("chat: a bad setting in the environment fails naming the variable", () => {
    const { code, stdout } = runCli(["chat", "--json", "hi"], {
      GENESYS_CLIENT_ID: "id",
      GENESYS_CLIENT_SECRET: "super-secret-value",
      GENESYS_ENVIRONMENT: "not a host"
    })
    expect(code).toBe(1)
    const result = JSON.parse(stdout)
    expect(result.error._tag).toBe("ConfigError")
    expect(result.error.message).toContain("GENESYS_ENVIRONMENT")
    expect(stdout).not.toContain("super-secret-value")
  })

  it("sim: serves on loopback, prints its base URL first, and the openai endpoints answer", async () => {
    const child = spawn(process.execPath, [...sources, "sim", "--port", "0"], { cwd: cliDir, env: { ...process.env, NO_COLOR: "1" } })
    try {
      const baseUrl = await new Promise<string>((resolve, reject) => {
        let out = ""
        child.stdout.on("data", (data: Buffer) => {
          out += data.toString()
          const newline = out.indexOf("\n")
          if (newline >= 0) resolve(out.slice(0, newline))
        })
        child.on("exit", (code) => reject(new Error(`sim exited with ${code}`)))
      })
      expect(baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      const response = await fetch(`${baseUrl}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer sim-api-key" },
        body: JSON.stringify({ model: "sim:hello", messages: [{ role: "user", content: "hi" }] })
      })
      expect(response.status).toBe(200)
      const body = await response.json() as { choices: Array<{ message: { content: string } }> }
      expect(body.choices[0].message.content).toBe("Hello! How can I help you today?")
    } finally {
      child.kill("SIGINT")
    }
  })

  it("sim: a bad scenario file fails naming the file and the field", () => {
    const dir = mkdtempSync(join(tmpdir(), "llm-gateway-sim-"))
    const file = join(dir, "scenarios.json")
    writeFileSync(file, JSON.stringify({ name: "x", timing: { tokenMs: "fast" } }))
    const { code, stderr } = runCli(["sim", "--scenario", file])
    expect(code).toBe(1)
    expect(stderr).toContain("ScenarioFileError")
    expect(stderr).toContain(file)
    expect(stderr).toContain("tokenMs")
  })

  it("a bad flag: one line on stderr naming the flag and what it expects, exit code 2", () => {
    const { code, stdout, stderr } = runCli(["chat", "--max-tokens", "abc", "hi"])
    expect(code).toBe(2)
    expect(stdout).toBe("")
    expect(stderr).toBe(
      `llm-gateway: --max-tokens expects a positive whole number, got "abc". See 'llm-gateway chat --help'.\n`
    )
  })

})
