/**
 * What `llm-gateway chat` does once its arguments are parsed; loaded only when `chat` runs, so
 * `--help` and the other commands never load the pipeline.
 */
import type { Part } from "@llm-gateway/core"
import { Gateway } from "@llm-gateway/core"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as AppLayer from "../AppLayer.js"
import * as Backend from "../Backend.js"
import { type ChatArgs, toRequest } from "../ChatCommand.js"
import * as Output from "../Output.js"

const describeNotice = (part: Part.Part): string | undefined => {
  switch (part._tag) {
    case "RedactionNotice":
      return `[${part.direction === "input" ? "redacted before sending" : "redacted from the reply"}: ${
        part.redactions.map((r) => `${r.kind} x${r.count}`).join(", ")
      }]`
    case "ContextTrimmed":
      return `[context: dropped ${part.droppedMessages} old message(s) to fit ${part.limit} tokens]`
    default:
      return undefined
  }
}

/** Runs one chat request and writes the reply (or the error) to the terminal. */
export const run = (args: ChatArgs) =>
  Effect.gen(function*() {
    const backend = yield* Backend.detect
    const request = toRequest(args)
    const program = args.json
      ? Gateway.complete(request).pipe(
        Effect.flatMap((c) =>
          Output.stdout(
            JSON.stringify({
              text: c.text,
              finishReason: c.finishReason,
              usage: c.usage,
              usageSource: c.usageSource,
              cost: c.cost,
              cached: c.cached,
              redactions: c.redactions
            }) + "\n"
          )
        )
      )
      : Gateway.stream(request).pipe(
        Stream.runForEach((part) => {
          if (part._tag === "TextDelta") return Output.stdout(part.text)
          if (part._tag === "Finish") {
            return Output.stdout("\n").pipe(Effect.zipRight(Output.stderrLine(
              `[${part.reason}; ${part.usage.promptTokens}+${part.usage.completionTokens} tokens (${part.usageSource}); ${
                Output.usd(part.cost.totalUsd)
              }${part.cached ? "; cached" : ""}]`
            )))
          }
          const notice = describeNotice(part)
          return notice === undefined ? Effect.void : Output.stderrLine(notice)
        })
      )
    return yield* program.pipe(
      Effect.provide(AppLayer.layer(Backend.layer(backend), { auditFile: Option.getOrUndefined(args.auditFile) }))
    )
  }).pipe(
    Effect.catchAll((error) => {
      const described = Output.describeError(error)
      const report = args.json
        ? Output.stdout(JSON.stringify({ error: described }) + "\n")
        : Output.stderrLine(`error (${described._tag}): ${described.message}`)
      return Effect.zipRight(report, Output.setFailed)
    })
  )

