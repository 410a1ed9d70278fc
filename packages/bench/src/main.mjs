// `pnpm bench [--quick]`: builds the packages, runs every benchmark side by side with its peer,
// prints a table of paired ratios and exits non-zero when a case gave a wrong answer.
import { spawnSync } from "node:child_process"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { cpus, loadavg, totalmem } from "node:os"
import { fileURLToPath } from "node:url"
import * as BulkDecode from "./bulkDecode.mjs"
import * as CacheKey from "./cacheKey.mjs"
import * as CallToWire from "./callToWire.mjs"
import { svgChart } from "./chart.mjs"
import * as CliStartup from "./cliStartup.mjs"
import * as ConversationTurns from "./conversationTurns.mjs"
import * as GatewayStream from "./gatewayStream.mjs"
import * as GrowingConversation from "./growingConversation.mjs"
import * as LiveDecode from "./liveDecode.mjs"
import * as PeakRss from "./peakRss.mjs"
import * as Redaction from "./redaction.mjs"
import * as RedisStores from "./redisStores.mjs"
import * as TelemetryBench from "./telemetryBench.mjs"
import * as TokenCount from "./tokenCount.mjs"
import { formatRatio } from "./stats.mjs"

const quick = process.argv.includes("--quick")
const root = fileURLToPath(new URL("../../../", import.meta.url))
// `--no-build` measures the packages as last built (while a build is broken by work in progress).
if (!process.argv.includes("--no-build")) {
  const build = spawnSync(process.execPath, ["node_modules/typescript/bin/tsc", "-b", "tsconfig.build.json"], {
    cwd: root,
    stdio: "inherit"
  })
  if (build.status !== 0) process.exit(1)
}

// `--only=<text>` runs the benchmarks whose name contains the text (no docs/performance.md then).
const only = process.argv.find((arg) => arg.startsWith("--only="))?.slice("--only=".length)
const suites = [
  BulkDecode,
  LiveDecode,
  GatewayStream,
  TelemetryBench,
  CallToWire,
  GrowingConversation,
  ConversationTurns,
  Redaction,
  TokenCount,
  CacheKey,
  RedisStores,
  PeakRss,
  CliStartup
].filter((suite) => only === undefined || suite.name.includes(only))
let failed = false
const chart = []
const loadBefore = loadavg()
const startedAt = new Date()
const notes = []
const lines = []
const log = (line) => {
  lines.push(line)
  console.log(line)
}
log(`llm-gateway benchmarks (${quick ? "quick" : "full"}), ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, load average ${loadavg().map((v) => v.toFixed(2)).join(" / ")}`)
log("")
log("| benchmark | case | ours | peer | ratio, median (min–max) | target |")
log("|---|---|---|---|---|---|")
for (const suite of suites) {
  try {
    const result = await suite.run({ quick })
    for (const row of result.rows) {
      // A row may state its own target (`targetText`, `met`), e.g. an absolute figure; else ratio ≤ target.
      const met = (row.met ?? row.ratio.median <= row.target) ? "met" : "NOT met"
      const verdict = row.noTarget === true ? "" : ` (${met})`
      const ratio = row.ratio === undefined ? "" : formatRatio(row.ratio)
      log(`| ${result.name} | ${row.case} | ${row.ours} | ${row.peer} | ${ratio} | ${row.targetText ?? `≤ ${row.target}×`}${verdict} |`)
      if (row.ratio !== undefined) chart.push({ label: `${result.name}: ${row.short ?? row.case}`, ratio: row.ratio, target: row.target, met: row.noTarget === true ? undefined : met === "met" })
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
  const loadAfter = loadavg()
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ${process.platform} ${process.arch}, Node ${process.version}`
  const minutes = ((Date.now() - startedAt.getTime()) / 60_000).toFixed(1)
  const load = (l) => l.map((v) => v.toFixed(2)).join(" / ")
  writeFileSync(
    new URL("../../../docs/performance.svg", import.meta.url),
    svgChart(chart, `llm-gateway vs peers, ${startedAt.toISOString().slice(0, 10)}, ${cpus().length} cores`)
  )
  // What people wrote below the marker (what was tried, what the profiles show) is kept.
  const page = new URL("../../../docs/performance.md", import.meta.url)
  const marker = "<!-- Below this line is written by hand; pnpm bench keeps it. -->"
  const previous = existsSync(page) ? readFileSync(page, "utf8") : ""
  const kept = previous.includes(marker) ? previous.slice(previous.indexOf(marker)) : `${marker}\n`
  writeFileSync(
    page,
    `# Performance\n\nWritten by \`pnpm bench\` (a full run, ${minutes} minutes, started ${startedAt.toISOString()}); ratios are paired within each interleaved round, ours ÷ peer, so lower is better. Every case checks the answer it measured (equal events, counts, text) and the run fails on a wrong one.\n\n` +
      `Machine: ${machine}. Load average (1 / 5 / 15 min) ${load(loadBefore)} at the start and ${load(loadAfter)} at the end: other work shared the cores, so absolute figures move with it; the paired ratios move much less.\n\n` +
      `Run it with \`pnpm bench\` (about ${minutes} minutes; rewrites this page and the chart), \`pnpm bench --quick\` (under three minutes, smaller sizes and fewer rounds, prints only) or \`pnpm bench --only=<name>\`; the sources are in packages/bench/src, one module per item, and each states what it measures.\n\n![Paired ratios of every benchmark, ours ÷ peer, log scale](performance.svg)\n\n${lines.join("\n")}\n\n${kept}`
  )
}
process.exit(failed ? 1 : 0)
