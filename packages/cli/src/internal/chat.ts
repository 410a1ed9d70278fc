/**
 * What `llm-gateway chat` does once its arguments are parsed; loaded only when `chat` runs, so
 * `--help` and the other commands never load the pipeline.
 */
import type { Part } from "@llm-gateway/core"
import { Gateway } from "@llm-gateway/core"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { stat } from "node:fs/promises"
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

/** Runs one chat request and writes the reply (or the error) to the terminal. */
export const run = (args: ChatArgs) => {
  let backend: Backend.Backend | undefined
  const note = (text: string) => (args.quiet ? Effect.void : Output.stderrLine(Output.dim(text)))
  const program = Effect.gen(function*() {
    if (args.json && args.jsonl) {
      return yield* Effect.fail(new UsageProblem(`--json and --jsonl cannot be combined. See 'llm-gateway chat --help'.`))
    }
    const message = yield* resolveMessage(args)
    if (Option.isSome(args.auditFile)) yield* checkAuditPath(args.auditFile.value)
    backend = yield* Backend.detect
    const simulator = backend._tag === "Simulator"
    const request = toRequest({ ...args, message })
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
      : args.jsonl
      ? Gateway.stream(request).pipe(Stream.runForEach((part) => Output.stdout(JSON.stringify(part) + "\n")))
      : Effect.scoped(Effect.gen(function*() {
        const spinner = yield* Effect.acquireRelease(
          Effect.sync(() =>
            args.quiet ? { stop: () => {} } : Spinner.start(process.stderr, Output.dim("waiting for the gateway…"))
          ),
          (s) => Effect.sync(() => s.stop())
        )
        let wroteText = false
        yield* Gateway.stream(request).pipe(
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
          // Ctrl-C: end the partial reply's line, so the shell prompt starts on its own.
          Effect.onInterrupt(() => (wroteText ? Output.stdout("\n").pipe(Effect.zipRight(note("[interrupted]"))) : Effect.void))
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
