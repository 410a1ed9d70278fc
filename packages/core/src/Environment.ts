/**
 * Genesys Cloud environments: which region host an organization lives on, and the login and
 * API base URLs that follow from it.
 *
 * @since 0.1.0
 */
import type * as Brand from "effect/Brand"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"

/**
 * The region hosts Genesys Cloud publishes. The login host is `login.{environment}`, the API
 * host `api.{environment}`.
 *
 * @since 0.1.0
 * @category Config
 */
export const knownEnvironments = [
  "mypurecloud.com",
  "mypurecloud.ie",
  "mypurecloud.com.au",
  "mypurecloud.jp",
  "mypurecloud.de",
  "usw2.pure.cloud",
  "cac1.pure.cloud",
  "apne2.pure.cloud",
  "euw2.pure.cloud",
  "aps1.pure.cloud",
  "sae1.pure.cloud",
  "mec1.pure.cloud",
  "apne3.pure.cloud",
  "euc2.pure.cloud",
  "mxc1.pure.cloud",
  "apse1.pure.cloud",
  "use2.us-gov-pure.cloud"
] as const

/**
 * A validated environment: a Genesys Cloud region host in canonical form (lower case, no
 * scheme, no `api.`/`login.` prefix, no trailing dot or slash), or a loopback `host:port` that
 * is served over plain http (simulators and tests). Obtain one from `resolve`.
 *
 * @since 0.1.0
 * @category Models
 */
export type Environment = string & Brand.Brand<"@llm-gateway/core/Environment">

/**
 * An environment or login URL that cannot be used. `input` is what was given (shortened, with
 * any embedded credentials removed); `reason` says what is wrong with it.
 *
 * @since 0.1.0
 * @category Errors
 */
export class InvalidEnvironment extends Schema.TaggedError<InvalidEnvironment>(
  "@llm-gateway/core/InvalidEnvironment"
)("InvalidEnvironment", {
  subject: Schema.Literal("environment", "loginUrl"),
  input: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return this.subject === "environment"
      ? `"${this.input}" is not a usable Genesys Cloud environment: ${this.reason}. Give a region host such as mypurecloud.com or usw2.pure.cloud.`
      : `"${this.input}" is not a usable login URL: ${this.reason}.`
  }
}

const known: ReadonlySet<string> = new Set(knownEnvironments)

/**
 * Regions added after this release still resolve: a region code (letters then one or two
 * digits, like `usw2` or `apse1`) on `pure.cloud` or a partition domain such as
 * `us-gov-pure.cloud`. The legacy `mypurecloud.*` family is closed, so an unlisted
 * `mypurecloud.*` host is a typo and is rejected.
 */
const unlistedRegion = /^[a-z]{2,8}[0-9]{1,2}\.(?:[a-z0-9]+(?:-[a-z0-9]+)*-)?pure\.cloud$/

const hostPrefixes = ["api.", "login.", "apps."] as const

const isLoopbackHost = (host: string): boolean =>
  host === "localhost" || host === "[::1]" || /^127\.(?:\d{1,3}\.){2}\d{1,3}$/.test(host)

/** The input as it may appear in an error message: credentials removed, length bounded. */
const display = (input: string): string => {
  const withoutCredentials = input.replace(/^([^/?#]*\/\/)?[^/?#]*@/, (_, scheme: string | undefined) => `${scheme ?? ""}<redacted>@`)
  return withoutCredentials.length > 120 ? `${withoutCredentials.slice(0, 117)}...` : withoutCredentials
}

const invalid = (subject: "environment" | "loginUrl", input: string, reason: string) =>
  Either.left(new InvalidEnvironment({ subject, input: display(input), reason }))

/**
 * Turn what a user wrote into an `Environment`. Accepted: a region host (`mypurecloud.de`,
 * `usw2.pure.cloud`), or the same written as a URL or host of the login or API server
 * (`https://api.mypurecloud.de`, `login.usw2.pure.cloud/`), in any case, with trailing dots or
 * slashes. The scheme is ignored for region hosts, which are always reached over https.
 * Region hosts not in `knownEnvironments` resolve when they follow the `pure.cloud` naming of
 * regions (`{code}.pure.cloud`, `{code}.{partition}-pure.cloud`). A loopback host with an
 * optional port (`127.0.0.1:8080`, `localhost:1234`, `[::1]:80`) resolves to a plain-http
 * environment for simulators and tests; `https://` on a loopback host is refused rather than
 * silently downgraded. Anything else fails with `InvalidEnvironment` naming the input.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const resolve = (input: string): Either.Either<Environment, InvalidEnvironment> => {
  let rest = input.trim().toLowerCase()
  if (rest.length === 0) return invalid("environment", input, "it is empty")

  let scheme: string | undefined
  const schemeMatch = /^([a-z][a-z0-9+.-]*):\/\//.exec(rest)
  if (schemeMatch !== null) {
    scheme = schemeMatch[1]
    if (scheme !== "https" && scheme !== "http") {
      return invalid("environment", input, `the scheme ${scheme}:// is not supported`)
    }
    rest = rest.slice(schemeMatch[0].length)
  }

  const end = rest.search(/[/?#]/)
  if (end !== -1) {
    if (!/^\/*$/.test(rest.slice(end))) {
      return invalid("environment", input, "it has a path, query or fragment; give only the host")
    }
    rest = rest.slice(0, end)
  }
  if (rest.includes("@")) return invalid("environment", input, "it must not contain credentials")

  const authority = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(rest)
  if (authority === null) return invalid("environment", input, "it is not a host name")
  const host = authority[1]!.replace(/\.+$/, "")
  const port = authority[2]

  if (isLoopbackHost(host)) {
    if (scheme === "https") {
      return invalid("environment", input, "loopback environments are served over plain http; write http:// or omit the scheme")
    }
    if (port === undefined || port === "") return Either.right(host as Environment)
    const portNumber = Number(port)
    if (!(portNumber >= 1 && portNumber <= 65535)) {
      return invalid("environment", input, `the port ${port} is out of range`)
    }
    return Either.right(`${host}:${portNumber}` as Environment)
  }

  if (port !== undefined) return invalid("environment", input, "a Genesys Cloud region host has no port")

  let region = host
  for (const prefix of hostPrefixes) {
    if (region.startsWith(prefix) && region.indexOf(".", prefix.length) !== -1) {
      region = region.slice(prefix.length)
      break
    }
  }
  if (known.has(region) || unlistedRegion.test(region)) return Either.right(region as Environment)
  if (/^mypurecloud\./.test(region)) {
    return invalid(
      "environment",
      input,
      `${region} is not a Genesys Cloud region; the mypurecloud regions are ${knownEnvironments.filter((e) => e.startsWith("mypurecloud.")).join(", ")}`
    )
  }
  return invalid("environment", input, "it is not a Genesys Cloud region host (mypurecloud.* or *.pure.cloud)")
}

/**
 * Whether the environment is a loopback host reached over plain http.
 *
 * @since 0.1.0
 * @category Guards
 */
export const isLoopback = (env: Environment): boolean => {
  const host = env.startsWith("[") ? env.slice(0, env.indexOf("]") + 1) : env.split(":")[0]!
  return isLoopbackHost(host)
}

/**
 * The login (OAuth) base URL: `https://login.{env}`. A loopback environment serves login and
 * API on one host: `http://{host:port}`.
 *
 * @since 0.1.0
 * @category Utils
 */
export const loginBaseUrl = (env: Environment): string => isLoopback(env) ? `http://${env}` : `https://login.${env}`

/**
 * The API base URL: `https://api.{env}`, or `http://{host:port}` for a loopback environment.
 *
 * @since 0.1.0
 * @category Utils
 */
export const apiBaseUrl = (env: Environment): string => isLoopback(env) ? `http://${env}` : `https://api.${env}`

/**
 * Validate a login base URL that overrides the one derived from the environment (a simulator,
 * a proxy). It must be absolute, https unless its host is loopback, without credentials, query
 * or fragment; a path is kept. Returns the URL without a trailing slash, to which
 * `/oauth/token` is appended.
 *
 * @since 0.1.0
 * @category Utils
 */
export const resolveLoginUrl = (input: string): Either.Either<string, InvalidEnvironment> => {
  let url: URL
  try {
    url = new URL(input.trim())
  } catch {
    return invalid("loginUrl", input, "it is not an absolute URL such as https://login.mypurecloud.com")
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    return invalid("loginUrl", input, `the scheme ${url.protocol}// is not supported`)
  }
  if (url.username !== "" || url.password !== "") {
    return invalid("loginUrl", input, "it must not contain credentials")
  }
  if (url.search !== "" || url.hash !== "") {
    return invalid("loginUrl", input, "it must not have a query or fragment")
  }
  const host = url.hostname.replace(/\.+$/, "")
  if (url.protocol === "http:" && !isLoopbackHost(host)) {
    return invalid("loginUrl", input, "it must use https unless the host is loopback (127.0.0.1, localhost, [::1])")
  }
  return Either.right(`${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, "")}`)
}
