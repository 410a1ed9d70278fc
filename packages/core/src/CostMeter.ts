/**
 * CostMeter: prices token usage per model, reserves the worst case against budgets before a
 * request leaves, and settles the real cost afterwards.
 *
 * Money is counted exactly: prices and budgets are converted once to integer units of 1e-18
 * US dollars (bigint), every sum is taken in those units, and a number of dollars is produced
 * only for output, as the double nearest to the exact decimal. Summing a million requests
 * gives the same total as pricing their combined usage.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import type { Cost, Usage } from "./Chat.js"
import { BudgetExceeded, type StoreUnavailable } from "./GatewayError.js"
import { isModelId, printableId } from "./Models.js"

/**
 * A hold on budget for one request in flight.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Reservation {
  readonly id: string
  readonly model: string
  readonly amountUsd: number
}

/**
 * The state of the periodic budget: its name, limit, what was spent in the current period,
 * what is held by requests in flight, what remains, and when (epoch milliseconds) the period
 * resets.
 *
 * @since 0.1.0
 * @category Models
 */
export interface PeriodSummary {
  readonly name: string
  readonly limitUsd: number
  readonly spentUsd: number
  readonly reservedUsd: number
  readonly remainingUsd: number
  readonly resetsAt: number
}

/**
 * Totals so far. `requests` counts settled reservations that recorded usage; `totalUsd` is
 * what they cost; `reservedUsd` is held by requests still in flight; `remainingUsd` is the
 * total budget minus both (never below zero). `period` is present when a periodic budget is
 * set.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Summary {
  readonly requests: number
  readonly promptTokens: number
  readonly completionTokens: number
  readonly totalUsd: number
  readonly reservedUsd: number
  readonly budgetUsd: number | undefined
  readonly remainingUsd: number | undefined
  readonly period?: PeriodSummary | undefined
}

/**
 * Prices usage, holds the worst-case cost of each request against the budgets before it is sent,
 * settles the real cost afterwards, and reports the totals. A meter on a shared store (Redis)
 * fails a reservation closed with `StoreUnavailable` when the store does not answer.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Service<ReserveError = BudgetExceeded | StoreUnavailable> {
  /** What `usage` costs on `model`. */
  readonly price: (model: string, usage: Usage) => Cost
  /** Holds the worst-case cost of a request, or fails if a budget cannot cover it. */
  readonly reserve: (
    model: string,
    promptTokens: number,
    maxCompletionTokens: number
  ) => Effect.Effect<Reservation, ReserveError>
  /**
   * Releases the hold and records the real usage (`undefined` when nothing was used), at most
   * the hold plus one token's price; returns the cost recorded.
   */
  readonly settle: (reservation: Reservation, usage: Usage | undefined) => Effect.Effect<Cost>
  readonly summary: Effect.Effect<Summary>
}

/**
 * The CostMeter service.
 *
 * @since 0.1.0
 * @category Services
 */
export class CostMeter extends Context.Tag("@llm-gateway/core/CostMeter")<CostMeter, Service>() {}

// ---------------------------------------------------------------------------------------------
// Prices
// ---------------------------------------------------------------------------------------------

/**
 * The price of a model in US dollars per million tokens, for prompt (input) and completion
 * (output) tokens.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const ModelPrice = Schema.Struct({
  promptPerMillion: Schema.Number.pipe(Schema.finite(), Schema.nonNegative()),
  completionPerMillion: Schema.Number.pipe(Schema.finite(), Schema.nonNegative())
})

/**
 * A decoded model price, in US dollars per million prompt and completion tokens.
 *
 * @since 0.1.0
 * @category Models
 */
export type ModelPrice = typeof ModelPrice.Type

/**
 * A pricing table: model id prefix → price. The key `"*"` sets the price of models no other
 * key matches.
 *
 * @since 0.1.0
 * @category Schemas
 */
export const Pricing = Schema.Record({ key: Schema.String, value: ModelPrice })

/**
 * A decoded pricing table: model id prefix → `ModelPrice`, with `"*"` as the fallback.
 *
 * @since 0.1.0
 * @category Models
 */
export type Pricing = typeof Pricing.Type

/**
 * When the built-in prices were last checked against OpenAI's published list prices.
 *
 * @since 0.1.0
 * @category Pricing
 */
export const pricesCheckedOn = "2026-04"

const price = (promptPerMillion: number, completionPerMillion: number): ModelPrice => ({
  promptPerMillion,
  completionPerMillion
})

/**
 * Built-in list prices (standard tier, uncached input, USD per million tokens) of common
 * OpenAI chat models as of `pricesCheckedOn`. Azure's `gpt-35-turbo` spelling is included.
 * Dated snapshots (`gpt-4o-2024-08-06`) match their family through prefix matching; the few
 * snapshots priced differently from their family have their own entry. Prices change: pass
 * your own table (`pricing` option or `LLM_GATEWAY_PRICING`) for the models you use.
 *
 * @since 0.1.0
 * @category Pricing
 */
export const defaultPricing: Pricing = {
  "gpt-5.4": price(2.5, 15),
  "gpt-5.4-mini": price(0.75, 4.5),
  "gpt-5.4-nano": price(0.2, 1.25),
  "gpt-5.2": price(1.75, 14),
  "gpt-5.1": price(1.25, 10),
  "gpt-5": price(1.25, 10),
  "gpt-5-mini": price(0.25, 2),
  "gpt-5-nano": price(0.05, 0.4),
  "gpt-4.5": price(75, 150),
  "gpt-4.1": price(2, 8),
  "gpt-4.1-mini": price(0.4, 1.6),
  "gpt-4.1-nano": price(0.1, 0.4),
  "gpt-4o": price(2.5, 10),
  "gpt-4o-2024-05-13": price(5, 15),
  "chatgpt-4o-latest": price(5, 15),
  "gpt-4o-mini": price(0.15, 0.6),
  "gpt-4-turbo": price(10, 30),
  "gpt-4-1106": price(10, 30),
  "gpt-4-0125": price(10, 30),
  "gpt-4-vision": price(10, 30),
  "gpt-4": price(30, 60),
  "gpt-4-32k": price(60, 120),
  "gpt-3.5-turbo": price(0.5, 1.5),
  "gpt-3.5-turbo-instruct": price(1.5, 2),
  "gpt-35-turbo": price(0.5, 1.5),
  "o1": price(15, 60),
  "o1-preview": price(15, 60),
  "o1-mini": price(1.1, 4.4),
  "o1-pro": price(150, 600),
  "o3": price(2, 8),
  "o3-mini": price(1.1, 4.4),
  "o3-pro": price(20, 80),
  "o4-mini": price(1.1, 4.4)
}

/**
 * The price of a model that no table entry matches: $30 per million prompt tokens and $60 per
 * million completion tokens (GPT-4's list price). It is high on purpose, so that a model
 * missing from the table cannot slip under a budget; a warning names each such model once.
 * Override it with the `"*"` key of a pricing table.
 *
 * @since 0.1.0
 * @category Pricing
 */
export const unknownModelPrice: ModelPrice = price(30, 60)

/** Characters that may follow a table key for the key to match a longer model id. */
const separators = new Set(["-", ":", "@", "_"])

/**
 * Finds the price of `model` in a table: the longest key that equals the model id or is
 * followed in it by `-`, `:`, `@` or `_` (so `gpt-4o-mini-2024-07-18` matches `gpt-4o-mini`,
 * and `gpt-4o` does not match `gpt-4`, nor `gpt-5.4` `gpt-5`). Matching ignores case and any
 * provider prefix before the last `/` (`openai/gpt-4o`). `None` when no key matches.
 *
 * @since 0.1.0
 * @category Pricing
 */
export const lookupPrice = (pricing: Pricing, model: string): Option.Option<ModelPrice> =>
  Option.map(findKey(sortedKeys(pricing), model), (key) => pricing[key]!)

const sortedKeys = (pricing: Pricing): ReadonlyArray<string> =>
  Object.keys(pricing).filter((key) => key !== "*").sort((a, b) => b.length - a.length)

const normalize = (model: string): string => {
  const lower = model.trim().toLowerCase()
  return lower.slice(lower.lastIndexOf("/") + 1)
}

const findKey = (keys: ReadonlyArray<string>, model: string): Option.Option<string> => {
  const id = normalize(model)
  for (const key of keys) {
    const k = key.toLowerCase()
    if (id === k || (id.startsWith(k) && separators.has(id.charAt(k.length)))) return Option.some(key)
  }
  return Option.none()
}

// ---------------------------------------------------------------------------------------------
// Exact money
// ---------------------------------------------------------------------------------------------

/** 1e-18 US dollars per unit: a price per million tokens (12 decimals) times a token count. */
const unitsPerDollar = 10n ** 18n
const unitsPerPicodollar = 10n ** 6n

/** The exact decimal value of a non-negative finite number rounded to 12 decimals, in units. */
const unitsOfDollars = (usd: number): bigint =>
  BigInt(usd.toFixed(12).replace(".", "")) * unitsPerPicodollar

/** A price per million tokens in picodollars: times a token count, that is units of 1e-18 USD. */
const picodollarsPerMillion = (usd: number): bigint => BigInt(usd.toFixed(12).replace(".", ""))

/** The double nearest to the exact decimal value of `units`. */
const dollarsOfUnits = (units: bigint): number => {
  const negative = units < 0n
  const abs = negative ? -units : units
  const whole = abs / unitsPerDollar
  const fraction = (abs % unitsPerDollar).toString().padStart(18, "0")
  return Number(`${negative ? "-" : ""}${whole}.${fraction}`)
}

/** A token count as a bigint: negative or NaN counts as 0, unbounded as the largest safe integer. */
const tokens = (n: number): bigint =>
  Number.isNaN(n) || n <= 0 ? 0n : BigInt(Math.floor(Math.min(n, Number.MAX_SAFE_INTEGER)))

interface Rate {
  readonly prompt: bigint
  readonly completion: bigint
  readonly known: boolean
}

interface ExactCost {
  readonly prompt: bigint
  readonly completion: bigint
}

const toCost = (cost: ExactCost): Cost => ({
  promptUsd: dollarsOfUnits(cost.prompt),
  completionUsd: dollarsOfUnits(cost.completion),
  totalUsd: dollarsOfUnits(cost.prompt + cost.completion)
})

/**
 * A pricing function over a table merged onto `defaultPricing` (entries of `pricing` win),
 * exact to 1e-18 USD before the final conversion to a number.
 *
 * @example
 * import { CostMeter } from "@llm-gateway/core"
 *
 * const priceOf = CostMeter.makePrice()
 * priceOf("gpt-4o-mini", { promptTokens: 1_000, completionTokens: 500, totalTokens: 1_500 })
 * // { promptUsd: 0.00015, completionUsd: 0.0003, totalUsd: 0.00045 }
 *
 * @since 0.1.0
 * @category Pricing
 */
export const makePrice = (pricing?: Pricing): (model: string, usage: Usage) => Cost => {
  const rateOf = makeRates(pricing)
  return (model, usage) => toCost(exactCost(rateOf(model), usage.promptTokens, usage.completionTokens))
}

const makeRates = (pricing: Pricing | undefined): (model: string) => Rate => {
  const table: Pricing = { ...defaultPricing, ...pricing }
  const keys = sortedKeys(table)
  const fallback = table["*"] ?? unknownModelPrice
  const cache = new Map<string, Rate>()
  return (model) => {
    const cached = cache.get(model)
    if (cached !== undefined) return cached
    const key = findKey(keys, model)
    const p = Option.isSome(key) ? table[key.value]! : fallback
    const rate: Rate = {
      prompt: picodollarsPerMillion(p.promptPerMillion),
      completion: picodollarsPerMillion(p.completionPerMillion),
      known: Option.isSome(key)
    }
    // Only valid ids (at most 256 characters) are kept, so the cache stays small whatever callers pass.
    if (cache.size < 10_000 && isModelId(model)) cache.set(model, rate)
    return rate
  }
}

interface Settled {
  readonly cost: ExactCost
  readonly reported: bigint
  readonly held: bigint
  readonly capped: boolean
}

/** `cost` lowered to `cap` in total, prompt first. */
const capAt = (cost: ExactCost, cap: bigint): ExactCost => {
  const prompt = cost.prompt < cap ? cost.prompt : cap
  return { prompt, completion: cap - prompt }
}

const exactCost = (rate: Rate, promptTokens: number, completionTokens: number): ExactCost => ({
  prompt: rate.prompt * tokens(promptTokens),
  completion: rate.completion * tokens(completionTokens)
})

// ---------------------------------------------------------------------------------------------
// Budgets
// ---------------------------------------------------------------------------------------------

/**
 * A budget that starts afresh every `period`. Periods are aligned to the Unix epoch on the
 * Effect `Clock` (a `"1 day"` period resets at midnight UTC). `name` appears in
 * `BudgetExceeded` (default `"daily"`, `"hourly"`, or `"per-<period>"`).
 *
 * @since 0.1.0
 * @category Models
 */
export interface PeriodBudget {
  readonly limitUsd: number
  readonly period: Duration.DurationInput
  readonly name?: string | undefined
}

/**
 * Options of a meter. `budgetUsd` caps the meter's whole lifetime; `periodBudget` caps every
 * period; `pricing` is merged onto `defaultPricing`. Without budgets the meter only prices and
 * records.
 *
 * @since 0.1.0
 * @category Config
 */
export interface Options {
  readonly budgetUsd?: number | undefined
  readonly periodBudget?: PeriodBudget | undefined
  readonly pricing?: Pricing | undefined
}

interface Hold {
  readonly model: string
  readonly units: bigint
  /** The price of one token (the dearer of prompt and completion): what a settlement may add. */
  readonly slack: bigint
  readonly promptTokens: number
  readonly completionTokens: number
  /** When the hold was taken (epoch milliseconds); a shared store expires abandoned holds. */
  readonly heldAt?: number | undefined
}

interface State {
  readonly nextId: number
  readonly holds: HashMap.HashMap<string, Hold>
  readonly reserved: bigint
  readonly spent: bigint
  readonly periodIndex: number
  readonly periodSpent: bigint
  readonly requests: number
  readonly promptTokens: number
  readonly completionTokens: number
}

const periodName = (millis: number): string =>
  millis === 86_400_000 ? "daily" : millis === 3_600_000 ? "hourly" : `per-${Duration.format(millis)}`

const invalid = (what: string): never => {
  throw new Error(`CostMeter: ${what}`)
}

const checkDollars = (what: string, usd: number): number =>
  Number.isFinite(usd) && usd >= 0 && usd < 1e15 ? usd : invalid(`${what} must be a non-negative number of US dollars below 1e15`)

// ---------------------------------------------------------------------------------------------
// Transitions: pure functions of the state, each applied in one atomic step (`Ref.modify` here;
// a shared store applies the same functions in its own atomic step)
// ---------------------------------------------------------------------------------------------

/** The budgets a meter enforces, in exact units. */
interface Limits {
  readonly budget: bigint | undefined
  readonly period: { readonly name: string; readonly limit: bigint; readonly millis: number } | undefined
}

const emptyState = (periodIndex: number): State => ({
  nextId: 0,
  holds: HashMap.empty(),
  reserved: 0n,
  spent: 0n,
  periodIndex,
  periodSpent: 0n,
  requests: 0,
  promptTokens: 0,
  completionTokens: 0
})

/** The state moved on to the period containing `millis` (never backwards). */
const roll = (limits: Limits, s: State, millis: number): State => {
  if (limits.period === undefined) return s
  const index = Math.floor(millis / limits.period.millis)
  return index > s.periodIndex ? { ...s, periodIndex: index, periodSpent: 0n } : s
}

/** Holds `hold.units` at `at`, or refuses with the budget it would exceed (reaching it is allowed). */
const reserveStep = (
  limits: Limits,
  current: State,
  at: number,
  hold: Hold
): [Either.Either<Reservation, BudgetExceeded>, State] => {
  const s = roll(limits, current, at)
  const requested = hold.units
  const { budget, period } = limits
  if (budget !== undefined && s.spent + s.reserved + requested > budget) {
    return [Either.left(exceeded("total", budget, s.spent + s.reserved, requested)), s]
  }
  if (period !== undefined && s.periodSpent + s.reserved + requested > period.limit) {
    return [Either.left(exceeded(period.name, period.limit, s.periodSpent + s.reserved, requested)), s]
  }
  const id = `r${s.nextId}`
  return [
    Either.right({ id, model: hold.model, amountUsd: dollarsOfUnits(requested) }),
    { ...s, nextId: s.nextId + 1, holds: HashMap.set(s.holds, id, hold), reserved: s.reserved + requested }
  ]
}

/**
 * Releases the hold `id` and records `usage` priced by `rateOf`, at most the hold plus one
 * token's price; `undefined` (and the state unchanged) when the hold is unknown or settled.
 */
const settleStep = (
  limits: Limits,
  current: State,
  at: number,
  id: string,
  usage: Usage | undefined,
  rateOf: (model: string) => Rate
): [Settled | undefined, State] => {
  const s = roll(limits, current, at)
  const hold = HashMap.get(s.holds, id)
  if (Option.isNone(hold)) return [undefined, s]
  const { completionTokens, promptTokens, slack, units } = hold.value
  const reported = usage === undefined
    ? { prompt: 0n, completion: 0n }
    : exactCost(rateOf(hold.value.model), usage.promptTokens, usage.completionTokens)
  const reportedTotal = reported.prompt + reported.completion
  const cap = units + slack
  const capped = reportedTotal > cap
  const cost = capped ? capAt(reported, cap) : reported
  const total = cost.prompt + cost.completion
  // Past the cap the reported numbers are not believed: the hold's own counts stand in.
  const recorded = usage === undefined
    ? { prompt: 0, completion: 0 }
    : capped
    ? { prompt: promptTokens, completion: completionTokens }
    : { prompt: Number(tokens(usage.promptTokens)), completion: Number(tokens(usage.completionTokens)) }
  return [{ cost, reported: reportedTotal, held: units, capped }, {
    ...s,
    holds: HashMap.remove(s.holds, id),
    reserved: s.reserved - units,
    spent: s.spent + total,
    periodSpent: s.periodSpent + total,
    requests: usage === undefined ? s.requests : s.requests + 1,
    promptTokens: s.promptTokens + recorded.prompt,
    completionTokens: s.completionTokens + recorded.completion
  }]
}

/** What `summary` reports of a state. */
const summaryOf = (limits: Limits, s: State): Summary => {
  const { budget, period } = limits
  const remaining = (limit: bigint, spent: bigint) => {
    const left = limit - spent - s.reserved
    return dollarsOfUnits(left > 0n ? left : 0n)
  }
  return {
    requests: s.requests,
    promptTokens: s.promptTokens,
    completionTokens: s.completionTokens,
    totalUsd: dollarsOfUnits(s.spent),
    reservedUsd: dollarsOfUnits(s.reserved),
    budgetUsd: budget === undefined ? undefined : dollarsOfUnits(budget),
    remainingUsd: budget === undefined ? undefined : remaining(budget, s.spent),
    ...(period === undefined ? {} : {
      period: {
        name: period.name,
        limitUsd: dollarsOfUnits(period.limit),
        spentUsd: dollarsOfUnits(s.periodSpent),
        reservedUsd: dollarsOfUnits(s.reserved),
        remainingUsd: remaining(period.limit, s.periodSpent),
        resetsAt: (s.periodIndex + 1) * period.millis
      }
    })
  }
}

/**
 * A meter held in memory. Reservations, settlements and period roll-overs are single atomic
 * `Ref.modify` steps, so reservations made concurrently can never together exceed a budget.
 *
 * A reservation holds the worst-case cost: the prompt plus `maxCompletionTokens`, priced for
 * the model. It counts against every budget until it is settled. `settle` releases the hold and
 * adds the real cost (priced for the reserved model) to the spent totals and to the current
 * period; it is idempotent (a second settle of the same reservation records nothing and
 * returns the same cost). A cost above the hold (a gateway that ignored the maximum, a
 * tokenizer that counts one token differently, or an absurd usage report) is recorded only up
 * to the hold plus the price of one token, and a warning names the reservation; so requests
 * settled together never spend more than the budget by more than one token's price each, and
 * a report of 1e15 tokens cannot exhaust a budget. A reservation fails with
 * `BudgetExceeded` when spent + held + requested would exceed a limit (reaching it exactly is
 * allowed). Invalid options (a negative budget, a period of zero) are a defect at start-up.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options: Options = {}): Effect.Effect<Service<BudgetExceeded>> =>
  makeWithStore(options, (initial) =>
    Effect.map(Ref.make(initial), (ref): LedgerStore<never> => ({ modify: (f) => Ref.modify(ref, f) })))

/**
 * The ledger of a meter: its holds, spent totals and current period. Opaque; a store keeps it
 * as the text of `encodeLedger` and reads it back with `decodeLedger`.
 *
 * @since 0.1.0
 * @category Models
 */
export interface LedgerState {
  readonly _LedgerState: unique symbol
}

/**
 * Where a meter keeps its ledger. `modify` applies one pure transition to the ledger as a
 * single atomic step (a `Ref.modify` in memory; a compare-and-set script on Redis, retried
 * when another process wrote in between), so the memory and the shared meters run the very
 * same transitions. `E` is how the store fails (`StoreUnavailable` for a shared store).
 *
 * @since 0.1.0
 * @category Models
 */
export interface LedgerStore<E> {
  readonly modify: <A>(f: (state: LedgerState) => [A, LedgerState]) => Effect.Effect<A, E>
}

/**
 * Options of a meter on a shared store. `holdTimeout`: a hold older than this is dropped by
 * the next transition (a process that died with requests in flight never keeps budget held
 * for longer; default 15 minutes; set it above your longest request).
 *
 * @since 0.1.0
 * @category Config
 */
export interface StoreOptions extends Options {
  readonly holdTimeout?: Duration.DurationInput | undefined
}

const jsonReplacer = (_key: string, value: unknown) => typeof value === "bigint" ? value.toString() : value

/**
 * The ledger as JSON text (money as decimal strings of 1e-18 USD units).
 *
 * @since 0.1.0
 * @category Utils
 */
export const encodeLedger = (ledger: LedgerState): string => {
  const s = ledger as unknown as State
  return JSON.stringify({ ...s, v: 1, holds: Array.from(HashMap.toEntries(s.holds)) }, jsonReplacer)
}

/**
 * Reads a ledger written by `encodeLedger`; `None` for text in any other shape.
 *
 * @since 0.1.0
 * @category Utils
 */
export const decodeLedger = (text: string): Option.Option<LedgerState> => {
  try {
    const raw = JSON.parse(text)
    if (raw === null || typeof raw !== "object" || raw.v !== 1 || !Array.isArray(raw.holds)) return Option.none()
    const holds = HashMap.fromIterable(
      (raw.holds as Array<[string, Record<string, unknown>]>).map(([id, h]): [string, Hold] => [String(id), {
        model: String(h.model),
        units: BigInt(String(h.units)),
        slack: BigInt(String(h.slack)),
        promptTokens: Number(h.promptTokens),
        completionTokens: Number(h.completionTokens),
        heldAt: typeof h.heldAt === "number" ? h.heldAt : undefined
      }])
    )
    const state: State = {
      nextId: Number(raw.nextId),
      holds,
      reserved: BigInt(String(raw.reserved)),
      spent: BigInt(String(raw.spent)),
      periodIndex: Number(raw.periodIndex),
      periodSpent: BigInt(String(raw.periodSpent)),
      requests: Number(raw.requests),
      promptTokens: Number(raw.promptTokens),
      completionTokens: Number(raw.completionTokens)
    }
    return Number.isSafeInteger(state.nextId) ? Option.some(state as unknown as LedgerState) : Option.none()
  } catch {
    return Option.none()
  }
}

/**
 * The ledger's current period: its index (periods since the Unix epoch) and what was spent in
 * it (1e-18 USD units). A shared store may keep it apart from the rest of the ledger, in a key
 * per period that expires once the period is over.
 *
 * @since 0.1.0
 * @category Models
 */
export interface LedgerPeriod {
  readonly index: number
  readonly spent: bigint
}

/**
 * The current period of a ledger (see `LedgerPeriod`).
 *
 * @since 0.1.0
 * @category Utils
 */
export const ledgerPeriod = (ledger: LedgerState): LedgerPeriod => {
  const s = ledger as unknown as State
  return { index: s.periodIndex, spent: s.periodSpent }
}

/**
 * The ledger with its current period replaced by `period`.
 *
 * @since 0.1.0
 * @category Utils
 */
export const withLedgerPeriod = (ledger: LedgerState, period: LedgerPeriod): LedgerState => {
  const s = ledger as unknown as State
  return { ...s, periodIndex: period.index, periodSpent: period.spent } as unknown as LedgerState
}

/** Drops the holds taken before `before` (their processes are gone), releasing what they held. */
const expireHolds = (s: State, before: number): State => {
  let holds = s.holds
  let reserved = s.reserved
  for (const [id, hold] of s.holds) {
    if (hold.heldAt !== undefined && hold.heldAt < before) {
      holds = HashMap.remove(holds, id)
      reserved -= hold.units
    }
  }
  return holds === s.holds ? s : { ...s, holds, reserved }
}

/**
 * A meter whose ledger lives in `store` (see `LedgerStore`): `make` with a store of your own,
 * such as the Redis one of `@llm-gateway/core/Redis`. `store` is given the empty ledger to
 * start from when it holds none.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeWithStore = <E, R>(
  options: StoreOptions,
  store: (initial: LedgerState) => Effect.Effect<LedgerStore<E>, never, R>
): Effect.Effect<Service<BudgetExceeded | E>, never, R> =>
  Effect.gen(function*() {
    const budget = options.budgetUsd === undefined
      ? undefined
      : unitsOfDollars(checkDollars("budgetUsd", options.budgetUsd))
    const period = options.periodBudget === undefined ? undefined : (() => {
      const periodBudget = options.periodBudget
      const millis = Duration.toMillis(Duration.decode(periodBudget.period))
      if (!(Number.isFinite(millis) && millis >= 1)) invalid("periodBudget.period must be a finite duration of 1 ms or more")
      return {
        name: periodBudget.name ?? periodName(millis),
        limit: unitsOfDollars(checkDollars("periodBudget.limitUsd", periodBudget.limitUsd)),
        millis
      }
    })()
    if (options.pricing !== undefined) {
      for (const [model, p] of Object.entries(options.pricing)) {
        checkDollars(`the prompt price of ${model}`, p.promptPerMillion)
        checkDollars(`the completion price of ${model}`, p.completionPerMillion)
      }
    }
    const rateOf = makeRates(options.pricing)
    const limits: Limits = { budget, period }

    const initialIndex = period === undefined
      ? 0
      : Math.floor((yield* Effect.clockWith((clock) => clock.currentTimeMillis)) / period.millis)
    const ledger = yield* store(emptyState(initialIndex) as unknown as LedgerState)
    const holdTimeout = options.holdTimeout === undefined
      ? undefined
      : Duration.toMillis(Duration.decode(options.holdTimeout))
    /** One transition of the ledger, after the abandoned holds are dropped (shared stores). */
    const modify = <A>(at: number, f: (s: State) => [A, State]): Effect.Effect<A, E> =>
      ledger.modify((current) => {
        const s = current as unknown as State
        return f(holdTimeout === undefined ? s : expireHolds(s, at - holdTimeout)) as unknown as [A, LedgerState]
      })

    const warned = new Set<string>()
    // Keyed and logged by the printable id: a caller's id may be huge or hold line breaks.
    const warnUnknown = (model: string, rate: Rate): Effect.Effect<void> => {
      if (rate.known) return Effect.void
      const shown = printableId(model)
      return warned.has(shown) || warned.size >= 1_000
        ? Effect.void
        : Effect.suspend(() => {
          warned.add(shown)
          return Effect.logWarning(
            `CostMeter: no price is known for model ${shown}; it is priced at the default for unknown models. Add it to the pricing table.`
          )
        })
    }

    const now = Effect.clockWith((clock) => clock.currentTimeMillis)

    const reserve = (
      model: string,
      promptTokens: number,
      maxCompletionTokens: number
    ): Effect.Effect<Reservation, BudgetExceeded | E> =>
      Effect.gen(function*() {
        const rate = rateOf(model)
        yield* warnUnknown(model, rate)
        const cost = exactCost(rate, promptTokens, maxCompletionTokens)
        const requested = cost.prompt + cost.completion
        const at = yield* now
        const outcome = yield* modify(at, (current) =>
          reserveStep(limits, current, at, {
            model,
            units: requested,
            slack: rate.prompt > rate.completion ? rate.prompt : rate.completion,
            promptTokens: Number(tokens(promptTokens)),
            completionTokens: Number(tokens(maxCompletionTokens)),
            ...(holdTimeout === undefined ? {} : { heldAt: at })
          }))
        return yield* outcome
      })

    const priced = (reservation: Reservation, usage: Usage | undefined): Cost =>
      usage === undefined
        ? toCost({ prompt: 0n, completion: 0n })
        : toCost(exactCost(rateOf(reservation.model), usage.promptTokens, usage.completionTokens))

    const settle = (reservation: Reservation, usage: Usage | undefined): Effect.Effect<Cost> =>
      Effect.gen(function*() {
        const at = yield* now
        const stepped = yield* Effect.either(
          modify(at, (current) => settleStep(limits, current, at, reservation.id, usage, rateOf))
        )
        if (Either.isLeft(stepped)) {
          // The hold stays until `holdTimeout` drops it; the caller still learns the price.
          yield* Effect.logWarning("CostMeter: the shared store did not record a settlement").pipe(
            Effect.annotateLogs({ "costMeter.reservation": reservation.id })
          )
          return priced(reservation, usage)
        }
        const result = stepped.right
        if (result !== undefined) {
          if (result.reported > result.held) {
            yield* Effect.logWarning(
              `CostMeter: the usage reported costs more than was reserved${
                result.capped ? "; only the reservation plus one token's price was recorded" : ""
              }`
            ).pipe(Effect.annotateLogs({
              "costMeter.reservation": reservation.id,
              "costMeter.reservedUsd": dollarsOfUnits(result.held),
              "costMeter.reportedUsd": dollarsOfUnits(result.reported)
            }))
          }
          return toCost(result.cost)
        }
        yield* Effect.logDebug("CostMeter: a reservation was settled twice or is unknown; nothing recorded").pipe(
          Effect.annotateLogs({ "costMeter.reservation": reservation.id })
        )
        return priced(reservation, usage)
      })

    // A shared store that does not answer: the last summary read stands in (logged).
    let lastSummary = summaryOf(limits, emptyState(initialIndex))
    const summary: Effect.Effect<Summary> = Effect.flatMap(now, (at) =>
      modify(at, (current): [Summary, State] => {
        const next = roll(limits, current, at)
        return [summaryOf(limits, next), next]
      }).pipe(
        Effect.tap((s) => {
          lastSummary = s
        }),
        Effect.catchAll(() =>
          Effect.as(Effect.logWarning("CostMeter: the shared store did not answer; the last summary read is reported"), lastSummary)
        )
      ))

    return {
      price: (model, usage) => toCost(exactCost(rateOf(model), usage.promptTokens, usage.completionTokens)),
      reserve,
      settle,
      summary
    }
  })

const exceeded = (budget: string, limit: bigint, committed: bigint, requested: bigint) =>
  new BudgetExceeded({
    budget,
    limitUsd: dollarsOfUnits(limit),
    spentUsd: dollarsOfUnits(committed),
    requestedUsd: dollarsOfUnits(requested)
  })

/**
 * A meter held in memory (see `make`), for one process.
 *
 * @example
 * import { CostMeter } from "@llm-gateway/core"
 *
 * const CostMeterLive = CostMeter.layerMemory({
 *   budgetUsd: 100,
 *   periodBudget: { limitUsd: 10, period: "1 day" },
 *   pricing: { "my-gateway-model": { promptPerMillion: 1, completionPerMillion: 4 } }
 * })
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerMemory = (options: Options = {}): Layer.Layer<CostMeter> => Layer.effect(CostMeter, make(options))

const dollars = (name: string) =>
  Config.number(name).pipe(
    Config.validate({
      message: "Expected a non-negative number of US dollars below 1e15",
      validation: (n) => Number.isFinite(n) && n >= 0 && n < 1e15
    }),
    Config.option,
    Config.map(Option.getOrUndefined)
  )

const decodePricing = Schema.decodeUnknownEither(Schema.parseJson(Pricing))

/**
 * Where `layerConfig` reads its settings:
 *
 * - `LLM_GATEWAY_BUDGET_USD`: total budget (optional).
 * - `LLM_GATEWAY_PERIOD_BUDGET_USD`: budget per period (optional).
 * - `LLM_GATEWAY_BUDGET_PERIOD`: the period, e.g. `1 day` (default) or `1 hour`.
 * - `LLM_GATEWAY_PRICING`: a JSON pricing table merged onto the built-in one, e.g.
 *   `{"my-model":{"promptPerMillion":1,"completionPerMillion":4},"*":{"promptPerMillion":5,"completionPerMillion":15}}`.
 *
 * @since 0.1.0
 * @category Config
 */
export const config: Config.Config<Options> = Config.all({
  budgetUsd: dollars("LLM_GATEWAY_BUDGET_USD"),
  periodLimit: dollars("LLM_GATEWAY_PERIOD_BUDGET_USD"),
  period: Config.duration("LLM_GATEWAY_BUDGET_PERIOD").pipe(
    Config.validate({
      message: "Expected a finite duration of 1 ms or more",
      validation: (d) => Duration.isFinite(d) && Duration.toMillis(d) >= 1
    }),
    Config.withDefault(Duration.days(1))
  ),
  pricing: Config.nested(
    Config.mapOrFail(Config.string(), (text) =>
      Either.mapLeft(decodePricing(text), () =>
        ConfigError.InvalidData(
          [],
          "Expected a JSON object of model prefix to {\"promptPerMillion\": number, \"completionPerMillion\": number}"
        ))),
    "LLM_GATEWAY_PRICING"
  ).pipe(Config.option, Config.map(Option.getOrUndefined))
}).pipe(
  Config.map(({ budgetUsd, period, periodLimit, pricing }): Options => ({
    budgetUsd,
    periodBudget: periodLimit === undefined ? undefined : { limitUsd: periodLimit, period },
    pricing
  }))
)

/**
 * A meter held in memory, configured from the environment (see `config`). A malformed
 * setting fails the Layer with a `ConfigError` naming the variable. `overrides` are applied
 * over what the environment sets.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerConfig = (overrides: Options = {}): Layer.Layer<CostMeter, ConfigError.ConfigError> =>
  Layer.effect(
    CostMeter,
    Effect.flatMap(config, (options) =>
      make({
        budgetUsd: overrides.budgetUsd ?? options.budgetUsd,
        periodBudget: overrides.periodBudget ?? options.periodBudget,
        pricing: { ...options.pricing, ...overrides.pricing }
      }))
  )
