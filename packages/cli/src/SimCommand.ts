/**
 * `llm-gateway sim`: the simulator as a real HTTP server on loopback. Prints the base URL
 * alone on the first line of stdout (easy to capture in scripts), the endpoints on stderr,
 * and serves until interrupted.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Argv from "./internal/argv.js"
import * as Help from "./internal/help.js"

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

/**
 * The flags of `sim` and what each expects, checked before parsing.
 *
 * @since 0.1.0
 * @category Models
 */
export const spec: Argv.Spec = {
  positionals: 0,
  flags: {
    "--port": Argv.valueFlag("a port number from 0 to 65535", (v) => Argv.isInteger(v) && Number(v) >= 0 && Number(v) <= 65535),
    "--host": Argv.valueFlag("an address to listen on"),
    "--scenario": Argv.valueFlag("a JSON scenario file")
  }
}

/**
 * The `sim` command.
 *
 * @since 0.1.0
 * @category Commands
 */
export const command = Command.make(
  "sim",
  { port, host, scenario },
  (args) => Effect.flatMap(Effect.promise(() => import("./internal/sim.js")), (sim) => sim.run(args))
).pipe(
  Command.withDescription(Help.describe(
    "Run the gateway simulator as an HTTP server on loopback until Ctrl-C. The first line of stdout is the base URL alone; stderr lists the token endpoint, the OAuth client id and secret and the API key it accepts (test values), the gateway-profile and OpenAI-compatible endpoints, and a ready-made chat command. Choose a scenario with the model id sim:<name>.",
    [
      ["llm-gateway sim --port 8787", "a fixed port"],
      ["llm-gateway sim --port 0 --scenario scenarios.json", "a free port and scenarios from a file"]
    ],
    ["Exit codes: 2 bad usage (e.g. --port 99999), 3 a scenario file that cannot be used or a port that is taken, 130 stopped with Ctrl-C."]
  ))
)
