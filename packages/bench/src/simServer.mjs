// The simulator HTTP server in its own process, so that the client's process.cpuUsage() holds
// only client work. Prints its base URL on the first line of stdout, then serves until killed.
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { SimulatorServer } from "@llm-gateway/simulator"
import * as Effect from "effect/Effect"

const scenarios = JSON.parse(process.argv[2] ?? "[]")

NodeRuntime.runMain(
  Effect.gen(function*() {
    const server = yield* SimulatorServer.SimulatorServer
    process.stdout.write(`${server.baseUrl}\n`)
    return yield* Effect.never
  }).pipe(Effect.provide(SimulatorServer.layerServer({ scenarios }))),
  { disableErrorReporting: false }
)
