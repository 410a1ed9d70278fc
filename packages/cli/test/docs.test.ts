import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { chmodSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const repo = fileURLToPath(new URL("../../..", import.meta.url))
const cliDir = join(repo, "packages/cli")

/** One `llm-gateway` command line found in the documentation. */
interface Invocation {
  readonly file: string
  readonly line: number
  readonly command: string
  readonly expectedExit: number
}

const runsTheCli = /(^|\|\s*|^(\w+=\S+\s+)+)llm-gateway(\s|$)/

/**
 * The `llm-gateway` lines of the markdown: every line of a sh/bash block that runs it (also
 * after a pipe or environment assignments), and `$ llm-gateway …` lines of other blocks.
 * Install lines, synopses (`[--flag]`) and lines marked `# needs …` are left out.
 */
const extract = (file: string, text: string): Array<Invocation> => {
  const found: Array<Invocation> = []
  let fence: string | undefined
  text.split("\n").forEach((raw, index) => {
    const line = raw.trim()
    const open = /^```(\w*)/.exec(line)
    if (open !== null) {
      fence = fence === undefined ? open[1]! || "text" : undefined
      return
    }
    if (fence === undefined) return
    const shell = ["sh", "bash", "shell", "console"].includes(fence)
    const command = shell ? line.replace(/^\$\s+/, "") : line.startsWith("$ ") ? line.slice(2) : undefined
    if (command === undefined || !runsTheCli.test(command)) return
    if (/npm install|npx -p|# needs\b|\[--/.test(command)) return
    const exit = /#\s*exit (\d+)/.exec(command)
    found.push({ file, line: index + 1, command, expectedExit: exit === null ? 0 : Number(exit[1]) })
  })
  return found
}

const markdownFiles = (): Array<string> => [
  join(repo, "README.md"),
  ...readdirSync(join(repo, "packages")).map((p) => join(repo, "packages", p, "README.md")).filter((f) => {
    try {
      readFileSync(f)
      return true
    } catch {
      return false
    }
  }),
  ...readdirSync(join(repo, "docs")).filter((f) => f.endsWith(".md")).map((f) => join(repo, "docs", f))
]

/** A directory with `llm-gateway` on PATH running the sources, and a clean environment. */
const sandbox = () => {
  const dir = mkdtempSync(join(tmpdir(), "llm-gateway-docs-"))
  const tsx = pathToFileURL(createRequire(join(cliDir, "package.json")).resolve("tsx")).href
  const script = join(dir, "llm-gateway")
  writeFileSync(
    script,
    `#!/bin/sh\nexec "${process.execPath}" --conditions=@llm-gateway/source --import "${tsx}" "${
      join(cliDir, "src/bin.ts")
    }" "$@"\n`
  )
  chmodSync(script, 0o755)
  // A scenario file for `sim --scenario scenarios.json` examples.
  writeFileSync(
    join(dir, "scenarios.json"),
    JSON.stringify({ scenarios: [{ name: "greeting", reply: "Hello from a scenario file." }] })
  )
  // The files of the `--schema book.json` and `--tools tools.json` examples, as the docs show them.
  writeFileSync(
    join(dir, "book.json"),
    JSON.stringify({
      title: "book",
      type: "object",
      properties: { title: { type: "string" }, year: { type: ["integer", "null"] } },
      required: ["title", "year"],
      additionalProperties: false
    })
  )
  writeFileSync(
    join(dir, "tools.json"),
    JSON.stringify([{
      name: "get_weather",
      description: "The current weather of a city",
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] }
    }])
  )
  const env: Record<string, string> = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith("GENESYS_") && !key.startsWith("LLM_GATEWAY_")) env[key] = value
  }
  env.PATH = `${dir}:${process.env.PATH ?? ""}`
  env.NO_COLOR = "1"
  return { dir, env }
}

interface Result {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs a line with bash; a `sim` line is stopped (SIGINT) once it printed its first line. */
const run = (command: string, cwd: string, env: Record<string, string>): Promise<Result> =>
  new Promise((resolve) => {
    const serves = /llm-gateway sim\b/.test(command) && !/--help/.test(command)
    const child = spawn("bash", ["-c", command], { cwd, env, detached: true })
    let stdout = ""
    let stderr = ""
    const timer = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), 60_000)
    child.stdout.on("data", (data: Buffer) => {
      stdout += data.toString()
      if (serves && stdout.includes("\n")) process.kill(-child.pid!, "SIGINT")
    })
    child.stderr.on("data", (data: Buffer) => {
      stderr += data.toString()
    })
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })

/** What a successful line must print, by what it runs. */
const checkShape = (command: string, result: Result) => {
  const { stdout } = result
  if (/>\s*\S+\s*(#.*)?$/.test(command)) return // redirected: nothing on stdout to look at
  if (/--help\b/.test(command)) return expect(stdout).toContain("USAGE")
  if (/llm-gateway sim\b/.test(command)) return expect(stdout.split("\n")[0]).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
  if (/--jsonl\b/.test(command)) {
    const parts = stdout.trim().split("\n").map((line) => JSON.parse(line))
    return expect(parts[parts.length - 1]._tag).toBe("Finish")
  }
  if (/--json\b/.test(command)) return expect(typeof JSON.parse(stdout)).toBe("object")
  if (/--csv\b/.test(command)) return expect(stdout.split("\n")[0]).toBe("group,key,requests,tokens_in,tokens_out,cost_usd,cache_hits,saved_usd")
  if (/llm-gateway chat\b/.test(command)) return expect(stdout.trim().length).toBeGreaterThan(0)
  if (/llm-gateway models\b/.test(command)) return expect(stdout).toMatch(/^gpt-4o-mini\s+128,000\s+16,384\s+o200k_base/m)
  if (/llm-gateway audit verify\b/.test(command)) return expect(stdout).toMatch(/: OK, \d+ entr(y|ies)/)
  if (/llm-gateway cost report\b/.test(command)) return expect(stdout).toMatch(/^Total: \d+ requests?, /)
  if (/llm-gateway demo\b/.test(command)) return expect(stdout).toContain("hash chain verified")
  throw new Error(`no output check for: ${command}`)
}

/** What a failing line must print: the verdict or one error line. */
const checkFailure = (command: string, result: Result) => {
  if (/llm-gateway audit verify\b/.test(command) && result.code === 1) return expect(result.stdout).toMatch(/BROKEN at line \d+ \(/)
  if (/--json\b/.test(command)) return expect(JSON.parse(result.stdout).error._tag).toMatch(/^\w+$/)
  const lines = result.stderr.trim().split("\n")
  expect(lines[lines.length - 1]).toMatch(/^(error \(\w+\): |llm-gateway: )/)
}

describe("every CLI invocation in the README and docs/", () => {
  const invocations = markdownFiles().flatMap((file) => extract(file.slice(repo.length), readFileSync(file, "utf8")))

  it("finds invocations of every command", () => {
    const commands = invocations.map((i) => i.command)
    for (const name of ["chat", "demo", "models", "audit verify", "cost report", "sim"]) {
      expect(commands.some((c) => c.includes(`llm-gateway ${name}`)), name).toBe(true)
    }
  })

  it("extracts pipes, environment assignments and expected exit codes, and skips install lines", () => {
    const found = extract("x.md", [
      "```sh",
      "npm install -g @llm-gateway/cli",
      "echo hi | llm-gateway chat --quiet",
      "KEY=v llm-gateway audit verify a.jsonl   # exit 1",
      "llm-gateway sim [--port N]",
      "llm-gateway chat --base-url https://x   # needs LLM_GATEWAY_API_KEY",
      "```",
      "```",
      "$ llm-gateway models",
      "llm-gateway output line",
      "```"
    ].join("\n"))
    expect(found.map((f) => [f.command, f.expectedExit])).toEqual([
      ["echo hi | llm-gateway chat --quiet", 0],
      ["KEY=v llm-gateway audit verify a.jsonl   # exit 1", 1],
      ["llm-gateway models", 0]
    ])
  })

  it("runs each one against the simulator with the documented exit code and output", async () => {
    const { dir, env } = sandbox()
    const failures: Array<string> = []
    for (const invocation of invocations) {
      const result = await run(invocation.command, dir, env)
      const where = `${invocation.file}:${invocation.line}: ${invocation.command}`
      const serves = /llm-gateway sim\b/.test(invocation.command) && !/--help/.test(invocation.command)
      // A server stopped with Ctrl-C ends with 130; a taken port is a one-line error (exit 3).
      const code = serves && result.code === 3 ? 3 : result.code
      try {
        if (serves && code === 3) {
          expect(result.stderr).toMatch(/^error \(ServerStartError\): /)
        } else {
          expect(code, `${where}\n${result.stderr}`).toBe(serves ? 130 : invocation.expectedExit)
          if (code === 0 || serves) checkShape(invocation.command, result)
          else checkFailure(invocation.command, result)
        }
      } catch (error) {
        failures.push(`${where}\n  ${String(error).split("\n")[0]}\n  stderr: ${result.stderr.trim().split("\n").slice(-2).join(" | ")}`)
      }
    }
    expect(failures).toEqual([])
  }, 600_000)
})
