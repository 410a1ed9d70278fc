/**
 * What `llm-gateway cost report` does; loaded only when it runs.
 */
import * as CostMeter from "@llm-gateway/core/CostMeter"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { createReadStream } from "node:fs"
import { stat } from "node:fs/promises"
import { createInterface } from "node:readline"
import { parseSince, type ReportArgs } from "../CostCommand.js"
import * as Output from "../Output.js"
import { Report, toCsv, toJson, toText } from "./costReport.js"
import { ExitCode } from "./exitCodes.js"

/** An audit file could not be read. */
class ReadError extends Error {
  readonly _tag = "AuditFileError"
}

/** Feeds every line of `file` to the report, streaming (memory holds one line at a time). */
const readInto = (report: Report, file: string): Effect.Effect<void, ReadError> =>
  Effect.tryPromise({
    try: async () => {
      const info = await stat(file)
      if (!info.isFile()) throw new ReadError(`${Output.oneLine(file)} is not a file`)
      const lines = createInterface({ input: createReadStream(file, { encoding: "utf8" }), crlfDelay: Infinity })
      for await (const line of lines) report.addLine(line)
    },
    catch: (error) =>
      error instanceof ReadError
        ? error
        : new ReadError(`${Output.oneLine(file)} cannot be read (${Output.oneLine(String((error as Error)?.message ?? error))})`)
  })

/** Builds the report over every file and prints it. */
export const report = (args: ReportArgs) =>
  Effect.gen(function*() {
    if (args.json && args.csv) {
      yield* Output.stderrLine(`llm-gateway: --json and --csv cannot be combined. See 'llm-gateway cost report --help'.`)
      return yield* Output.setExitCode(ExitCode.usage)
    }
    const pricing = (yield* CostMeter.config).pricing
    const priceOf = CostMeter.makePrice(pricing)
    const since = Option.getOrUndefined(Option.map(args.since, parseSince))
    const result = new Report(since, (model, usage) =>
      priceOf(model, { ...usage, totalTokens: usage.promptTokens + usage.completionTokens }).totalUsd)
    for (const file of args.files) yield* readInto(result, file)
    const text = args.json
      ? JSON.stringify(toJson(result, args.files)) + "\n"
      : args.csv
      ? toCsv(result)
      : toText(result)
    yield* Output.stdout(text)
    if (result.skipped > 0) {
      yield* Output.warnLine(
        `${result.skipped} line${result.skipped === 1 ? " was" : "s were"} not audit entries and ${
          result.skipped === 1 ? "was" : "were"
        } left out (check the files with 'llm-gateway audit verify')`
      )
    }
  }).pipe(
    Effect.catchAll((error) => {
      const described = Output.describeError(error)
      return Output.stderrLine(`error (${described._tag}): ${described.message}`).pipe(
        Effect.zipRight(Output.setExitCode(ExitCode.config))
      )
    })
  )
