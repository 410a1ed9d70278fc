/**
 * Auth: where the bearer token for the gateway comes from.
 *
 * Two sources ship here: Genesys Cloud OAuth client credentials (`layerGenesys`,
 * `layerGenesysConfig`), which fetch, cache and refresh a token, and a static bearer token or
 * API key (`layerStatic`, `layerStaticConfig`).
 *
 * @since 0.1.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Encoding from "effect/Encoding"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Environment from "./Environment.js"
import { AuthError } from "./GatewayError.js"
import * as Sanitize from "./internal/sanitize.js"
import * as Bytes from "./internal/bytes.js"
import * as Issues from "./internal/issues.js"
import * as Json from "./internal/json.js"
import * as TokenCache from "./internal/tokenCache.js"

/**
 * What the pipeline needs from authentication: a bearer token for each request, and a way to drop
 * a token the gateway rejected.
 *
 * @since 0.1.0
 * @category Models
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
 * @category Services
 */
export class Auth extends Context.Tag("@llm-gateway/core/Auth")<Auth, Service>() {}

// ---------------------------------------------------------------------------------------------
// Static token
// ---------------------------------------------------------------------------------------------

/**
 * An Auth that always hands out the same bearer token (an API key). `invalidate` does nothing:
 * there is no other token to fetch, so a 401 with a static key is final and surfaces to the
 * caller.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeStatic = (token: Redacted.Redacted<string>): Service => ({
  token: isUsableToken(Redacted.value(token))
    ? Effect.succeed(token)
    : Effect.fail(
      new AuthError({
        error: "invalid_token",
        description: "the static API key holds characters that cannot be sent in an HTTP header (a line break or space?)"
      })
    ),
  invalidate: () => Effect.void
})

/**
 * Whether a bearer token can be sent as it is in an `Authorization` header: one or more
 * visible ASCII characters (RFC 6750's token characters are a subset). A token with a CR/LF,
 * a space or a non-ASCII character would be refused by the HTTP client on every attempt.
 *
 * @since 0.1.0
 * @category Utils
 */
export const isUsableToken = (token: string): boolean => /^[\x21-\x7e]+$/.test(token)

/**
 * Auth from a static bearer token or API key. See `makeStatic`: a 401 is final.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerStatic = (token: Redacted.Redacted<string>): Layer.Layer<Auth> =>
  Layer.succeed(Auth, makeStatic(token))

/**
 * Auth from the static key in `LLM_GATEWAY_API_KEY` (read as a redacted, non-empty value).
 * A missing or empty variable fails the Layer at start-up with a `ConfigError` naming it.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerStaticConfig = (): Layer.Layer<Auth, ConfigError.ConfigError> =>
  Layer.effect(
    Auth,
    Effect.map(
      Config.redacted(
        Config.nonEmptyString("LLM_GATEWAY_API_KEY").pipe(
          Config.validate({
            message: "Expected visible ASCII characters only (no spaces or line breaks)",
            validation: isUsableToken
          })
        )
      ),
      makeStatic
    )
  )

// ---------------------------------------------------------------------------------------------
// Genesys Cloud client credentials
// ---------------------------------------------------------------------------------------------

/**
 * Options for Genesys Cloud client credentials.
 *
 * - `clientId`, `clientSecret`: the OAuth client (grant type "Client Credentials"); the roles
 *   of the client decide what the token may do, so no scope is requested.
 * - `environment`: the region, e.g. `mypurecloud.com` or `usw2.pure.cloud` (see
 *   `Environment.resolve` for what is accepted).
 * - `loginUrl`: overrides `https://login.{environment}` (a simulator or a proxy); https is
 *   required unless the host is loopback.
 * - `requestTimeout`: how long one token request may take (default 10 seconds).
 * - `retry`: the pause between attempts after a connection failure, timeout, 408, 429 or 5xx
 *   (default `defaultTokenRetry`). Other failures are never retried, whatever the schedule.
 *
 * @since 0.1.0
 * @category Config
 */
export interface GenesysOptions {
  readonly clientId: string
  readonly clientSecret: Redacted.Redacted<string>
  readonly environment: string
  readonly loginUrl?: string | undefined
  readonly requestTimeout?: Duration.DurationInput | undefined
  readonly retry?: Schedule.Schedule<unknown, AuthError> | undefined
}

/**
 * The default retry of a token request: two more attempts after about 200 ms and 400 ms
 * (jittered). Short on purpose: callers are waiting, and a longer outage of the login server
 * is better reported than hidden.
 *
 * @since 0.1.0
 * @category Config
 */
export const defaultTokenRetry: Schedule.Schedule<unknown, AuthError> = Schedule.exponential("200 millis", 2).pipe(
  Schedule.jittered,
  Schedule.intersect(Schedule.recurs(2))
)

/**
 * How long before expiry a token is replaced: min(300 s, 10 % of its lifetime), so a request
 * never leaves with a token about to expire, and short-lived tokens are still used for most
 * of their life.
 *
 * @since 0.1.0
 * @category Utils
 */
export const refreshMargin = (lifetime: Duration.DurationInput): Duration.Duration =>
  Duration.min(Duration.seconds(300), Duration.times(Duration.decode(lifetime), 0.1))

/**
 * The longest token lifetime believed: 172,800 seconds (48 hours), the most Genesys Cloud can
 * be configured to issue. A larger `expires_in` (a broken endpoint answering `1e13`) is cut to
 * it, so the expiry is always a valid date and the token is still replaced in time.
 *
 * @since 0.1.0
 * @category Config
 */
export const maxTokenLifetime: Duration.Duration = Duration.seconds(172_800)

const TokenResponse = Schema.Struct({
  access_token: Schema.NonEmptyString,
  token_type: Schema.String,
  expires_in: Schema.Number.pipe(Schema.finite(), Schema.positive())
})

const OAuthErrorBody = Schema.Struct({
  error: Schema.String,
  error_description: Schema.optional(Schema.String)
})

/** The platform's API error shape (`{message, code, status}`), accepted too so its `code` is kept. */
const ApiErrorBody = Schema.Struct({
  code: Schema.String,
  message: Schema.optional(Schema.String)
})

const decodeTokenResponse = Schema.decodeUnknownEither(TokenResponse)
const decodeErrorBody = Schema.decodeUnknownOption(Schema.Union(OAuthErrorBody, ApiErrorBody))

/** A token response is a few hundred bytes; anything far larger is not one. */
const maxResponseBytes = 64 * 1024

const isTransient = (error: AuthError): boolean =>
  error.error === "connection_failed" || error.error === "timeout" ||
  (error.status !== undefined && (error.status === 408 || error.status === 429 || error.status >= 500))

/** The body of a token response as text, failing once it passes `maxResponseBytes`. */
const readBounded = (
  response: HttpClientResponse.HttpClientResponse,
  onError: (cause: { readonly message: string }) => AuthError
): Effect.Effect<string, AuthError> =>
  response.stream.pipe(
    Stream.mapError(onError),
    Stream.runFoldEffect({ parts: [] as Array<Uint8Array>, size: 0 }, (acc, bytes) => {
      acc.size += bytes.length
      acc.parts.push(bytes)
      return acc.size > maxResponseBytes
        ? Effect.fail(
          new AuthError({
            error: "invalid_response",
            description: `the token endpoint sent more than ${maxResponseBytes} bytes`,
            status: response.status
          })
        )
        : Effect.succeed(acc)
    }),
    Effect.map(({ parts }) => new TextDecoder().decode(Bytes.concat(parts)))
  )

interface ExchangeOptions {
  readonly tokenUrl: string
  readonly clientId: string
  readonly clientSecret: Redacted.Redacted<string>
  readonly requestTimeout: Duration.Duration
  readonly retry: Schedule.Schedule<unknown, AuthError>
}

/**
 * Build the client-credentials Auth against a resolved token URL: the token exchange, behind a
 * refresh-ahead, single-flight token cache (`internal/tokenCache.ts`).
 */
const makeWithTokenUrl = (options: ExchangeOptions): Effect.Effect<Service, never, HttpClient.HttpClient | Scope.Scope> =>
  Effect.flatMap(makeExchange(options), TokenCache.make)

/**
 * The token endpoint's answer (status and body text) as an issued token or a typed `AuthError`:
 * pure, so every answer a server can give is tested without a network. `sanitize` cleans any
 * server text before it enters the error.
 */
const interpret = (
  sanitize: Sanitize.Sanitize,
  status: number,
  text: string,
  startedAt: number
): Either.Either<TokenCache.Issued, AuthError> => {
  const json = Json.parseOption(text)
  if (status < 200 || status >= 300) {
    const body = Option.flatMap(json, decodeErrorBody)
    if (Option.isNone(body)) {
      return Either.left(
        new AuthError({
          error: "invalid_response",
          description: `the token endpoint answered HTTP ${status} without an OAuth error`,
          status
        })
      )
    }
    const value = body.value
    const error = sanitize("error" in value ? value.error : value.code, Sanitize.limits.identifier)
    const description = Sanitize.optional(
      sanitize,
      "error" in value ? value.error_description : value.message,
      Sanitize.limits.text
    )
    return Either.left(
      new AuthError({
        error: error === "" ? "invalid_response" : error,
        ...(description === undefined || description === "" ? {} : { description }),
        status
      })
    )
  }
  if (Option.isNone(json)) {
    return Either.left(
      new AuthError({ error: "invalid_response", description: "the token response is not JSON", status })
    )
  }
  const decoded = decodeTokenResponse(json.value)
  if (Either.isLeft(decoded)) {
    // Only the field names: the values may include the token itself.
    const fields = Issues.paths(decoded.left)
    return Either.left(
      new AuthError({
        error: "invalid_response",
        description: `the token response lacks a valid ${fields.join(", ")}`,
        status
      })
    )
  }
  if (decoded.right.token_type.toLowerCase() !== "bearer") {
    return Either.left(
      new AuthError({ error: "invalid_response", description: "the token type is not bearer", status })
    )
  }
  if (!isUsableToken(decoded.right.access_token)) {
    // Not retried: the same endpoint would hand out the same kind of token.
    return Either.left(
      new AuthError({
        error: "invalid_response",
        description:
          "the token endpoint returned an unusable token (characters that cannot be sent in an HTTP header)",
        status
      })
    )
  }
  const lifetime = Math.min(decoded.right.expires_in * 1000, Duration.toMillis(maxTokenLifetime))
  const expiresAt = startedAt + lifetime
  return Either.right({
    token: Redacted.make(decoded.right.access_token),
    expiresAt,
    refreshAt: expiresAt - Duration.toMillis(refreshMargin(Duration.millis(lifetime)))
  })
}

/**
 * The token exchange: one client-credentials request (bounded body, timeout, retried while
 * transient), interpreted into a token or a typed `AuthError`. `sanitize` removes the secret
 * and the Basic credentials from any text that came from outside (server messages, socket
 * errors), then redacts PII and cuts it, before it enters an error or a log.
 */
const makeExchange = (options: ExchangeOptions): Effect.Effect<Effect.Effect<TokenCache.Issued, AuthError>, never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const client = (yield* HttpClient.HttpClient).pipe(Sanitize.hideHeaderValuesInSpans, HttpClient.withScope)
    const { tokenUrl, requestTimeout } = options

    const credentials = Encoding.encodeBase64(`${options.clientId}:${Redacted.value(options.clientSecret)}`)
    const authorization = Redacted.make(`Basic ${credentials}`)
    const sanitize = Sanitize.make([options.clientSecret, credentials])

    const request = HttpClientRequest.post(tokenUrl).pipe(
      HttpClientRequest.setHeader("authorization", Redacted.value(authorization)),
      HttpClientRequest.acceptJson,
      HttpClientRequest.bodyUrlParams({ grant_type: "client_credentials" })
    )

    const connectionFailed = (cause: { readonly message: string }, status?: number) =>
      new AuthError({
        error: "connection_failed",
        description: `could not reach ${tokenUrl}: ${sanitize(cause.message, Sanitize.limits.text)}`,
        ...(status === undefined ? {} : { status })
      })

    const readBody = (response: HttpClientResponse.HttpClientResponse) =>
      readBounded(response, (cause) => connectionFailed(cause, response.status))

    const attempt: Effect.Effect<TokenCache.Issued, AuthError> = Effect.gen(function*() {
      // The lifetime counts from before the request left, so the token never outlives our view of it.
      const startedAt = yield* Clock.currentTimeMillis
      const response = yield* client.execute(request).pipe(Effect.mapError((cause) => connectionFailed(cause)))
      const text = yield* readBody(response)
      return yield* interpret(sanitize, response.status, text, startedAt)
    }).pipe(
      Effect.scoped,
      Effect.timeoutFail({
        duration: requestTimeout,
        onTimeout: () =>
          new AuthError({
            error: "timeout",
            description: `no answer from ${tokenUrl} within ${Duration.format(requestTimeout)}`
          })
      }),
      Effect.tapError((error) =>
        Effect.logDebug("Token request attempt failed").pipe(
          Effect.annotateLogs({ error: error.error, status: error.status ?? "none" })
        )
      )
    )

    const fetchToken: Effect.Effect<TokenCache.Issued, AuthError> = attempt.pipe(
      Effect.retry({ schedule: options.retry, while: isTransient }),
      Effect.tap((issued) =>
        Effect.logDebug("Obtained an access token").pipe(
          Effect.annotateLogs({ expiresAt: new Date(issued.expiresAt).toISOString() })
        )
      ),
      Effect.withSpan("Auth.fetchToken", { attributes: { "url.full": tokenUrl } }),
      Effect.annotateLogs({ service: "Auth", tokenUrl })
    )

    return fetchToken
  })

/**
 * The default time one token request may take.
 *
 * @since 0.1.0
 * @category Config
 */
export const defaultRequestTimeout: Duration.Duration = Duration.seconds(10)

const resolveOptions = (options: GenesysOptions): Either.Either<string, Environment.InvalidEnvironment> =>
  Either.flatMap(Environment.resolve(options.environment), (env) =>
    options.loginUrl === undefined
      ? Either.right(Environment.loginBaseUrl(env))
      : Environment.resolveLoginUrl(options.loginUrl))

const tokenPath = "/oauth/token"

/**
 * The Genesys Cloud client-credentials Auth, exactly as the platform does it: `POST
 * {login}/oauth/token` with `Authorization: Basic base64(id:secret)` and the form body
 * `grant_type=client_credentials`. The token is cached until min(300 s, 10 % of its lifetime)
 * before it expires (measured with the Effect `Clock`); concurrent callers share one in-flight
 * request; a failed request is not cached, so the next call tries again. If an early refresh
 * fails while the current token is still valid, that token keeps being served and the refresh
 * is tried again 10 seconds later. Fails with `InvalidEnvironment` when `environment` or
 * `loginUrl` is unusable. The in-flight request runs in the given `Scope`.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeGenesys = (
  options: GenesysOptions
): Effect.Effect<Service, Environment.InvalidEnvironment, HttpClient.HttpClient | Scope.Scope> =>
  Effect.flatMap(resolveOptions(options), (loginBase) =>
    makeWithTokenUrl({
      tokenUrl: `${loginBase}${tokenPath}`,
      clientId: options.clientId,
      clientSecret: options.clientSecret,
      requestTimeout: Duration.decode(options.requestTimeout ?? defaultRequestTimeout),
      retry: options.retry ?? defaultTokenRetry
    }))

/**
 * Auth from Genesys Cloud client credentials; see `makeGenesys`. Needs an `HttpClient`
 * (`FetchHttpClient.layer`, or `NodeHttpClient.layerUndici` from `@effect/platform-node`).
 *
 * @example
 * import { FetchHttpClient } from "@effect/platform"
 * import * as Layer from "effect/Layer"
 * import * as Redacted from "effect/Redacted"
 * import { Auth } from "@llm-gateway/core"
 *
 * const AuthLive = Auth.layerGenesys({
 *   clientId: "7de3af06-c0b3-4f9b-af45-72f4a1403797",
 *   clientSecret: Redacted.make("the-client-secret"),
 *   environment: "mypurecloud.de"
 * }).pipe(Layer.provide(FetchHttpClient.layer))
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerGenesys = (
  options: GenesysOptions
): Layer.Layer<Auth, Environment.InvalidEnvironment, HttpClient.HttpClient> =>
  Layer.scoped(Auth, makeGenesys(options))

const validated = <A>(config: Config.Config<string>, f: (value: string) => Either.Either<A, Environment.InvalidEnvironment>) =>
  Config.mapOrFail(config, (value) => Either.mapLeft(f(value), (error) => ConfigError.InvalidData([], error.message)))

/**
 * Auth from Genesys Cloud client credentials read from the environment: `GENESYS_CLIENT_ID`,
 * `GENESYS_CLIENT_SECRET` (redacted), `GENESYS_ENVIRONMENT` (validated with
 * `Environment.resolve`) and optionally `GENESYS_LOGIN_URL`. A missing, empty or invalid
 * variable fails the Layer at start-up with a `ConfigError` naming it.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerGenesysConfig = (): Layer.Layer<Auth, ConfigError.ConfigError, HttpClient.HttpClient> =>
  Layer.scoped(
    Auth,
    Effect.gen(function*() {
      const config = yield* Config.all({
        clientId: Config.nonEmptyString("GENESYS_CLIENT_ID"),
        clientSecret: Config.redacted(Config.nonEmptyString("GENESYS_CLIENT_SECRET")),
        environment: validated(Config.string("GENESYS_ENVIRONMENT"), Environment.resolve),
        loginUrl: Config.option(validated(Config.string("GENESYS_LOGIN_URL"), Environment.resolveLoginUrl))
      })
      return yield* makeWithTokenUrl({
        tokenUrl: `${Option.getOrElse(config.loginUrl, () => Environment.loginBaseUrl(config.environment))}${tokenPath}`,
        clientId: config.clientId,
        clientSecret: config.clientSecret,
        requestTimeout: defaultRequestTimeout,
        retry: defaultTokenRetry
      })
    })
  )
