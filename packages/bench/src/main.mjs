// `pnpm bench [--quick]`: builds the packages, runs every benchmark side by side with its peer,
// prints a table of paired ratios and exits non-zero when a case gave a wrong answer.
import { spawnSync } from "node:child_process"
import { cpus } from "node:os"
import { fileURLToPath } from "node:url"
import * as CliStartup from "./cliStartup.mjs"
import { formatRatio } from "./stats.mjs"

const quick = process.argv.includes("--quick")
const root = fileURLToPath(new URL("../../../", import.meta.url))
const build = spawnSync(process.execPath, ["node_modules/typescript/bin/tsc", "-b", "tsconfig.build.json"], {
  cwd: root,
  stdio: "inherit"
})
if (build.status !== 0) process.exit(1)

const suites = [CliStartup]
let failed = false
console.log(`llm-gateway benchmarks (${quick ? "quick" : "full"}), ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}`)
console.log("")
console.log("| benchmark | case | ours | peer | ratio, median (min–max) | target |")
console.log("|---|---|---|---|---|---|")
for (const suite of suites) {
  try {
    const result = await suite.run({ quick })
    for (const row of result.rows) {
      const met = row.ratio.median <= row.target ? "met" : "NOT met"
      console.log(`| ${result.name} | ${row.case} | ${row.ours} | ${row.peer} | ${formatRatio(row.ratio)} | ≤ ${row.target}× (${met}) |`)
    }
    for (const note of result.notes ?? []) console.log(`\n${result.name}: ${note}`)
  } catch (error) {
    failed = true
    console.log(`| ${suite.name ?? "?"} | WRONG ANSWER | | | ${String(error?.message ?? error).split("\n")[0]} | |`)
  }
}
process.exit(failed ? 1 : 0)
