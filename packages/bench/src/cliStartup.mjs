// CLI start-up: `llm-gateway --help` from the compiled package, against the floor of any CLI on
// this stack, a Node process that imports effect, @effect/cli and @effect/platform-node.
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { interleave, median, pairedRatio } from "./stats.mjs"

const here = fileURLToPath(new URL("..", import.meta.url))
const bin = fileURLToPath(new URL("../../cli/bin/llm-gateway.mjs", import.meta.url))
const floorScript =
  "await import('effect'); await import('@effect/cli'); await import('@effect/platform-node')"

const timed = (args, check) => () => {
  const start = process.hrtime.bigint()
  const result = spawnSync(process.execPath, args, { cwd: here, encoding: "utf8" })
  const ms = Number(process.hrtime.bigint() - start) / 1e6
  const problem = check(result)
  if (problem !== undefined) throw new Error(`${args.join(" ")}: ${problem}\n${result.stderr}`)
  return Promise.resolve(ms)
}

export const name = "CLI start-up"

export const run = async ({ quick }) => {
  const samples = await interleave({
    "llm-gateway --help": timed([bin, "--help"], (r) =>
      r.status !== 0 ? `exit ${r.status}` : r.stdout.includes("llm-gateway") ? undefined : "no help text"),
    "import effect, @effect/cli, @effect/platform-node": timed(["--input-type=module", "-e", floorScript], (r) =>
      r.status !== 0 ? `exit ${r.status}` : undefined),
    "node -e 0": timed(["-e", "0"], (r) => (r.status !== 0 ? `exit ${r.status}` : undefined))
  }, { rounds: quick ? 7 : 21, warmup: 2 })
  const cli = samples["llm-gateway --help"]
  const floor = samples["import effect, @effect/cli, @effect/platform-node"]
  return {
    name,
    rows: [
      {
        case: "`llm-gateway --help` vs importing effect + @effect/cli + @effect/platform-node",
        ours: `${median(cli).toFixed(0)} ms`,
        peer: `${median(floor).toFixed(0)} ms`,
        ratio: pairedRatio(cli, floor),
        target: 1.5
      }
    ],
    notes: [`bare \`node -e 0\`: ${median(samples["node -e 0"]).toFixed(0)} ms`]
  }
}
