// `pnpm bench [--quick]`: builds the packages, runs every benchmark side by side with its peer,
// prints a table of paired ratios and exits non-zero when a case gave a wrong answer.
import { spawnSync } from "node:child_process"
import { writeFileSync } from "node:fs"
import { cpus } from "node:os"
import { fileURLToPath } from "node:url"
import * as CliStartup from "./cliStartup.mjs"
import * as GatewayStream from "./gatewayStream.mjs"
import { formatRatio } from "./stats.mjs"

const quick = process.argv.includes("--quick")
const root = fileURLToPath(new URL("../../../", import.meta.url))
const build = spawnSync(process.execPath, ["node_modules/typescript/bin/tsc", "-b", "tsconfig.build.json"], {
  cwd: root,
  stdio: "inherit"
})
if (build.status !== 0) process.exit(1)

// `--only=<text>` runs the benchmarks whose name contains the text (no docs/performance.md then).
const only = process.argv.find((arg) => arg.startsWith("--only="))?.slice("--only=".length)
const suites = [CliStartup, GatewayStream].filter((suite) => only === undefined || suite.name.includes(only))
let failed = false
const notes = []
const lines = []
const log = (line) => {
  lines.push(line)
  console.log(line)
}
log(`llm-gateway benchmarks (${quick ? "quick" : "full"}), ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}`)
log("")
log("| benchmark | case | ours | peer | ratio, median (min–max) | target |")
log("|---|---|---|---|---|---|")
for (const suite of suites) {
  try {
    const result = await suite.run({ quick })
    for (const row of result.rows) {
      const met = row.ratio.median <= row.target ? "met" : "NOT met"
      log(`| ${result.name} | ${row.case} | ${row.ours} | ${row.peer} | ${formatRatio(row.ratio)} | ≤ ${row.target}× (${met}) |`)
    }
    for (const note of result.notes ?? []) notes.push(`- ${result.name}: ${note}`)
  } catch (error) {
    failed = true
    log(`| ${suite.name} | WRONG ANSWER | | | ${String(error?.message ?? error).split("\n")[0]} | |`)
  }
}
if (notes.length > 0) log(`\n${notes.join("\n")}`)
// A full run is the record: docs/performance.md holds its table.
if (!quick && !failed && only === undefined) {
  writeFileSync(
    new URL("../../../docs/performance.md", import.meta.url),
    `# Performance\n\nWritten by \`pnpm bench\` (a full run); ratios are paired within each interleaved round, ours ÷ peer, so lower is better.\n\n${lines.join("\n")}\n`
  )
}
process.exit(failed ? 1 : 0)
