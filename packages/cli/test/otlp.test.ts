/**
 * The CLI exports OpenTelemetry traces and metrics over OTLP/HTTP JSON when the standard
 * variables say where: a loopback collector on 127.0.0.1 receives the `chat {model}` span with
 * its GenAI attributes and the token-usage metric, and no trace of the email in the prompt;
 * an interrupted run (SIGINT) still flushes; an unsupported protocol is a clear error.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { fileURLToPath } from "node:url"

const cliDir = fileURLToPath(new URL("..", import.meta.url))
const sources = ["--conditions=@llm-gateway/source", "--import", "tsx", "src/bin.ts"]

const cleanEnv = () => {
  const clean: Record<string, string> = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !/^(GENESYS_|LLM_GATEWAY_|OTEL_)/.test(key)) clean[key] = value
  }
  return clean
}

/** An OTLP/HTTP JSON receiver on 127.0.0.1 that keeps every body it is sent. */
const collector = async () => {
  const received: Array<{ readonly path: string; readonly body: string }> = []
  const server = createServer((request, response) => {
    let body = ""
    request.setEncoding("utf8")
    request.on("data", (data: string) => (body += data))
    request.on("end", () => {
      received.push({ path: request.url ?? "", body })
      response.writeHead(200, { "content-type": "application/json" })
      response.end("{}")
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return {
    endpoint: `http://127.0.0.1:${port}`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve()))
  }
}

interface OtlpAttribute {
  readonly key: string
  readonly value: Record<string, unknown>
}
interface OtlpSpan {
  readonly name: string
  readonly kind: number
  readonly spanId: string
  readonly parentSpanId?: string
  readonly attributes: ReadonlyArray<OtlpAttribute>
}

const attributeValue = (value: Record<string, unknown>): unknown => {
  if ("stringValue" in value) return value.stringValue
  if ("intValue" in value) return Number(value.intValue)
  if ("doubleValue" in value) return value.doubleValue
  if ("boolValue" in value) return value.boolValue
  if ("arrayValue" in value) {
    return ((value.arrayValue as { values?: Array<Record<string, unknown>> }).values ?? []).map(attributeValue)
  }
  return value
}
const attributesOf = (attributes: ReadonlyArray<OtlpAttribute>) =>
  Object.fromEntries(attributes.map((a) => [a.key, attributeValue(a.value)]))

const spansOf = (received: ReadonlyArray<{ path: string; body: string }>) =>
  received.filter((r) => r.path === "/v1/traces").flatMap((r) => {
    const data = JSON.parse(r.body) as {
      resourceSpans: Array<{ resource: { attributes: Array<OtlpAttribute> }; scopeSpans: Array<{ spans: Array<OtlpSpan> }> }>
    }
    return data.resourceSpans.flatMap((rs) =>
      rs.scopeSpans.flatMap((ss) => ss.spans.map((span) => ({ span, resource: attributesOf(rs.resource.attributes) })))
    )
  })

const metricsOf = (received: ReadonlyArray<{ path: string; body: string }>) =>
  received.filter((r) => r.path === "/v1/metrics").flatMap((r) => {
    const data = JSON.parse(r.body) as {
      resourceMetrics: Array<{ scopeMetrics: Array<{ metrics: Array<{ name: string; unit: string; histogram?: { dataPoints: Array<{ attributes: Array<OtlpAttribute>; count: number; sum: number }> } }> }> }>
    }
    return data.resourceMetrics.flatMap((rm) => rm.scopeMetrics.flatMap((sm) => sm.metrics))
  })

/** Runs the CLI; `interruptOn` sends SIGINT once stdout contains that text. */
const runCli = (args: ReadonlyArray<string>, env: Record<string, string>, interruptOn?: string) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [...sources, ...args], {
      cwd: cliDir,
      env: { ...cleanEnv(), NO_COLOR: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    let sent = false
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString()
      if (interruptOn !== undefined && !sent && stdout.includes(interruptOn)) {
        sent = true
        child.kill("SIGINT")
      }
    })
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
    child.on("close", (code) => resolve({ code, stdout, stderr }))
  })

describe("llm-gateway CLI with OTEL_EXPORTER_OTLP_ENDPOINT", () => {
  it("exports the chat span with GenAI attributes and the token-usage metric, and no trace of the email", async () => {
    const otlp = await collector()
    try {
      const result = await runCli(["chat", "--temperature", "0.3", "Please write to jane.doe@example.com today"], {
        OTEL_EXPORTER_OTLP_ENDPOINT: otlp.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_SERVICE_NAME: "cli-under-test",
        OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=test,team=ai%20platform"
      })
      expect(result.code, result.stderr).toBe(0)
      const spans = spansOf(otlp.received)
      const chat = spans.find(({ span }) => span.name === "chat gpt-4o-mini")
      expect(chat, `spans: ${spans.map((s) => s.span.name).join(", ")}`).toBeDefined()
      const { resource, span } = chat!
      expect(span.kind).toBe(3) // CLIENT
      expect(resource).toMatchObject({
        "service.name": "cli-under-test",
        "deployment.environment": "test",
        team: "ai platform"
      })
      expect(attributesOf(span.attributes)).toMatchObject({
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "genesys_cloud",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.request.temperature": 0.3,
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": expect.any(Number),
        "gen_ai.usage.output_tokens": expect.any(Number),
        "server.address": expect.any(String),
        "llm_gateway.outcome": "success",
        "llm_gateway.redactions.input.email": 1
      })
      const children = spans.filter((s) => s.span.parentSpanId === span.spanId).map((s) => s.span.name)
      expect(children).toEqual(expect.arrayContaining(["Gateway.prepare", "Transport.handshake", "Transport.body"]))

      const usage = metricsOf(otlp.received).filter((m) => m.name === "gen_ai.client.token.usage")
      expect(usage.length).toBeGreaterThan(0)
      const points = usage.at(-1)!.histogram!.dataPoints.map((p) => ({ ...attributesOf(p.attributes), count: p.count }))
      expect(points).toEqual(expect.arrayContaining([
        expect.objectContaining({ "gen_ai.token.type": "input", "gen_ai.request.model": "gpt-4o-mini", count: 1 }),
        expect.objectContaining({ "gen_ai.token.type": "output", "gen_ai.request.model": "gpt-4o-mini", count: 1 })
      ]))

      const everything = otlp.received.map((r) => r.body).join("\n")
      expect(everything).not.toContain("jane.doe")
      expect(everything).not.toContain("example.com")
      expect(everything).not.toContain("Please write")
    } finally {
      await otlp.close()
    }
  }, 90_000)

  it("Ctrl-C during a reply still flushes: the chat span ends interrupted", async () => {
    const otlp = await collector()
    try {
      const result = await runCli(
        ["chat", "--model", "sim:slow", "Tell me a story"],
        { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.endpoint },
        "Streaming"
      )
      expect(result.code).toBe(130)
      const chat = spansOf(otlp.received).find(({ span }) => span.name === "chat sim:slow")
      expect(chat, result.stderr).toBeDefined()
      expect(attributesOf(chat!.span.attributes)["llm_gateway.outcome"]).toBe("interrupted")
    } finally {
      await otlp.close()
    }
  }, 90_000)

  it("a failed request still flushes: the chat span carries error.type and the failure is counted", async () => {
    const otlp = await collector()
    try {
      const result = await runCli(["chat", "--model", "sim:forbidden", "Hello"], { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.endpoint })
      expect(result.code).toBe(4)
      const chat = spansOf(otlp.received).find(({ span }) => span.name === "chat sim:forbidden")
      expect(chat, result.stderr).toBeDefined()
      expect(attributesOf(chat!.span.attributes)).toMatchObject({
        "llm_gateway.outcome": "failure",
        "error.type": "PermissionDenied"
      })
      const requests = metricsOf(otlp.received).filter((m) => m.name === "llm_gateway.requests")
      expect(JSON.stringify(requests)).toContain("PermissionDenied")
    } finally {
      await otlp.close()
    }
  }, 90_000)

  it("an unsupported OTEL_EXPORTER_OTLP_PROTOCOL is a clear error, and nothing is sent", async () => {
    const otlp = await collector()
    try {
      const result = await runCli(["chat", "Hello"], {
        OTEL_EXPORTER_OTLP_ENDPOINT: otlp.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: "grpc"
      })
      expect(result.code).not.toBe(0)
      expect(result.stderr).toContain("OTEL_EXPORTER_OTLP_PROTOCOL")
      expect(result.stderr).toContain("http/json")
      expect(otlp.received).toEqual([])
    } finally {
      await otlp.close()
    }
  }, 90_000)
})
