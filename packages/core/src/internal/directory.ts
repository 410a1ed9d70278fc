/**
 * Creating a directory and its missing parents one level at a time. Node's recursive `mkdir`
 * never returns for some paths (under `/proc`, for one, it retries `ENOENT` forever and pins a
 * thread-pool thread), so it is not used: each missing level is created non-recursively and
 * the first failure ends the walk with a reason.
 *
 * @internal
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

/** More levels than any real path has; stops a walk that would not end. */
const maxLevels = 512

const describe = (error: unknown): string =>
  typeof error === "object" && error !== null && "message" in error ? String(error.message) : String(error)

const reasonOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "reason" in error ? String(error.reason) : undefined

/**
 * Makes sure `directory` exists and is a directory, creating missing levels one at a time
 * (mode 0777 before the umask, as `mkdir` does, unless `mode` is given). Fails with a human-readable reason, or when it takes longer than
 * `timeout` (a hung mount).
 *
 * @internal
 */
export const ensureDirectory = (
  fs: FileSystem.FileSystem,
  path: Path.Path,
  directory: string,
  options: { readonly timeout?: Duration.DurationInput; readonly mode?: number } = {}
): Effect.Effect<void, string> =>
  Effect.gen(function*() {
    const target = path.resolve(directory)
    const missing: Array<string> = []
    let current = target
    for (let level = 0;; level++) {
      if (level >= maxLevels) return yield* Effect.fail(`${target} has too many levels`)
      const info = yield* Effect.either(fs.stat(current))
      if (info._tag === "Right") {
        if (info.right.type !== "Directory") return yield* Effect.fail(`${current} exists and is not a directory`)
        break
      }
      // ENOTDIR: an ancestor is a file; walking on up names it.
      const notDirectory = describe(info.left).includes("ENOTDIR")
      if (reasonOf(info.left) !== "NotFound" && !notDirectory) {
        return yield* Effect.fail(`${current}: ${describe(info.left)}`)
      }
      missing.unshift(current)
      const parent = path.dirname(current)
      if (parent === current) return yield* Effect.fail(`no existing ancestor of ${target}`)
      current = parent
    }
    for (const level of missing) {
      const made = yield* Effect.either(fs.makeDirectory(level, { mode: options.mode ?? 0o777 }))
      if (made._tag === "Left") {
        // Another process may have created it meanwhile; anything else ends the walk.
        const info = yield* Effect.either(fs.stat(level))
        if (info._tag === "Right" && info.right.type === "Directory") continue
        return yield* Effect.fail(`cannot create ${level}: ${describe(made.left)}`)
      }
    }
  }).pipe(
    Effect.timeoutFail({
      duration: options.timeout ?? Duration.seconds(10),
      onTimeout: () => `creating ${directory} did not finish in ${Duration.format(Duration.decode(options.timeout ?? "10 seconds"))}`
    })
  )
