/**
 * What `llm-gateway sim` does; loaded only when `sim` runs.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { SimulatorApp, SimulatorServer } from "@llm-gateway/simulator"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Output from "../Output.js"

/** Serves the simulator until interrupted. */
export const run = (args: { readonly port: number; readonly host: string; readonly scenario: Option.Option<string> }) =>
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

