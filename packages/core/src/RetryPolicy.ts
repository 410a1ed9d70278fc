/**
 * Retry as data: a `Schedule` that decides whether, and after how long, a failed attempt to
 * open a response is sent again. Exponential backoff with jitter, a bounded number of attempts
 * and a total deadline; a server's `Retry-After` / `retry-after-ms` replaces the backoff, and a
 * request to wait longer than the policy allows ends the retries at once so the caller sees the
 * server's error (a `RateLimited` carrying `retryAfter`) instead of a long silent sleep.
 *
 * The pieces are exported so an application can build its own policy:
 *
 * ```ts
 * import * as Duration from "effect/Duration"
 * import * as Schedule from "effect/Schedule"
 * import * as RetryPolicy from "@llm-gateway/core/RetryPolicy"
 *
 * const policy = Schedule.exponential("200 millis").pipe(
 *   Schedule.jittered,
 *   RetryPolicy.honourRetryAfter(),
 *   Schedule.intersect(Schedule.recurs(3)),
 *   Schedule.whileInput(RetryPolicy.isRetryable),
 *   Schedule.upTo(Duration.seconds(20))
 * )
 * ```
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import { identity } from "effect/Function"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schedule from "effect/Schedule"

/**
 * Response headers as @effect/platform `Headers` (lower-case keys) or any plain record
 * (keys matched case-insensitively; for a repeated header the first value counts).
 *
 * @since 0.1.0
 * @category Models
 */
export type HeadersInput = Readonly<Record<string, string | ReadonlyArray<string> | undefined>>

const headerValue = (headers: HeadersInput, name: string): string | undefined => {
  const pick = (value: string | ReadonlyArray<string> | undefined) =>
    value === undefined ? undefined : typeof value === "string" ? value : value[0]
  const direct = pick(headers[name])
  if (direct !== undefined) return direct
  for (const key of Object.keys(headers)) {
    if (key.length === name.length && key.toLowerCase() === name) return pick(headers[key])
  }
  return undefined
}

const DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
const LONG_DAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

// RFC 9110 §5.6.7: IMF-fixdate, and the two obsolete forms a recipient must still accept.
const IMF_FIXDATE = /^([a-z]{3}), (\d{2}) ([a-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) gmt$/i
const RFC850_DATE = /^([a-z]{6,9}), (\d{2})-([a-z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) gmt$/i
const ASCTIME_DATE = /^([a-z]{3}) ([a-z]{3}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/i

const toEpoch = (
  year: number,
  monthName: string,
  day: number,
  hour: number,
  minute: number,
  second: number
): number | undefined => {
  const month = MONTHS.indexOf(monthName.toLowerCase())
  if (month < 0 || hour > 23 || minute > 59 || second > 60 || day < 1) return undefined
  // A leap second (60) is read as the next second, as Date.UTC would.
  const epoch = Date.UTC(year, month, day, hour, minute, second)
  const check = new Date(epoch - (second === 60 ? 1000 : 0))
  // Reject dates that Date.UTC silently rolls over (Feb 30 → Mar 2).
  if (check.getUTCDate() !== day || check.getUTCMonth() !== month) return undefined
  return epoch
}

/**
 * Parses an HTTP-date (RFC 9110 §5.6.7: IMF-fixdate, RFC 850 and asctime forms, all in UTC)
 * to epoch milliseconds. A two-digit RFC 850 year that would lie more than 50 years after
 * `now` is read as the most recent past year with those digits, as the RFC requires.
 *
 * @since 0.1.0
 * @category Retry-After
 */
export const parseHttpDate = (value: string, now: number): Option.Option<number> => {
  const text = value.trim()
  let m = IMF_FIXDATE.exec(text)
  if (m !== null) {
    if (!DAYS.includes(m[1]!.toLowerCase())) return Option.none()
    return Option.fromNullable(toEpoch(Number(m[4]), m[3]!, Number(m[2]), Number(m[5]), Number(m[6]), Number(m[7])))
  }
  m = RFC850_DATE.exec(text)
  if (m !== null) {
    if (!LONG_DAYS.includes(m[1]!.toLowerCase())) return Option.none()
    const nowYear = new Date(now).getUTCFullYear()
    const yy = Number(m[4])
    let year = Math.floor(nowYear / 100) * 100 + yy
    if (year > nowYear + 50) year -= 100
    return Option.fromNullable(toEpoch(year, m[3]!, Number(m[2]), Number(m[5]), Number(m[6]), Number(m[7])))
  }
  m = ASCTIME_DATE.exec(text)
  if (m !== null) {
    if (!DAYS.includes(m[1]!.toLowerCase())) return Option.none()
    return Option.fromNullable(
      toEpoch(Number(m[7]), m[2]!, Number(m[3]!.trim()), Number(m[4]), Number(m[5]), Number(m[6]))
    )
  }
  return Option.none()
}

const DELTA_SECONDS = /^\d+$/
const MILLIS = /^\d+(\.\d+)?$/

/**
 * How long the server asked us to wait before sending the request again, from its response
 * headers: `retry-after-ms` (milliseconds, preferred because it is precise), else
 * `Retry-After` as delta-seconds or as an HTTP-date (RFC 9110 §10.2.3). A date in the past
 * means "now" (zero); a missing or malformed header means `None`. `now` is the current time
 * (read it from `Clock` so tests can move it).
 *
 * @since 0.1.0
 * @category Retry-After
 */
export const parseRetryAfter = (headers: HeadersInput, now: Date | number): Option.Option<Duration.Duration> => {
  const ms = headerValue(headers, "retry-after-ms")?.trim()
  if (ms !== undefined && MILLIS.test(ms)) {
    const value = Number(ms)
    if (Number.isFinite(value)) return Option.some(Duration.millis(value))
  }
  const raw = headerValue(headers, "retry-after")?.trim()
  if (raw === undefined || raw === "") return Option.none()
  if (DELTA_SECONDS.test(raw)) {
    const seconds = Number(raw)
    return Number.isFinite(seconds) ? Option.some(Duration.seconds(seconds)) : Option.some(Duration.infinity)
  }
  const nowMs = typeof now === "number" ? now : now.getTime()
  return Option.map(parseHttpDate(raw, nowMs), (at) => Duration.millis(Math.max(0, at - nowMs)))
}

/**
 * Whether a failure may succeed when sent again: reads the error's own `isRetryable` (every
 * `GatewayError` has one). Anything else (a defect-like value, a foreign error) is not retried.
 *
 * @since 0.1.0
 * @category Guards
 */
export const isRetryable = (error: unknown): boolean =>
  Predicate.hasProperty(error, "isRetryable") && error.isRetryable === true

/**
 * The wait a failure carries from the server (`RateLimited.retryAfter`, or any error with a
 * `Duration` field named `retryAfter`).
 *
 * @since 0.1.0
 * @category Retry-After
 */
export const retryAfterOf = (error: unknown): Option.Option<Duration.Duration> =>
  Predicate.hasProperty(error, "retryAfter") && Duration.isDuration(error.retryAfter)
    ? Option.some(error.retryAfter)
    : Option.none()

/**
 * A schedule combinator: when the failure being retried carries a server-requested wait
 * (see `retryAfterOf`), wait exactly that long instead of the schedule's own delay. Jitter is
 * not applied to a server's wait.
 *
 * @since 0.1.0
 * @category Combinators
 */
export const honourRetryAfter = <In = unknown>(
  retryAfter: (input: In) => Option.Option<Duration.Duration> = retryAfterOf
) =>
<Out, R>(self: Schedule.Schedule<Out, In, R>): Schedule.Schedule<Out, In, R> =>
  self.pipe(
    Schedule.intersect(Schedule.identity<In>()),
    Schedule.modifyDelay(([, input], delay) => Option.getOrElse(retryAfter(input), () => delay)),
    Schedule.map(([out]) => out)
  )

/**
 * What a retry policy reports for each retry it allows: the retry's number (1 for the
 * first retry), the delay before it and the time since the first failure. Useful with
 * `Schedule.tapOutput` to log retries.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Step {
  readonly retry: number
  readonly delay: Duration.Duration
  readonly elapsed: Duration.Duration
}

/**
 * Settings of `make`. Every field has a default (see `defaultOptions`).
 *
 * - `initialDelay`, `factor`, `maxDelay`: exponential backoff `initialDelay · factor^n`, each
 *   delay capped at `maxDelay`.
 * - `jitter`: the random factor range each backoff delay is multiplied by, or `false`.
 *   Jitter reads Effect's `Random` service, so `Effect.withRandom(Random.fixed([...]))` makes
 *   it deterministic in tests.
 * - `maxAttempts`: attempts in all, the first one included (1 = never retry).
 * - `deadline`: no retry starts later than this after the first failure; a delay that would
 *   end past it ends the retries instead.
 * - `maxRetryAfter`: the longest server-requested wait we honour; a longer one ends the
 *   retries at once (the caller gets the `RateLimited` with the server's `retryAfter`).
 * - `isRetryable`, `retryAfter`: how a failure is read (defaults: `isRetryable`,
 *   `retryAfterOf`).
 *
 * @since 0.1.0
 * @category Config
 */
export interface Options<E = unknown> {
  readonly initialDelay?: Duration.DurationInput | undefined
  readonly factor?: number | undefined
  readonly maxDelay?: Duration.DurationInput | undefined
  readonly jitter?: false | { readonly min?: number | undefined; readonly max?: number | undefined } | undefined
  readonly maxAttempts?: number | undefined
  readonly deadline?: Duration.DurationInput | undefined
  readonly maxRetryAfter?: Duration.DurationInput | undefined
  readonly isRetryable?: ((error: E) => boolean) | undefined
  readonly retryAfter?: ((error: E) => Option.Option<Duration.Duration>) | undefined
}

/**
 * The defaults: 500 ms doubling up to 10 s, jitter ×0.8–1.2, 4 attempts, a 60 s deadline and
 * server waits honoured up to 60 s.
 *
 * @since 0.1.0
 * @category Config
 */
export const defaultOptions = {
  initialDelay: Duration.millis(500),
  factor: 2,
  maxDelay: Duration.seconds(10),
  jitter: { min: 0.8, max: 1.2 },
  maxAttempts: 4,
  deadline: Duration.seconds(60),
  maxRetryAfter: Duration.seconds(60)
} as const

const finiteOr = (value: number | undefined, fallback: number) =>
  value !== undefined && Number.isFinite(value) ? value : fallback

/**
 * Builds a retry policy from `options` (see `Options`). The result is an ordinary `Schedule`
 * to pass to `Effect.retry`; its input is the failure, its output a `Step`. It is built only
 * from `Schedule` combinators (exponential, jittered, modifyDelay, intersect with recurs and
 * elapsed, whileInput, check), so it can be extended with more of them.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const make = <E = unknown>(options: Options<E> = {}): Schedule.Schedule<Step, E> => {
  const initialDelay = Duration.decode(options.initialDelay ?? defaultOptions.initialDelay)
  const factor = Math.max(1, finiteOr(options.factor, defaultOptions.factor))
  const maxDelay = Duration.decode(options.maxDelay ?? defaultOptions.maxDelay)
  const maxAttempts = Math.max(1, Math.floor(finiteOr(options.maxAttempts, defaultOptions.maxAttempts)))
  const deadline = Duration.decode(options.deadline ?? defaultOptions.deadline)
  const maxRetryAfter = Duration.decode(options.maxRetryAfter ?? defaultOptions.maxRetryAfter)
  const retryable: (error: E) => boolean = options.isRetryable ?? isRetryable
  const retryAfter: (error: E) => Option.Option<Duration.Duration> = options.retryAfter ?? retryAfterOf
  const jitter = options.jitter === undefined ? defaultOptions.jitter : options.jitter

  return Schedule.exponential(initialDelay, factor).pipe(
    jitter === false ? identity : Schedule.jitteredWith(jitter),
    Schedule.modifyDelay((_, delay) => Duration.min(delay, maxDelay)),
    honourRetryAfter<E>(retryAfter),
    // From here on the output is the delay actually chosen, so the checks below can see it.
    Schedule.delays,
    Schedule.intersect(Schedule.elapsed),
    Schedule.intersect(Schedule.recurs(maxAttempts - 1)),
    Schedule.whileInput(retryable),
    Schedule.check((error: E, [[delay, elapsed]]) =>
      Option.match(retryAfter(error), {
        onNone: () => true,
        onSome: (wait) => Duration.lessThanOrEqualTo(wait, maxRetryAfter)
      }) && Duration.lessThanOrEqualTo(Duration.sum(elapsed, delay), deadline)
    ),
    Schedule.map(([[delay, elapsed], n]): Step => ({ retry: n + 1, delay, elapsed }))
  )
}

/**
 * The default policy (`make()` with `defaultOptions`), for any failure type.
 *
 * @since 0.1.0
 * @category Config
 */
export const defaults: Schedule.Schedule<Step, unknown> = make()
