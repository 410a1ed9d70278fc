/**
 * What `llm-gateway models` does; loaded only when it runs.
 */
// Module paths, not the package index: listing models must not load the pipeline.
import * as CostMeter from "@llm-gateway/core/CostMeter"
import * as Models from "@llm-gateway/core/Models"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Output from "../Output.js"
import { table } from "./costReport.js"
import { ExitCode } from "./exitCodes.js"

/** One row of the catalog. */
export interface Row {
  readonly model: string
  /** `null` for a priced model the catalog does not size (it gets the fallback window). */
  readonly contextWindow: number | null
  readonly maxOutputTokens: number | null
  readonly encoding: Models.Encoding | null
  readonly promptPerMillion: number | null
  readonly completionPerMillion: number | null
  /** Where the entry comes from. */
  readonly source: "built-in" | "LLM_GATEWAY_MODELS" | "LLM_GATEWAY_PRICING"
}

/** The catalog: every sized model, then each price no catalog row shows, sized as a lookup would. */
export const rows = (
  extra: Readonly<Record<string, Models.ModelInfo>>,
  pricing: CostMeter.Pricing
): Array<Row> => {
  const registry = Models.make({ models: extra })
  const table: CostMeter.Pricing = { ...CostMeter.defaultPricing, ...pricing }
  const added = new Set(Object.keys(extra).map((id) => id.toLowerCase()))
  const out: Array<Row> = []
  // Prices shown on a catalog row; the others get a row of their own.
  const shown = new Set<CostMeter.ModelPrice>()
  for (const [model, info] of registry.models) {
    const price = CostMeter.lookupPrice(table, model)
    if (Option.isSome(price)) shown.add(price.value)
    out.push({
      model,
      contextWindow: info.contextWindow,
      maxOutputTokens: info.maxOutputTokens,
      encoding: info.encoding,
      promptPerMillion: Option.isSome(price) ? price.value.promptPerMillion : null,
      completionPerMillion: Option.isSome(price) ? price.value.completionPerMillion : null,
      source: added.has(model) ? "LLM_GATEWAY_MODELS" : "built-in"
    })
  }
  for (const [key, price] of Object.entries(table)) {
    if (key === "*" || shown.has(price)) continue
    // Sized as a lookup of this id would be: through its family, or the fallback (null).
    const family = Option.map(Models.find(key, registry), ([, info]) => info)
    out.push({
      model: key,
      contextWindow: Option.isSome(family) ? family.value.contextWindow : null,
      maxOutputTokens: Option.isSome(family) ? family.value.maxOutputTokens : null,
      encoding: Option.isSome(family) ? family.value.encoding : null,
      promptPerMillion: price.promptPerMillion,
      completionPerMillion: price.completionPerMillion,
      source: key in pricing ? "LLM_GATEWAY_PRICING" : "built-in"
    })
  }
  return out
}

const count = (n: number | null) => (n === null ? "-" : n.toLocaleString("en-US"))
const dollars = (n: number | null) =>
  n === null ? "-" : `$${Number(n.toFixed(2)) === n ? n.toFixed(2) : String(n)}`

/** Prints the catalog as a table or JSON. */
export const run = (args: { readonly json: boolean }) =>
  Effect.gen(function*() {
    const extra = yield* Models.config("LLM_GATEWAY_MODELS").pipe(Config.option, Config.map(Option.getOrElse(() => ({}))))
    const pricing = (yield* CostMeter.config).pricing ?? {}
    const catalog = rows(extra, pricing)
    const fallback = Models.defaultFallback
    const unknownPrice = pricing["*"] ?? CostMeter.unknownModelPrice
    if (args.json) {
      return yield* Output.stdout(
        JSON.stringify({
          pricesCheckedOn: CostMeter.pricesCheckedOn,
          currency: "USD per million tokens",
          models: catalog,
          fallback: { ...fallback, ...unknownPrice }
        }) + "\n"
      )
    }
    const text = table(
      ["model", "context", "max output", "encoding", "$/M in", "$/M out"],
      catalog.map((r) => [
        r.source === "built-in" ? r.model : `${r.model} *`,
        count(r.contextWindow),
        count(r.maxOutputTokens),
        r.encoding ?? "(fallback)",
        dollars(r.promptPerMillion),
        dollars(r.completionPerMillion)
      ]),
      1
    )
    yield* Output.stdout(
      [
        text,
        "",
        `Prices: list prices in US dollars per million tokens (standard tier, uncached input), checked ${CostMeter.pricesCheckedOn}; set LLM_GATEWAY_PRICING for yours.`,
        `Any other model: a context window of ${count(fallback.contextWindow)} tokens, at most ${
          count(fallback.maxOutputTokens)
        } reply tokens, ${fallback.encoding}, ${dollars(unknownPrice.promptPerMillion)} / ${
          dollars(unknownPrice.completionPerMillion)
        } per million tokens (LLM_GATEWAY_MODELS, LLM_GATEWAY_PRICING add models).`,
        ...(catalog.some((r) => r.source !== "built-in") ? ["* from LLM_GATEWAY_MODELS or LLM_GATEWAY_PRICING"] : []),
        ""
      ].join("\n")
    )
  }).pipe(
    Effect.catchAll((error) => {
      const described = Output.describeError(error)
      return Output.stderrLine(`error (${described._tag}): ${described.message}`).pipe(
        Effect.zipRight(Output.setExitCode(ExitCode.config))
      )
    })
  )
