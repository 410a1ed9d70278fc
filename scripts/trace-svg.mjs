// Renders one trace from OTLP/HTTP JSON as an SVG waterfall (one bar per span, children under
// their parent, offsets and durations in milliseconds).
//
//   node scripts/trace-svg.mjs docs/observability-trace.json docs/observability-trace.svg
//   node scripts/trace-svg.mjs --capture docs/observability-trace.json [CLI arguments...]
//
// --capture first starts an OTLP/HTTP JSON receiver on 127.0.0.1, runs the CLI from sources
// with OTEL_EXPORTER_OTLP_ENDPOINT pointing at it (default arguments: a chat with the simulator
// scenario that answers after a 429), and writes what it received to the JSON file.
import { spawn } from "node:child_process"
import { readFileSync, writeFileSync } from "node:fs"
import { createServer } from "node:http"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")

const capture = async (out, cliArgs) => {
  const bodies = []
  const server = createServer((request, response) => {
    let body = ""
    request.setEncoding("utf8")
    request.on("data", (data) => (body += data))
    request.on("end", () => {
      if (request.url === "/v1/traces") bodies.push(JSON.parse(body))
      response.writeHead(200, { "content-type": "application/json" })
      response.end("{}")
    })
  })
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve))
  const env = { ...process.env, NO_COLOR: "1", OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${server.address().port}` }
  for (const key of Object.keys(env)) if (/^(GENESYS_|LLM_GATEWAY_)/.test(key)) delete env[key]
  const code = await new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ["--conditions=@llm-gateway/source", "--import", "tsx", "src/bin.ts", ...cliArgs],
      { cwd: join(root, "packages/cli"), env, stdio: ["ignore", "inherit", "inherit"] }
    )
    child.on("close", resolve)
  })
  server.close()
  if (code !== 0) throw new Error(`the CLI exited with ${code}`)
  const resourceSpans = bodies.flatMap((b) => b.resourceSpans)
  writeFileSync(out, `${JSON.stringify({ resourceSpans }, null, 2)}\n`)
  console.error(`trace-svg: captured ${resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans)).length} spans into ${out}`)
}

const escape = (text) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

const valueOf = (value) =>
  "stringValue" in value ? value.stringValue
  : "intValue" in value ? Number(value.intValue)
  : "doubleValue" in value ? value.doubleValue
  : "boolValue" in value ? value.boolValue
  : "arrayValue" in value ? (value.arrayValue.values ?? []).map(valueOf).join(",")
  : ""

/** The label beside a bar: the few attributes that say what happened in that span. */
const detail = (span) => {
  const a = Object.fromEntries(span.attributes.map((x) => [x.key, valueOf(x.value)]))
  const parts = []
  if (a["http.response.status_code"] !== undefined) parts.push(`status ${a["http.response.status_code"]}`)
  if (a["llm_gateway.wait_before_ms"] !== undefined) parts.push(`waited ${a["llm_gateway.wait_before_ms"]} ms`)
  if (a["gen_ai.usage.input_tokens"] !== undefined) {
    parts.push(`${a["gen_ai.usage.input_tokens"]} in / ${a["gen_ai.usage.output_tokens"]} out tokens`)
  }
  if (a["llm_gateway.retries"] !== undefined && a["llm_gateway.retries"] > 0) parts.push(`${a["llm_gateway.retries"]} ${a["llm_gateway.retries"] === 1 ? "retry" : "retries"}`)
  if (a["llm_gateway.time_to_first_token_ms"] !== undefined) parts.push(`first token ${a["llm_gateway.time_to_first_token_ms"]} ms`)
  if (a["error.type"] !== undefined) parts.push(a["error.type"])
  return parts.join(" · ")
}

const render = (file, out) => {
  const data = JSON.parse(readFileSync(file, "utf8"))
  const spans = data.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans))
  const root = spans.find((s) => s.name.startsWith("chat") && s.attributes.some((a) => a.key === "gen_ai.operation.name"))
  if (root === undefined) throw new Error(`${file}: no chat span`)
  const inTrace = spans.filter((s) => s.traceId === root.traceId)
  const byParent = new Map()
  for (const span of inTrace) {
    const list = byParent.get(span.parentSpanId) ?? []
    list.push(span)
    byParent.set(span.parentSpanId, list)
  }
  const rows = []
  const walk = (span, depth) => {
    rows.push({ span, depth })
    const children = (byParent.get(span.spanId) ?? []).sort((x, y) => Number(BigInt(x.startTimeUnixNano) - BigInt(y.startTimeUnixNano)))
    for (const child of children) walk(child, depth + 1)
  }
  walk(root, 0)
  const t0 = BigInt(root.startTimeUnixNano)
  const ms = (nanos) => Number(BigInt(nanos) - t0) / 1e6
  const total = Math.max(...rows.map(({ span }) => ms(span.endTimeUnixNano)))
  const labelWidth = 250
  const chartWidth = 560
  const detailWidth = 300
  const rowHeight = 26
  const top = 46
  const width = labelWidth + chartWidth + detailWidth
  const height = top + rows.length * rowHeight + 30
  const x = (t) => labelWidth + (t / total) * chartWidth
  const colour = (name) =>
    name.startsWith("chat") ? "#4e79a7"
    : name.startsWith("Transport.handshake") ? "#f28e2b"
    : name.startsWith("Transport.body") ? "#59a14f"
    : name.startsWith("http.client") ? "#bab0ac"
    : name.startsWith("Auth") ? "#b07aa1"
    : "#76b7b2"
  const lines = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="ui-sans-serif, system-ui, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="12" y="20" font-size="14" font-weight="600">${escape(root.name)}: one request, ${total.toFixed(1)} ms (captured from the CLI over OTLP/HTTP JSON)</text>`
  ]
  const ticks = 5
  for (let i = 0; i <= ticks; i++) {
    const t = (total * i) / ticks
    lines.push(`<line x1="${x(t).toFixed(1)}" y1="${top - 12}" x2="${x(t).toFixed(1)}" y2="${height - 24}" stroke="#e5e5e5"/>`)
    lines.push(`<text x="${x(t).toFixed(1)}" y="${top - 16}" text-anchor="middle" fill="#666">${t.toFixed(0)} ms</text>`)
  }
  rows.forEach(({ depth, span }, i) => {
    const y = top + i * rowHeight
    const start = ms(span.startTimeUnixNano)
    const end = ms(span.endTimeUnixNano)
    const failed = span.status?.code === 2
    lines.push(`<text x="${12 + depth * 14}" y="${y + 15}">${escape(span.name)}</text>`)
    lines.push(
      `<rect x="${x(start).toFixed(1)}" y="${y + 4}" width="${Math.max(1.5, x(end) - x(start)).toFixed(1)}" height="${rowHeight - 9}" rx="2" fill="${colour(span.name)}"${failed ? ' stroke="#e15759" stroke-width="2"' : ""}/>`
    )
    lines.push(
      `<text x="${labelWidth + chartWidth + 10}" y="${y + 15}" fill="#333">${escape(`${(end - start).toFixed(1)} ms${detail(span) === "" ? "" : ` · ${detail(span)}`}`)}</text>`
    )
  })
  lines.push(`<text x="12" y="${height - 8}" fill="#666">Spans of one trace; bars from start to end on a common time axis. Rendered by scripts/trace-svg.mjs.</text>`)
  lines.push("</svg>")
  writeFileSync(out, `${lines.join("\n")}\n`)
  console.error(`trace-svg: wrote ${out} (${rows.length} spans)`)
}

const args = process.argv.slice(2)
if (args[0] === "--capture") {
  const out = args[1]
  const cliArgs = args.length > 2 ? args.slice(2) : ["chat", "--model", "sim:rate-limited", "--temperature", "0.2", "Say hello"]
  await capture(out, cliArgs)
} else if (args.length === 2) {
  render(args[0], args[1])
} else {
  console.error("usage: node scripts/trace-svg.mjs <trace.json> <out.svg> | --capture <trace.json> [CLI arguments...]")
  process.exit(2)
}
