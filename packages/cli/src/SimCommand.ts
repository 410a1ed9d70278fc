/**
 * `llm-gateway sim`: the simulator as a real HTTP server on loopback. Prints the base URL
 * alone on the first line of stdout (easy to capture in scripts), the endpoints on stderr,
 * and serves until interrupted.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { SimulatorApp, SimulatorServer } from "@llm-gateway/simulator"
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
const scenario = Options.text("scenario").pipe(
  Options.withDescription("A JSON file of scenarios (one, a list, or {scenarios, defaultScenario})"),
  Options.optional
)

const run = (args: { readonly port: number; readonly host: string; readonly scenario: Option.Option<string> }) =>
  Effect.gen(function*() {
    const fromFile = Option.isSome(args.scenario)
      ? yield* SimulatorServer.loadScenarioFile(args.scenario.value).pipe(Effect.provide(NodeFileSystem.layer))
      : undefined
    const options: SimulatorServer.ServerOptions = {
      port: args.port,
      host: args.host,
      ...(fromFile === undefined ? {} : { scenarios: fromFile.scenarios, defaultScenario: fromFile.defaultScenario })
    }
    return yield* Effect.gen(function*() {
      const server = yield* SimulatorServer.SimulatorServer
      const scenarios = yield* server.scenarios
      yield* Output.stdout(`${server.baseUrl}\n`)
      yield* Output.stderrLine(
        [
          `token endpoint:     ${server.baseUrl}/oauth/token (client id ${SimulatorApp.defaultClient.clientId})`,
          `gateway profile:    ${server.gatewayUrl}`,
          `OpenAI-compatible:  ${server.openAiBaseUrl}`,
          `scenarios:          ${scenarios.length} (choose with the model id sim:<name> or the x-simulator-scenario header)`
        ].join("\n")
      )
      return yield* Effect.never
    }).pipe(Effect.provide(SimulatorServer.layerServer(options)))
  }).pipe(
    Effect.catchAll((error) =>
      Output.stderrLine(`error (${error._tag}): ${error.message}`).pipe(Effect.zipRight(Output.setFailed))
    )
  )

/**
 * The `sim` command.
 *
 * @since 0.1.0
 */
export const command = Command.make("sim", { port, host, scenario }, run).pipe(
  Command.withDescription("Run the gateway simulator as an HTTP server and print its base URL")
)
