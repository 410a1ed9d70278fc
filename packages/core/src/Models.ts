/**
 * Models: what the gateway knows about each model it can call (context window, largest reply,
 * tokenizer), so that prompts are counted with the model's own encoding and fitted to its own
 * window.
 *
 * A model id resolves by exact match first, then by family: the id is shortened one `-segment`
 * at a time until a registered name matches, so `gpt-4o-mini-2024-07-18` finds `gpt-4o-mini`
 * and `gpt-4-0613` finds `gpt-4`, while `gpt-4o` and `gpt-4.1` never fall into `gpt-4`. Case is
 * ignored, a provider prefix (`openai/gpt-4o`, `azure/gpt-35-turbo`) and the fine-tuning wrapper
 * (`ft:gpt-4o-mini-2024-07-18:org::id`) are looked through. Ids that match nothing get
 * `fallback`: `o200k_base` and a deliberately small window, so an unknown model is trimmed too
 * much rather than overflowing; register the model to lift that.
 *
 * @since 0.1.0
 */
import type * as Config from "effect/Config"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"

/**
 * The longest model id a request may name. Real ids are far shorter (a Bedrock inference
 * profile ARN, among the longest, is under 120 characters); the bound keeps per-model caches
 * and log lines small.
 *
 * @since 0.1.0
 * @category Utils
 */
export const maxModelIdLength = 256

const modelIdPattern = /^[A-Za-z0-9][A-Za-z0-9._:/@+=-]*$/

/**
 * Whether `model` is a usable model id: 1 to `maxModelIdLength` characters from letters,
 * digits and `. _ : / @ + = -`, starting with a letter or digit. That covers OpenAI, Azure
 * deployment, Bedrock, Vertex, OpenRouter and Hugging Face ids, and keeps control characters
 * (a CR/LF that would forge log lines), spaces and quotes out.
 *
 * @since 0.1.0
 * @category Guards
 */
export const isModelId = (model: unknown): model is string => typeof model === "string" && validId(model)

const validId = (model: string): boolean => model.length <= maxModelIdLength && modelIdPattern.test(model)

/**
 * A model id in a request, validated with `isModelId`.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ModelId = Schema.String.pipe(
  Schema.filter((model) =>
    validId(model) ||
    (model.length === 0
      ? "must not be empty"
      : model.length > maxModelIdLength
      ? `must be at most ${maxModelIdLength} characters (maxModelIdLength)`
      : "must be letters, digits and . _ : / @ + = - only, starting with a letter or digit")
  )
)

/**
 * `model` as it may appear in a log line or span: unchanged when it is a valid id (see
 * `isModelId`), otherwise JSON-quoted (control characters escaped) and cut to 64 characters.
 *
 * @since 0.1.0
 * @category Utils
 */
export const printableId = (model: string): string =>
  validId(model) ? model : JSON.stringify(model.length > 64 ? `${model.slice(0, 61)}...` : model)

/**
 * The tiktoken encodings of the chat models: `o200k_base` (gpt-4o, gpt-4.1, gpt-4.5, gpt-5 and
 * the o-series) and `cl100k_base` (gpt-4, gpt-4-turbo, gpt-3.5-turbo).
 *
 * @since 0.1.0
 * @category Schemas
 */
export const Encoding = Schema.Literal("o200k_base", "cl100k_base")

/**
 * A tiktoken encoding name: `o200k_base` or `cl100k_base`.
 *
 * @since 0.1.0
 * @category Models
 */
export type Encoding = typeof Encoding.Type

/**
 * What the gateway needs to know about a model: the context window (prompt and reply together),
 * the most tokens one reply may have, and the tokenizer's encoding. Both sizes are positive
 * integers; decoding this schema is how registered models are validated.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ModelInfo = Schema.Struct({
  contextWindow: Schema.Int.pipe(Schema.positive()),
  maxOutputTokens: Schema.Int.pipe(Schema.positive()),
  encoding: Encoding
})

/**
 * A decoded model description: context window, most reply tokens and encoding.
 *
 * @since 0.1.0
 * @category Models
 */
export type ModelInfo = typeof ModelInfo.Type

const info = (contextWindow: number, maxOutputTokens: number, encoding: Encoding): ModelInfo => ({
  contextWindow,
  maxOutputTokens,
  encoding
})

/**
 * The models known out of the box, by exact id or family name (sizes as OpenAI publishes them;
 * Azure's `gpt-35-turbo` spelling included). Dated snapshots resolve to their family unless
 * listed here because they differ from it (e.g. `gpt-4o-2024-05-13` replies with at most 4,096
 * tokens, `gpt-3.5-turbo-0613` has a 4,096-token window).
 *
 * @since 0.1.0
 * @category Registry
 */
export const builtIn: ReadonlyMap<string, ModelInfo> = new Map<string, ModelInfo>([
  // GPT-5 family (o200k_base).
  ["gpt-5", info(400_000, 128_000, "o200k_base")],
  ["gpt-5-mini", info(400_000, 128_000, "o200k_base")],
  ["gpt-5-nano", info(400_000, 128_000, "o200k_base")],
  ["gpt-5-chat-latest", info(128_000, 16_384, "o200k_base")],
  ["gpt-5.1", info(400_000, 128_000, "o200k_base")],
  ["gpt-5.2", info(400_000, 128_000, "o200k_base")],
  // GPT-4.1 family.
  ["gpt-4.1", info(1_047_576, 32_768, "o200k_base")],
  ["gpt-4.1-mini", info(1_047_576, 32_768, "o200k_base")],
  ["gpt-4.1-nano", info(1_047_576, 32_768, "o200k_base")],
  ["gpt-4.5-preview", info(128_000, 16_384, "o200k_base")],
  // GPT-4o family.
  ["gpt-4o", info(128_000, 16_384, "o200k_base")],
  ["gpt-4o-2024-05-13", info(128_000, 4_096, "o200k_base")],
  ["gpt-4o-mini", info(128_000, 16_384, "o200k_base")],
  ["chatgpt-4o-latest", info(128_000, 16_384, "o200k_base")],
  // Reasoning models (reasoning tokens count against the reply).
  ["o1", info(200_000, 100_000, "o200k_base")],
  ["o1-pro", info(200_000, 100_000, "o200k_base")],
  ["o1-mini", info(128_000, 65_536, "o200k_base")],
  ["o1-preview", info(128_000, 32_768, "o200k_base")],
  ["o3", info(200_000, 100_000, "o200k_base")],
  ["o3-pro", info(200_000, 100_000, "o200k_base")],
  ["o3-mini", info(200_000, 100_000, "o200k_base")],
  ["o4-mini", info(200_000, 100_000, "o200k_base")],
  // GPT-4 Turbo and GPT-4 (cl100k_base).
  ["gpt-4-turbo", info(128_000, 4_096, "cl100k_base")],
  ["gpt-4-turbo-preview", info(128_000, 4_096, "cl100k_base")],
  ["gpt-4-1106-preview", info(128_000, 4_096, "cl100k_base")],
  ["gpt-4-0125-preview", info(128_000, 4_096, "cl100k_base")],
  ["gpt-4-vision-preview", info(128_000, 4_096, "cl100k_base")],
  ["gpt-4", info(8_192, 8_192, "cl100k_base")],
  ["gpt-4-32k", info(32_768, 32_768, "cl100k_base")],
  // GPT-3.5 Turbo, OpenAI and Azure spellings.
  ["gpt-3.5-turbo", info(16_385, 4_096, "cl100k_base")],
  ["gpt-3.5-turbo-16k", info(16_385, 4_096, "cl100k_base")],
  ["gpt-3.5-turbo-0613", info(4_096, 4_096, "cl100k_base")],
  ["gpt-3.5-turbo-0301", info(4_096, 4_096, "cl100k_base")],
  ["gpt-35-turbo", info(16_385, 4_096, "cl100k_base")],
  ["gpt-35-turbo-16k", info(16_384, 4_096, "cl100k_base")],
  ["gpt-35-turbo-0613", info(4_096, 4_096, "cl100k_base")],
  ["gpt-35-turbo-0301", info(4_096, 4_096, "cl100k_base")]
])

/**
 * What an unknown model gets: `o200k_base` (the encoding of every current OpenAI chat model)
 * and an 8,192-token window with at most 4,096 reply tokens. Small on purpose: trimming too
 * much is recoverable, overflowing a window is a failed request. Override it with
 * `make({ fallback })` or register the model.
 *
 * @since 0.1.0
 * @category Registry
 */
export const defaultFallback: ModelInfo = info(8_192, 4_096, "o200k_base")

/**
 * A model registry: models by normalised (lower-case) id or family name, and what unknown
 * models get.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Registry {
  readonly models: ReadonlyMap<string, ModelInfo>
  readonly fallback: ModelInfo
}

/**
 * Options of `make`: `models` adds to (or replaces entries of) the built-in table, keyed by exact
 * id or family name; `fallback` replaces `defaultFallback`; `builtIn: false` starts from an
 * empty table.
 *
 * @since 0.1.0
 * @category Config
 */
export interface RegistryOptions {
  readonly models?: Readonly<Record<string, ModelInfo>> | undefined
  readonly fallback?: ModelInfo | undefined
  readonly builtIn?: boolean | undefined
}

/**
 * Builds a registry from the built-in table and the caller's models. Entries are taken as
 * given; validate untrusted ones with the `ModelInfo` schema first (`ContextWindow.layer`
 * does).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options: RegistryOptions = {}): Registry => {
  const models = new Map<string, ModelInfo>(options.builtIn === false ? [] : builtIn)
  if (options.models !== undefined) {
    for (const [id, model] of Object.entries(options.models)) models.set(id.toLowerCase(), model)
  }
  return { models, fallback: options.fallback ?? defaultFallback }
}

/**
 * The registry with the built-in models and `defaultFallback`.
 *
 * @since 0.1.0
 * @category Registry
 */
export const defaultRegistry: Registry = make()

/**
 * A resolved model: the id as asked, the registry name it matched (`undefined` when the
 * fallback applied) and its information.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Resolved {
  readonly model: string
  readonly matched: string | undefined
  readonly info: ModelInfo
}

/** The ids to try for `model`, most specific first: as written, then with wrappers removed. */
const candidates = (model: string): ReadonlyArray<string> => {
  const lower = model.trim().toLowerCase()
  const out = [lower]
  let id = lower
  if (id.startsWith("ft:")) {
    const end = id.indexOf(":", 3)
    id = end === -1 ? id.slice(3) : id.slice(3, end)
    out.push(id)
  }
  const slash = id.lastIndexOf("/")
  if (slash !== -1) out.push(id.slice(slash + 1))
  return out
}

/**
 * Finds a model id in a registry: exact id first, then the family (the id shortened one
 * `-segment` at a time). Returns the registry name that matched and its information, or `None`
 * when nothing matches.
 *
 * @since 0.1.0
 * @category Registry
 */
export const find = (
  model: string,
  registry: Registry = defaultRegistry
): Option.Option<readonly [string, ModelInfo]> => {
  // An id no request may name matches nothing (and a huge one is not shortened dash by dash).
  if (model.length > 2 * maxModelIdLength || !isModelId(model.trim())) return Option.none()
  for (const candidate of candidates(model)) {
    let id = candidate
    while (id.length > 0) {
      const found = registry.models.get(id)
      if (found !== undefined) return Option.some([id, found] as const)
      const dash = id.lastIndexOf("-")
      if (dash <= 0) break
      id = id.slice(0, dash)
    }
  }
  return Option.none()
}

/**
 * Resolves a model id, falling back to `registry.fallback` when the id matches nothing;
 * `matched` tells which case applied.
 *
 * @since 0.1.0
 * @category Registry
 */
export const resolve = (model: string, registry: Registry = defaultRegistry): Resolved =>
  Option.match(find(model, registry), {
    onNone: () => ({ model, matched: undefined, info: registry.fallback }),
    onSome: ([matched, info]) => ({ model, matched, info })
  })

/**
 * The information of a model id, or of the registry's fallback when the id matches nothing
 * (by default the built-in registry).
 *
 * @since 0.1.0
 * @category Registry
 */
export const lookup = (model: string, registry: Registry = defaultRegistry): ModelInfo =>
  resolve(model, registry).info

/**
 * How many tokens to keep free for the reply when the request does not say (no `maxTokens`):
 * the model's largest reply, at most 4,096, and never more than half the window.
 *
 * @since 0.1.0
 * @category Utils
 */
export const defaultReserveForReply = (model: ModelInfo): number =>
  Math.min(model.maxOutputTokens, 4_096, Math.floor(model.contextWindow / 2))

/**
 * Models from configuration: the variable `name` holds a JSON object of `ModelInfo` by id or
 * family name, e.g. `{"acme-chat":{"contextWindow":32768,"maxOutputTokens":4096,"encoding":"cl100k_base"}}`.
 * Malformed JSON or an invalid entry is a `ConfigError` naming the variable.
 *
 * @since 0.1.0
 * @category Config
 */
export const config = (name: string): Config.Config<Readonly<Record<string, ModelInfo>>> =>
  Schema.Config(name, Schema.parseJson(Schema.Record({ key: Schema.String, value: ModelInfo })))
