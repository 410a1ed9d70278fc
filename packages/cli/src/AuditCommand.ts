/**
 * `llm-gateway audit verify FILE…`: checks the hash chain of audit log files written with
 * `--audit-file` (or `AuditLog.layerFile`) and reports the first broken line.
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
  Args.withDescription("An audit log file (JSON lines with seq, prevHash and hash)"),
  Args.atLeast(1)
)
const json = Options.boolean("json").pipe(Options.withDescription("Print one JSON object with a report per file"))
const keyEnv = Options.text("key-env").pipe(
  Options.withDescription(
    "The environment variable holding the HMAC key of a keyed log (default: LLM_GATEWAY_AUDIT_KEY when it is set)"
  ),
  Options.optional
)
const anchor = Options.text("anchor").pipe(
  Options.withDescription(
    "SEQ:HASH of a line verified earlier (printed as 'last line: seq S, hash H'): the log must still hold it, unchanged, so lines cut from the end are found"
  ),
  Options.optional
)
const chain = Options.boolean("chain").pipe(
  Options.withDescription("The files are one chain split by rotation, oldest first: each continues the one before")
)

/**
 * The parsed `audit verify` arguments.
 *
 * @since 0.1.0
 * @category Models
 */
export interface VerifyArgs {
  readonly files: ReadonlyArray<string>
  readonly json: boolean
  readonly keyEnv: Option.Option<string>
  readonly anchor: Option.Option<string>
  readonly chain: boolean
}

/**
 * An `--anchor` value, `SEQ:HASH` (a line number of the chain from 0, and its 64-hex hash), or
 * `undefined` when it is not one.
 *
 * @since 0.1.0
 * @category Utils
 */
export const parseAnchor = (value: string): { readonly seq: number; readonly hash: string } | undefined => {
  const match = /^(\d{1,15}):([0-9a-f]{64})$/.exec(value)
  return match === null ? undefined : { seq: Number(match[1]), hash: match[2]! }
}

/**
 * The flags of `audit verify`, checked before parsing.
 *
 * @since 0.1.0
 * @category Models
 */
export const spec: Argv.Spec = {
  positionals: 0,
  flags: {},
  subcommands: {
    verify: {
      positionals: Infinity,
      required: { count: 1, operand: "at least one audit file" },
      flags: {
        "--json": Argv.switchFlag,
        "--chain": Argv.switchFlag,
        "--anchor": Argv.valueFlag(
          "SEQ:HASH of an earlier verified line, e.g. 41:3f2a… (64 hex digits)",
          (v) => parseAnchor(v) !== undefined
        ),
        "--key-env": Argv.valueFlag(
          "the name of an environment variable such as LLM_GATEWAY_AUDIT_KEY",
          (v) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(v)
        )
      }
    }
  }
}

const verify = Command.make(
  "verify",
  { files, json, keyEnv, anchor, chain },
  (args) => Effect.flatMap(Effect.promise(() => import("./internal/audit.js")), (audit) => audit.verify(args))
).pipe(Command.withDescription(Help.describe(
  "Check the hash chain of audit log files. Prints OK with the entry count and the last line's seq and hash (keep them elsewhere to detect a cut-off end later), or the first broken line with its number and kind: malformed (cut off or not JSON), hash-mismatch (edited), broken-link (removed, inserted or moved), out-of-sequence, key-required, not-keyed (forged without the key).",
  [
    ["llm-gateway audit verify audit.jsonl", "OK or the first broken line (exit 1)"],
    ["llm-gateway audit verify --json audit.jsonl", "one JSON object"],
    ["LLM_GATEWAY_AUDIT_KEY=… llm-gateway audit verify audit.jsonl", "a keyed (HMAC) log"],
    ["llm-gateway audit verify --chain audit-1.jsonl audit-2.jsonl", "rotated files, oldest first"],
    ["llm-gateway audit verify --anchor 41:<hash> audit.jsonl", "also finds lines cut from the end since seq 41 was seen"]
  ],
  [
    "Without a key, anyone who can write the file can append a line with a correct hash; write with LLM_GATEWAY_AUDIT_KEY set to make forged lines detectable.",
    "Exit codes: 0 every file intact, 1 a chain is broken, 2 bad usage, 3 a file cannot be read or the key variable is not set."
  ]
)))

/**
 * The `audit` command group.
 *
 * @since 0.1.0
 * @category Commands
 */
export const command = Command.make("audit").pipe(
  Command.withDescription("Work with audit log files: 'audit verify FILE…' checks their hash chain"),
  Command.withSubcommands([verify])
)
