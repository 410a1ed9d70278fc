/**
 * What `llm-gateway audit verify` does; loaded only when it runs.
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as AuditLog from "@llm-gateway/core/AuditLog"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import { stat } from "node:fs/promises"
import { parseAnchor, type VerifyArgs } from "../AuditCommand.js"
import * as Output from "../Output.js"
import { ExitCode } from "./exitCodes.js"

/** One file's result, as `--json` prints it. */
export type FileReport =
  | {
    readonly file: string
    readonly ok: true
    readonly entries: number
    readonly lastSeq: number | null
    readonly lastHash: string
    readonly keyed: boolean
  }
  | {
    readonly file: string
    readonly ok: false
    readonly line: number
    readonly kind: AuditLog.VerifyFailure
    readonly message: string
    readonly validEntries: number
  }
  | { readonly file: string; readonly ok: false; readonly error: { readonly _tag: string; readonly message: string } }

/** The key: from `--key-env VAR` (which must then be set), else `LLM_GATEWAY_AUDIT_KEY` if set. */
const readKey = (keyEnv: Option.Option<string>) =>
  Option.isSome(keyEnv)
    ? Config.redacted(Config.nonEmptyString(keyEnv.value)).pipe(Effect.map(Option.some))
    : AuditLog.keyConfig

/** The text line of a report. */
export const describe = (report: FileReport): string => {
  if (report.ok) {
    return `${report.file}: OK, ${report.entries} entr${report.entries === 1 ? "y" : "ies"}${
      report.lastSeq === null ? "" : ` (last line: seq ${report.lastSeq}, hash ${report.lastHash})`
    }${report.keyed ? ", HMAC verified" : ""}`
  }
  if ("error" in report) return `${report.file}: cannot be verified: ${report.error.message}`
  return `${report.file}: BROKEN at line ${report.line} (${report.kind}): ${report.message} ${report.validEntries} entr${
    report.validEntries === 1 ? "y before it is" : "ies before it are"
  } intact.`
}

/** Verifies each file, or the files as one rotated chain (each continuing the one before). */
export const verifyFiles = (
  files: ReadonlyArray<string>,
  options: {
    readonly key?: Redacted.Redacted<string> | undefined
    readonly chain?: boolean | undefined
    /** Checked in the last file (sequence numbers run across rotated files). */
    readonly anchor?: { readonly seq: number; readonly hash: string } | undefined
  } = {}
): Effect.Effect<Array<FileReport>, never, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const reports: Array<FileReport> = []
    let start: AuditLog.ChainHead | undefined = undefined
    for (const [index, file] of files.entries()) {
      const anchor = index === files.length - 1 ? options.anchor : undefined
      const name = Output.oneLine(file)
      // /dev/zero or a FIFO would be read forever (no line ever ends); only regular files.
      const kind = yield* Effect.promise(() => stat(file).then((info) => (info.isFile() ? "file" : "other"), () => "missing"))
      if (kind === "other") {
        reports.push({
          file: name,
          ok: false,
          error: { _tag: "AuditFileError", message: `The audit log ${name} is not a regular file.` }
        })
        start = undefined
        continue
      }
      const result: Either.Either<AuditLog.VerifyReport, AuditLog.AuditFileError> = yield* Effect.either(
        AuditLog.verifyFile(file, { key: options.key, start, anchor })
      )
      start = undefined
      if (Either.isLeft(result)) {
        reports.push({ file: name, ok: false, error: Output.describeError(result.left) })
      } else if (result.right._tag === "Valid") {
        const valid: Extract<AuditLog.VerifyReport, { _tag: "Valid" }> = result.right
        reports.push({
          file: name,
          ok: true,
          entries: valid.entries,
          lastSeq: valid.lastSeq ?? null,
          lastHash: valid.lastHash,
          keyed: options.key !== undefined
        })
        if (options.chain === true) start = valid.head
      } else {
        const invalid: Extract<AuditLog.VerifyReport, { _tag: "Invalid" }> = result.right
        reports.push({
          file: name,
          ok: false,
          line: invalid.line,
          kind: invalid.reason,
          message: invalid.message,
          validEntries: invalid.validEntries
        })
      }
    }
    return reports
  })

/** Verifies the files and prints the reports. */
export const verify = (args: VerifyArgs) =>
  Effect.gen(function*() {
    const key = yield* Effect.either(readKey(args.keyEnv))
    if (Either.isLeft(key)) {
      const described = Output.describeError(key.left)
      yield* args.json
        ? Output.stdout(JSON.stringify({ error: described }) + "\n")
        : Output.stderrLine(`error (${described._tag}): ${described.message}`)
      return yield* Output.setExitCode(ExitCode.config)
    }
    const anchor = Option.getOrUndefined(Option.map(args.anchor, parseAnchor))
    if (anchor !== undefined && args.files.length > 1 && !args.chain) {
      yield* Output.stderrLine(
        `llm-gateway: --anchor needs one file, or --chain for rotated files (it is checked in the last). See 'llm-gateway audit verify --help'.`
      )
      return yield* Output.setExitCode(ExitCode.usage)
    }
    const reports = yield* verifyFiles(args.files, { key: Option.getOrUndefined(key.right), chain: args.chain, anchor })
    for (const report of reports) {
      // The verdict is the output (stdout); a file that cannot be read is an error (stderr).
      if (!args.json) {
        yield* "error" in report ? Output.stderrLine(describe(report)) : Output.stdout(describe(report) + "\n")
      }
    }
    if (args.json) yield* Output.stdout(JSON.stringify({ ok: reports.every((r) => r.ok), files: reports }) + "\n")
    const broken = reports.some((r) => !r.ok && !("error" in r))
    const unreadable = reports.some((r) => !r.ok && "error" in r)
    if (broken) yield* Output.setExitCode(ExitCode.failure)
    else if (unreadable) yield* Output.setExitCode(ExitCode.config)
  }).pipe(Effect.provide(NodeFileSystem.layer))
