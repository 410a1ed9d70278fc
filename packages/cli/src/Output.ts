/**
 * Writing to the terminal: reply text to stdout as it streams, everything else to stderr, and
 * errors as one JSON object in `--json` mode.
 *
 * @since 0.1.0
 */
import * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"

/**
 * Writes text to stdout without a newline.
 *
 * @since 0.1.0
 */
export const stdout = (text: string): Effect.Effect<void> => Effect.sync(() => void process.stdout.write(text))

/**
 * Writes a line to stderr.
 *
 * @since 0.1.0
 */
export const stderrLine = (text: string): Effect.Effect<void> =>
  Effect.sync(() => void process.stderr.write(`${text}\n`))

/**
 * The `_tag` and message of any failure the CLI can meet: our typed errors, a `ConfigError`
 * from the environment, or a scenario file error.
 *
 * @since 0.1.0
 */
export const describeError = (error: unknown): { readonly _tag: string; readonly message: string } => {
  // A ConfigError names the variable through toString, not through a message.
  if (ConfigError.isConfigError(error)) return { _tag: "ConfigError", message: String(error) }
  if (typeof error === "object" && error !== null && "_tag" in error) {
    const message = error instanceof Error ? error.message : String(error)
    return { _tag: String((error as { _tag: unknown })._tag), message }
  }
  return { _tag: "UnknownError", message: String(error) }
}

/**
 * Marks the process as failed without throwing, so output already written stays intact.
 *
 * @since 0.1.0
 */
export const setFailed: Effect.Effect<void> = Effect.sync(() => {
  process.exitCode = 1
})

/**
 * Formats a dollar amount with enough digits for per-request costs.
 *
 * @since 0.1.0
 */
export const usd = (amount: number): string => `$${amount.toFixed(6)}`
