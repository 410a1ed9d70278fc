/**
 * The `llm-gateway` command line.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import * as ChatCommand from "./ChatCommand.js"
import * as DemoCommand from "./DemoCommand.js"
import * as SimCommand from "./SimCommand.js"

/**
 * The root command.
 *
 * @since 0.1.0
 */
export const command = Command.make("llm-gateway").pipe(
  Command.withDescription("Talk to an LLM gateway through the llm-gateway pipeline"),
  Command.withSubcommands([ChatCommand.command, DemoCommand.command, SimCommand.command])
)

/**
 * Runs the CLI on an argv array (`node`, the script path, then the arguments).
 *
 * @since 0.1.0
 */
export const cli = Command.run(command, { name: "llm-gateway", version: "0.1.0" })

/**
 * Runs the CLI on `process.argv`.
 *
 * @since 0.1.0
 */
export const main = (): void =>
  cli(process.argv).pipe(
    Effect.provide(NodeContext.layer),
    // Logs go to stderr: stdout carries only the reply (or the --json object).
    Effect.provide(Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ stderr: true }))),
    NodeRuntime.runMain({
      disableErrorReporting: false,
      disablePrettyLogger: true,
      // Ctrl-C ends the reply early: say so with the conventional 130, not success.
      teardown: (exit, onExit) =>
        onExit(
          Exit.isSuccess(exit)
            ? Number(process.exitCode ?? 0)
            : Cause.isInterruptedOnly(exit.cause)
            ? 130
            : 1
        )
    })
  )
