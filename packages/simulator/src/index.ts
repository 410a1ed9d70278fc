/**
 * @llm-gateway/simulator: a faithful simulator of the LLM gateway, with fault injection, as an
 * in-process Layer (`SimulatorLayer`) and as a real HTTP server (`SimulatorServer`). Both run
 * the same app (`SimulatorApp`) on scripts rendered from scenarios (`Scenario`, `Script`).
 *
 * @since 0.1.0
 */
export * as Scenario from "./Scenario.js"
export * as Script from "./Script.js"
export * as SimulatorApp from "./SimulatorApp.js"
export * as SimulatorLayer from "./SimulatorLayer.js"
export * as SimulatorServer from "./SimulatorServer.js"
