/**
 * What `llm-gateway chat` does once its arguments are parsed; loaded only when `chat` runs, so
 * `--help` and the other commands never load the pipeline.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import type { Chat, Part } from "@llm-gateway/core"
import { ConversationStore, Gateway, StructuredOutput, Tool } from "@llm-gateway/core"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { readFile, stat } from "node:fs/promises"
import * as AppLayer from "../AppLayer.js"
import * as Backend from "../Backend.js"
import { type ChatArgs, toRequest } from "../ChatCommand.js"
import * as Output from "../Output.js"
import { ExitCode, forTag } from "./exitCodes.js"
import * as Spinner from "./spinner.js"

/** The most a message read from stdin may hold; the gateway's own size limits apply after. */
export const maxStdinBytes = 8 * 1024 * 1024

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

/** A problem with how the command was used, found after parsing: one line, exit 2. */
class UsageProblem extends Error {
  readonly _tag = "UsageProblem"
}

/** The message on stdin could not be read or is too large. */
class InputError extends Error {
  readonly _tag = "InputError"
}

/** Reads stdin to its end, up to `maxStdinBytes`. */
const readStdin: Effect.Effect<string, InputError> = Effect.tryPromise({
  try: async () => {
    const parts: Array<Buffer> = []
    let size = 0
    for await (const chunk of process.stdin) {
      const buffer = typeof chunk === "string" ? Buffer.from(chunk) : chunk as Buffer
      size += buffer.length
      if (size > maxStdinBytes) {
        throw new InputError(
          `the message on stdin is larger than ${maxStdinBytes / 1024 / 1024} MiB; send a shorter text or use --template`
        )
      }
      parts.push(buffer)
    }
    return Buffer.concat(parts).toString("utf8")
  },
  catch: (error) =>
    error instanceof InputError ? error : new InputError(`stdin could not be read (${Output.oneLine(String(error))})`)
})

/**
 * The message: the argument, or stdin when none is given and stdin is not a terminal. One
 * trailing line break (from `echo`) is dropped.
 */
const resolveMessage = (args: ChatArgs): Effect.Effect<Option.Option<string>, UsageProblem | InputError> => {
  if (Option.isSome(args.message) || Option.isSome(args.template)) return Effect.succeed(args.message)
  if (process.stdin.isTTY === true) {
    return Effect.fail(
      new UsageProblem(
        `'chat' needs a message: llm-gateway chat "Hello", or pipe one in (echo Hello | llm-gateway chat). See 'llm-gateway chat --help'.`
      )
    )
  }
  return readStdin.pipe(Effect.flatMap((text) => {
    const message = text.replace(/\r?\n$/, "")
    return message.trim().length === 0
      ? Effect.fail(new UsageProblem(`stdin held no message. See 'llm-gateway chat --help'.`))
      : Effect.succeed(Option.some(message))
  }))
}

/** The largest `--tools` or `--schema` file read. */
export const maxDeclarationBytes = 1024 * 1024

/** The id of the conversation a `--conversation` file holds for the CLI. */
export const conversationId = "default"

/**
 * The JSON in the file a flag names: a missing, unreadable, oversized or non-JSON file is an
 * `InputError` (exit 3) naming the flag and the file.
 */
const readJsonFile = (flag: string, path: string): Effect.Effect<unknown, InputError> => {
  const named = `${flag} ${Output.oneLine(path)}`
  return Effect.tryPromise({
    try: async () => {
      const info = await stat(path)
      if (!info.isFile()) throw new InputError(`${named} is not a regular file`)
      if (info.size > maxDeclarationBytes) throw new InputError(`${named} is larger than ${maxDeclarationBytes / 1024 / 1024} MiB`)
      const text = await readFile(path, "utf8")
      try {
        return JSON.parse(text) as unknown
      } catch {
        throw new InputError(`${named} is not valid JSON`)
      }
    },
    catch: (error) => {
      if (error instanceof InputError) return error
      const code = (error as { readonly code?: unknown }).code
      return new InputError(code === "ENOENT" ? `${named} does not exist` : `${named} cannot be read (${Output.oneLine(String(code ?? error))})`)
    }
  })
}

/** The paths of a decode's issues with what was expected (the `actual …` part left out), at most 5. */
const issueList = (error: ParseResult.ParseError): string => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  const lines = issues.slice(0, 5).map((issue) =>
    `${issue.path.length === 0 ? "(top)" : issue.path.map(String).join(".")}: ${issue.message.replace(/,\s*actual[\s\S]*$/, "")}`
  )
  return Output.oneLine([...lines, ...(issues.length > 5 ? [`and ${issues.length - 5} more`] : [])].join("; "))
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * The tools of a `--tools` file: a non-empty array of `{name, description, parameters}`, or of
 * OpenAI's `{type: "function", function: {...}}`; anything else is an `InputError` naming the
 * fields.
 */
export const loadTools = (path: string): Effect.Effect<ReadonlyArray<Tool.ToolDefinition>, InputError> =>
  Effect.flatMap(readJsonFile("--tools", path), (json) => {
    const named = `--tools ${Output.oneLine(path)}`
    if (!Array.isArray(json) || json.length === 0) {
      return Effect.fail(new InputError(`${named} must hold a non-empty JSON array of tools ({name, description, parameters})`))
    }
    const unwrapped = json.map((tool) => isRecord(tool) && tool["type"] === "function" && isRecord(tool["function"]) ? tool["function"] : tool)
    const decoded = Schema.decodeUnknownEither(Schema.Array(Tool.ToolDefinition), { errors: "all", onExcessProperty: "error" })(unwrapped)
    if (Either.isLeft(decoded)) return Effect.fail(new InputError(`${named} is not a list of tools: ${issueList(decoded.left)}`))
    const issues = Tool.requestIssues(decoded.right, undefined)
    return issues.length > 0
      ? Effect.fail(new InputError(`${named}: ${Output.oneLine(issues.map((i) => `${i.path.slice(1).map(String).join(".")}: ${i.message}`).join("; "))}`))
      : Effect.succeed(decoded.right)
  })

/**
 * The response format of a `--schema` file: its JSON Schema object, named by its `title` when
 * that is a valid name, else `reply`.
 */
export const loadSchema = (path: string): Effect.Effect<StructuredOutput.ResponseFormat, InputError> =>
  Effect.flatMap(readJsonFile("--schema", path), (json) => {
    if (!isRecord(json)) return Effect.fail(new InputError(`--schema ${Output.oneLine(path)} must hold a JSON Schema object`))
    const title = json["title"]
    return Effect.succeed({ name: typeof title === "string" && /^[a-zA-Z0-9_-]{1,64}$/.test(title) ? title : "reply", jsonSchema: json })
  })

/** `--audit-file` at a directory would fail deep in the file layer; say it plainly first. */
const checkAuditPath = (path: string): Effect.Effect<void, InputError> =>
  Effect.promise(() => stat(path).then((info) => info.isDirectory(), () => false)).pipe(
    Effect.flatMap((isDirectory) =>
      isDirectory
        ? Effect.fail(
          new InputError(`--audit-file ${Output.oneLine(path)} is a directory; give a file in it, e.g. ${
            Output.oneLine(path.replace(/\/+$/, ""))
          }/audit.jsonl`)
        )
        : Effect.void
    )
  )

/** Flags that stand for a setting win over the environment: they are read as the variable. */
const flagSettings = (args: ChatArgs): ConfigProvider.ConfigProvider => {
  const settings = new Map<string, string>()
  if (Option.isSome(args.profile)) settings.set("LLM_GATEWAY_PROFILE", args.profile.value)
  if (Option.isSome(args.baseUrl)) settings.set("LLM_GATEWAY_BASE_URL", args.baseUrl.value)
  return ConfigProvider.fromMap(settings)
}

const finishLine = (part: Part.Finish): string =>
  `[${part.reason}; ${part.usage.promptTokens}+${part.usage.completionTokens} tokens (${part.usageSource}); ${
    Output.usd(part.cost.totalUsd)
  }${part.cached ? "; from the cache" : ""}]`

/**
 * One turn of the conversation kept in `path` (created when absent): the earlier turns go
 * along, and the file is saved after a clean finish only, so a failed or interrupted turn
 * leaves it as it was. `--system` names the instruction of a new conversation; an existing one
 * keeps its own, and a different `--system` is refused.
 */
const conversationTurn = (args: ChatArgs, path: string, message: Option.Option<string>) =>
  Stream.unwrap(Effect.gen(function*() {
    const system = Option.getOrUndefined(args.system)
    const conversation = yield* ConversationStore.open({ id: conversationId, model: args.model, system })
    if (system !== undefined && conversation.system !== system) {
      return yield* Effect.fail(
        new UsageProblem(
          `the conversation in ${Output.oneLine(path)} has another system instruction; --system applies when the file is created`
        )
      )
    }
    const input = Option.isSome(args.template)
      ? {
        template: args.template.value,
        variables: Object.fromEntries(Option.getOrElse(args.variables, () => HashMap.empty<string, string>()))
      }
      : Option.getOrElse(message, () => "")
    const turn = conversation.send(input, {
      model: args.model,
      temperature: Option.getOrUndefined(args.temperature),
      maxTokens: Option.getOrUndefined(args.maxTokens),
      ...(args.noCache ? { cache: false } : {})
    })
    return Stream.concat(turn, Stream.drain(Stream.fromEffect(ConversationStore.save(conversation))))
  })).pipe(
    Stream.provideSomeLayer(
      ConversationStore.layerFile({ path }).pipe(Layer.provide(Layer.merge(NodeFileSystem.layer, NodePath.layer)))
    )
  )

/** What `--json` prints: the reply collected from its parts. */
const collect = <E, R>(parts: Stream.Stream<Part.Part, E, R>) =>
  Effect.suspend(() => {
    let text = ""
    const toolCalls: Array<Record<string, unknown>> = []
    const redactions: { input: ReadonlyArray<Chat.RedactionCount>; output: ReadonlyArray<Chat.RedactionCount> } = {
      input: [],
      output: []
    }
    let finish: Part.Finish | undefined
    return parts.pipe(
      Stream.runForEach((part) =>
        Effect.sync(() => {
          switch (part._tag) {
            case "TextDelta":
              text += part.text
              break
            case "RedactionNotice":
              redactions[part.direction] = part.redactions
              break
            case "ToolCall":
              toolCalls.push({ id: part.id, name: part.name, arguments: part.arguments })
              break
            case "ToolCallError":
              toolCalls.push({ id: part.id, name: part.name, error: part.message })
              break
            case "Finish":
              finish = part
              break
          }
        })
      ),
      Effect.map(() => ({
        text,
        finishReason: finish?.reason,
        usage: finish?.usage,
        usageSource: finish?.usageSource,
        cost: finish?.cost,
        cached: finish?.cached,
        redactions,
        ...(toolCalls.length === 0 ? {} : { toolCalls }),
        ...(finish?.value === undefined ? {} : { value: finish.value })
      }))
    )
  })

/** Runs one chat request and writes the reply (or the error) to the terminal. */
export const run = (args: ChatArgs) => {
  let backend: Backend.Backend | undefined
  const note = (text: string) => (args.quiet ? Effect.void : Output.stderrLine(Output.dim(text)))
  const program = Effect.gen(function*() {
    if (args.json && args.jsonl) {
      return yield* Effect.fail(new UsageProblem(`--json and --jsonl cannot be combined. See 'llm-gateway chat --help'.`))
    }
    if (Option.isSome(args.conversation) && (Option.isSome(args.tools) || Option.isSome(args.schema))) {
      return yield* Effect.fail(
        new UsageProblem(`--conversation cannot be combined with --tools or --schema. See 'llm-gateway chat --help'.`)
      )
    }
    if (Option.isSome(args.conversation) && Option.isSome(args.template) && Option.isSome(args.message)) {
      return yield* Effect.fail(
        new UsageProblem(`with --conversation, give a message or --template, not both. See 'llm-gateway chat --help'.`)
      )
    }
    const message = yield* resolveMessage(args)
    if (Option.isSome(args.auditFile)) yield* checkAuditPath(args.auditFile.value)
    const tools = Option.isSome(args.tools) ? yield* loadTools(args.tools.value) : undefined
    const responseFormat = Option.isSome(args.schema) ? yield* loadSchema(args.schema.value) : undefined
    backend = yield* Backend.detect
    const simulator = backend._tag === "Simulator"
    const request: Chat.ChatRequestInput = {
      ...toRequest({ ...args, message }),
      ...(tools === undefined ? {} : { tools }),
      ...(responseFormat === undefined ? {} : { responseFormat })
    }
    const source = Option.isSome(args.conversation)
      ? conversationTurn(args, args.conversation.value, message)
      : Gateway.stream(request)
    const assumed = yield* AppLayer.assumptions(args.model)
    // `sim:<scenario>` ids choose a simulator scenario; they are not models to warn about.
    const scenarioId = simulator && args.model.startsWith("sim:")
    if (assumed.note !== undefined && !args.quiet && !scenarioId) yield* Output.warnLine(assumed.note)
    if (simulator) {
      yield* note(
        "[no gateway configured (GENESYS_CLIENT_ID, --base-url or LLM_GATEWAY_BASE_URL): the embedded simulator answers]"
      )
    }
    const body = args.json
      ? Effect.flatMap(collect(source), (reply) => Output.stdout(JSON.stringify(reply) + "\n"))
      : args.jsonl
      ? source.pipe(Stream.runForEach((part) => Output.stdout(JSON.stringify(part) + "\n")))
      : Effect.scoped(Effect.gen(function*() {
        const spinner = yield* Effect.acquireRelease(
          Effect.sync(() =>
            args.quiet ? { stop: () => {} } : Spinner.start(process.stderr, Output.dim("waiting for the gateway…"))
          ),
          (s) => Effect.sync(() => s.stop())
        )
        let wroteText = false
        yield* source.pipe(
          Stream.runForEach((part) => {
            spinner.stop()
            if (part._tag === "TextDelta") {
              wroteText = true
              return Output.stdout(part.text)
            }
            if (part._tag === "ToolCall" || part._tag === "ToolCallError") {
              const line = Output.toolCallLine(part)
              const before = wroteText ? "\n" : ""
              wroteText = false
              return Output.stdout(`${before}${line}\n`)
            }
            if (part._tag === "Finish") {
              return Output.stdout(wroteText ? "\n" : "").pipe(Effect.zipRight(note(finishLine(part))))
            }
            const notice = describeNotice(part)
            return notice === undefined ? Effect.void : note(notice)
          }),
          // Ctrl-C or a failure after some text: end the partial reply's line, so the shell
          // prompt starts on its own.
          Effect.onInterrupt(() => (wroteText ? Output.stdout("\n").pipe(Effect.zipRight(note("[interrupted]"))) : Effect.void)),
          Effect.tapError(() => (wroteText ? Output.stdout("\n") : Effect.void))
        )
      }))
    return yield* body.pipe(
      Effect.provide(AppLayer.layer(Backend.layer(backend), {
        auditFile: Option.getOrUndefined(args.auditFile),
        cacheDir: Option.getOrUndefined(args.cacheDir),
        budgetUsd: Option.getOrUndefined(args.budget),
        assumed
      }))
    )
  })
  return program.pipe(
    Effect.catchAll((error) => {
      if (error instanceof UsageProblem) {
        return Output.stderrLine(`llm-gateway: ${error.message}`).pipe(Effect.zipRight(Output.setExitCode(ExitCode.usage)))
      }
      const general = Output.describeError(error)
      const described = backend === undefined ? general : Backend.advise(backend, general)
      const report = args.json
        ? Output.stdout(JSON.stringify({ error: described }) + "\n")
        : args.jsonl
        ? Output.stdout(JSON.stringify({ _tag: "Error", error: described }) + "\n")
        : Output.stderrLine(`error (${described._tag}): ${described.message}`)
      return Effect.zipRight(report, Output.setExitCode(forTag(described._tag)))
    }),
    // --quiet: the library's warnings go too; errors are still logged.
    (effect) => (args.quiet ? Logger.withMinimumLogLevel(effect, LogLevel.Error) : effect),
    (effect) =>
      Effect.configProviderWith((current) =>
        Effect.withConfigProvider(effect, ConfigProvider.orElse(flagSettings(args), () => current))
      )
  )
}
