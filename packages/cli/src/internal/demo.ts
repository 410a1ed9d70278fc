/**
 * What `llm-gateway demo` does; loaded only when `demo` runs.
 */
import { AuditLog, CostMeter, Gateway } from "@llm-gateway/core"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as AppLayer from "../AppLayer.js"
import * as Backend from "../Backend.js"
import { request, simulatorScenario } from "../DemoCommand.js"
import * as Output from "../Output.js"
import { forTag } from "./exitCodes.js"

const line = (text = "") => Output.stdout(`${text}\n`)

const send = (model: string, label: string) =>
  Effect.gen(function*() {
    yield* line(`\n── ${label} ──`)
    let replyStarted = false
    yield* Gateway.stream(request(model)).pipe(
      Stream.runForEach((part) => {
        switch (part._tag) {
          case "TextDelta": {
            const prefix = replyStarted ? "" : "reply: "
            replyStarted = true
            return Output.stdout(prefix + part.text)
          }
          case "RedactionNotice":
            return line(
              `redacted ${part.direction === "input" ? "before sending" : "from the reply"}: ${
                part.redactions.map((r) => `${r.kind} x${r.count}`).join(", ")
              }`
            )
          case "ContextTrimmed":
          case "ToolCallDelta":
            return Effect.void
          case "ToolCall":
          case "ToolCallError":
            return line(Output.toolCallLine(part))
          case "Finish":
            return line().pipe(Effect.zipRight(line(
              `finish: ${part.reason}; usage ${part.usage.promptTokens} prompt + ${part.usage.completionTokens} completion = ${part.usage.totalTokens} tokens (from the ${part.usageSource}); cost ${
                Output.usd(part.cost.totalUsd)
              }; ${part.cached ? "answered from the cache" : "answered by the gateway"}`
            )))
        }
      })
    )
    const entries = yield* Effect.flatMap(AuditLog.MemoryAuditLog, (log) => log.entries)
    yield* line(`audit: ${JSON.stringify(entries[entries.length - 1])}`)
  })

/** Runs the demo and writes it to the terminal. */
export const run = Effect.gen(function*() {
  const backend = yield* Backend.detect
  const model = yield* Config.string("LLM_GATEWAY_MODEL").pipe(Config.withDefault("gpt-4o-mini"))
  // A model missing from the catalog is said once, in one line, as `chat` does.
  const assumed = yield* AppLayer.assumptions(model)
  if (assumed.note !== undefined) yield* Output.warnLine(assumed.note)
  const program = Effect.gen(function*() {
    yield* line("llm-gateway demo")
    yield* line(`backend: ${backend.description}`)
    yield* line(`model: ${model}`)
    const shown = request(model)
    yield* line(`template: ${shown.prompt?.template}`)
    yield* line(`variables: language, inquiry (redacted before it leaves the process)`)
    yield* line(`system instruction: ${shown.systemInstruction}`)
    yield* send(model, "request 1")
    yield* send(model, "request 2 (identical)")

    const simulator = yield* Backend.simulatorService
    if (Option.isSome(simulator)) {
      const recorded = yield* simulator.value.requests
      const invoke = recorded.filter((r) => r.path.endsWith("/invoke") || r.path.endsWith("/chat/completions"))
      yield* line(`\n── what reached the gateway (${invoke.length} request${invoke.length === 1 ? "" : "s"}) ──`)
      for (const r of invoke) yield* line(`${r.method} ${r.path} ${JSON.stringify(r.body)}`)
    }

    const summary = yield* Effect.flatMap(CostMeter.CostMeter, (meter) => meter.summary)
    yield* line("\n── cost summary ──")
    yield* line(
      `upstream requests: ${summary.requests}; tokens: ${summary.promptTokens} prompt + ${summary.completionTokens} completion; total ${
        Output.usd(summary.totalUsd)
      }${summary.budgetUsd === undefined ? "" : `; budget ${Output.usd(summary.budgetUsd)}, remaining ${Output.usd(summary.remainingUsd ?? 0)}`}`
    )
    const lines = yield* Effect.flatMap(AuditLog.MemoryAuditLog, (log) => log.lines)
    const report = AuditLog.verify(lines)
    yield* line(
      report._tag === "Valid"
        ? `audit chain: ${report.entries} entries, hash chain verified`
        : `audit chain: BROKEN at line ${report.line}: ${report.message}`
    )
  })
  return yield* program.pipe(
    Effect.provide(AppLayer.layer(
      Backend.layer(backend, { scenarios: [simulatorScenario], defaultScenario: simulatorScenario.name }),
      { assumed }
    ))
  )
}).pipe(
  Effect.catchAll((error) => {
    const described = Output.describeError(error)
    return Output.stderrLine(`\nerror (${described._tag}): ${described.message}`).pipe(
      Effect.zipRight(Output.setExitCode(forTag(described._tag)))
    )
  })
)

