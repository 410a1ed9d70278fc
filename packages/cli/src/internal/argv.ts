/**
 * A strict first look at the command line, before @effect/cli parses it: @effect/cli takes an
 * unknown `--flag` for the positional message and reports bad values without naming the flag,
 * so this check gives one line that names the flag and what it expects.
 */

/** What a flag takes: nothing (a switch) or a value described for the error message. */
export type Flag =
  | { readonly _tag: "Switch" }
  | {
    readonly _tag: "Value"
    readonly expects: string
    readonly check?: (value: string) => boolean
    /** May be given more than once (`--var`). */
    readonly repeatable?: boolean
  }

/**
 * A subcommand's flags and how many positional arguments it takes (`Infinity` for a list of
 * files), or, for a command such as `audit` that only groups others, its nested commands.
 */
export interface Spec {
  readonly flags: Readonly<Record<string, Flag>>
  readonly positionals: number
  /** At least this many positionals, described by `operand` ("an audit file"). */
  readonly required?: { readonly count: number; readonly operand: string } | undefined
  readonly subcommands?: Readonly<Record<string, Spec>> | undefined
}

/** A switch. */
export const switchFlag: Flag = { _tag: "Switch" }

/** A flag that takes a value. */
export const valueFlag = (expects: string, check?: (value: string) => boolean, repeatable = false): Flag => ({
  _tag: "Value",
  expects,
  ...(check === undefined ? {} : { check }),
  ...(repeatable ? { repeatable } : {})
})

/** Whole numbers only (no exponent, no fraction). */
export const isInteger = (value: string): boolean => /^-?\d+$/.test(value) && Number.isSafeInteger(Number(value))

/** A finite decimal number. */
export const isNumber = (value: string): boolean =>
  /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(value) && Number.isFinite(Number(value))

/** An absolute http or https URL. */
export const isHttpUrl = (value: string): boolean => {
  try {
    const url = new URL(value)
    return url.protocol === "http:" || url.protocol === "https:"
  } catch {
    return false
  }
}

// Built into @effect/cli for every command.
const builtIn: Readonly<Record<string, Flag>> = {
  "--help": switchFlag,
  "-h": switchFlag,
  "--version": switchFlag,
  "--wizard": switchFlag,
  "--completions": valueFlag("a shell: bash, fish, sh or zsh", (v) => ["bash", "fish", "sh", "zsh"].includes(v)),
  "--log-level": valueFlag(
    "a log level: all, trace, debug, info, warning, error, fatal or none",
    (v) => ["all", "trace", "debug", "info", "warning", "error", "fatal", "none"].includes(v)
  )
}

const quote = (text: string): string => JSON.stringify(text.length > 60 ? `${text.slice(0, 57)}...` : text)

/**
 * The problem with the arguments (without the program name), or `undefined` when they look
 * right. The message is one line and ends with where to find help.
 */
export const check = (
  program: string,
  args: ReadonlyArray<string>,
  commands: Readonly<Record<string, Spec>>,
  parent?: string
): string | undefined => {
  const names = Object.keys(commands)
  const first = args[0]
  if (first === undefined) return undefined
  const spec = commands[first]
  if (spec === undefined) {
    if (first in builtIn) return undefined
    return `unknown command ${quote(first)}: expected one of ${names.join(", ")}. See '${program} --help'.`
  }
  if (spec.subcommands !== undefined) {
    // `audit verify …`: the group takes only a nested command (or the built-in flags).
    const nested = Object.keys(spec.subcommands)
    const second = args[1]
    if (second === undefined) {
      return `'${first}' needs a command: ${nested.join(", ")}. See '${program} ${first} --help'.`
    }
    if (second.startsWith("-") && (second in builtIn)) return undefined
    if (spec.subcommands[second] === undefined) {
      return `unknown command ${quote(`${first} ${second}`)}: expected ${
        nested.map((n) => `'${first} ${n}'`).join(", ")
      }. See '${program} ${first} --help'.`
    }
    return check(program, args.slice(1), spec.subcommands, first)
  }
  const label = parent === undefined ? first : `${parent} ${first}`
  const help = `See '${program} ${label} --help'.`
  let positionals = 0
  let asksHelp = false
  const given = new Set<string>()
  for (let i = 1; i < args.length; i++) {
    const arg = args[i]!
    if (arg === "--") {
      positionals += args.length - i - 1
      break
    }
    if (arg.startsWith("-") && arg.length > 1 && !isNumber(arg)) {
      const eq = arg.indexOf("=")
      const name = eq > 0 ? arg.slice(0, eq) : arg
      const flag = spec.flags[name] ?? builtIn[name]
      if (flag === undefined) return `unknown option ${name} for '${label}'. ${help}`
      if (name === "--help" || name === "-h") asksHelp = true
      if (flag._tag === "Switch") {
        if (eq > 0) return `${name} takes no value. ${help}`
        continue
      }
      if (given.has(name) && flag.repeatable !== true) return `${name} is given more than once. ${help}`
      given.add(name)
      const value = eq > 0 ? arg.slice(eq + 1) : args[++i]
      if (value === undefined || (eq < 0 && value.startsWith("--"))) {
        return `${name} expects ${flag.expects}, but no value was given. ${help}`
      }
      if (flag.check !== undefined && !flag.check(value)) {
        return `${name} expects ${flag.expects}, got ${quote(value)}. ${help}`
      }
      continue
    }
    positionals++
  }
  if (positionals > spec.positionals) {
    return spec.positionals === 0
      ? `'${label}' takes no arguments. ${help}`
      : `'${label}' takes at most ${spec.positionals} argument${spec.positionals === 1 ? "" : "s"} (quote a message with spaces). ${help}`
  }
  if (spec.required !== undefined && positionals < spec.required.count && !asksHelp) {
    return `'${label}' needs ${spec.required.operand}. ${help}`
  }
  return undefined
}
