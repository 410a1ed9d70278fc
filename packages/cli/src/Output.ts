/**
 * Writing to the terminal: reply text to stdout as it streams, everything else to stderr, and
 * errors as one JSON object in `--json` mode.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Logger from "effect/Logger"

/**
 * Writes text to stdout without a newline.
 *
 * @since 0.1.0
 * @category Utils
 */
export const stdout = (text: string): Effect.Effect<void> => Effect.sync(() => void process.stdout.write(text))

/**
 * A complete tool call (or one that could not be used) as one terminal line: its id, the
 * tool's name and the redacted arguments (or what was wrong with them).
 *
 * @since 0.1.0
 * @category Utils
 */
export const toolCallLine = (
  part:
    | { readonly _tag: "ToolCall"; readonly id: string; readonly name: string; readonly rawArguments: string }
    | { readonly _tag: "ToolCallError"; readonly id: string; readonly name: string; readonly message: string }
): string =>
  part._tag === "ToolCall"
    ? oneLine(`[tool call ${part.id}: ${part.name} ${part.rawArguments}]`)
    : oneLine(`[tool call ${part.id}: ${part.name} unusable: ${part.message}]`)

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
  // A ConfigError names the variable through toString, not through a message: say it in words.
  if (ConfigError.isConfigError(error)) return { _tag: "ConfigError", message: oneLine(describeConfigError(error)) }
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
 * Sets the exit code the process ends with (see `llm-gateway --help` for the table).
 *
 * @since 0.1.0
 * @category Utils
 */
export const setExitCode = (code: number): Effect.Effect<void> =>
  Effect.sync(() => {
    process.exitCode = code
  })

/**
 * Advice shown after a setting's name when it is missing or invalid. Flags that set a
 * variable for one run are named too.
 */
const settingAdvice: Readonly<Record<string, string>> = {
  LLM_GATEWAY_API_KEY:
    "the gateway named by LLM_GATEWAY_BASE_URL (or --base-url) needs an API key: set LLM_GATEWAY_API_KEY, or unset LLM_GATEWAY_BASE_URL to use the embedded simulator",
  LLM_GATEWAY_BASE_URL: "give the gateway's base URL (--base-url), e.g. https://api.openai.com/v1; https unless the host is loopback",
  LLM_GATEWAY_PROFILE: "use gateway or openai (--profile)",
  LLM_GATEWAY_BUDGET_USD: "give a number of US dollars (--budget)",
  GENESYS_CLIENT_SECRET: "Genesys Cloud client credentials need the secret of the OAuth client named by GENESYS_CLIENT_ID",
  GENESYS_CLIENT_ID: "set the id of the Genesys Cloud OAuth client (client credentials grant)",
  GENESYS_ENVIRONMENT: "set your Genesys Cloud region, e.g. mypurecloud.com or mypurecloud.de",
  LLM_GATEWAY_AUDIT_KEY: "set a non-empty key, or unset it for an unkeyed audit log"
}

const leaves = (error: ConfigError.ConfigError): Array<ConfigError.ConfigError> => {
  switch (error._op) {
    case "And":
      return [...leaves(error.left), ...leaves(error.right)]
    case "Or": {
      // Of two alternatives, the one with invalid data says more than "missing".
      const left = leaves(error.left)
      const right = leaves(error.right)
      return left.some((e) => e._op === "InvalidData") || !right.some((e) => e._op === "InvalidData") ? left : right
    }
    default:
      return [error]
  }
}

const withoutStop = (text: string): string => (text.endsWith(".") ? text.slice(0, -1) : text)

/**
 * A `ConfigError` in plain words: which variable is not set or holds what it cannot use, and
 * what to do, e.g. "LLM_GATEWAY_API_KEY is not set (the gateway named by LLM_GATEWAY_BASE_URL
 * … needs an API key …)". Values are never shown.
 *
 * @since 0.1.0
 * @category Utils
 */
export const describeConfigError = (error: ConfigError.ConfigError): string => {
  const seen = new Set<string>()
  const parts: Array<string> = []
  for (const leaf of leaves(error)) {
    const path = "path" in leaf ? leaf.path : []
    const name = path.length === 0 ? "a setting" : path.join("_")
    if (seen.has(name)) continue
    seen.add(name)
    const advice = settingAdvice[path[0] ?? ""]
    const what = path.length === 0
      ? withoutStop(leaf.message)
      : leaf._op === "MissingData"
      ? `${name} is not set`
      : leaf._op === "InvalidData"
      ? `${name} is invalid: ${withoutStop(leaf.message)}`
      : `${name} could not be read: ${withoutStop(leaf.message)}`
    parts.push(advice === undefined ? what : `${what} (${advice})`)
  }
  return `${parts.join("; ")}.`
}

/**
 * Whether to colour what goes to `stream`: only on a terminal, and never when `NO_COLOR` is
 * set to anything but the empty string (https://no-color.org) or `TERM` is `dumb`.
 *
 * @since 0.1.0
 * @category Utils
 */
export const useColor = (
  stream: { readonly isTTY?: boolean | undefined },
  env: Readonly<Record<string, string | undefined>> = process.env
): boolean => stream.isTTY === true && (env.NO_COLOR === undefined || env.NO_COLOR === "") && env.TERM !== "dumb"

/**
 * Dims `text` for stderr on a terminal (notes around the reply), or leaves it plain.
 *
 * @since 0.1.0
 * @category Utils
 */
export const dim = (text: string): string => (useColor(process.stderr) ? `\u001b[2m${text}\u001b[22m` : text)

/**
 * Writes a warning line to stderr (the word in yellow on a terminal).
 *
 * @since 0.1.0
 * @category Utils
 */
export const warnLine = (text: string): Effect.Effect<void> =>
  stderrLine(useColor(process.stderr) ? `\u001b[33mwarning:\u001b[39m ${text}` : `warning: ${text}`)

/**
 * Formats a dollar amount with enough digits for per-request costs.
 *
 * @since 0.1.0
 * @category Utils
 */
export const usd = (amount: number): string => `$${amount.toFixed(6)}`

const levelNames: Readonly<Record<string, string>> = {
  Fatal: "fatal",
  Error: "error",
  Warning: "warning",
  Info: "info",
  Debug: "debug",
  Trace: "trace"
}

const logValue = (value: unknown): string => {
  if (typeof value === "string") return value
  if (value instanceof Error) return `${value.name}: ${value.message}`
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

/**
 * A logger that writes each record as one line, `warning: message [key=value, …] (cause)`,
 * to `write` (stderr by default): a log record never spreads over several lines or forges
 * one (see `oneLine`), and the level is coloured only on a terminal without `NO_COLOR`.
 *
 * @since 0.1.0
 * @category Utils
 */
export const lineLogger = (
  write: (line: string) => void = (line) => void process.stderr.write(line),
  color: boolean = useColor(process.stderr)
): Logger.Logger<unknown, void> =>
  Logger.make(({ annotations, cause, logLevel, message }) => {
    const parts = (Array.isArray(message) ? message : [message]).map(logValue)
    const fields = HashMap.toEntries(annotations).map(([key, value]) => `${key}=${logValue(value)}`)
    // The first line of a cause says what failed; its stack trace is for a debugger, not a log line.
    const why = Cause.isEmpty(cause) ? "" : ` (${Cause.pretty(cause).split("\n", 1)[0]})`
    const label = levelNames[logLevel._tag] ?? logLevel.label.toLowerCase()
    const text = oneLine(`${parts.join(" ")}${fields.length === 0 ? "" : ` [${fields.join(", ")}]`}${why}`)
    const shown = color ? `\u001b[${logLevel._tag === "Warning" ? 33 : logLevel._tag === "Info" ? 36 : 31}m${label}:\u001b[39m` : `${label}:`
    write(`${shown} ${text}\n`)
  })
