/**
 * `llm-gateway chat`: one request through the whole pipeline, the reply streamed to stdout.
 *
 * @since 0.1.0
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import type { Chat, Part } from "@llm-gateway/core"
import { Gateway } from "@llm-gateway/core"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as AppLayer from "./AppLayer.js"
import * as Backend from "./Backend.js"
import * as Output from "./Output.js"

const template = Options.text("template").pipe(
  Options.withDescription("A prompt template ($name, ${name}, $$) rendered as the user message"),
  Options.optional
)
const variables = Options.keyValueMap("var").pipe(
  Options.withDescription("A template variable as key=value (repeatable)"),
  Options.optional
)
const system = Options.text("system").pipe(
  Options.withDescription("The system instruction for this request"),
  Options.optional
)
const model = Options.text("model").pipe(
  Options.withDescription("The model id"),
  Options.withDefault("gpt-4o-mini")
)
const json = Options.boolean("json").pipe(
  Options.withDescription("Print one JSON object with the reply, usage and cost instead of streaming")
)
const maxTokens = Options.integer("max-tokens").pipe(
  Options.withDescription("The most completion tokens to ask for"),
  Options.optional
)
const temperature = Options.float("temperature").pipe(Options.optional)
const noCache = Options.boolean("no-cache").pipe(Options.withDescription("Bypass the response cache"))
const auditFile = Options.text("audit-file").pipe(
  Options.withDescription("Append the audit entry to this hash-chained JSONL file"),
  Options.optional
)
const message = Args.text({ name: "message" }).pipe(
  Args.withDescription("The user message (omit it when --template is given)"),
  Args.optional
)

/**
 * The parsed `chat` arguments.
 *
 * @since 0.1.0
 */
export interface ChatArgs {
  readonly template: Option.Option<string>
  readonly variables: Option.Option<HashMap.HashMap<string, string>>
  readonly system: Option.Option<string>
  readonly model: string
  readonly json: boolean
  readonly maxTokens: Option.Option<number>
  readonly temperature: Option.Option<number>
  readonly noCache: boolean
  readonly auditFile: Option.Option<string>
  readonly message: Option.Option<string>
}

/**
 * Builds the request the arguments describe.
 *
 * @since 0.1.0
 */
export const toRequest = (args: ChatArgs): Chat.ChatRequestInput => ({
  model: args.model,
  messages: Option.match(args.message, { onNone: () => [], onSome: (content) => [{ role: "user", content }] }),
  ...(Option.isSome(args.template)
    ? {
      prompt: {
        template: args.template.value,
        variables: Object.fromEntries(Option.getOrElse(args.variables, () => HashMap.empty<string, string>()))
      }
    }
    : {}),
  ...(Option.isSome(args.system) ? { systemInstruction: args.system.value } : {}),
  ...(Option.isSome(args.maxTokens) ? { maxTokens: args.maxTokens.value } : {}),
  ...(Option.isSome(args.temperature) ? { temperature: args.temperature.value } : {}),
  ...(args.noCache ? { cache: false } : {})
})

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

const run = (args: ChatArgs) =>
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

/**
 * The `chat` command.
 *
 * @since 0.1.0
 */
export const command = Command.make(
  "chat",
  { template, variables, system, model, json, maxTokens, temperature, noCache, auditFile, message },
  run
).pipe(Command.withDescription("Send one chat request through the gateway and stream the reply"))
