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
 * @category Utils
 */
export const stdout = (text: string): Effect.Effect<void> => Effect.sync(() => void process.stdout.write(text))

/**
 * Writes a line to stderr.
 *
 * @since 0.1.0
 * @category Utils
 */
export const stderrLine = (text: string): Effect.Effect<void> =>
  Effect.sync(() => void process.stderr.write(`${text}\n`))

// Line breaks, other controls and invisible formatting characters in a message would forge or
// hide lines on the terminal; the library already sanitized what the gateway sent, this keeps
// any other text honest too.
// eslint-disable-next-line no-misleading-character-class
const INVISIBLE = /[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]/g
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g
const maxMessageLength = 2000

/**
 * Makes text safe for one terminal line: control characters become a space, invisible
 * formatting characters go, and the text is cut to 2000 characters.
 *
 * @since 0.1.0
 * @category Utils
 */
export const oneLine = (text: string): string => {
  const flat = text.replace(INVISIBLE, "").replace(CONTROL, " ")
  return flat.length > maxMessageLength ? `${flat.slice(0, maxMessageLength - 1)}…` : flat
}

/**
 * The `_tag` and message of any failure the CLI can meet: our typed errors, a `ConfigError`
 * from the environment, or a scenario file error. Both are single lines (see `oneLine`).
 *
 * @since 0.1.0
 * @category Utils
 */
export const describeError = (error: unknown): { readonly _tag: string; readonly message: string } => {
  // A ConfigError names the variable through toString, not through a message.
  if (ConfigError.isConfigError(error)) return { _tag: "ConfigError", message: oneLine(String(error)) }
  if (typeof error === "object" && error !== null && "_tag" in error) {
    const message = error instanceof Error ? error.message : String(error)
    return { _tag: oneLine(String((error as { _tag: unknown })._tag)), message: oneLine(message) }
  }
  return { _tag: "UnknownError", message: oneLine(String(error)) }
}

/**
 * Marks the process as failed without throwing, so output already written stays intact.
 *
 * @since 0.1.0
 * @category Utils
 */
export const setFailed: Effect.Effect<void> = Effect.sync(() => {
  process.exitCode = 1
})

/**
 * Formats a dollar amount with enough digits for per-request costs.
 *
 * @since 0.1.0
 * @category Utils
 */
export const usd = (amount: number): string => `$${amount.toFixed(6)}`
