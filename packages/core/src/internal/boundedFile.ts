/**
 * Reading a whole file that must stay under a size bound: its type and size are checked before
 * it is opened (a FIFO would block `open`, a device never ends), and at most `maxBytes + 1`
 * bytes are read, so a file that grows meanwhile is still caught.
 *
 * @internal
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type { PlatformError } from "@effect/platform/Error"
import * as Effect from "effect/Effect"

/** What a bounded read found. */
export type Read =
  | { readonly _tag: "Missing" }
  | { readonly _tag: "NotAFile" }
  | { readonly _tag: "TooLarge" }
  | { readonly _tag: "Text"; readonly text: string }

/** Reads `file` as UTF-8 text when it is a regular file of at most `maxBytes` bytes. */
export const readText = (fs: FileSystem.FileSystem, file: string, maxBytes: number): Effect.Effect<Read, PlatformError> =>
  Effect.gen(function*() {
    const info = yield* Effect.either(fs.stat(file))
    if (info._tag === "Left") {
      const error = info.left
      if (error._tag === "SystemError" && error.reason === "NotFound") return { _tag: "Missing" } as const
      return yield* Effect.fail(error)
    }
    if (info.right.type !== "File") return { _tag: "NotAFile" } as const
    if (Number(info.right.size) > maxBytes) return { _tag: "TooLarge" } as const
    return yield* Effect.scoped(Effect.gen(function*() {
      const handle = yield* fs.open(file, { flag: "r" })
      const buffer = new Uint8Array(Math.min(Number(info.right.size), maxBytes) + 1)
      let filled = 0
      while (filled < buffer.length) {
        const read = Number(yield* handle.read(buffer.subarray(filled)))
        if (read === 0) break
        filled += read
      }
      if (filled > maxBytes) return { _tag: "TooLarge" } as const
      return { _tag: "Text", text: new TextDecoder("utf-8").decode(buffer.subarray(0, filled)) } as const
    }))
  })
