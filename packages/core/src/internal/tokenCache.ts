/**
 * A refresh-ahead, single-flight cache of one access token around any token exchange: callers
 * share the token until its refresh time; from then the first caller starts one fetch (in its own
 * fiber, in the cache's scope, so an interrupted caller does not cancel a fetch others wait for)
 * and everyone waits for it; a refresh that fails while the old token is still valid keeps
 * serving the old one and tries again shortly. All timing is on the `Clock`.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Equal from "effect/Equal"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import type { AuthError } from "../GatewayError.js"

/** A token as the exchange issued it. */
export interface Issued {
  readonly token: Redacted.Redacted<string>
  /** Epoch milliseconds (Clock time) from which the token is replaced. */
  readonly refreshAt: number
  /** Epoch milliseconds (Clock time) at which the server said the token expires. */
  readonly expiresAt: number
}

/** The cached token and its invalidation. */
export interface TokenCache {
  readonly token: Effect.Effect<Redacted.Redacted<string>, AuthError>
  /** Forgets `stale` (a token the server refused), so the next `token` fetches a new one. */
  readonly invalidate: (stale: Redacted.Redacted<string>) => Effect.Effect<void>
}

type State =
  | { readonly _tag: "Empty" }
  | { readonly _tag: "Ready"; readonly issued: Issued }
  | {
    readonly _tag: "Fetching"
    readonly deferred: Deferred.Deferred<Redacted.Redacted<string>, AuthError>
    /** The token being replaced, still valid: the fallback if the refresh fails. */
    readonly previous: Issued | undefined
  }

const empty: State = { _tag: "Empty" }

/** After a failed refresh while the old token is still valid, wait this long before the next attempt. */
export const refreshRetryPause = 10_000

/** A cache around `fetch`, for the lifetime of the scope. */
export const make = (fetch: Effect.Effect<Issued, AuthError>): Effect.Effect<TokenCache, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const state = yield* Ref.make<State>(empty)

    const runFetch = (deferred: Deferred.Deferred<Redacted.Redacted<string>, AuthError>) =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(Effect.interruptible(fetch))
        const now = yield* Clock.currentTimeMillis
        const [result, fellBack] = yield* Ref.modify(
          state,
          (s): [readonly [Exit.Exit<Redacted.Redacted<string>, AuthError>, boolean], State] => {
            if (Exit.isSuccess(exit)) {
              return [[Exit.succeed(exit.value.token), false], { _tag: "Ready", issued: exit.value }]
            }
            const previous = s._tag === "Fetching" ? s.previous : undefined
            if (previous !== undefined && now < previous.expiresAt) {
              // A refresh failed early: keep serving the still-valid token and try again shortly.
              const refreshAt = now + Math.min(refreshRetryPause, (previous.expiresAt - now) / 2)
              return [[Exit.succeed(previous.token), true], { _tag: "Ready", issued: { ...previous, refreshAt } }]
            }
            return [[Exit.map(exit, (issued) => issued.token), false], empty]
          }
        )
        if (fellBack && Exit.isFailure(exit)) {
          const reason = Option.match(Cause.failureOption(exit.cause), {
            onNone: () => "interrupted",
            onSome: (error) => error.error
          })
          yield* Effect.logWarning("Token refresh failed; using the current token until it expires").pipe(
            Effect.annotateLogs({ service: "Auth", error: reason })
          )
        }
        yield* Deferred.done(deferred, result)
      })

    // Reading the state and claiming the fetch is one Ref.modify: two callers never both fetch.
    const token: Effect.Effect<Redacted.Redacted<string>, AuthError> = Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.flatten(Ref.modify(state, (s): [Effect.Effect<Redacted.Redacted<string>, AuthError>, State] => {
          if (s._tag === "Ready" && now < s.issued.refreshAt) return [Effect.succeed(s.issued.token), s]
          if (s._tag === "Fetching") return [restore(Deferred.await(s.deferred)), s]
          const deferred = Deferred.unsafeMake<Redacted.Redacted<string>, AuthError>(FiberId.none)
          const previous = s._tag === "Ready" && now < s.issued.expiresAt ? s.issued : undefined
          return [
            Effect.zipRight(Effect.forkIn(runFetch(deferred), scope), restore(Deferred.await(deferred))),
            { _tag: "Fetching", deferred, previous }
          ]
        }))
      )
    )

    const invalidate = (stale: Redacted.Redacted<string>): Effect.Effect<void> =>
      Ref.update(state, (s): State => {
        if (s._tag === "Ready" && Equal.equals(s.issued.token, stale)) return empty
        if (s._tag === "Fetching" && s.previous !== undefined && Equal.equals(s.previous.token, stale)) {
          return { ...s, previous: undefined }
        }
        return s
      })

    return { token, invalidate }
  })
