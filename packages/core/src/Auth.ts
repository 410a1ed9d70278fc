/**
 * Auth: where the bearer token for the gateway comes from.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import type { AuthError } from "./GatewayError.js"

/**
 * @since 0.1.0
 */
export interface Service {
  /** A valid bearer token; concurrent callers share one in-flight token request. */
  readonly token: Effect.Effect<Redacted.Redacted<string>, AuthError>
  /**
   * Forget `stale` after the gateway rejected it with 401, so the next `token` fetches a new
   * one. A token that was already replaced is left alone, so many concurrent 401s cause one
   * new token request.
   */
  readonly invalidate: (stale: Redacted.Redacted<string>) => Effect.Effect<void>
}

/**
 * The Auth service.
 *
 * @since 0.1.0
 */
export class Auth extends Context.Tag("@llm-gateway/core/Auth")<Auth, Service>() {}
