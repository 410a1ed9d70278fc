/**
 * The simulator as a real HTTP server on Node: the same app as the in-process Layer, bound to
 * a port (0 picks a free one), for integration tests, for other languages' clients (the
 * official `openai` package works against `{baseUrl}/v1`), and for `llm-gateway sim`.
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Http from "node:http"
import * as Scenario from "./Scenario.js"
import * as SimulatorApp from "./SimulatorApp.js"

/**
 * Where the server listens: `port` 0 (the default) picks a free port; `host` defaults to
 * `127.0.0.1`, so nothing outside the machine can reach it unless asked.
 *
 * @since 0.1.0
 * @category Config
 */
export interface ServerOptions extends SimulatorApp.Options {
  readonly port?: number | undefined
  readonly host?: string | undefined
}

/**
 * The running server: its URLs and the simulator's state.
 *
 * - `baseUrl`: `http://host:port`, also the `loginUrl` for `Auth.layerGenesys` (the token
 *   endpoint is `{baseUrl}/oauth/token`).
 * - `gatewayUrl`: the gateway-profile endpoint.
 * - `openAiBaseUrl`: `{baseUrl}/v1`, the base URL for OpenAI-compatible clients.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Service extends Omit<SimulatorApp.Service, "app"> {
  readonly baseUrl: string
  readonly port: number
  readonly gatewayUrl: string
  readonly openAiBaseUrl: string
}

/**
 * The running simulator server.
 *
 * @since 0.1.0
 * @category Services
 */
export class SimulatorServer extends Context.Tag("@llm-gateway/simulator/SimulatorServer")<SimulatorServer, Service>() {}

/**
 * The server could not start, e.g. the port is taken or the host cannot be bound.
 *
 * @since 0.1.0
 * @category Errors
 */
export class ServerStartError extends Schema.TaggedError<ServerStartError>("@llm-gateway/simulator/ServerStartError")(
  "ServerStartError",
  { host: Schema.String, port: Schema.Number, reason: Schema.String }
) {
  override get message(): string {
    return `The simulator could not listen on ${this.host}:${this.port}: ${this.reason}`
  }
}

// Ends the socket after what was written has been flushed, without the terminating chunk: the
// client sees the body break off. The request fiber is then interrupted as the response closes.
const nodeDropper = {
  drop: (request: Parameters<typeof NodeHttpServerRequest.toServerResponse>[0]) =>
    Effect.async<never, Error>((resume) => {
      const response = NodeHttpServerRequest.toServerResponse(request)
      const socket = response.socket
      if (socket === null) {
        resume(Effect.fail(new Error("connection dropped by the simulator")))
        return
      }
      // The status line and headers go out first even when no body byte was written yet.
      if (!response.headersSent) response.flushHeaders()
      socket.end(() => socket.destroy())
    })
}

const formatHost = (host: string) => (host.includes(":") ? `[${host}]` : host)

/**
 * Starts the simulator server for the lifetime of the Layer's scope. Also provides the
 * `Simulator` service (for `register` and for the app itself).
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerServer = (
  options: ServerOptions = {}
): Layer.Layer<SimulatorServer | SimulatorApp.Simulator, ServerStartError> =>
  Layer.scopedContext(Effect.gen(function*() {
    const host = options.host ?? "127.0.0.1"
    const port = options.port ?? 0
    const simulator = yield* SimulatorApp.make(options)
    const httpServer = Http.createServer()
    const server = yield* NodeHttpServer.make(() => httpServer, { host, port }).pipe(
      Effect.mapError((error) =>
        new ServerStartError({
          host,
          port,
          reason: error.cause instanceof Error ? error.cause.message : String(error.cause)
        })
      )
    )
    // Runs before the server closes: a stalled response would otherwise hold the shutdown open
    // until its client gave up.
    yield* Effect.addFinalizer(() => Effect.sync(() => httpServer.closeAllConnections()))
    yield* server.serve(Effect.provideService(simulator.app, SimulatorApp.ConnectionDropper, nodeDropper))
    const boundPort = server.address._tag === "TcpAddress" ? server.address.port : port
    const baseUrl = `http://${formatHost(host)}:${boundPort}`
    const { app: _app, ...state } = simulator
    const service: Service = {
      ...state,
      baseUrl,
      port: boundPort,
      gatewayUrl: `${baseUrl}${options.gatewayPath ?? SimulatorApp.defaultGatewayPath}`,
      openAiBaseUrl: `${baseUrl}/v1`
    }
    return Context.make(SimulatorServer, service).pipe(Context.add(SimulatorApp.Simulator, simulator))
  }))

/**
 * Reads and decodes a scenario file (JSON, see `Scenario.ScenarioFile`). A missing or
 * unreadable file, bad JSON or a schema mismatch fails with `ScenarioFileError` naming the
 * problem.
 *
 * @since 0.1.0
 * @category Utils
 */
export const loadScenarioFile = (
  path: string
): Effect.Effect<Scenario.ScenarioSet, Scenario.ScenarioFileError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(path).pipe(
      Effect.mapError((error) => new Scenario.ScenarioFileError({ path, reason: `it cannot be read (${error.message})` }))
    )
    return yield* Scenario.decodeFileText(path, text)
  })

/**
 * Options of `serve`: the server options plus `scenarioFile`, a JSON file of scenarios added
 * to the built-ins (its `defaultScenario`, if any, wins over `defaultScenario` here).
 *
 * @since 0.1.0
 * @category Config
 */
export interface ServeOptions extends ServerOptions {
  readonly scenarioFile?: string | undefined
}

/**
 * Runs the simulator server until interrupted: what `llm-gateway sim --port N [--scenario
 * FILE]` calls. Logs the URLs to use (never a secret) and then waits forever.
 *
 * @example
 * import { NodeRuntime } from "@effect/platform-node"
 * import { SimulatorServer } from "@llm-gateway/simulator"
 *
 * NodeRuntime.runMain(SimulatorServer.serve({ port: 8787 }))
 *
 * @since 0.1.0
 * @category Running
 */
export const serve = (options: ServeOptions = {}): Effect.Effect<never, Scenario.ScenarioFileError | ServerStartError> =>
  Effect.gen(function*() {
    const fromFile = options.scenarioFile === undefined
      ? undefined
      : yield* loadScenarioFile(options.scenarioFile).pipe(Effect.provide(NodeFileSystem.layer))
    const serverOptions: ServerOptions = fromFile === undefined
      ? options
      : {
        ...options,
        scenarios: [...(options.scenarios ?? []), ...fromFile.scenarios],
        defaultScenario: fromFile.defaultScenario ?? options.defaultScenario
      }
    return yield* Effect.gen(function*() {
      const server = yield* SimulatorServer
      const scenarios = yield* server.scenarios
      const clients = serverOptions.clients ?? [SimulatorApp.defaultClient]
      yield* Effect.logInfo("llm-gateway simulator listening").pipe(
        Effect.annotateLogs({
          baseUrl: server.baseUrl,
          tokenUrl: `${server.baseUrl}/oauth/token`,
          gatewayUrl: server.gatewayUrl,
          openAiBaseUrl: server.openAiBaseUrl,
          clientIds: clients.map((client) => client.clientId).join(", "),
          scenarios: scenarios.length
        })
      )
      return yield* Effect.never
    }).pipe(Effect.provide(layerServer(serverOptions)))
  })
