/**
 * The `llm-gateway` command line.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import * as AuditCommand from "./AuditCommand.js"
import * as ChatCommand from "./ChatCommand.js"
import * as CostCommand from "./CostCommand.js"
import * as DemoCommand from "./DemoCommand.js"
import * as Argv from "./internal/argv.js"
import * as ExitCodes from "./internal/exitCodes.js"
import * as Help from "./internal/help.js"
import * as ModelsCommand from "./ModelsCommand.js"
import * as Output from "./Output.js"
import * as SimCommand from "./SimCommand.js"

const name = "llm-gateway"

/**
 * The root command.
 *
 * @since 0.1.0
 * @category Commands
 */
export const command = Command.make(name).pipe(
  Command.withDescription(Help.describe(
    "Talk to an LLM gateway through the llm-gateway pipeline (template, redaction, context fitting, cache, budget, audit), check audit logs, report costs, list models, or run the gateway simulator. Each command has --help with examples.",
    [
      [`${name} chat "Hello"`, "streams a reply (the embedded simulator answers when no gateway is configured)"],
      [`${name} demo`, "the complete example"],
      [`${name} models`, "the model catalog with prices"],
      [`${name} audit verify audit.jsonl`, "checks an audit log's hash chain"],
      [`${name} cost report audit.jsonl`, "what the audited requests cost"],
      [`${name} sim --port 8080`, "the simulator as an HTTP server"]
    ],
    [`Exit codes: ${ExitCodes.summary.map(([code, what]) => `${code} ${what}`).join("; ")}.`]
  )),
  Command.withSubcommands([
    ChatCommand.command,
    DemoCommand.command,
    ModelsCommand.command,
    AuditCommand.command,
    CostCommand.command,
    SimCommand.command
  ])
)

/**
 * Every command's flags and arguments, as the command line check reads them.
 *
 * @since 0.1.0
 * @category Commands
 */
export const specs: Readonly<Record<string, Argv.Spec>> = {
  chat: ChatCommand.spec,
  demo: DemoCommand.spec,
  models: ModelsCommand.spec,
  audit: AuditCommand.spec,
  cost: CostCommand.spec,
  sim: SimCommand.spec
}

/** The exit code of a command line that could not be understood, as shells and coreutils use. */
const usageExit = ExitCodes.ExitCode.usage

const usageError = (message: string) =>
  Output.stderrLine(`${name}: ${message}`).pipe(
    Effect.zipRight(Effect.sync(() => {
      process.exitCode = usageExit
    }))
  )

// @effect/cli prints its own multi-line report of a bad command line through Console.error;
// the one line from `usageError` replaces it. Help and version still go to Console.log.
// Help is printed with ANSI styles; they stay only on a terminal without NO_COLOR.
const ANSI = /\u001b\[[0-9;]*m/g
const withoutConsoleErrors = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Console.consoleWith((console) =>
    Effect.withConsole(effect, {
      ...console,
      error: () => Effect.void,
      log: (...args: ReadonlyArray<any>) =>
        Output.useColor(process.stdout)
          ? console.log(...args)
          : console.log(...args.map((arg) => (typeof arg === "string" ? arg.replace(ANSI, "") : arg)))
    })
  )

/**
 * Runs the CLI on an argv array (`node`, the script path, then the arguments). A command line
 * that cannot be understood prints one line to stderr naming the problem and exits with 2.
 *
 * @since 0.1.0
 * @category Commands
 */
export const cli = (argv: ReadonlyArray<string>) => {
  const problem = Argv.check(name, argv.slice(2), specs)
  if (problem !== undefined) return usageError(problem)
  return Command.run(command, { name, version: "0.1.0" })(argv).pipe(
    Effect.catchIf(ValidationError.isValidationError, (error) =>
      usageError(
        `${HelpDoc.toAnsiText(error.error).replace(ANSI, "").replace(/\s+/g, " ").trim()}. See '${name} --help'.`
      )),
    withoutConsoleErrors
  )
}

/**
 * Runs the CLI on `process.argv`.
 *
 * @since 0.1.0
 * @category Commands
 */
export const main = (): void =>
  cli(process.argv).pipe(
    Effect.provide(NodeContext.layer),
    // Logs go to stderr: stdout carries only the reply (or the --json object).
    // One line per record (see Output.lineLogger): a warning never spreads over several lines.
    Effect.provide(Logger.replace(Logger.defaultLogger, Output.lineLogger())),
    NodeRuntime.runMain({
      disableErrorReporting: false,
      disablePrettyLogger: true,
      // Ctrl-C ends the reply early: say so with the conventional 130, not success.
      teardown: (exit, onExit) =>
        onExit(
          Exit.isSuccess(exit)
            ? Number(process.exitCode ?? 0)
            : Cause.isInterruptedOnly(exit.cause)
            ? ExitCodes.ExitCode.interrupted
            : ExitCodes.ExitCode.failure
        )
    })
  )
