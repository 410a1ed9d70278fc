/**
 * CostMeter: prices token usage per model, reserves the worst case against budgets before a
 * request leaves, and settles the real cost afterwards.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { Cost, Usage } from "./Chat.js"
import type { BudgetExceeded } from "./GatewayError.js"

/**
 * A hold on budget for one request in flight.
 *
 * @since 0.1.0
 */
export interface Reservation {
  readonly id: string
  readonly model: string
  readonly amountUsd: number
}

/**
 * Totals so far.
 *
 * @since 0.1.0
 */
export interface Summary {
  readonly requests: number
  readonly promptTokens: number
  readonly completionTokens: number
  readonly totalUsd: number
  readonly reservedUsd: number
  readonly budgetUsd: number | undefined
  readonly remainingUsd: number | undefined
}

/**
 * @since 0.1.0
 */
export interface Service {
  /** What `usage` costs on `model`. */
  readonly price: (model: string, usage: Usage) => Cost
  /** Holds the worst-case cost of a request, or fails if a budget cannot cover it. */
  readonly reserve: (
    model: string,
    promptTokens: number,
    maxCompletionTokens: number
  ) => Effect.Effect<Reservation, BudgetExceeded>
  /** Releases the hold and records the real usage (`undefined` when nothing was used). */
  readonly settle: (reservation: Reservation, usage: Usage | undefined) => Effect.Effect<Cost>
  readonly summary: Effect.Effect<Summary>
}

/**
 * The CostMeter service.
 *
 * @since 0.1.0
 */
export class CostMeter extends Context.Tag("@llm-gateway/core/CostMeter")<CostMeter, Service>() {}
