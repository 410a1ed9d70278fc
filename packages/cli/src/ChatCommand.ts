/**
 * `llm-gateway chat`: one request through the whole pipeline, the reply streamed to stdout.
 *
 * @since 0.1.0
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import type { Chat } from "@llm-gateway/core"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import * as Argv from "./internal/argv.js"

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
 * The flags of `chat` and what each expects, checked before parsing.
 *
 * @since 0.1.0
 * @category Models
 */
export const spec: Argv.Spec = {
  positionals: 1,
  flags: {
    "--template": Argv.valueFlag("a prompt template"),
    "--var": Argv.valueFlag("a template variable as key=value", (v) => v.indexOf("=") > 0),
    "--system": Argv.valueFlag("a system instruction"),
    "--model": Argv.valueFlag("a model id"),
    "--json": Argv.switchFlag,
    "--max-tokens": Argv.valueFlag("a positive whole number", (v) => Argv.isInteger(v) && Number(v) > 0),
    "--temperature": Argv.valueFlag("a number from 0 to 2", (v) => Argv.isNumber(v) && Number(v) >= 0 && Number(v) <= 2),
    "--no-cache": Argv.switchFlag,
    "--audit-file": Argv.valueFlag("a file path")
  }
}

/**
 * The parsed `chat` arguments.
 *
 * @since 0.1.0
 * @category Models
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
 * @category Utils
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

/**
 * The `chat` command.
 *
 * @since 0.1.0
 * @category Commands
 */
export const command = Command.make(
  "chat",
  { template, variables, system, model, json, maxTokens, temperature, noCache, auditFile, message },
  (args) => Effect.flatMap(Effect.promise(() => import("./internal/chat.js")), (chat) => chat.run(args))
).pipe(Command.withDescription("Send one chat request through the gateway and stream the reply"))
