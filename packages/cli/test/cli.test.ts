import { describe, expect, it } from "@effect/vitest"
import { spawn, spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const cliDir = fileURLToPath(new URL("..", import.meta.url))
// The sources, as `pnpm cli` runs them: no build step, workspace packages resolved to src/.
const sources = ["--conditions=@llm-gateway/source", "--import", "tsx", "src/bin.ts"]

const cleanEnv = () => {
  const clean: Record<string, string> = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith("GENESYS_") && !key.startsWith("LLM_GATEWAY_")) clean[key] = value
  }
  return clean
}

/** Runs the CLI as a user would, with no gateway credentials in the environment. */
const runCli = (args: ReadonlyArray<string>, env: Record<string, string> = {}, input = "") => {
  const result = spawnSync(process.execPath, [...sources, ...args], {
    cwd: cliDir,
    env: { ...cleanEnv(), NO_COLOR: "1", ...env },
    encoding: "utf8",
    input,
    timeout: 60_000
  })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

/** Runs the CLI without blocking this process, so a server in this process can answer it. */
const runCliAsync = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [...sources, ...args], {
      cwd: cliDir,
      env: { ...cleanEnv(), NO_COLOR: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()))
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
    child.on("close", (code) => resolve({ code, stdout, stderr }))
  })

/** A gateway on 127.0.0.1 that counts requests and refuses every one with 401. */
const refusingGateway = async () => {
  let requests = 0
  const server = createServer((_request, response) => {
    requests++
    response.writeHead(401, { "content-type": "application/json" })
    response.end(JSON.stringify({ error: { message: "Incorrect API key provided", type: "invalid_request_error" } }))
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests: () => requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve()))
  }
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

  it("chat --json: stdout holds only the JSON object; an unknown model is one warning line, and the simulator is named", () => {
    const { code, stdout, stderr } = runCli(["chat", "--json", "--model", "house-model-7", "hi"])
    expect(code).toBe(0)
    expect(JSON.parse(stdout).text).toBe("You said: hi")
    const lines = stderr.trim().split("\n")
    expect(lines.filter((line) => line.includes("house-model-7"))).toEqual([
      "warning: model house-model-7 is not in the catalog; assuming a context window of 8,192 tokens, at most 4,096 reply tokens, o200k_base and $30.00 / $60.00 per million tokens in / out (see 'llm-gateway models'; register it with LLM_GATEWAY_MODELS and LLM_GATEWAY_PRICING)"
    ])
    expect(lines).toContain(
      "[no gateway configured (GENESYS_CLIENT_ID, --base-url or LLM_GATEWAY_BASE_URL): the embedded simulator answers]"
    )
    expect(lines).toHaveLength(2)
    expect(stderr).not.toMatch(/\u001b\[/)
  })

  it("chat: the message from stdin, --quiet prints only the reply", () => {
    const { code, stdout, stderr } = runCli(["chat", "--quiet"], {}, "hello from a pipe\n")
    expect(code).toBe(0)
    expect(stdout).toBe("You said: hello from a pipe\n")
    expect(stderr).toBe("")
  })

  it("chat --cache-dir: two processes share the cache; the second is a hit at zero cost", () => {
    const dir = mkdtempSync(join(tmpdir(), "llm-gateway-cache-"))
    const first = runCli(["chat", "--json", "--cache-dir", dir, "What is a hash chain?"])
    const second = runCli(["chat", "--json", "--cache-dir", dir, "What is a hash chain?"])
    expect([first.code, second.code]).toEqual([0, 0])
    const [a, b] = [JSON.parse(first.stdout), JSON.parse(second.stdout)]
    expect(a.cached).toBe(false)
    expect(a.cost.totalUsd).toBeGreaterThan(0)
    expect(b.cached).toBe(true)
    expect(b.cost.totalUsd).toBe(0)
    expect(b.text).toBe(a.text)
    expect(b.usage).toEqual(a.usage)
  })

  it("chat --budget: a tiny budget is refused before any network call, with exit code 5", async () => {
    const gateway = await refusingGateway()
    try {
      const { code, stdout, stderr } = await runCliAsync(
        ["chat", "--profile", "openai", "--base-url", gateway.baseUrl, "--budget", "0.000001", "hi"],
        { LLM_GATEWAY_API_KEY: "sk-test-not-real" }
      )
      expect(code).toBe(5)
      expect(stdout).toBe("")
      expect(stderr).toMatch(/^error \(BudgetExceeded\): The total budget of \$0\.000001 would be exceeded/m)
      expect(gateway.requests()).toBe(0)
    } finally {
      await gateway.close()
    }
  })

  it("chat with a refused static API key: advice about the key, exit code 4, the key never shown", async () => {
    const gateway = await refusingGateway()
    try {
      const { code, stderr } = await runCliAsync(
        ["chat", "--profile", "openai", "--base-url", gateway.baseUrl, "hi"],
        { LLM_GATEWAY_API_KEY: "sk-test-not-real" }
      )
      expect(code).toBe(4)
      expect(stderr).toMatch(/^error \(AuthError\): The gateway at http:\/\/127\.0\.0\.1:\d+\/v1 refused the API key\. Check LLM_GATEWAY_API_KEY/m)
      expect(stderr).not.toContain("OAuth client")
      expect(stderr).not.toContain("sk-test-not-real")
      expect(gateway.requests()).toBe(1)
    } finally {
      await gateway.close()
    }
  })

  it("chat: a missing API key is said in words (exit 3); --audit-file at a directory is one line (exit 3)", () => {
    const missing = runCli(["chat", "hi"], { LLM_GATEWAY_BASE_URL: "http://127.0.0.1:9/v1" })
    expect(missing.code).toBe(3)
    expect(missing.stderr.trim()).toMatch(/^error \(ConfigError\): LLM_GATEWAY_API_KEY is not set \(the gateway named by/)
    expect(missing.stderr).not.toContain("Missing data")
    const directory = runCli(["chat", "--audit-file", tmpdir(), "hi"])
    expect(directory.code).toBe(3)
    const lines = directory.stderr.trim().split("\n")
    expect(lines[lines.length - 1]).toMatch(/^error \(InputError\): --audit-file \S+ is a directory; give a file in it/)
    expect(directory.stderr).not.toContain("    at ")
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

    // What the CLI wrote, the CLI verifies and sums; an edit is found at its line.
    const verified = runCli(["audit", "verify", file])
    expect(verified.code).toBe(0)
    expect(verified.stdout).toMatch(/: OK, 2 entries \(last line: seq 1, hash [0-9a-f]{64}\)\n$/)
    const report = runCli(["cost", "report", "--json", file])
    expect(report.code).toBe(0)
    const json = JSON.parse(report.stdout)
    expect(json.total.requests).toBe(2)
    expect(json.total.tokensIn).toBe(lines[0].usage.promptTokens + lines[1].usage.promptTokens)
    writeFileSync(file, readFileSync(file, "utf8").replace(`"seq":1`, `"seq":7`))
    const tampered = runCli(["audit", "verify", file])
    expect(tampered.code).toBe(1)
    expect(tampered.stdout).toContain("BROKEN at line 2 (hash-mismatch)")
  })

  it("chat --json: a failure exits with its class's code and a typed error object", () => {
    const { code, stdout } = runCli(["chat", "--json", "--template", "Hello $name"])
    expect(code).toBe(9)
    const result = JSON.parse(stdout)
    expect(result.error._tag).toBe("TemplateError")
    expect(result.error.message).toContain("$name")
  })

  it("chat --json: a gateway that echoes the bearer token and an email shows neither", () => {
    // The embedded simulator's echo-secrets scenario puts "Bearer <token>", the token and
    // jane.doe@example.com in the message, code, contextId and correlation header of a 400.
    const { code, stdout, stderr } = runCli(["chat", "--json", "--model", "sim:echo-secrets", "hi"])
    expect(code).toBe(7)
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
    expect(code).toBe(3)
    const result = JSON.parse(stdout)
    expect(result.error._tag).toBe("ConfigError")
    expect(result.error.message).toContain("GENESYS_ENVIRONMENT")
    expect(stdout).not.toContain("super-secret-value")
  })

  it("chat: Ctrl-C during a reply ends its line and exits with 130", async () => {
    const child = spawn(process.execPath, [...sources, "chat", "--model", "sim:stall", "hi"], {
      cwd: cliDir,
      env: { ...cleanEnv(), NO_COLOR: "1" }
    })
    let stdout = ""
    let stderr = ""
    child.stderr.on("data", (data: Buffer) => (stderr += data.toString()))
    const code = await new Promise<number | null>((resolve) => {
      child.stdout.on("data", (data: Buffer) => {
        const first = stdout === ""
        stdout += data.toString()
        if (first) child.kill("SIGINT")
      })
      child.on("close", resolve)
    })
    expect(code).toBe(130)
    expect(stdout.endsWith("\n")).toBe(true)
    expect(stderr).toContain("[interrupted]")
    // A scenario id is not a model to warn about.
    expect(stderr).not.toContain("warning:")
  })

  it("sim: serves on loopback, prints its base URL first, and the openai endpoints answer", async () => {
    const child = spawn(process.execPath, [...sources, "sim", "--port", "0"], { cwd: cliDir, env: { ...process.env, NO_COLOR: "1" } })
    let stderr = ""
    child.stderr.on("data", (data: Buffer) => (stderr += data.toString()))
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
      // The test credentials it accepts are printed, so any client can be pointed at it.
      expect(stderr).toContain("OAuth client:       id simulator-client, secret simulator-secret (test values)")
      expect(stderr).toContain("API key:            sim-api-key (Authorization: Bearer sim-api-key; a test value)")
      expect(stderr).toContain(`try:                LLM_GATEWAY_BASE_URL=${baseUrl}/v1 LLM_GATEWAY_PROFILE=openai`)
    } finally {
      child.kill("SIGINT")
    }
  })

  it("sim: a bad scenario file fails naming the file and the field", () => {
    const dir = mkdtempSync(join(tmpdir(), "llm-gateway-sim-"))
    const file = join(dir, "scenarios.json")
    writeFileSync(file, JSON.stringify({ name: "x", timing: { tokenMs: "fast" } }))
    const { code, stderr } = runCli(["sim", "--scenario", file])
    expect(code).toBe(3)
    expect(stderr.trim().split("\n")).toHaveLength(1)
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
