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
import * as Help from "./internal/help.js"

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
const profile = Options.choice("profile", ["gateway", "openai"]).pipe(
  Options.withDescription(
    "The wire profile: gateway (the Genesys gateway contract) or openai (OpenAI-compatible chat completions); wins over LLM_GATEWAY_PROFILE"
  ),
  Options.optional
)
const baseUrl = Options.text("base-url").pipe(
  Options.withDescription(
    "The gateway's base URL, e.g. https://api.openai.com/v1 (https unless loopback); wins over LLM_GATEWAY_BASE_URL. Needs LLM_GATEWAY_API_KEY unless GENESYS_CLIENT_ID is set"
  ),
  Options.optional
)
const cacheDir = Options.text("cache-dir").pipe(
  Options.withDescription(
    "Keep replies in files under this directory, shared across runs (7 days); default: in memory for this run"
  ),
  Options.optional
)
const budget = Options.float("budget").pipe(
  Options.withDescription(
    "A budget in US dollars for this process; a request whose worst case would exceed it is refused before it is sent (exit 5). Wins over LLM_GATEWAY_BUDGET_USD"
  ),
  Options.optional
)
const jsonl = Options.boolean("jsonl").pipe(
  Options.withDescription("Print one JSON object per part as it streams (text, notices, finish), for scripts")
)
const quiet = Options.boolean("quiet").pipe(
  Options.withAlias("q"),
  Options.withDescription("Print only the reply: no notes, spinner or warnings on stderr (errors still go there)")
)
const conversation = Options.text("conversation").pipe(
  Options.withDescription(
    "Continue the conversation kept in this JSON file (created when absent): earlier turns are sent along, and this turn is added once the reply finished cleanly"
  ),
  Options.optional
)
const tools = Options.text("tools").pipe(
  Options.withDescription(
    "Declare the tools in this JSON file (an array of {name, description, parameters}, or OpenAI's {type: \"function\", function}); calls the model makes are printed, not run"
  ),
  Options.optional
)
const schema = Options.text("schema").pipe(
  Options.withDescription(
    "Ask for a reply that is one JSON value valid against the JSON Schema in this file (structured output; strict mode: every object with additionalProperties false and all properties required)"
  ),
  Options.optional
)
const message = Args.text({ name: "message" }).pipe(
  Args.withDescription("The user message; omit it to read it from stdin (or when --template is given)"),
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
    "--var": Argv.valueFlag("a template variable as key=value", (v) => v.indexOf("=") > 0, true),
    "--system": Argv.valueFlag("a system instruction"),
    "--model": Argv.valueFlag("a model id"),
    "--json": Argv.switchFlag,
    "--max-tokens": Argv.valueFlag("a positive whole number", (v) => Argv.isInteger(v) && Number(v) > 0),
    "--temperature": Argv.valueFlag("a number from 0 to 2", (v) => Argv.isNumber(v) && Number(v) >= 0 && Number(v) <= 2),
    "--no-cache": Argv.switchFlag,
    "--audit-file": Argv.valueFlag("a file path"),
    "--profile": Argv.valueFlag("gateway or openai", (v) => v === "gateway" || v === "openai"),
    "--base-url": Argv.valueFlag("an http(s) URL such as https://api.openai.com/v1", Argv.isHttpUrl),
    "--cache-dir": Argv.valueFlag("a directory"),
    "--budget": Argv.valueFlag(
      "a number of US dollars, 0 or more",
      (v) => Argv.isNumber(v) && Number(v) >= 0 && Number(v) < 1e15
    ),
    "--jsonl": Argv.switchFlag,
    "--conversation": Argv.valueFlag("a conversation file (JSON)"),
    "--tools": Argv.valueFlag("a JSON file of tools"),
    "--schema": Argv.valueFlag("a JSON Schema file"),
    "--quiet": Argv.switchFlag,
    "-q": Argv.switchFlag
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
  readonly profile: Option.Option<"gateway" | "openai">
  readonly baseUrl: Option.Option<string>
  readonly cacheDir: Option.Option<string>
  readonly budget: Option.Option<number>
  readonly jsonl: boolean
  readonly quiet: boolean
  readonly conversation: Option.Option<string>
  readonly tools: Option.Option<string>
  readonly schema: Option.Option<string>
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
  {
    template,
    variables,
    system,
    model,
    json,
    jsonl,
    quiet,
    maxTokens,
    temperature,
    noCache,
    auditFile,
    cacheDir,
    budget,
    profile,
    baseUrl,
    conversation,
    tools,
    schema,
    message
  },
  (args) => Effect.flatMap(Effect.promise(() => import("./internal/chat.js")), (chat) => chat.run(args))
).pipe(Command.withDescription(Help.describe(
  "Send one chat request through the gateway and stream the reply to stdout; notes (redactions, usage, cost, which backend answered) go to stderr.",
  [
    [`llm-gateway chat "Hello"`, "streams the reply (from the embedded simulator when no gateway is configured)"],
    [`echo "Summarise this" | llm-gateway chat --quiet`, "reads the message from stdin and prints only the reply"],
    [`llm-gateway chat --template 'Hi $name' --var name=Ann --system 'Be brief.' --json`, "one JSON object"],
    [`llm-gateway chat --jsonl "Hello"`, "one JSON object per streamed part"],
    [`llm-gateway chat --conversation chat.json "My name is Ann."`, "a conversation kept in chat.json across runs"],
    [`llm-gateway chat --profile openai --tools tools.json "Weather in Oslo?"`, "declares tools; prints the calls"],
    [`llm-gateway chat --schema person.json "Who wrote Dune?"`, "a reply that is JSON of that schema"],
    [`llm-gateway chat --cache-dir .llm-cache --budget 0.05 "Hello"`, "file cache shared across runs, a 5-cent budget"],
    [`llm-gateway chat --profile openai --base-url https://api.openai.com/v1 "Hello"`, "an OpenAI-compatible gateway (LLM_GATEWAY_API_KEY)"]
  ],
  [
    "Backend: GENESYS_CLIENT_ID (+ GENESYS_CLIENT_SECRET, GENESYS_ENVIRONMENT) selects Genesys Cloud; otherwise --base-url or LLM_GATEWAY_BASE_URL (+ LLM_GATEWAY_API_KEY) a gateway; otherwise the embedded simulator answers.",
    "Exit codes: 0 ok, 2 bad usage, 3 setting/file, 4 auth, 5 budget, 6 safety, 7 gateway failure, 8 timeout, 9 invalid request, 130 interrupted (see 'llm-gateway --help')."
  ]
)))
