/**
 * AuditLog: one entry per request, whatever its outcome, with no secret and no raw PII,
 * chained by SHA-256 so that any edit, removal or reordering is detected.
 *
 * ## The chain
 *
 * Every persisted line is one JSON object: the entry's fields, then `seq`, `prevHash` and
 * `hash`:
 *
 * - `seq`: 0 for the first line of a chain, then +1 per line.
 * - `prevHash`: the `hash` of the line before; 64 zeros (`genesisHash`) on the first line.
 * - `hash`: `sha256hex(prevHash + canonicalJson(line without prevHash and hash))`, where
 *   canonical JSON sorts keys at every depth, has no whitespace and omits undefined fields.
 *
 * Editing any field of a line breaks its own `hash`; removing, inserting or reordering lines
 * breaks the next line's `prevHash` or `seq`; cutting a line in half makes it unreadable.
 * Removing whole lines from the end leaves a valid, shorter chain: to detect that (or a chain
 * recomputed from scratch by someone with write access), keep `{seq, hash}` of a recent line
 * somewhere else and pass it to `verify` as an anchor.
 *
 * ## Keyed chains
 *
 * With a key (`FileOptions.key`, `LLM_GATEWAY_AUDIT_KEY`), every line also carries
 * `"alg": "hmac-sha256"` and `hash` is `hmacSha256hex(key, prevHash + canonicalJson(body))`
 * over the same material. Without the key nobody can recompute a valid hash, so a forged or
 * edited line fails verification even when its author recomputed the plain SHA-256 chain.
 * `verify` needs the key for a keyed chain (and says so when it is missing); given a key, it
 * rejects unkeyed lines, so a keyed chain cannot be swapped for a recomputed unkeyed one.
 * Unkeyed files (no `alg`) are verified exactly as before.
 *
 * ## One writer
 *
 * `layerFile` holds `<path>.lock` (created exclusively, holding the writer's pid) while it is
 * open; a second writer, in this process or another, fails at start with `AuditLogLocked`.
 *
 * ## What an entry may hold
 *
 * Entries are encoded with the `AuditEntry` schema before they are chained, which drops every
 * field the schema does not declare, at every depth: an entry carries ids, counts, tags,
 * hashes, durations and costs, never prompt or reply text, and never a credential.
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { Cost, FinishReason, RedactionCount, Usage, UsageSource } from "./Chat.js"
import { canonicalJson } from "./internal/canonicalJson.js"
import { ensureDirectory } from "./internal/directory.js"
import { hmacSha256Hex, isSha256Hex, sha256Hex } from "./internal/hash.js"
import * as Json from "./internal/json.js"
import { randomUUID } from "node:crypto"

/**
 * What the pipeline records about one request.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const AuditEntry = Schema.Struct({
  requestId: Schema.String,
  timestamp: Schema.String,
  requestHash: Schema.String,
  model: Schema.String,
  outcome: Schema.Literal("success", "failure", "interrupted"),
  errorTag: Schema.optional(Schema.String),
  finishReason: Schema.optional(FinishReason),
  cached: Schema.Boolean,
  usage: Schema.optional(Usage),
  usageSource: Schema.optional(UsageSource),
  cost: Schema.optional(Cost),
  /** The gateway reported usage costing more than the request reserved (see CostMeter). */
  usageOverReservation: Schema.optional(Schema.Boolean),
  inputRedactions: Schema.Array(RedactionCount),
  outputRedactions: Schema.Array(RedactionCount),
  droppedMessages: Schema.Int,
  durationMs: Schema.Number,
  /** The names of the tools the request declared (never their schemas). */
  tools: Schema.optional(Schema.Array(Schema.String)),
  /**
   * The reply's tool calls: how many, how many could not be used, and the tool each called in
   * order (`(undeclared)` for a name the request did not declare); never their arguments.
   */
  toolCalls: Schema.optional(Schema.Struct({
    count: Schema.Int,
    failed: Schema.Int,
    names: Schema.Array(Schema.String)
  }))
})

/**
 * One decoded audit entry, as `AuditLog.append` receives it.
 *
 * @since 0.1.0
 * @category Models
 */
export type AuditEntry = typeof AuditEntry.Type

/**
 * The audit log: `append` records one entry per request, whatever its outcome. Layers decide where
 * it goes (console, hash-chained JSONL file, memory).
 *
 * @since 0.1.0
 * @category Models
 */
export interface Service {
  readonly append: (entry: AuditEntry) => Effect.Effect<void>
}

/**
 * The AuditLog service.
 *
 * @since 0.1.0
 * @category Services
 */
export class AuditLog extends Context.Tag("@llm-gateway/core/AuditLog")<AuditLog, Service>() {}

// ---------------------------------------------------------------------------------------------
// The chain
// ---------------------------------------------------------------------------------------------

/**
 * The `prevHash` of the first line of a chain.
 *
 * @since 0.1.0
 * @category Hash chain
 */
export const genesisHash = "0".repeat(64)

/**
 * A persisted line: an entry with its place in the chain.
 *
 * @since 0.1.0
 * @category Hash chain
 */
export type ChainedEntry = AuditEntry & {
  readonly seq: number
  readonly prevHash: string
  readonly hash: string
}

/**
 * Where a chain stands: the `seq` the next line gets and the `hash` it links to.
 *
 * @since 0.1.0
 * @category Hash chain
 */
export interface ChainHead {
  readonly seq: number
  readonly prevHash: string
}

/**
 * The `alg` field of the lines of a keyed chain.
 *
 * @since 0.1.0
 * @category Hash chain
 */
export const keyedAlg = "hmac-sha256"

/**
 * The hash of a line: `sha256hex(prevHash + canonicalJson(body))`, where `body` is the line
 * without `prevHash` and `hash` (the entry's fields, `seq`, and `alg` on keyed lines); with a
 * `key`, the HMAC-SHA-256 of the same material under that key.
 *
 * @since 0.1.0
 * @category Hash chain
 */
export const lineHash = (prevHash: string, body: object, key?: Redacted.Redacted<string>): string =>
  key === undefined
    ? sha256Hex(prevHash + canonicalJson(body))
    : hmacSha256Hex(Redacted.value(key), prevHash + canonicalJson(body))

const encodeEntry = Schema.encodeEither(AuditEntry)
const entryFields = Object.keys(AuditEntry.fields)

/** The entry as it is persisted: schema-encoded, so undeclared fields are dropped. */
const sanitize = (entry: AuditEntry): { readonly body: Record<string, unknown>; readonly issue?: string } => {
  const encoded = encodeEntry(entry)
  if (Either.isRight(encoded)) return { body: { ...encoded.right } }
  // A value outside the schema (a fractional count, say) is still recorded, field by declared
  // field, so the request is not missing from the log; the issue is reported separately.
  const body: Record<string, unknown> = {}
  for (const key of entryFields) {
    const value = (entry as Record<string, unknown>)[key]
    if (value !== undefined) body[key] = JSON.parse(JSON.stringify(value))
  }
  return { body, issue: ParseResult.TreeFormatter.formatErrorSync(encoded.left) }
}

/**
 * Links `entry` after `head`: the persisted line (without a newline), the entry as recorded
 * and the new head. With a `key` the line is keyed (`alg` and an HMAC, see the module doc).
 *
 * @since 0.1.0
 * @category Hash chain
 */
export const link = (head: ChainHead, entry: AuditEntry, key?: Redacted.Redacted<string>): {
  readonly line: string
  readonly entry: ChainedEntry
  readonly head: ChainHead
  readonly issue: string | undefined
} => {
  const { body, issue } = sanitize(entry)
  const withSeq = key === undefined ? { ...body, seq: head.seq } : { ...body, seq: head.seq, alg: keyedAlg }
  const hash = lineHash(head.prevHash, withSeq, key)
  const chained = { ...withSeq, prevHash: head.prevHash, hash } as unknown as ChainedEntry
  return { line: JSON.stringify(chained), entry: chained, head: { seq: head.seq + 1, prevHash: hash }, issue }
}

/**
 * Why verification stopped:
 *
 * - `malformed`: the line is not a JSON object with an integer `seq` and hex `prevHash`/`hash`
 *   (a cut-off line, a blank line, invalid UTF-8, a line over the size limit).
 * - `hash-mismatch`: the line's content does not match its `hash` (a field was edited).
 * - `broken-link`: `prevHash` is not the previous line's `hash` (a line was removed, inserted
 *   or moved).
 * - `out-of-sequence`: `seq` is not the previous line's `seq` + 1.
 * - `anchor-mismatch`: the line at the anchor's `seq` has another hash (the chain was rewritten).
 * - `truncated`: the log ends before the anchor's `seq` (lines were removed from the end).
 * - `key-required`: the line is keyed (`alg: "hmac-sha256"`) and no key was given: a keyed
 *   chain cannot be verified as unkeyed.
 * - `not-keyed`: a key was given but the line has no HMAC (written without the key, or forged
 *   with a recomputed plain hash).
 *
 * @since 0.1.0
 * @category Verification
 */
export type VerifyFailure =
  | "key-required"
  | "not-keyed"
  | "malformed"
  | "hash-mismatch"
  | "broken-link"
  | "out-of-sequence"
  | "anchor-mismatch"
  | "truncated"

/**
 * The outcome of verifying a log. `line` numbers are 1-based. `Valid` gives the newest line
 * to anchor elsewhere (`lastSeq`/`lastHash`) and the `head` a following (rotated) file must
 * continue; `Invalid` names the first bad line and how many lines before it were good.
 *
 * @since 0.1.0
 * @category Verification
 */
export type VerifyReport =
  | {
    readonly _tag: "Valid"
    readonly entries: number
    readonly lastSeq: number | undefined
    readonly lastHash: string
    readonly head: ChainHead
  }
  | {
    readonly _tag: "Invalid"
    readonly line: number
    readonly reason: VerifyFailure
    readonly validEntries: number
    readonly message: string
  }

/**
 * Options of `verify`:
 *
 * - `anchor`: a `{seq, hash}` recorded elsewhere earlier (from a `Valid` report or a line of
 *   the log); the log must contain that line, unchanged.
 * - `start`: the head the first line must continue (default `{seq: 0, prevHash: genesisHash}`),
 *   for a log file that was rotated: pass the `Valid` report of the previous file.
 * - `key`: the HMAC key the log was written with (see "Keyed chains"); required for a keyed
 *   log, and when given every line must be keyed.
 *
 * @since 0.1.0
 * @category Verification
 */
export interface VerifyOptions {
  readonly anchor?: { readonly seq: number; readonly hash: string } | undefined
  readonly start?: ChainHead | undefined
  readonly key?: Redacted.Redacted<string> | undefined
}

const messages: Record<VerifyFailure, string> = {
  "key-required": "is keyed (HMAC-SHA-256): pass the audit key (LLM_GATEWAY_AUDIT_KEY) to verify it",
  "not-keyed": "has no HMAC although a key was given: it was not written with the key (or was forged)",
  "malformed": "is not a chained audit entry (cut off, blank, not JSON, or missing seq/prevHash/hash)",
  "hash-mismatch": "does not match its hash: its content was changed",
  "broken-link": "does not link to the line before it: a line was removed, inserted or moved",
  "out-of-sequence": "has the wrong sequence number: a line was removed, inserted or moved",
  "anchor-mismatch": "differs from the anchored hash: the chain was rewritten",
  "truncated": "is missing: the log ends before the anchored line"
}

/** The chain fields of a line, or `undefined` when it is not a JSON object with a valid `seq`, `hash` and `prevHash`. */
const parseChainLine = (
  text: string | undefined
): { readonly hash: string; readonly prevHash: string; readonly seq: number; readonly body: Record<string, unknown> } | undefined => {
  const parsed = text === undefined ? Option.none() : Json.parseOption(text)
  if (Option.isNone(parsed)) return undefined
  const value = parsed.value
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined
  const { hash, prevHash, ...body } = value as Record<string, unknown>
  const seq = body.seq
  if (!isSha256Hex(hash) || !isSha256Hex(prevHash) || typeof seq !== "number" || !Number.isSafeInteger(seq)) {
    return undefined
  }
  return { hash, prevHash, seq, body }
}

/** An incremental verifier, fed one line at a time. */
class Verifier {
  private lineNumber = 0
  private head: ChainHead
  private readonly startSeq: number
  private failure: VerifyReport | undefined = undefined
  constructor(private readonly options: VerifyOptions) {
    this.head = options.start ?? { seq: 0, prevHash: genesisHash }
    this.startSeq = this.head.seq
  }

  get done(): boolean {
    return this.failure !== undefined
  }

  private fail(reason: VerifyFailure): void {
    this.failure = {
      _tag: "Invalid",
      line: this.lineNumber,
      reason,
      validEntries: this.head.seq - this.startSeq,
      message: `Line ${this.lineNumber} ${messages[reason]}.`
    }
  }

  /** Feeds one line (without its newline); `undefined` marks a line that could not be read. */
  push(text: string | undefined): void {
    if (this.failure !== undefined) return
    this.lineNumber++
    const line = parseChainLine(text)
    if (line === undefined) return this.fail("malformed")
    const { body, hash, prevHash, seq } = line
    if (body.alg !== undefined && body.alg !== keyedAlg) return this.fail("malformed")
    const keyed = body.alg === keyedAlg
    if (keyed && this.options.key === undefined) return this.fail("key-required")
    if (!keyed && this.options.key !== undefined) return this.fail("not-keyed")
    if (lineHash(prevHash, body, this.options.key) !== hash) return this.fail("hash-mismatch")
    if (prevHash !== this.head.prevHash) return this.fail("broken-link")
    if (seq !== this.head.seq) return this.fail("out-of-sequence")
    const anchor = this.options.anchor
    if (anchor !== undefined && anchor.seq === seq && anchor.hash !== hash) return this.fail("anchor-mismatch")
    this.head = { seq: seq + 1, prevHash: hash }
  }

  finish(): VerifyReport {
    if (this.failure !== undefined) return this.failure
    const anchor = this.options.anchor
    if (anchor !== undefined && anchor.seq >= this.head.seq) {
      this.lineNumber++
      this.fail("truncated")
      return this.failure!
    }
    return {
      _tag: "Valid",
      entries: this.head.seq - this.startSeq,
      lastSeq: this.head.seq === 0 ? undefined : this.head.seq - 1,
      lastHash: this.head.prevHash,
      head: this.head
    }
  }
}

/**
 * Verifies the lines of a log (without their newlines; a final empty line, left by the last
 * newline, is ignored) and reports the first bad line.
 *
 * @since 0.1.0
 * @category Verification
 */
export const verify = (lines: Iterable<string>, options: VerifyOptions = {}): VerifyReport => {
  const verifier = new Verifier(options)
  let pendingEmpty = false
  for (const line of lines) {
    if (pendingEmpty) verifier.push("")
    pendingEmpty = line === ""
    if (!pendingEmpty) verifier.push(line)
    if (verifier.done) break
  }
  return verifier.finish()
}

/**
 * Reading an audit log file failed (it is missing, unreadable or not a regular file).
 *
 * @since 0.1.0
 * @category Errors
 */
export class AuditFileError extends Schema.TaggedError<AuditFileError>("@llm-gateway/core/AuditFileError")(
  "AuditFileError",
  { path: Schema.String, reason: Schema.String }
) {
  override get message(): string {
    return `The audit log ${this.path} could not be read or opened: ${this.reason}.`
  }
}

/**
 * Another writer holds the audit file: a second `layerFile` on the same path, in this process
 * or another. Two writers would fork the chain (duplicate sequence numbers), so the second one
 * does not start.
 *
 * @since 0.1.0
 * @category Errors
 */
export class AuditLogLocked extends Schema.TaggedError<AuditLogLocked>("@llm-gateway/core/AuditLogLocked")(
  "AuditLogLocked",
  { path: Schema.String, lockFile: Schema.String, pid: Schema.optional(Schema.Number) }
) {
  override get message(): string {
    const holder = this.pid === undefined ? "another writer" : `process ${this.pid}`
    return `The audit log ${this.path} is already being written by ${holder} (lock file ${this.lockFile}). ` +
      `Use one writer per file: give this process its own audit file, or stop the other writer. ` +
      `If no writer is running, delete the lock file.`
  }
}

/** Lines longer than this are reported as malformed instead of being buffered. */
const maxLineBytes = 1024 * 1024

const describeFault = (error: unknown): string =>
  typeof error === "object" && error !== null && "message" in error ? String(error.message) : String(error)

/**
 * Verifies a JSONL audit log file, streaming it (memory stays bounded by the longest line,
 * itself capped at 1 MiB). Fails only when the file cannot be read.
 *
 * @example
 * import { NodeContext } from "@effect/platform-node"
 * import { AuditLog } from "@llm-gateway/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = AuditLog.verifyFile("audit.jsonl").pipe(
 *   Effect.tap((report) => Effect.log(report._tag === "Valid" ? "chain intact" : report.message)),
 *   Effect.provide(NodeContext.layer)
 * )
 *
 * @since 0.1.0
 * @category Verification
 */
export const verifyFile = (
  path: string,
  options: VerifyOptions = {}
): Effect.Effect<VerifyReport, AuditFileError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    // A device or FIFO (`/dev/zero`) never ends: only a regular file is read.
    const info = yield* fs.stat(path).pipe(
      Effect.mapError((error) => new AuditFileError({ path, reason: describeFault(error) }))
    )
    if (info.type !== "File") {
      return yield* new AuditFileError({ path, reason: `it is not a regular file (${info.type.toLowerCase()})` })
    }
    const verifier = new Verifier(options)
    const decoder = new TextDecoder("utf-8", { fatal: true })
    let parts: Array<Uint8Array> = []
    let length = 0
    let tooLong = false
    let endsWithNewline = true
    const endLine = () => {
      let text: string | undefined
      if (tooLong) {
        text = undefined
      } else {
        const bytes = new Uint8Array(length)
        let offset = 0
        for (const part of parts) {
          bytes.set(part, offset)
          offset += part.length
        }
        try {
          text = decoder.decode(bytes)
        } catch {
          text = undefined
        }
      }
      verifier.push(text)
      parts = []
      length = 0
      tooLong = false
    }
    const onBytes = (chunk: Uint8Array) => {
      let start = 0
      while (start < chunk.length && !verifier.done) {
        const newline = chunk.indexOf(10, start)
        const end = newline === -1 ? chunk.length : newline
        if (!tooLong) {
          if (length + (end - start) > maxLineBytes) {
            tooLong = true
            parts = []
          } else if (end > start) {
            parts.push(chunk.slice(start, end))
          }
          length += end - start
        }
        if (newline === -1) {
          endsWithNewline = false
          return
        }
        endsWithNewline = true
        endLine()
        start = newline + 1
      }
    }
    yield* fs.stream(path).pipe(
      Stream.runForEachWhile((chunk) =>
        Effect.sync(() => {
          onBytes(chunk)
          return !verifier.done
        })
      ),
      Effect.mapError((error) => new AuditFileError({ path, reason: describeFault(error) }))
    )
    if (!endsWithNewline && !verifier.done) endLine()
    return verifier.finish()
  })

// ---------------------------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------------------------

/**
 * Serializes appends: each entry is linked and written while holding one permit, and the
 * whole append is uninterruptible, so an interrupted request is still audited and concurrent
 * requests can never interleave or fork the chain.
 */
const makeAppender = (
  initial: ChainHead,
  write: (line: string, entry: ChainedEntry) => Effect.Effect<void>,
  semaphore: Effect.Semaphore = Effect.unsafeMakeSemaphore(1),
  key?: Redacted.Redacted<string>
): Service => {
  let head = initial
  return {
    append: (entry) =>
      semaphore.withPermits(1)(Effect.suspend(() => {
        const linked = link(head, entry, key)
        head = linked.head
        const reportIssue = linked.issue === undefined ? Effect.void : Effect.logError(
          "AuditLog: an entry does not match the AuditEntry schema; its declared fields were recorded as given",
          linked.issue
        )
        return Effect.zipRight(reportIssue, write(linked.line, linked.entry))
      })).pipe(Effect.uninterruptible)
  }
}

/**
 * Writes one JSON line per entry to standard output through the Effect `Console`, chained from
 * `genesisHash` at every start (a console has no earlier lines to read back), for log
 * collectors that keep stdout.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerConsole: Layer.Layer<AuditLog> = Layer.sync(
  AuditLog,
  () => makeAppender({ seq: 0, prevHash: genesisHash }, (line) => Console.log(line))
)

/**
 * Read access to the entries of `layerMemory`, for tests.
 *
 * @since 0.1.0
 * @category Services
 */
export class MemoryAuditLog extends Context.Tag("@llm-gateway/core/MemoryAuditLog")<MemoryAuditLog, {
  /** The entries as recorded (schema-encoded, with `seq`, `prevHash` and `hash`). */
  readonly entries: Effect.Effect<ReadonlyArray<ChainedEntry>>
  /** The persisted lines, for `verify`. */
  readonly lines: Effect.Effect<ReadonlyArray<string>>
}>() {}

/**
 * Keeps the chained entries in memory, readable through `MemoryAuditLog`.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerMemory: Layer.Layer<AuditLog | MemoryAuditLog> = Layer.effectContext(
  Effect.gen(function*() {
    const lines: Array<string> = []
    const entries: Array<ChainedEntry> = []
    const service = makeAppender({ seq: 0, prevHash: genesisHash }, (line, entry) =>
      Effect.sync(() => {
        lines.push(line)
        entries.push(entry)
      }))
    return Context.make(AuditLog, service).pipe(
      Context.add(MemoryAuditLog, {
        entries: Effect.sync(() => entries.slice()),
        lines: Effect.sync(() => lines.slice())
      })
    )
  })
)

/**
 * Options of the file log.
 *
 * - `sync`: fsync after every line (default `true`): an entry is on disk when `append`
 *   returns. `false` leaves flushing to the operating system (faster, but a power loss can
 *   drop the newest entries).
 * - `retryEvery`: how often lines kept after a write failure are retried in the background
 *   (default 5 seconds); every `append` also retries them first.
 * - `maxPending`: how many lines are kept in memory while writes fail (default 10,000).
 * - `key`: an HMAC key (non-empty); every line is then keyed (see "Keyed chains" in the module
 *   doc). A file must be written with one key throughout: a keyed writer does not continue an
 *   unkeyed file, nor an unkeyed writer a keyed one (rotate to a new file to change).
 *
 * @since 0.1.0
 * @category Config
 */
export interface FileOptions {
  readonly sync?: boolean | undefined
  readonly retryEvery?: Duration.DurationInput | undefined
  readonly maxPending?: number | undefined
  readonly key?: Redacted.Redacted<string> | undefined
}

/** How much of the end of the file is read at start-up to find the chain's head. */
const tailBytes = 1024 * 1024

/**
 * The head a line leaves, `"key-required"` / `"not-keyed"` when the line was written in the
 * other mode, `"key-mismatch"` for a keyed line that does not verify, `undefined` when the
 * line is not an intact chained entry.
 */
const parseHead = (
  text: string,
  key: Redacted.Redacted<string> | undefined
): ChainHead | "key-required" | "not-keyed" | "key-mismatch" | undefined => {
  const line = parseChainLine(text)
  if (line === undefined) return undefined
  const { body, hash, prevHash, seq } = line
  const keyed = body.alg === keyedAlg
  if (body.alg !== undefined && !keyed) return undefined
  if (keyed && key === undefined) return lineHash(prevHash, body) === hash ? undefined : "key-required"
  if (!keyed && key !== undefined) return lineHash(prevHash, body) === hash ? "not-keyed" : undefined
  if (lineHash(prevHash, body, key) === hash) return { seq: seq + 1, prevHash: hash }
  return keyed ? "key-mismatch" : undefined
}

/** The end of the file as read at start-up: its size, where the bytes start, the bytes. */
interface Tail {
  readonly size: bigint
  readonly start: bigint
  readonly bytes: Uint8Array
}

/** Reads the last `tailBytes` of the file (nothing when it does not exist). */
const readTail = (fs: FileSystem.FileSystem, path: string) =>
  Effect.scoped(Effect.gen(function*() {
    if (!(yield* fs.exists(path))) return { size: 0n, start: 0n, bytes: new Uint8Array(0) } satisfies Tail
    const file = yield* fs.open(path, { flag: "r" })
    const size = (yield* file.stat).size as bigint
    const start = size > BigInt(tailBytes) ? size - BigInt(tailBytes) : 0n
    yield* file.seek(start, "start")
    const bytes = new Uint8Array(Number(size - start))
    let filled = 0
    while (filled < bytes.length) {
      const read = Number(yield* file.read(bytes.subarray(filled)))
      if (read === 0) break
      filled += read
    }
    return { size, start, bytes: bytes.subarray(0, filled) } satisfies Tail
  }))

/**
 * Where a chain continues, from the last bytes of its file (pure; what `layerFile` does at
 * start-up): the head left by the newest intact line, whether the last line is cut off
 * (`torn`), and how many complete lines after it are not intact (`skipped`); or why a writer
 * with this `key` must not continue the file (`Refused`: written in the other mode, or no line
 * verifies with the key). `start` is the file offset of `bytes` (a first partial line is
 * ignored when it is not 0).
 *
 * @since 0.1.0
 * @category Hash chain
 */
export const recoverHead = (
  tail: { readonly start: bigint; readonly bytes: Uint8Array },
  key: Redacted.Redacted<string> | undefined
):
  | { readonly _tag: "Recovered"; readonly head: ChainHead; readonly torn: boolean; readonly skipped: number }
  | { readonly _tag: "Refused"; readonly reason: string } =>
{
  const text = new TextDecoder("utf-8").decode(tail.bytes)
  const segments = text.split("\n")
  const torn = tail.bytes.length > 0 && tail.bytes[tail.bytes.length - 1] !== 10
  const complete = segments.slice(tail.start > 0n ? 1 : 0, -1)
  let skipped = 0
  let keyMismatch = false
  for (let i = complete.length - 1; i >= 0; i--) {
    const found = parseHead(complete[i]!, key)
    if (found === "key-required") {
      return {
        _tag: "Refused",
        reason: "it was written with an HMAC key; set the same key (LLM_GATEWAY_AUDIT_KEY) or write to a new file"
      }
    }
    if (found === "not-keyed") {
      return {
        _tag: "Refused",
        reason:
          "it was written without an HMAC key, and a keyed chain cannot continue it; write to a new file to turn the key on"
      }
    }
    if (found === "key-mismatch") keyMismatch = true
    if (found !== undefined && typeof found === "object") return { _tag: "Recovered", head: found, torn, skipped }
    skipped++
  }
  if (keyMismatch && skipped === complete.length) {
    return {
      _tag: "Refused",
      reason: "none of its last lines verifies with the given HMAC key; is it the key the file was written with?"
    }
  }
  return { _tag: "Recovered", head: { seq: 0, prevHash: genesisHash }, torn, skipped }
}

/**
 * The durable writer behind `layerFile`: each line is written whole with one `write` on the
 * append-mode handle and fsynced (unless `sync` is off). A failed write is logged once, the
 * line stays queued in chain order, partial bytes are cut off the file, and the queue is
 * retried before the next line and every `retryEvery` (under `lock`); past `maxPending`, and
 * when the scope closes, lines that cannot be written are logged in full.
 */
const makeDurableWriter = (
  file: FileSystem.File,
  written: bigint,
  options: { readonly sync: boolean; readonly maxPending: number; readonly retryEvery: Duration.DurationInput },
  lock: Effect.Semaphore
): Effect.Effect<(line: string) => Effect.Effect<void>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const encoder = new TextEncoder()
    const pending: Array<string> = []
    let size = written
    let damaged = false
    let failing = false

    /** Cuts the file back to its last whole line after a failed write left part of one. */
    const repair = Effect.gen(function*() {
      if (!damaged) return
      const actual = (yield* file.stat).size as bigint
      if (actual > size) yield* file.truncate(size)
      damaged = false
    })

    const writeOne = (line: string) =>
      Effect.gen(function*() {
        yield* repair
        const bytes = encoder.encode(line + "\n")
        yield* file.writeAll(bytes).pipe(
          Effect.tapError(() =>
            Effect.suspend(() => {
              damaged = true
              return Effect.ignore(repair)
            })
          )
        )
        size += BigInt(bytes.length)
        if (options.sync) {
          yield* file.sync.pipe(
            Effect.catchAll((error) =>
              Effect.logError("AuditLog: fsync of the audit log failed; the entry may not be durable", error)
            )
          )
        }
      })

    const logLine = (line: string) =>
      Effect.logError("AuditLog: an entry could not be written to the audit log and is recorded here instead").pipe(
        Effect.annotateLogs({ "auditLog.line": line })
      )

    /** Writes queued lines in order; stops at the first failure, keeping the rest queued. */
    const flush = Effect.gen(function*() {
      while (pending.length > 0) {
        const result = yield* Effect.either(writeOne(pending[0]!))
        if (Either.isLeft(result)) {
          if (!failing) {
            failing = true
            yield* Effect.logError(
              `AuditLog: writing the audit log failed; ${pending.length} entry(ies) are kept in memory and retried`,
              result.left
            )
          }
          while (pending.length > options.maxPending) yield* logLine(pending.shift()!)
          return
        }
        pending.shift()
        if (failing) {
          failing = false
          yield* Effect.logInfo("AuditLog: writing the audit log works again; queued entries were written")
        }
      }
    })
    const guardedFlush = lock.withPermits(1)(Effect.suspend(() => (pending.length === 0 ? Effect.void : flush)))

    yield* Effect.sleep(options.retryEvery).pipe(Effect.zipRight(guardedFlush), Effect.forever, Effect.forkScoped)
    yield* Effect.addFinalizer(() =>
      guardedFlush.pipe(
        Effect.zipRight(Effect.suspend(() => Effect.forEach(pending.splice(0), logLine, { discard: true }))),
        Effect.catchAllCause((cause) => Effect.logError("AuditLog: closing the audit log failed", Cause.pretty(cause)))
      )
    )
    return (line: string) =>
      Effect.suspend(() => {
        pending.push(line)
        return flush
      })
  })

/** Whether a process with this pid exists (EPERM: it exists but belongs to another user). */
const isAlive = (pid: number): boolean => {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as { code?: unknown }).code === "EPERM"
  }
}

/** A lock file younger than this without a readable pid is being written, not abandoned. */
const lockSettleMillis = 10_000

/**
 * Takes `lockFile` for this writer: created exclusively (`wx`) holding the pid and a token of
 * this Layer instance, removed by the finalizer if it is still ours. A lock whose process is
 * gone is taken over with a warning. Two processes taking over the same stale lock at the
 * same instant can still race; a live holder is never displaced.
 */
const acquireLock = (
  fs: FileSystem.FileSystem,
  path: string,
  lockFile: string
): Effect.Effect<void, AuditFileError | AuditLogLocked, Scope.Scope> => {
  const fault = (error: unknown) => new AuditFileError({ path: lockFile, reason: describeFault(error) })
  const content = `${process.pid}\n${randomUUID()}\n`
  const create = Effect.scoped(Effect.gen(function*() {
    const file = yield* fs.open(lockFile, { flag: "wx", mode: 0o600 })
    yield* file.writeAll(new TextEncoder().encode(content))
  }))
  const alreadyExists = (error: unknown) =>
    typeof error === "object" && error !== null && (error as { reason?: unknown }).reason === "AlreadyExists"
  const attempt = (takeOver: boolean): Effect.Effect<void, AuditFileError | AuditLogLocked> =>
    create.pipe(Effect.catchAll((error) =>
      !alreadyExists(error) ? Effect.fail(fault(error)) : Effect.gen(function*() {
        const held = yield* fs.readFileString(lockFile).pipe(Effect.option)
        if (Option.isNone(held)) return yield* (takeOver ? attempt(false) : Effect.fail(new AuditLogLocked({ path, lockFile })))
        const pid = Number(held.value.split("\n", 1)[0])
        const readable = /^[0-9]+\n/.test(held.value)
        if (readable && isAlive(pid)) return yield* Effect.fail(new AuditLogLocked({ path, lockFile, pid }))
        if (!readable) {
          const age = yield* fs.stat(lockFile).pipe(
            Effect.map((info) => Option.match(info.mtime, { onNone: () => Infinity, onSome: (t) => Date.now() - t.getTime() })),
            Effect.orElseSucceed(() => Infinity)
          )
          if (age < lockSettleMillis) return yield* Effect.fail(new AuditLogLocked({ path, lockFile }))
        }
        if (!takeOver) return yield* Effect.fail(new AuditLogLocked({ path, lockFile, ...(readable ? { pid } : {}) }))
        yield* Effect.logWarning(
          `AuditLog: taking over the stale lock ${lockFile} of ${readable ? `process ${pid}, which is gone` : "an unknown writer"}`
        )
        // Remove it only if it is still the stale lock we read, then create ours exclusively.
        const again = yield* fs.readFileString(lockFile).pipe(Effect.option)
        if (Option.isSome(again) && again.value === held.value) yield* Effect.ignore(fs.remove(lockFile))
        return yield* attempt(false)
      })
    ))
  const release = fs.readFileString(lockFile).pipe(
    Effect.flatMap((held) => (held === content ? fs.remove(lockFile) : Effect.void)),
    Effect.catchAll((error) => Effect.logWarning("AuditLog: could not remove the audit log's lock file", describeFault(error)))
  )
  return Effect.acquireRelease(attempt(true), () => release)
}

/**
 * Appends chained JSON lines to `path` (created with mode 0600 if missing, along with its
 * directory).
 *
 * At start-up the end of the file is read and the chain continues from its newest intact line,
 * so restarts extend one chain. A cut-off last line (a crash during a write) is ended with a
 * newline and left in place, and an error is logged: `verifyFile` will report it, which is the
 * truth.
 *
 * One writer per file: the Layer holds `<path>.lock` (created with `O_EXCL`, holding its pid)
 * from before it reads the head until it closes. A second writer, in this process or another,
 * fails at start with `AuditLogLocked`; a lock left by a process that is gone is taken over
 * with a warning. With `options.key` every line is keyed (HMAC-SHA-256); a file written in the
 * other mode, or with another key, fails the start with `AuditFileError`.
 *
 * Write policy: appends are serialized by a semaphore and each line is written whole with one
 * `write` on an append-mode handle, then fsynced (see `FileOptions.sync`). When a write
 * fails, the error is logged at Error level, the line stays queued in memory in chain order,
 * any partial bytes of it are cut off the file, and the queue is retried before the next
 * append and every `retryEvery`; the request itself never fails. Past `maxPending` queued
 * lines, or when the Layer closes with lines still queued, each line that cannot be written
 * is logged in full at Error level (lines hold no PII), so no entry is lost silently; the
 * file's chain then shows a gap where it belongs. Failing to read or open the file at
 * start-up fails the Layer with `AuditFileError`.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerFile = (
  path: string,
  options: FileOptions = {}
): Layer.Layer<AuditLog, AuditFileError | AuditLogLocked, FileSystem.FileSystem | Path.Path> =>
  Layer.scoped(
    AuditLog,
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const pathService = yield* Path.Path
      const fault = (error: unknown) => new AuditFileError({ path, reason: describeFault(error) })

      const key = options.key
      if (key !== undefined && Redacted.value(key).length === 0) {
        return yield* Effect.fail(new AuditFileError({ path, reason: "the audit key is empty; give a non-empty key or none" }))
      }

      yield* ensureDirectory(fs, pathService, pathService.dirname(pathService.resolve(path))).pipe(
        Effect.mapError((reason) => new AuditFileError({ path, reason }))
      )
      // Held from before the head is read, so no other writer can extend the chain meanwhile.
      yield* acquireLock(fs, path, `${pathService.resolve(path)}.lock`)

      // Find the head of the chain in the last megabyte of the file.
      const tail = yield* readTail(fs, path).pipe(Effect.mapError(fault))
      const recovered = recoverHead(tail, key)
      if (recovered._tag === "Refused") return yield* Effect.fail(new AuditFileError({ path, reason: recovered.reason }))
      if (recovered.torn) {
        yield* Effect.logError(
          "AuditLog: the last line of the audit log is cut off (a crash during a write?); it is kept and verifyFile will report it"
        )
      }
      if (recovered.skipped > 0) {
        yield* Effect.logError(
          `AuditLog: the last ${recovered.skipped} complete line(s) of the audit log are not intact chained entries; the chain continues from the newest intact line and verifyFile will report the damage`
        )
      }

      const file = yield* fs.open(path, { flag: "a", mode: 0o600 }).pipe(Effect.mapError(fault))
      let size = tail.size
      if (recovered.torn) {
        yield* file.writeAll(new TextEncoder().encode("\n")).pipe(Effect.mapError(fault))
        size += 1n
      }
      const lock = yield* Effect.makeSemaphore(1)
      const write = yield* makeDurableWriter(file, size, {
        sync: options.sync ?? true,
        maxPending: Math.max(1, Math.floor(options.maxPending ?? 10_000)),
        retryEvery: options.retryEvery ?? "5 seconds"
      }, lock)
      return makeAppender(recovered.head, write, lock, key)
    })
  )

/**
 * The audit key from `LLM_GATEWAY_AUDIT_KEY` (optional, `Redacted`, non-empty when set).
 *
 * @since 0.1.0
 * @category Config
 */
export const keyConfig: Config.Config<Option.Option<Redacted.Redacted<string>>> = Config.option(
  Config.redacted("LLM_GATEWAY_AUDIT_KEY").pipe(
    Config.validate({ message: "LLM_GATEWAY_AUDIT_KEY must not be empty (unset it for an unkeyed log)", validation: (key) => Redacted.value(key).length > 0 })
  )
)

/**
 * `layerFile` with its HMAC key read from `LLM_GATEWAY_AUDIT_KEY` (see `keyConfig`); unset
 * means an unkeyed chain. A key that is set but empty fails the Layer with a `ConfigError`.
 *
 * @example
 * import { NodeContext } from "@effect/platform-node"
 * import { AuditLog } from "@llm-gateway/core"
 * import * as Layer from "effect/Layer"
 *
 * const AuditLive = AuditLog.layerFileConfig("audit.jsonl").pipe(Layer.provide(NodeContext.layer))
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerFileConfig = (
  path: string,
  options: Omit<FileOptions, "key"> = {}
): Layer.Layer<AuditLog, AuditFileError | AuditLogLocked | ConfigError.ConfigError, FileSystem.FileSystem | Path.Path> =>
  Layer.unwrapEffect(
    Effect.map(keyConfig, (key) => layerFile(path, { ...options, key: Option.getOrUndefined(key) }))
  )
