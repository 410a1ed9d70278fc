// The packages as a user gets them: packed, installed with npm into a fresh project outside the
// repository, and used there with plain node, tsc, esbuild and the installed binary.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../../../", import.meta.url))
const readme = readFileSync(join(root, "README.md"), "utf8")
const section = readme.slice(readme.indexOf("## Install in your project"))
const installLine = /```sh\n(npm install [^\n]+)\n```/.exec(section)?.[1]
const appSource = /```js\n([\s\S]*?)```/.exec(section)?.[1]

interface Result {
  readonly code: number | null
  /** stdout alone, and stdout with stderr (for failure messages). */
  readonly stdout: string
  readonly output: string
}

const run = (command: string, args: ReadonlyArray<string>, cwd: string, timeout = 120_000) =>
  new Promise<Result>((resolve) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, NO_COLOR: "1" }, timeout })
    let stdout = ""
    let output = ""
    child.stdout.on("data", (data) => {
      stdout += data
      output += data
    })
    child.stderr.on("data", (data) => (output += data))
    child.on("error", (error) => resolve({ code: null, stdout, output: output + String(error) }))
    child.on("close", (code) => resolve({ code, stdout, output }))
  })

const tsc = (cwd: string, flags: ReadonlyArray<string>) =>
  run(process.execPath, [
    join(root, "node_modules/typescript/bin/tsc"),
    "--module", "nodenext", "--moduleResolution", "nodenext", "--strict", "--noEmit", "--target", "es2022",
    ...flags,
    "consumer.ts"
  ], cwd)

let project = ""
let installed: Result = { code: null, stdout: "", output: "not run" }
const notInstalled: Promise<Result> = Promise.resolve({
  code: null,
  stdout: "",
  output: "npm install failed (see the first test)"
})
// Started together once the install is done, so the checks share the machine's cores.
let checks: {
  readonly node: Promise<Result>
  readonly tsc: Promise<Result>
  readonly tscStrict: Promise<Result>
  readonly bundle: Promise<Result>
  readonly binary: Promise<Result>
  readonly subpaths: Promise<Result>
} = {
  node: notInstalled,
  tsc: notInstalled,
  tscStrict: notInstalled,
  bundle: notInstalled,
  binary: notInstalled,
  subpaths: notInstalled
}

// Public modules import one by one; internal ones are closed by the exports map.
const subpathScript = `
const Transport = await import("@llm-gateway/core/Transport")
const Server = await import("@llm-gateway/simulator/SimulatorServer")
if (typeof Transport.layer !== "function" || typeof Server.layerServer !== "function") throw new Error("missing exports")
const closed = await import("@llm-gateway/core/internal/hash.js").then(() => "importable", (e) => e.code)
console.log(closed)
`

describe("installed from the packed tarballs into a fresh project", () => {
  beforeAll(async () => {
    project = mkdtempSync(join(tmpdir(), "llm-gateway-consumer-"))
    const packs = join(project, "packs")
    const packed = await run(process.execPath, [join(root, "scripts/pack.mjs"), packs], root)
    if (packed.code !== 0) {
      installed = { code: packed.code, stdout: "", output: `packing failed:\n${packed.output}` }
      return
    }
    const tarballs = JSON.parse(packed.stdout) as Record<string, string>
    const app = join(project, "app")
    installed = { code: null, stdout: "", output: "the README has no npm install line" }
    if (installLine === undefined) return
    // The README's line as written, with the packages taken from the tarballs instead of the registry.
    const args = installLine.split(/\s+/).slice(2).map((arg) => tarballs[arg] ?? arg)
    mkdirSync(app)
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }))
    installed = await run("npm", [
      "install", "--no-audit", "--no-fund", "--loglevel=error",
      ...args, tarballs["@llm-gateway/cli"]!, "@types/node@20"
    ], app)
    if (appSource !== undefined) writeFileSync(join(app, "app.mjs"), appSource)
    copyFileSync(fileURLToPath(new URL("./fixtures/consumer.ts", import.meta.url)), join(app, "consumer.ts"))
    project = app
    if (installed.code !== 0) return
    checks = {
      node: run(process.execPath, ["app.mjs"], app),
      tsc: tsc(app, []),
      tscStrict: tsc(app, ["--noPropertyAccessFromIndexSignature", "--exactOptionalPropertyTypes", "--lib", "es2022"]),
      bundle: run(join(root, "node_modules/.bin/esbuild"), [
        "app.mjs", "--bundle", "--platform=node", "--format=esm", "--outfile=bundle.mjs", "--log-level=warning"
      ], app).then((bundled) =>
        bundled.code === 0
          ? run(process.execPath, ["bundle.mjs"], app)
          : { code: bundled.code, stdout: "", output: `esbuild failed:\n${bundled.output}` }
      ),
      binary: run(join(app, "node_modules/.bin/llm-gateway"), ["chat", "--json", "hello"], app),
      subpaths: run(process.execPath, ["--input-type=module", "-e", subpathScript], app)
    }
  }, 240_000)

  afterAll(async () => {
    if (project !== "") await rm(join(project, ".."), { recursive: true, force: true })
  }, 60_000)

  it("every module of core and the simulator is a public subpath in its package's exports", () => {
    for (const pkg of ["core", "simulator"]) {
      const manifest = JSON.parse(readFileSync(join(root, "packages", pkg, "package.json"), "utf8")) as {
        exports: Record<string, unknown>
      }
      const modules = readdirSync(join(root, "packages", pkg, "src"))
        .filter((file) => file.endsWith(".ts") && file !== "index.ts")
        .map((file) => `./${file.slice(0, -3)}`)
      const missing = modules.filter((subpath) => !(subpath in manifest.exports))
      expect(missing, `packages/${pkg}/package.json "exports" lacks these modules`).toEqual([])
    }
  })

  it("the README's install line installs the packed packages", () => {
    expect(installLine, "README: no ```sh block with `npm install …` under '## Install in your project'").toBeDefined()
    expect(appSource, "README: no ```js example under '## Install in your project'").toBeDefined()
    expect(installed.code, `npm install failed:\n${installed.output}`).toBe(0)
  })

  it("(a) plain node runs the README's example, streaming a reply from the simulator", async () => {
    const result = await checks.node
    expect(result.code, `node app.mjs failed:\n${result.output}`).toBe(0)
    expect(result.output, "the example printed no simulator reply").toContain("You said:")
    expect(result.output, "the example's email address reached the output").not.toContain("@example.com")
  }, 120_000)

  it("every public module imports on its own; internal modules do not import", async () => {
    const result = await checks.subpaths
    expect(result.code, `importing module subpaths failed:\n${result.output}`).toBe(0)
    expect(result.stdout.trim(), "@llm-gateway/core/internal/* must not be importable").toBe("ERR_PACKAGE_PATH_NOT_EXPORTED")
  }, 120_000)

  it("(b) tsc --strict type-checks a TypeScript consumer against the published .d.ts", async () => {
    const result = await checks.tsc
    expect(result.code, `tsc failed on the consumer:\n${result.output}`).toBe(0)
  }, 120_000)

  it("(b) the consumer's own strictness flags find nothing in our .d.ts", async () => {
    const result = await checks.tscStrict
    // Errors inside Effect's own declarations (platform's KeyValueStore names the DOM `Storage`
    // type, absent from `--lib es2022`) are upstream's; ours and the consumer's must be none.
    const ours = result.output.split("\n").filter((line) => /^(consumer\.ts|node_modules\/@llm-gateway\/)/.test(line))
    expect(ours, `errors from our packages under the consumer's flags:\n${result.output}`).toEqual([])
  }, 120_000)

  it("(c) esbuild bundles the example for node, and the bundle runs", async () => {
    const result = await checks.bundle
    expect(result.code, `bundling or running the bundle failed:\n${result.output}`).toBe(0)
    expect(result.output, "the bundle printed no simulator reply").toContain("You said:")
  }, 120_000)

  it("(d) the installed llm-gateway binary answers chat --json on the simulator", async () => {
    // LLM_GATEWAY_TEST_* are settings of our own tests (the Redis server .ci/run starts), read by no package.
    const env = Object.keys(process.env).filter((key) =>
      (key.startsWith("GENESYS_") || key.startsWith("LLM_GATEWAY_")) && !key.startsWith("LLM_GATEWAY_TEST_")
    )
    expect(env, "gateway credentials in the environment would send this test to a real gateway").toEqual([])
    const result = await checks.binary
    expect(result.code, `llm-gateway chat --json hello failed:\n${result.output}`).toBe(0)
    const reply = JSON.parse(result.stdout) as { text: string }
    expect(reply.text).toBe("You said: hello")
  }, 120_000)
})
