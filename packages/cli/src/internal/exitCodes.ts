/**
 * The exit codes of `llm-gateway`, one per class of failure, so scripts can tell a budget
 * refusal from an outage without parsing text. Listed in `--help` and docs/cli.md.
 */

/** Exit codes by class. */
export const ExitCode = {
  ok: 0,
  /** Anything else: a broken audit chain, an unexpected failure. */
  failure: 1,
  /** The command line could not be understood. */
  usage: 2,
  /** A setting, file or directory cannot be used (environment variable, audit file, cache dir, scenario file, port). */
  config: 3,
  /** The gateway refused the credentials or the permission. */
  auth: 4,
  /** The cost budget refused the request before it was sent. */
  budget: 5,
  /** The safety policy blocked the prompt. */
  safety: 6,
  /** The gateway failed: an HTTP error, rate limit, quota, broken connection or stream. */
  upstream: 7,
  /** A deadline ran out (handshake, first token, idle, total). */
  timeout: 8,
  /** The request itself is wrong: template, size limits, context window. */
  request: 9,
  /** Interrupted (Ctrl-C). */
  interrupted: 130
} as const

const byTag: Readonly<Record<string, number>> = {
  ConfigError: ExitCode.config,
  InvalidEnvironment: ExitCode.config,
  CacheDirectoryError: ExitCode.config,
  AuditFileError: ExitCode.config,
  AuditLogLocked: ExitCode.config,
  ScenarioFileError: ExitCode.config,
  ServerStartError: ExitCode.config,
  InputError: ExitCode.config,
  ConversationStoreError: ExitCode.config,
  AuthError: ExitCode.auth,
  PermissionDenied: ExitCode.auth,
  BudgetExceeded: ExitCode.budget,
  StoreUnavailable: ExitCode.budget,
  SafetyViolation: ExitCode.safety,
  UpstreamError: ExitCode.upstream,
  BadRequest: ExitCode.upstream,
  RateLimited: ExitCode.upstream,
  QuotaExhausted: ExitCode.upstream,
  ConnectionError: ExitCode.upstream,
  StreamProtocolError: ExitCode.upstream,
  StreamTruncated: ExitCode.upstream,
  ReplyTooLarge: ExitCode.upstream,
  ReplySchemaMismatch: ExitCode.upstream,
  RequestTimeout: ExitCode.timeout,
  TemplateError: ExitCode.request,
  InvalidRequest: ExitCode.request,
  ContextWindowExceeded: ExitCode.request
}

/** The exit code for an error `_tag` (1 for tags not listed). */
export const forTag = (tag: string): number => byTag[tag] ?? ExitCode.failure

/** The table as `--help` and docs/cli.md show it. */
export const summary: ReadonlyArray<readonly [number, string]> = [
  [0, "success"],
  [1, "other failure (e.g. a broken audit chain)"],
  [2, "bad usage: an unknown flag or a value it cannot take"],
  [3, "a setting, file or directory cannot be used (environment, --audit-file, --cache-dir, --scenario, --port, --conversation, --tools, --schema)"],
  [4, "authentication or permission refused"],
  [5, "the --budget (or LLM_GATEWAY_BUDGET_USD) refused the request before it was sent"],
  [6, "the safety policy blocked the prompt"],
  [7, "the gateway failed (HTTP error, rate limit, quota, connection, stream, a reply not matching --schema)"],
  [8, "a timeout (handshake, first token, idle, total)"],
  [9, "the request is invalid (template, size limits, context window)"],
  [130, "interrupted (Ctrl-C)"]
]
