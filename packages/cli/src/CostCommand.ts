/**
 * `llm-gateway cost report FILE…`: what the requests recorded in audit files cost, in total
 * and by model, by day and by outcome.
 *
 * @since 0.1.0
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import * as Argv from "./internal/argv.js"
import * as Help from "./internal/help.js"

const files = Args.text({ name: "file" }).pipe(
  Args.withDescription("An audit log file (written with --audit-file)"),
  Args.atLeast(1)
)
const since = Options.text("since").pipe(
  Options.withDescription("Only entries at or after this UTC date or time (2026-11-01 or 2026-11-01T12:00:00Z)"),
  Options.optional
)
const json = Options.boolean("json").pipe(Options.withDescription("Print one JSON object"))
const csv = Options.boolean("csv").pipe(Options.withDescription("Print CSV: a group column (total, model, day, outcome)"))

/**
 * The parsed `cost report` arguments.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ReportArgs {
  readonly files: ReadonlyArray<string>
  readonly since: Option.Option<string>
  readonly json: boolean
  readonly csv: boolean
}

/**
 * A `--since` value as epoch milliseconds: a date (`YYYY-MM-DD`, midnight UTC) or an ISO date
 * and time with a zone; `undefined` when it is neither.
 *
 * @since 0.1.0
 * @category Utils
 */
export const parseSince = (value: string): number | undefined => {
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) {
    const at = Date.parse(`${value}T00:00:00Z`)
    return Number.isNaN(at) ? undefined : at
  }
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(value)) return undefined
  const at = Date.parse(value)
  return Number.isNaN(at) ? undefined : at
}

/**
 * The flags of `cost report`, checked before parsing.
 *
 * @since 0.1.0
 * @category Models
 */
export const spec: Argv.Spec = {
  positionals: 0,
  flags: {},
  subcommands: {
    report: {
      positionals: Infinity,
      required: { count: 1, operand: "at least one audit file" },
      flags: {
        "--since": Argv.valueFlag(
          "a UTC date such as 2026-11-01 or a time such as 2026-11-01T12:00:00Z",
          (v) => parseSince(v) !== undefined
        ),
        "--json": Argv.switchFlag,
        "--csv": Argv.switchFlag
      }
    }
  }
}

const report = Command.make(
  "report",
  { files, since, json, csv },
  (args) => Effect.flatMap(Effect.promise(() => import("./internal/cost.js")), (cost) => cost.report(args))
).pipe(Command.withDescription(Help.describe(
  "Sum the requests recorded in audit files: totals, then tables by model, by day (UTC) and by outcome with requests, tokens in and out (of requests the gateway answered), cost, cache hits and what they saved (priced at today's prices). Amounts are summed exactly. The chain is not checked here: run 'llm-gateway audit verify' for that.",
  [
    ["llm-gateway cost report audit.jsonl", "tables"],
    ["llm-gateway cost report --since 2026-11-01 --csv audit.jsonl > cost.csv", "CSV since a date"],
    ["llm-gateway cost report --json audit-1.jsonl audit-2.jsonl", "one JSON object over several files"]
  ],
  ["Exit codes: 0 ok, 2 bad usage, 3 a file cannot be read."]
)))

/**
 * The `cost` command group.
 *
 * @since 0.1.0
 * @category Commands
 */
export const command = Command.make("cost").pipe(
  Command.withDescription("Report what requests cost: 'cost report FILE…' sums audit files"),
  Command.withSubcommands([report])
)
