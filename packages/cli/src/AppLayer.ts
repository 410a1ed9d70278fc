/**
 * The services the CLI runs the gateway with: safety policy (adjustable by environment),
 * tokenizer-based context window (catalog plus `LLM_GATEWAY_MODELS`), response cache (in memory,
 * or files under `--cache-dir`), cost meter (budget from `--budget` or `LLM_GATEWAY_BUDGET_USD`),
 * and an audit log in memory (also appended to a JSONL file when one is named, keyed with
 * `LLM_GATEWAY_AUDIT_KEY` when set), and OpenTelemetry traces and metrics exported over OTLP/HTTP
 * JSON when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (nothing is recorded otherwise).
 *
 * @since 0.1.0
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodePath from "@effect/platform-node/NodePath"
import { AuditLog, ContextWindow, CostMeter, Gateway, Models, ResponseCache, SafetyFilter, Telemetry } from "@llm-gateway/core"
import type { Auth, Transport } from "@llm-gateway/core"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

/**
 * What the CLI's gateway is built with.
 *
 * @since 0.1.0
 * @category Config
 */
export interface Options {
  readonly systemInstruction?: string | undefined
  readonly auditFile?: string | undefined
  /** A directory for the file cache, shared across runs (default: in memory, this run only). */
  readonly cacheDir?: string | undefined
  /** A budget in US dollars for this process; wins over `LLM_GATEWAY_BUDGET_USD`. */
  readonly budgetUsd?: number | undefined
  /** What the run assumes about models missing from the catalog (see `assumptions`). */
  readonly assumed?: Assumptions | undefined
}

/**
 * How long a reply stays in the `--cache-dir` file cache.
 *
 * @since 0.1.0
 * @category Config
 */
export const fileCacheTimeToLive = "7 days"

/**
 * Models from `LLM_GATEWAY_MODELS` (a JSON object of `{contextWindow, maxOutputTokens,
 * encoding}` by model id), added to the built-in catalog.
 *
 * @since 0.1.0
 * @category Config
 */
export const modelsConfig: Config.Config<Readonly<Record<string, Models.ModelInfo>>> = Models.config(
  "LLM_GATEWAY_MODELS"
).pipe(Config.option, Config.map(Option.getOrElse(() => ({}))))

/**
 * What a run assumes for a model the catalog or the price table does not know: the entries
 * that register it (so the library does not warn on every call), and one line saying what
 * was assumed (`undefined` when the model is known).
 *
 * @since 0.1.0
 * @category Models
 */
export interface Assumptions {
  readonly models: Readonly<Record<string, Models.ModelInfo>>
  readonly pricing: CostMeter.Pricing
  readonly note: string | undefined
}

const perMillion = (usd: number) => `$${usd.toFixed(2)}`

/**
 * Works out `Assumptions` for `model` from the catalog, `LLM_GATEWAY_MODELS` and the price
 * table (built in, merged with `LLM_GATEWAY_PRICING`).
 *
 * @since 0.1.0
 * @category Constructors
 */
export const assumptions = (model: string): Effect.Effect<Assumptions, ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const extra = yield* modelsConfig
    const envPricing = (yield* CostMeter.config).pricing ?? {}
    // An id no request may name is refused by the gateway; nothing to assume for it.
    if (!Models.isModelId(model)) return { models: extra, pricing: {}, note: undefined }
    const registry = Models.make({ models: extra })
    const window = Models.find(model, registry)
    const table: CostMeter.Pricing = { ...CostMeter.defaultPricing, ...envPricing }
    const price = CostMeter.lookupPrice(table, model)
    const models: Record<string, Models.ModelInfo> = { ...extra }
    const pricing: Record<string, CostMeter.ModelPrice> = {}
    const assumed: Array<string> = []
    if (Option.isNone(window)) {
      const info = registry.fallback
      models[model] = info
      assumed.push(
        `a context window of ${info.contextWindow.toLocaleString("en-US")} tokens, at most ${
          info.maxOutputTokens.toLocaleString("en-US")
        } reply tokens, ${info.encoding}`
      )
    }
    if (Option.isNone(price)) {
      const fallback = table["*"] ?? CostMeter.unknownModelPrice
      pricing[model] = fallback
      assumed.push(
        `${perMillion(fallback.promptPerMillion)} / ${perMillion(fallback.completionPerMillion)} per million tokens in / out`
      )
    }
    const note = assumed.length === 0 ? undefined : `model ${Models.printableId(model)} is not in the catalog; assuming ${
      assumed.join(" and ")
    } (see 'llm-gateway models'; register it with ${
      [Option.isNone(window) ? "LLM_GATEWAY_MODELS" : undefined, Option.isNone(price) ? "LLM_GATEWAY_PRICING" : undefined]
        .filter((x) => x !== undefined).join(" and ")
    })`
    return { models, pricing, note }
  })

/**
 * An audit log that keeps entries in memory for display and, when `file` is given, also
 * appends them to a hash-chained JSONL file.
 */
const auditLayer = (
  file: string | undefined
): Layer.Layer<
  AuditLog.AuditLog | AuditLog.MemoryAuditLog,
  AuditLog.AuditFileError | AuditLog.AuditLogLocked | ConfigError.ConfigError
> => {
  if (file === undefined) return AuditLog.layerMemory
  // Keyed with LLM_GATEWAY_AUDIT_KEY when it is set; a bad file is a typed error, not a crash.
  const fileLayer = AuditLog.layerFileConfig(file).pipe(Layer.provide([NodeFileSystem.layer, NodePath.layer]))
  return Layer.scopedContext(Effect.gen(function*() {
    const memory = yield* Layer.build(AuditLog.layerMemory)
    const onDisk = yield* Layer.build(fileLayer)
    const inMemory = Context.get(memory, AuditLog.AuditLog)
    const persisted = Context.get(onDisk, AuditLog.AuditLog)
    return Context.add(memory, AuditLog.AuditLog, {
      append: (entry) => Effect.zipRight(persisted.append(entry), inMemory.append(entry))
    })
  }))
}

/**
 * The response cache and the meter: on Redis when `LLM_GATEWAY_REDIS_URL` is set (shared with
 * every other process using the same server and prefix), else the local ones. The Redis module
 * is imported only then, so the CLI loads `ioredis` only for users who set the variable.
 */
const storesLayer = (
  local: Layer.Layer<ResponseCache.ResponseCache | CostMeter.CostMeter, ConfigError.ConfigError | ResponseCache.CacheDirectoryError>,
  meter: CostMeter.Options
): Layer.Layer<ResponseCache.ResponseCache | CostMeter.CostMeter, ConfigError.ConfigError | ResponseCache.CacheDirectoryError> =>
  Layer.unwrapEffect(
    Effect.map(Config.option(Config.string("LLM_GATEWAY_REDIS_URL")), (url) =>
      Option.isNone(url) || url.value === "" ? local : Layer.unwrapEffect(
        Effect.tryPromise({
          try: () => import("@llm-gateway/core/Redis"),
          catch: () =>
            ConfigError.InvalidData(
              ["LLM_GATEWAY_REDIS_URL"],
              "The Redis stores need the ioredis package: install it next to the CLI (npm install ioredis), or unset LLM_GATEWAY_REDIS_URL"
            )
        }).pipe(Effect.map((Redis) => Redis.layerRedisConfig({ cache: { timeToLive: "1 hour" }, meter })))
      ))
  )

/**
 * OTLP/HTTP JSON export of traces and metrics when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (see
 * `TelemetryOtlp.layerConfig`); the exporter's modules are loaded only then. Closed with the
 * command's scope, also on failure and Ctrl-C, which flushes what is pending (within 3 seconds).
 *
 * @since 0.1.0
 * @category Layers
 */
export const telemetryLayer: Layer.Layer<never, ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(Telemetry.config, (found) =>
    Option.isNone(found) ? Layer.empty : Layer.unwrapEffect(
      Effect.map(
        Effect.promise(() => import("@llm-gateway/core/TelemetryOtlp")),
        (TelemetryOtlp) => TelemetryOtlp.layerConfig().pipe(Layer.provide(NodeHttpClient.layerUndici))
      )
    ))
)

/**
 * The gateway over a transport, with every other concern at its CLI default.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layer = (
  transport: Layer.Layer<Transport.GatewayTransport | Auth.Auth, ConfigError.ConfigError>,
  options: Options = {}
): Layer.Layer<
  | Gateway.Gateway
  | ContextWindow.ContextWindow
  | CostMeter.CostMeter
  | AuditLog.MemoryAuditLog
  | Transport.GatewayTransport
  | Auth.Auth,
  ConfigError.ConfigError | AuditLog.AuditFileError | AuditLog.AuditLogLocked | ResponseCache.CacheDirectoryError
> =>
  Gateway.layer({ systemInstruction: options.systemInstruction }).pipe(
    Layer.provideMerge(Layer.mergeAll(
      SafetyFilter.layerConfig(),
      options.assumed === undefined
        ? ContextWindow.layerConfig({ models: modelsConfig })
        : ContextWindow.layer({ models: options.assumed.models }),
      storesLayer(
        Layer.merge(
          options.cacheDir === undefined
            ? ResponseCache.layerMemory({ capacity: 1_000, timeToLive: "1 hour" })
            : ResponseCache.layerFileSystem({ directory: options.cacheDir, timeToLive: fileCacheTimeToLive }).pipe(
              Layer.provide([NodeFileSystem.layer, NodePath.layer])
            ),
          CostMeter.layerConfig({
            budgetUsd: options.budgetUsd,
            ...(options.assumed === undefined ? {} : { pricing: options.assumed.pricing })
          })
        ),
        {
          budgetUsd: options.budgetUsd,
          ...(options.assumed === undefined ? {} : { pricing: options.assumed.pricing })
        }
      ),
      auditLayer(options.auditFile),
      telemetryLayer
    )),
    // Merged so that services the transport brings along (the simulator's) stay reachable.
    Layer.provideMerge(transport)
  )
