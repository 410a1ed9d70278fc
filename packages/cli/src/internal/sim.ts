/**
 * What `llm-gateway sim` does; loaded only when `sim` runs.
 */
import { Scenario, SimulatorApp, SimulatorServer } from "@llm-gateway/simulator"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { readFile, stat } from "node:fs/promises"
import * as Output from "../Output.js"
import { forTag } from "./exitCodes.js"

/** A scenario file larger than this is refused before it is read. */
export const maxScenarioFileBytes = 10 * 1024 * 1024

const decodeScenarioFile = Schema.decodeUnknownEither(Scenario.ScenarioFile, {
  errors: "all",
  onExcessProperty: "error"
})

const cut = (text: string, max = 200) => (text.length > max ? `${text.slice(0, max - 1)}…` : text)

/**
 * The few issues that say what is wrong with a scenario file, in one line: the file is a
 * union (one scenario, a list, or `{scenarios}`), and each alternative reports its own
 * mismatch; the deepest paths belong to the alternative the author meant.
 */
export const summarizeIssues = (error: ParseResult.ParseError, max = 3): string => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  const depth = Math.max(...issues.map((issue) => issue.path.length))
  const deepest = issues.filter((issue) => issue.path.length === depth)
  const seen = new Set<string>()
  const lines: Array<string> = []
  for (const issue of deepest) {
    const where = issue.path.length === 0 ? "the top level" : issue.path.map(String).join(".")
    // One issue per path: an optional field also reports "Expected undefined" for its other member.
    if (seen.has(where)) continue
    seen.add(where)
    lines.push(`at ${where}: ${cut(Output.oneLine(issue.message))}`)
  }
  const more = lines.length > max ? ` (and ${lines.length - max} more)` : ""
  return `${lines.slice(0, max).join("; ")}${more}`
}

/** Reads a scenario file: a bounded regular file, JSON, and a short report of what does not fit the schema. */
export const loadScenarioFile = (path: string): Effect.Effect<Scenario.ScenarioSet, Scenario.ScenarioFileError> =>
  Effect.gen(function*() {
    const fail = (reason: string) => new Scenario.ScenarioFileError({ path, reason })
    const info = yield* Effect.tryPromise({
      try: () => stat(path),
      catch: (error) => fail(`it cannot be read (${(error as { code?: string }).code ?? String(error)})`)
    })
    // /dev/zero, a FIFO or a directory would hang or fail deep inside the reader.
    if (!info.isFile()) return yield* fail("it is not a regular file")
    if (info.size > maxScenarioFileBytes) return yield* fail(`it is larger than ${maxScenarioFileBytes / 1024 / 1024} MiB`)
    const text = yield* Effect.tryPromise({
      try: () => readFile(path, "utf8"),
      catch: (error) => fail(`it cannot be read (${(error as { code?: string }).code ?? String(error)})`)
    })
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (error) {
      return yield* fail(`it is not valid JSON (${Output.oneLine(error instanceof Error ? error.message : String(error))})`)
    }
    const decoded = decodeScenarioFile(json)
    if (Either.isLeft(decoded)) {
      return yield* fail(
        `${summarizeIssues(decoded.left)}. Expected one scenario, a list of scenarios, or {"scenarios": [...], "defaultScenario": name}; see docs/simulator.md`
      )
    }
    // Names, duplicates and the default scenario are checked by the simulator's own reader.
    return yield* Scenario.decodeFileText(path, text)
  })

/** Serves the simulator until interrupted. */
export const run = (args: { readonly port: number; readonly host: string; readonly scenario: Option.Option<string> }) =>
  Effect.gen(function*() {
    const fromFile = Option.isSome(args.scenario) ? yield* loadScenarioFile(args.scenario.value) : undefined
    const options: SimulatorServer.ServerOptions = {
      port: args.port,
      host: args.host,
      ...(fromFile === undefined ? {} : { scenarios: fromFile.scenarios, defaultScenario: fromFile.defaultScenario })
    }
    return yield* Effect.gen(function*() {
      const server = yield* SimulatorServer.SimulatorServer
      const scenarios = yield* server.scenarios
      const client = SimulatorApp.defaultClient
      const apiKey = Redacted.value(SimulatorApp.defaultApiKey)
      yield* Output.stdout(`${server.baseUrl}\n`)
      // These are the simulator's fixed test credentials, printed so any client can be pointed at it.
      yield* Output.stderrLine(
        [
          `token endpoint:     ${server.baseUrl}/oauth/token`,
          `OAuth client:       id ${client.clientId}, secret ${Redacted.value(client.clientSecret)} (test values)`,
          `API key:            ${apiKey} (Authorization: Bearer ${apiKey}; a test value)`,
          `gateway profile:    ${server.gatewayUrl}`,
          `OpenAI-compatible:  ${server.openAiBaseUrl}`,
          `scenarios:          ${scenarios.length} (choose with the model id sim:<name> or the x-simulator-scenario header)`,
          `try:                LLM_GATEWAY_BASE_URL=${server.openAiBaseUrl} LLM_GATEWAY_PROFILE=openai LLM_GATEWAY_API_KEY=${apiKey} llm-gateway chat "Hello"`
        ].join("\n")
      )
      return yield* Effect.never
    }).pipe(Effect.provide(SimulatorServer.layerServer(options)))
  }).pipe(
    Effect.catchAll((error) =>
      Output.stderrLine(`error (${error._tag}): ${Output.oneLine(error.message)}`).pipe(
        Effect.zipRight(Output.setExitCode(forTag(error._tag)))
      )
    )
  )
