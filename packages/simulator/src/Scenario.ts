/**
 * Scenarios: what the simulated gateway answers to one request. A scenario describes the reply
 * (text or exact tokens), its timing, its usage numbers and finish reason, and any faults:
 * failing attempts before the success (429 with `Retry-After`, 5xx, 401 that revokes the token,
 * 403 …), and faults inside the stream (an `error` object, a dropped connection, a stall, a
 * malformed event, a missing `[DONE]`, an oversized event, keep-alive comments, arbitrary
 * splits of the bytes). Scenarios are plain JSON, decoded with `Scenario`, so the same file
 * drives the in-process Layer, the test server and `llm-gateway sim --scenario FILE`.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"

/**
 * A scenario name: what follows `sim:` in a model id, or the value of the
 * `x-simulator-scenario` header.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ScenarioName = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/),
  Schema.annotations({ description: "letters, digits, '.', '_' or '-', starting with a letter or digit" })
)

const Millis = Schema.NonNegativeInt.annotations({ description: "milliseconds" })
const Count = Schema.NonNegativeInt
const Headers = Schema.Record({ key: Schema.String, value: Schema.String })

/**
 * One scripted answer that comes before the successful one: a status with its headers and
 * body. `times` repeats it (a large number makes a fault permanent). `retryAfter` sets the
 * `Retry-After` header (seconds, or an HTTP-date written as a string) and `retryAfterMs` the
 * `retry-after-ms` header. Without `body`, the body is the platform's error shape for the
 * status: Genesys `{message, code, status, contextId, details}` on the gateway endpoint, the
 * OpenAI `{error: {message, type, param, code}}` on `/v1`. A 401 on the gateway endpoint also
 * revokes the bearer token that was presented, like an expired token, so the client must fetch
 * a new one; set `revokeToken: false` to keep it. In `body`, `headers` and `contentType` the
 * placeholders `{{authorization}}` and `{{credential}}` are replaced by what the caller sent
 * (see `Script.fillCredentials`), to play a gateway that echoes secrets.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const Attempt = Schema.Struct({
  status: Schema.Int.pipe(Schema.between(100, 599)),
  times: Schema.optional(Schema.Int.pipe(Schema.positive())),
  retryAfter: Schema.optional(Schema.Union(Schema.NonNegative, Schema.String)),
  retryAfterMs: Schema.optional(Count),
  headers: Schema.optional(Headers),
  body: Schema.optional(Schema.Union(Schema.String, Schema.Record({ key: Schema.String, value: Schema.Unknown }))),
  contentType: Schema.optional(Schema.String),
  delayMs: Schema.optional(Millis),
  revokeToken: Schema.optional(Schema.Boolean)
})

/**
 * One decoded scripted attempt of a scenario.
 *
 * @since 0.1.0
 * @category Models
 */
export type Attempt = typeof Attempt.Type

/**
 * Latencies, all in milliseconds of the Effect `Clock` (so tests drive them with `TestClock`):
 * `headersMs` until the response headers, `firstTokenMs` from the headers to the first token,
 * `tokenMs` between two tokens, plus a seeded random `jitterMs` (0 to `jitterMs`) per token.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const Timing = Schema.Struct({
  headersMs: Schema.optional(Millis),
  firstTokenMs: Schema.optional(Millis),
  tokenMs: Schema.optional(Millis),
  jitterMs: Schema.optional(Millis)
})

/**
 * The decoded pacing of a scenario's reply.
 *
 * @since 0.1.0
 * @category Models
 */
export type Timing = typeof Timing.Type

/**
 * How the body bytes are cut into network chunks: one chunk per SSE event (`event`, the
 * default), every `bytes` bytes (`fixed`), or at seeded random offsets of 1 to `maxBytes`
 * bytes (`random`). `fixed` and `random` cut through events, lines and multi-byte UTF-8
 * characters alike.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const Split = Schema.Union(
  Schema.Struct({ mode: Schema.Literal("event") }),
  Schema.Struct({ mode: Schema.Literal("fixed"), bytes: Schema.Int.pipe(Schema.positive()) }),
  Schema.Struct({ mode: Schema.Literal("random"), maxBytes: Schema.Int.pipe(Schema.positive()) })
)

/**
 * How a decoded scenario cuts its body into network chunks: per event, fixed size or random.
 *
 * @since 0.1.0
 * @category Models
 */
export type Split = typeof Split.Type

/**
 * Faults inside a response that started with 200. Token positions count content tokens of
 * all choices, in the order they are sent:
 *
 * - `errorAfter`: after that many tokens, an `{"error": {...}}` event, then the stream closes.
 *   Its texts, like `contentType`, may hold the credential placeholders (see `Attempt`).
 * - `dropAfter`: after that many tokens the connection is cut (no terminating chunk).
 * - `stallAfter`: after that many tokens nothing more is sent (keep-alives continue if set).
 * - `endAfter`: after that many tokens the body ends cleanly, with no finish reason, no usage
 *   and no `[DONE]`.
 * - `malformedAfter`: after that many tokens, one event whose data is not valid JSON.
 * - `omitDone`: the stream ends without `data: [DONE]` (finish reason and usage still sent).
 * - `oversized`: after `afterTokens` tokens, one `data:` line of `bytes` bytes; with
 *   `terminated: false` the line never ends and the body closes after it.
 * - `contentType`: the content type of the 200 response (e.g. `text/html`).
 * - `endless`: the reply never ends: after its tokens they are sent again and again, as
 *   `delta` (`content`, the default, or `refusal`) of choice `choice` (default 0), with no
 *   finish reason, no usage and no `[DONE]`, until the client goes away. A request's
 *   `max_tokens` still cuts it (and ends it with `length`) unless the scenario sets
 *   `ignoreMaxTokens`.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const Faults = Schema.Struct({
  errorAfter: Schema.optional(Schema.Struct({
    tokens: Count,
    message: Schema.optional(Schema.String),
    type: Schema.optional(Schema.String),
    code: Schema.optional(Schema.NullOr(Schema.String))
  })),
  dropAfter: Schema.optional(Count),
  stallAfter: Schema.optional(Count),
  endAfter: Schema.optional(Count),
  malformedAfter: Schema.optional(Count),
  omitDone: Schema.optional(Schema.Boolean),
  oversized: Schema.optional(Schema.Struct({
    afterTokens: Schema.optional(Count),
    bytes: Schema.Int.pipe(Schema.positive(), Schema.lessThanOrEqualTo(64 * 1024 * 1024)),
    terminated: Schema.optional(Schema.Boolean)
  })),
  contentType: Schema.optional(Schema.String),
  endless: Schema.optional(Schema.Struct({
    delta: Schema.optional(Schema.Literal("content", "refusal")),
    choice: Schema.optional(Schema.Int.pipe(Schema.between(0, 127)))
  }))
})

/**
 * The decoded faults a scenario injects into its reply.
 *
 * @since 0.1.0
 * @category Models
 */
export type Faults = typeof Faults.Type

/**
 * The usage numbers a scenario reports: given numbers (`total_tokens` defaults to the sum),
 * `"computed"` (the default: completion tokens as streamed, prompt tokens counted with the
 * simulator's deterministic tokenizer plus the chat overhead of 3 per message and 3 to prime
 * the reply), or `"omit"` (never send a usage chunk, even when asked).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const UsageSpec = Schema.Union(
  Schema.Literal("computed", "omit"),
  Schema.Struct({
    prompt_tokens: Count,
    completion_tokens: Count,
    total_tokens: Schema.optional(Count)
  })
)

/**
 * What a decoded scenario reports as usage.
 *
 * @since 0.1.0
 * @category Models
 */
export type UsageSpec = typeof UsageSpec.Type

/**
 * A reply: the text (cut into tokens by the simulator's tokenizer) or the exact tokens.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const Reply = Schema.Union(Schema.String, Schema.Array(Schema.String))

/**
 * A decoded scenario reply: the text or its exact tokens.
 *
 * @since 0.1.0
 * @category Models
 */
export type Reply = typeof Reply.Type

/**
 * One tool call a scenario answers with: the tool's `name` (default: the request's tool at the
 * same position) and its `arguments`, a JSON value, or a string sent as the arguments' text as
 * it is (malformed JSON included). Without `arguments`, an example of the tool's parameters
 * whose strings hold the echo.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ToolCallSpec = Schema.Struct({
  name: Schema.optional(Schema.String),
  arguments: Schema.optional(Schema.Unknown)
})

/**
 * One decoded tool call of a scenario.
 *
 * @since 0.1.0
 * @category Models
 */
export type ToolCallSpec = typeof ToolCallSpec.Type

/**
 * One scenario. Every field but `name` is optional:
 *
 * - `reply`: the text or tokens of choice 0. Without it the simulator echoes the newest user
 *   message (`You said: …`), so the reply shows what reached the gateway.
 * - `n` and `alternatives`: how many choices to stream (a request's own `n` wins when larger)
 *   and the replies of choices 1, 2, … (default: the reply of choice 0). Choices are
 *   interleaved token by token, as the platform does.
 * - `finishReason` (default `stop`); a request's `max_tokens` cuts the reply and reports
 *   `length`, unless `ignoreMaxTokens` is set (a gateway that does not honour it).
 * - `usage`, `timing`, `attempts` (answers before the success, see `Attempt`), `headers`
 *   (extra headers on the 200), `faults` (see `Faults`), `split` (see `Split`).
 * - `keepAliveMs`: a `: keep-alive` comment whenever that long passed without an event,
 *   during waits and stalls.
 * - `retryMs`: a leading `retry:` field. `lineEnding`: `lf` (default), `crlf` or `cr`.
 * - `seed`: drives ids, jitter and random splits; the same seed gives the same bytes.
 * - `jsonReply`: without `reply`, answer with a JSON value that fits the request's schema
 *   (structured output: the `openai` body's `response_format`, or the schema line of the
 *   instruction the gateway profile appends to `systemInstruction`), strings holding the echo;
 *   `{"reply": "You said: …"}` when the request has no schema.
 * - `toolCalls`: answer with tool calls instead of text while the request's last message is
 *   not a tool result: `"first"` (the request's first tool), `"all"` (each of its tools, in
 *   parallel) or a list of `ToolCallSpec`. Streamed as real gateways do: one call after the
 *   other by `index`, `id` and `name` in the first fragment only, the arguments' JSON text cut
 *   into pieces of 1 to 8 characters, then `finish_reason: "tool_calls"`. Once the request
 *   ends with tool results, the reply is `reply`, or `Tool results: …` quoting them. A request
 *   without tools (or with `tool_choice: "none"`) gets text.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const Scenario = Schema.Struct({
  name: ScenarioName,
  description: Schema.optional(Schema.String),
  seed: Schema.optional(Schema.Int),
  reply: Schema.optional(Reply),
  n: Schema.optional(Schema.Int.pipe(Schema.between(1, 128))),
  alternatives: Schema.optional(Schema.Array(Reply)),
  finishReason: Schema.optional(Schema.String),
  ignoreMaxTokens: Schema.optional(Schema.Boolean),
  usage: Schema.optional(UsageSpec),
  timing: Schema.optional(Timing),
  attempts: Schema.optional(Schema.Array(Attempt)),
  headers: Schema.optional(Headers),
  faults: Schema.optional(Faults),
  split: Schema.optional(Split),
  keepAliveMs: Schema.optional(Schema.Int.pipe(Schema.positive())),
  retryMs: Schema.optional(Count),
  lineEnding: Schema.optional(Schema.Literal("lf", "crlf", "cr")),
  jsonReply: Schema.optional(Schema.Boolean),
  toolCalls: Schema.optional(Schema.Union(Schema.Literal("first", "all"), Schema.Array(ToolCallSpec)))
})

/**
 * One decoded scenario: its name, reply and faults.
 *
 * @since 0.1.0
 * @category Models
 */
export type Scenario = typeof Scenario.Type

/**
 * What a scenario file holds: one scenario, a list of them, or `{ scenarios, defaultScenario }`
 * where `defaultScenario` names the scenario for model ids without the `sim:` prefix.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ScenarioFile = Schema.Union(
  Scenario,
  Schema.Array(Scenario),
  Schema.Struct({
    scenarios: Schema.Array(Scenario),
    defaultScenario: Schema.optional(ScenarioName)
  })
)

/**
 * The decoded contents of a scenario file.
 *
 * @since 0.1.0
 * @category Models
 */
export type ScenarioFile = typeof ScenarioFile.Type

/**
 * A scenario file could not be used: it is missing or unreadable, is not JSON, or does not
 * match the `Scenario` schema. `reason` names the offending path and field, never more of the
 * file than that.
 *
 * @since 0.1.0
 * @category Errors
 */
export class ScenarioFileError extends Schema.TaggedError<ScenarioFileError>(
  "@llm-gateway/simulator/ScenarioFileError"
)("ScenarioFileError", {
  path: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `The scenario file ${this.path} cannot be used: ${this.reason}`
  }
}

/**
 * The scenarios and default scenario a file declares, with duplicate names rejected.
 *
 * @since 0.1.0
 * @category Models
 */
export interface ScenarioSet {
  readonly scenarios: ReadonlyArray<Scenario>
  readonly defaultScenario: string | undefined
}

/**
 * Decodes the text of a scenario file (JSON). `path` only labels the error.
 *
 * @since 0.1.0
 * @category Decoding
 */
export const decodeFileText = (path: string, text: string): Effect.Effect<ScenarioSet, ScenarioFileError> =>
  Effect.gen(function*() {
    const json = yield* Effect.try({
      try: () => JSON.parse(text) as unknown,
      catch: (cause) =>
        new ScenarioFileError({
          path,
          reason: `it is not valid JSON (${cause instanceof Error ? cause.message : String(cause)})`
        })
    })
    const decoded = yield* Schema.decodeUnknown(ScenarioFile, { errors: "all", onExcessProperty: "error" })(json).pipe(
      Effect.mapError((error) =>
        new ScenarioFileError({ path, reason: ParseResult.TreeFormatter.formatErrorSync(error) })
      )
    )
    const set: ScenarioSet = Array.isArray(decoded)
      ? { scenarios: decoded, defaultScenario: undefined }
      : "scenarios" in decoded
      ? { scenarios: decoded.scenarios, defaultScenario: decoded.defaultScenario }
      : { scenarios: [decoded as Scenario], defaultScenario: undefined }
    const seen = new Set<string>()
    for (const scenario of set.scenarios) {
      if (seen.has(scenario.name)) {
        return yield* new ScenarioFileError({ path, reason: `the scenario name "${scenario.name}" is used twice` })
      }
      seen.add(scenario.name)
    }
    if (set.defaultScenario !== undefined && !seen.has(set.defaultScenario) && !builtinNames.has(set.defaultScenario)) {
      return yield* new ScenarioFileError({
        path,
        reason: `defaultScenario "${set.defaultScenario}" names no scenario of the file and no built-in scenario`
      })
    }
    return set
  })

const forever = 1_000_000_000

const endlessReply =
  "All work and no play makes a model a dull boy, so it keeps talking, one sentence after another, and never stops. "

/**
 * The address the `echo-secrets*` scenarios put beside the echoed credentials.
 *
 * @since 0.1.0
 * @category Scenarios
 */
export const echoedEmail = "jane.doe@example.com"

/**
 * A token-endpoint failure for the simulator's `tokenAttempts` option: 401 whose OAuth
 * `error` and `error_description` echo the client's `Authorization: Basic …` header, the
 * base64 credentials and an email address.
 *
 * @since 0.1.0
 * @category Scenarios
 */
export const echoSecretsTokenAttempt: Attempt = {
  status: 401,
  headers: { "inin-correlation-id": `correlation: {{authorization}} ${echoedEmail}` },
  body: {
    error: `error: {{authorization}} / {{credential}} / ${echoedEmail}`,
    error_description: `description: {{authorization}} / {{credential}} / ${echoedEmail}`
  }
}

/**
 * A hostile gateway that echoes the caller's credentials and an email address in every field
 * it can: the `{{authorization}}` and `{{credential}}` placeholders (see
 * `Script.fillCredentials`) in the error body's `message`, `code` and `contextId`, the
 * correlation and rate-limit headers, an in-stream error and the content type.
 */
function echoSecretScenarios(): ReadonlyArray<Scenario> {
  const echo = (field: string) => `${field}: {{authorization}} / {{credential}} / ${echoedEmail}`
  const body = (status: number) => ({
    message: echo("message"),
    code: echo("code"),
    status,
    contextId: echo("contextId"),
    details: [],
    errors: []
  })
  const headers = { "inin-correlation-id": echo("correlation"), "x-request-id": echo("request-id") }
  return [
    {
      name: "echo-secrets",
      description: "400 every time; message, code, contextId and correlation header echo the credentials and an email.",
      attempts: [{ status: 400, times: forever, headers, body: body(400) }]
    },
    {
      name: "echo-secrets-401",
      description: "401 every time (the token is not revoked), echoing the credentials and an email in every field.",
      attempts: [{ status: 401, times: forever, revokeToken: false, headers, body: body(401) }]
    },
    {
      name: "echo-secrets-429",
      description: "429 asking to wait an hour, echoing the credentials and an email in the body and the rate-limit headers.",
      attempts: [{
        status: 429,
        times: forever,
        retryAfter: 3_600,
        headers: {
          ...headers,
          "inin-ratelimit-count": echo("count"),
          "inin-ratelimit-allowed": echo("allowed"),
          "inin-ratelimit-reset": echo("reset")
        },
        body: body(429)
      }]
    },
    {
      name: "echo-secrets-stream",
      description: "An in-stream error after 2 tokens whose message and code echo the credentials and an email.",
      reply: "This reply breaks off with an error that repeats what the caller sent.",
      faults: { errorAfter: { tokens: 2, message: echo("message"), type: echo("type"), code: echo("code") } }
    },
    {
      name: "echo-secrets-content-type",
      description: "A 200 whose Content-Type is not an event stream and echoes the credentials and an email.",
      reply: "Never read.",
      faults: { contentType: `text/html; echo="{{authorization}} ${echoedEmail}"` }
    }
  ]
}

/**
 * The scenarios every simulator knows, by name. `echo` is the default for model ids without
 * the `sim:` prefix. A scenario of the same name passed in the options replaces a built-in.
 *
 * @since 0.1.0
 * @category Scenarios
 */
export const builtins: ReadonlyArray<Scenario> = [
  { name: "echo", description: "Echoes the newest user message as 'You said: …', with computed usage." },
  { name: "hello", description: "A fixed short reply.", reply: "Hello! How can I help you today?" },
  {
    name: "json",
    description: "Answers with JSON that fits the request's schema (structured output), strings holding the echo.",
    jsonReply: true
  },
  {
    name: "tools",
    description:
      "Calls the request's first tool (arguments from its parameters, streamed in pieces), then answers with text once the tool's result comes back.",
    toolCalls: "first"
  },
  {
    name: "tools-parallel",
    description: "Calls every tool of the request at once (parallel calls), then answers with text once the results come back.",
    toolCalls: "all"
  },
  {
    name: "slow",
    description: "A fixed reply at a human reading pace (800 ms to the first token, 60 ms per token).",
    reply: "Streaming one token at a time, the way a real model does it, so you can watch it arrive.",
    timing: { firstTokenMs: 800, tokenMs: 60, jitterMs: 20 }
  },
  {
    name: "utf8",
    description: "Multi-byte characters cut at random byte offsets (inside UTF-8 sequences).",
    reply: "Grüße aus Köln — 東京から 👋🏽, ça va? Ünïcödé ✓",
    split: { mode: "random", maxBytes: 3 }
  },
  {
    name: "split-bytes",
    description: "The whole body cut at random offsets of 1 to 7 bytes.",
    reply: "Every event arrives in pieces, and some pieces carry the end of one event and the start of the next.",
    split: { mode: "random", maxBytes: 7 }
  },
  { name: "crlf", description: "SSE lines end with CRLF.", reply: "Lines end with CR LF.", lineEnding: "crlf" },
  { name: "cr", description: "SSE lines end with a bare CR.", reply: "Lines end with CR alone.", lineEnding: "cr" },
  {
    name: "retry-field",
    description: "The stream starts with a `retry:` field, which must not delay anything.",
    reply: "A retry field came first.",
    retryMs: 30_000
  },
  {
    name: "keep-alive",
    description: "Keep-alive comments every second during a 5 s wait for the first token.",
    reply: "Worth the wait.",
    timing: { firstTokenMs: 5_000, tokenMs: 10 },
    keepAliveMs: 1_000
  },
  {
    name: "n3",
    description: "Three choices, interleaved token by token.",
    reply: "The first answer.",
    n: 3,
    alternatives: ["The second answer.", "The third answer, a little longer than the others."]
  },
  { name: "length", description: "Finishes with `length`.", reply: "This reply was cut short by the", finishReason: "length" },
  { name: "no-usage", description: "Never sends a usage chunk.", reply: "No usage numbers here.", usage: "omit" },
  {
    name: "rate-limited",
    description: "429 with Retry-After: 2 and the Genesys rate-limit headers, then 200.",
    reply: "Served after a rate limit.",
    attempts: [{ status: 429, retryAfter: 2 }]
  },
  {
    name: "rate-limited-long",
    description: "429 asking to wait an hour, every time.",
    attempts: [{ status: 429, retryAfter: 3_600, times: forever }]
  },
  {
    name: "server-error",
    description: "503 then 502, then 200.",
    reply: "Served after two server errors.",
    attempts: [{ status: 503 }, { status: 502 }]
  },
  { name: "unavailable", description: "503 every time.", attempts: [{ status: 503, times: forever }] },
  {
    name: "unauthorized",
    description: "401 once (the presented token is revoked), then 200 with a new token.",
    reply: "Served with a fresh token.",
    attempts: [{ status: 401 }]
  },
  { name: "forbidden", description: "403 every time.", attempts: [{ status: 403, times: forever }] },
  { name: "bad-request", description: "400 every time.", attempts: [{ status: 400, times: forever }] },
  {
    name: "html-200",
    description: "A 200 whose body is an HTML page (a proxy's login page).",
    attempts: [{
      status: 200,
      times: forever,
      contentType: "text/html; charset=utf-8",
      body: "<!doctype html><html><body>Please sign in</body></html>"
    }]
  },
  {
    name: "slow-handshake",
    description: "The response headers take 60 s.",
    reply: "Finally.",
    timing: { headersMs: 60_000 }
  },
  {
    name: "error-mid-stream",
    description: "An error object after 3 tokens of a 200 stream.",
    reply: "This reply breaks off with an error object after a few tokens.",
    faults: { errorAfter: { tokens: 3, message: "The model is overloaded.", type: "server_error", code: null } }
  },
  {
    name: "drop",
    description: "The connection is cut after 3 tokens.",
    reply: "This reply is cut off when the connection drops after a few tokens.",
    faults: { dropAfter: 3 }
  },
  {
    name: "stall",
    description: "Nothing more after 3 tokens.",
    reply: "This reply stalls after a few tokens and never finishes.",
    faults: { stallAfter: 3 }
  },
  {
    name: "stall-keep-alive",
    description: "After 3 tokens only keep-alive comments, every second, forever.",
    reply: "This reply stalls after a few tokens while the connection stays alive.",
    faults: { stallAfter: 3 },
    keepAliveMs: 1_000
  },
  {
    name: "truncated",
    description: "The body ends cleanly after 3 tokens: no finish reason, no usage, no [DONE].",
    reply: "This reply ends early without any sign of finishing.",
    faults: { endAfter: 3 }
  },
  {
    name: "malformed",
    description: "An event with invalid JSON after 2 tokens.",
    reply: "This reply contains a broken event.",
    faults: { malformedAfter: 2 }
  },
  {
    name: "no-done",
    description: "Finish reason and usage arrive, `data: [DONE]` does not.",
    reply: "No done marker follows.",
    faults: { omitDone: true }
  },
  {
    name: "oversized",
    description: "A 2 MiB event after 1 token.",
    reply: "An oversized event follows.",
    faults: { oversized: { afterTokens: 1, bytes: 2 * 1024 * 1024 } }
  },
  {
    name: "endless",
    description: "A reply that never ends: tokens keep coming, no finish reason, no [DONE]; max_tokens still cuts it.",
    reply: endlessReply,
    faults: { endless: {} }
  },
  {
    name: "endless-refusal",
    description: "A refusal that never ends.",
    reply: endlessReply,
    faults: { endless: { delta: "refusal" } }
  },
  {
    name: "ignores-max-tokens",
    description: "Ignores the request's max_tokens and never stops sending tokens.",
    reply: endlessReply,
    ignoreMaxTokens: true,
    faults: { endless: {} }
  },
  {
    name: "usage-oversized",
    description: "A short reply whose usage chunk reports 10^15 completion tokens.",
    reply: "A short reply with an absurd bill.",
    usage: { prompt_tokens: 12, completion_tokens: 1_000_000_000_000_000 }
  },
  {
    name: "endless-line",
    description: "A 2 MiB line with no line ending after 1 token, then the body closes.",
    reply: "An endless line follows.",
    faults: { oversized: { afterTokens: 1, bytes: 2 * 1024 * 1024, terminated: false } }
  },
  ...echoSecretScenarios()
]

const builtinNames = new Set(builtins.map((scenario) => scenario.name))

/**
 * The name of the default scenario.
 *
 * @since 0.1.0
 * @category Scenarios
 */
export const defaultScenarioName = "echo"
