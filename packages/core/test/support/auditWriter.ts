/**
 * A second audit writer in its own process, for the writer-lock tests: opens
 * `AuditLog.layerFile(argv[2])`, appends one entry, prints `ready` (or the tag and message of
 * the start-up error) and holds the file until its stdin closes.
 */
import { NodeContext } from "@effect/platform-node"
import * as Effect from "effect/Effect"
import * as AuditLog from "../../src/AuditLog.js"

const path = process.argv[2]!
const program = Effect.gen(function*() {
  const audit = yield* AuditLog.AuditLog
  yield* audit.append({
    requestId: `child-${process.pid}`,
    timestamp: new Date(0).toISOString(),
    requestHash: "0".repeat(64),
    model: "m",
    outcome: "success",
    cached: false,
    inputRedactions: [],
    outputRedactions: [],
    droppedMessages: 0,
    durationMs: 1
  })
  process.stdout.write("ready\n")
  yield* Effect.async<void>((resume) => {
    process.stdin.on("end", () => resume(Effect.void))
    process.stdin.resume()
  })
}).pipe(
  Effect.provide(AuditLog.layerFile(path)),
  Effect.catchAll((error) => Effect.sync(() => process.stdout.write(`${error._tag}: ${error.message}\n`))),
  Effect.provide(NodeContext.layer)
)
Effect.runPromise(program).then(() => process.exit(0))
