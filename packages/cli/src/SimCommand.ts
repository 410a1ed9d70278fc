/**
 * `llm-gateway sim`: the simulator as a real HTTP server on loopback.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as SimulatorServer from "@llm-gateway/simulator/SimulatorServer"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Output from "./Output.js"

const port = Options.integer("port").pipe(
  Options.withDescription("The port to listen on (0 picks a free one)"),
  Options.withDefault(0)
)
const host = Options.text("host").pipe(
  Options.withDescription("The address to listen on"),
  Options.withDefault("127.0.0.1")
)
const scenario = Options.file("scenario", { exists: "yes" }).pipe(
  Options.withDescription("A JSON file of scenarios (one, a list, or {scenarios, defaultScenario})"),
  Options.optional
)

/**
 * The `sim` command.
 *
 * @since 0.1.0
 */
export const command = Command.make("sim", { port, host, scenario }, (args) =>
  SimulatorServer.serve({
    port: args.port,
    host: args.host,
    scenarioFile: Option.getOrUndefined(args.scenario)
  }).pipe(
    Effect.catchAll((error) =>
      Output.stderrLine(`error (${error._tag}): ${error.message}`).pipe(Effect.zipRight(Output.setFailed))
    )
  )).pipe(Command.withDescription("Run the gateway simulator as an HTTP server and print its base URL"))
