/**
 * The `@llm-gateway/simulator` package: a faithful simulator of the LLM gateway, with fault
 * injection, as an in-process Layer (`SimulatorLayer`) and as a real HTTP server
 * (`SimulatorServer`). Both run the same app (`SimulatorApp`) on scripts rendered from
 * scenarios (`Scenario`, `Script`).
 *
 * @since 0.1.0
 */

/**
 * Scenarios: what the simulated gateway answers to one request (reply, timing, usage, faults), as
 * plain JSON decoded with Schemas.
 *
 * @since 0.1.0
 */
export * as Scenario from "./Scenario.js"

/**
 * A scenario rendered for one request and attempt into exactly what goes on the wire; pure and
 * deterministic.
 *
 * @since 0.1.0
 */
export * as Script from "./Script.js"

/**
 * The simulated gateway as one `HttpApp`: token endpoint, gateway and OpenAI-compatible endpoints,
 * request recording and fault scenarios.
 *
 * @since 0.1.0
 */
export * as SimulatorApp from "./SimulatorApp.js"

/**
 * The simulator in process: an `HttpClient` that hands requests to the simulator app in memory,
 * under core's real `Transport` and `Auth`.
 *
 * @since 0.1.0
 */
export * as SimulatorLayer from "./SimulatorLayer.js"

/**
 * The simulator as a real HTTP server on Node, for integration tests, other languages' clients and
 * `llm-gateway sim`.
 *
 * @since 0.1.0
 */
export * as SimulatorServer from "./SimulatorServer.js"
