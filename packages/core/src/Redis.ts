/**
 * Redis: the response cache, the single-flight of identical requests, the cost budgets, the
 * client rate limit and the conversations shared by every process of a deployment, on one Redis
 * server.
 *
 * A separate entry point (`@llm-gateway/core/Redis`), not re-exported by the package's index:
 * importing `@llm-gateway/core` never loads `ioredis`, an optional peer dependency that only
 * users of this module install (`npm install ioredis`).
 *
 * The cache and the rate limit plug into the Effect ecosystem's own machinery
 * (`@effect/experimental`'s `Persistence` under `ResponseCache.layerPersistence`, and its
 * `RateLimiter`), with the backing store and the limiter store written here on our own
 * `ioredis` client (the ecosystem's Redis modules make clients without an error listener);
 * the flight leases, the budget ledger and the conversations are direct `ioredis` calls. Every
 * key lives under one prefix (default `llm-gateway:`); values are redacted replies, ledger
 * totals, counters and conversations as the `Conversation` recorded them (redacted), never a
 * secret. Every call has a timeout (`timeout`, default 1 second). When Redis does not answer:
 * the cache reads as a miss and stores nothing, identical requests go upstream on their own, the
 * rate limit lets requests through (each logged at warning level), the budget fails closed with
 * `StoreUnavailable`, and the conversation store fails with `ConversationStoreError`; the audit
 * log is not on Redis, so every request is still audited.
 *
 * @since 0.1.0
 */
import * as Persistence from "@effect/experimental/Persistence"
import * as RateLimiter from "@effect/experimental/RateLimiter"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { Redis as IORedis, type RedisOptions as IORedisOptions } from "ioredis"
import { randomUUID } from "node:crypto"
import type { ChatMessage } from "./Chat.js"
import * as Conversation from "./Conversation.js"
import * as ConversationStore from "./ConversationStore.js"
import * as CostMeter from "./CostMeter.js"
import { StoreUnavailable } from "./GatewayError.js"
import { canonicalJson } from "./internal/canonicalJson.js"
import * as Issues from "./internal/issues.js"
import * as ResponseCache from "./ResponseCache.js"

// ---------------------------------------------------------------------------------------------
// Connection
// ---------------------------------------------------------------------------------------------

/**
 * How to reach Redis.
 *
 * - `url`: `redis://[user:password@]host:port[/db]` or `rediss://…` for TLS. `Redacted`, as it
 *   may carry a password.
 * - `prefix`: put in front of every key (default `"llm-gateway:"`); give each deployment its
 *   own when several share one server.
 * - `timeout`: the longest any one Redis call may take (default 1 second); a call that takes
 *   longer counts as Redis not answering.
 *
 * @since 0.1.0
 * @category Config
 */
export interface ConnectionOptions {
  readonly url: Redacted.Redacted<string>
  readonly prefix?: string | undefined
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * The defaults of `ConnectionOptions`.
 *
 * @since 0.1.0
 * @category Config
 */
export const connectionDefaults = { prefix: "llm-gateway:", timeout: Duration.seconds(1) } as const

/**
 * The `ioredis` options for `ConnectionOptions`: every command (including those queued while
 * disconnected) fails after `timeout`, and reconnection goes on in the background.
 *
 * @since 0.1.0
 * @category Utils
 */
export const ioredisOptions = (options: ConnectionOptions): IORedisOptions => {
  const url = new URL(Redacted.value(options.url))
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    throw new Error("Redis: the URL must start with redis:// or rediss://")
  }
  const timeout = Math.max(1, Math.round(Duration.toMillis(Duration.decode(options.timeout ?? connectionDefaults.timeout))))
  const db = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0
  return {
    host: url.hostname.replace(/^\[|\]$/g, ""),
    port: url.port === "" ? 6379 : Number(url.port),
    ...(url.username === "" ? {} : { username: decodeURIComponent(url.username) }),
    ...(url.password === "" ? {} : { password: decodeURIComponent(url.password) }),
    ...(Number.isInteger(db) ? { db } : {}),
    ...(url.protocol === "rediss:" ? { tls: {} } : {}),
    keyPrefix: options.prefix ?? connectionDefaults.prefix,
    commandTimeout: timeout,
    connectTimeout: Math.max(timeout, 1_000),
    // The ready check's INFO is bound by commandTimeout too: on a busy host it timed out, and
    // ioredis then dropped the connection (and every queued command) to reconnect.
    enableReadyCheck: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(50 * times, 1_000)
  }
}

/**
 * A client with an `error` listener: without one, `ioredis` prints "Unhandled error event" on
 * stderr at every reconnection attempt while Redis is down. The failure reaches callers as
 * their command's typed error (`StoreUnavailable`, a cache miss, an unthrottled request); the
 * connection's own error is logged once per outage, at debug level, through the Effect logger.
 * Closed with the scope.
 */
const acquireClient = (options: ConnectionOptions): Effect.Effect<IORedis, never, Scope.Scope> =>
  Effect.flatMap(Effect.runtime<never>(), (runtime) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        const client = new IORedis(ioredisOptions(options))
        const run = Runtime.runFork(runtime)
        let down = false
        client.on("error", (error: unknown) => {
          if (down) return
          down = true
          run(
            Effect.logDebug("Redis: the connection failed; retrying in the background").pipe(
              Effect.annotateLogs({ "redis.error": errorCode(error) })
            )
          )
        })
        client.on("ready", () => {
          down = false
        })
        return client
      }),
      (client) => Effect.sync(() => client.disconnect())
    ))

/** A short name for a connection error (`ECONNREFUSED`, `Command timed out`), never more than 100 characters. */
const errorCode = (error: unknown): string => {
  const code = typeof error === "object" && error !== null && "code" in error && typeof error.code === "string"
    ? error.code
    : error instanceof Error
    ? error.message
    : "unknown"
  return code.slice(0, 100)
}

const timeoutOf = (options: ConnectionOptions): Duration.Duration =>
  Duration.sum(Duration.decode(options.timeout ?? connectionDefaults.timeout), Duration.millis(100))

/** One Redis call, bounded by the timeout, failing with `StoreUnavailable`. */
const call = <A>(store: string, operation: string, timeout: Duration.Duration, run: () => Promise<A>) =>
  Effect.tryPromise({ try: run, catch: () => new StoreUnavailable({ store, operation }) }).pipe(
    Effect.timeoutFail({ duration: timeout, onTimeout: () => new StoreUnavailable({ store, operation }) })
  )

// ---------------------------------------------------------------------------------------------
// Response cache with cross-process single-flight
// ---------------------------------------------------------------------------------------------

/**
 * Options of the shared response cache.
 *
 * - `timeToLive`: how long an entry stays readable (Redis expires it).
 * - `flightLease`: the time to live of a leader's lease on a request key (default 5 seconds).
 *   The leader renews it every third of that while its reply streams and deletes it as soon as
 *   its attempt ends, whatever the exit; only a leader whose process died (or lost Redis)
 *   blocks the others, for at most this long.
 * - `flightWait`: how long a request waits for another process's reply before it goes
 *   upstream on its own (default 10 minutes, the transport's default total deadline: a live
 *   leader's reply ends by then).
 *
 * @since 0.1.0
 * @category Config
 */
export interface CacheOptions {
  readonly timeToLive: Duration.DurationInput
  readonly flightLease?: Duration.DurationInput | undefined
  readonly flightWait?: Duration.DurationInput | undefined
}

/** Extends the lease while `ARGV[1]` holds it, or takes it again when it lapsed and nobody took it. */
const renewScript = `local holder = redis.call("GET", KEYS[1])
if holder == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end
if not holder then redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2]) return 1 end
return 0`

const releaseScript = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`

/**
 * Adds single-flight across processes to a shared cache (`ResponseCache.Service.lead`). The
 * request a process sends upstream first takes the key's lease (`SET NX PX`, a random token
 * per lease), renewed in the background while its scope is open and deleted when it closes.
 * A request that finds the lease taken polls the cache for the leader's stored reply and the
 * lease for its release, and leads itself as soon as it is free. Redis faults read as "go
 * upstream".
 */
const withFlights = (
  inner: ResponseCache.Service,
  client: IORedis,
  options: CacheOptions,
  timeout: Duration.Duration
): ResponseCache.Service => {
  const leaseMillis = Math.max(3, Math.round(Duration.toMillis(Duration.decode(options.flightLease ?? Duration.seconds(5)))))
  const waitMillis = Duration.toMillis(Duration.decode(options.flightWait ?? Duration.minutes(10)))
  const leaseKey = (key: string) => `flight:${key}`
  const alone = (why: string) => Effect.as(Effect.logWarning(`ResponseCache: ${why}; going upstream alone`), Option.none())

  /** Keeps the lease while the scope is open; renewal faults are logged at debug level only. */
  const keep = (key: string, token: string) =>
    call("cache", "renew", timeout, () => client.eval(renewScript, 1, leaseKey(key), token, leaseMillis)).pipe(
      Effect.catchAll(() => Effect.logDebug("ResponseCache: a flight lease could not be renewed")),
      Effect.delay(Duration.millis(Math.floor(leaseMillis / 3))),
      Effect.forever,
      // Forked inside the uninterruptible claim: made interruptible, or closing the scope hangs.
      Effect.interruptible,
      Effect.forkScoped
    )

  /**
   * Takes the lease if it is free: `true` when taken, and then released with the scope. The
   * claim is uninterruptible, so a lease taken is always released.
   */
  const release = (key: string, token: string) =>
    call("cache", "release", timeout, () => client.eval(releaseScript, 1, leaseKey(key), token)).pipe(Effect.ignore)
  const claim = (key: string, token: string) =>
    Effect.uninterruptible(
      Effect.tap(
        call("cache", "claim", timeout, () => client.set(leaseKey(key), token, "PX", leaseMillis, "NX")).pipe(
          // A claim that timed out may still have been applied: free it (sent after it, so run after it).
          Effect.tapError(() => Effect.forkDaemon(release(key, token)))
        ),
        (taken) => taken === "OK" ? Effect.zipRight(Effect.addFinalizer(() => release(key, token)), keep(key, token)) : Effect.void
      )
    ).pipe(Effect.map((taken) => taken === "OK"))

  const lead = (key: string): Effect.Effect<Option.Option<ResponseCache.CachedReply>, never, Scope.Scope> =>
    Effect.gen(function*() {
      const token = randomUUID()
      if (yield* claim(key, token)) return Option.none()
      const started = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      let delay = 5
      while (true) {
        yield* Effect.sleep(Duration.millis(delay))
        delay = Math.min(delay * 2, 100)
        const stored = yield* inner.get(key)
        if (Option.isSome(stored)) return stored
        if (yield* claim(key, token)) return Option.none()
        const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
        if (now - started >= waitMillis) return yield* alone("waited too long for another process's reply")
      }
    }).pipe(Effect.catchAll(() => alone("the flight lease is unavailable")))

  return { get: inner.get, set: inner.set, lead }
}

/**
 * `@effect/experimental`'s `BackingPersistence` over our own client (its `Persistence/Redis`
 * makes a client without an error listener, see `acquireClient`): JSON values under
 * `{storeId}:{key}`, expiring after a time to live rounded up to whole milliseconds (Redis
 * refuses a fractional `PX`).
 */
const makeBackingPersistence = (client: IORedis): Persistence.BackingPersistence =>
  Persistence.BackingPersistence.of({
    [Persistence.BackingPersistenceTypeId]: Persistence.BackingPersistenceTypeId,
    make: (storeId) =>
      Effect.sync(() => {
        const keyOf = (key: string) => `${storeId}:${key}`
        const attempt = <A>(method: string, run: () => Promise<A>) =>
          Effect.tryPromise({ try: run, catch: (error) => Persistence.PersistenceBackingError.make(method, error) })
        const parse = (method: string) => (text: string | null) =>
          text === null ? Effect.succeedNone : Effect.try({
            try: () => Option.some(JSON.parse(text) as unknown),
            catch: (error) => Persistence.PersistenceBackingError.make(method, error)
          })
        const set = (key: string, value: unknown, ttl: Option.Option<Duration.Duration>) =>
          Effect.try({
            try: () => JSON.stringify(value),
            catch: (error) => Persistence.PersistenceBackingError.make("set", error)
          }).pipe(
            Effect.flatMap((text) =>
              attempt("set", () =>
                Option.isNone(ttl)
                  ? client.set(keyOf(key), text)
                  : client.set(keyOf(key), text, "PX", Math.max(1, Math.ceil(Duration.toMillis(ttl.value)))))
            ),
            Effect.asVoid
          )
        return {
          get: (key) => Effect.flatMap(attempt("get", () => client.get(keyOf(key))), parse("get")),
          getMany: (keys) =>
            Effect.flatMap(attempt("getMany", () => client.mget(keys.map(keyOf))), Effect.forEach(parse("getMany"))),
          set,
          setMany: (entries) => Effect.forEach(entries, ([key, value, ttl]) => set(key, value, ttl), { discard: true }),
          remove: (key) => Effect.asVoid(attempt("remove", () => client.del(keyOf(key)))),
          clear: Effect.asVoid(attempt("clear", () => deleteMatching(client, `${storeId}:`)))
        }
      })
  })

/**
 * Deletes the keys under the client's prefix that start with `start`. SCAN patterns are not
 * prefixed by the client, so the prefix is written out, and cut off the keys found.
 */
const deleteMatching = async (client: IORedis, start: string): Promise<void> => {
  const prefix = client.options.keyPrefix ?? ""
  let cursor = "0"
  do {
    const [next, keys] = await client.scan(cursor, "MATCH", `${escapeGlob(prefix + start)}*`, "COUNT", 1_000)
    cursor = next
    if (keys.length > 0) await client.del(...keys.map((key) => key.slice(prefix.length)))
  } while (cursor !== "0")
}

/**
 * The response cache on Redis, shared by every process: `ResponseCache.layerPersistence` over
 * a Redis `BackingPersistence` (entries expire after `timeToLive`), with single-flight across
 * processes (see `CacheOptions`). Storage faults read as a miss.
 *
 * @example
 * import { layerResponseCache } from "@llm-gateway/core/Redis"
 * import * as Redacted from "effect/Redacted"
 *
 * const CacheLive = layerResponseCache(
 *   { url: Redacted.make("redis://127.0.0.1:6379") },
 *   { timeToLive: "1 hour" }
 * )
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerResponseCache = (
  connection: ConnectionOptions,
  options: CacheOptions
): Layer.Layer<ResponseCache.ResponseCache> =>
  Layer.scoped(
    ResponseCache.ResponseCache,
    Effect.gen(function*() {
      const client = yield* acquireClient(connection)
      const inner = yield* ResponseCache.makePersistence({ storeId: "response-cache", timeToLive: options.timeToLive }).pipe(
        Effect.provideService(Persistence.BackingPersistence, makeBackingPersistence(client))
      )
      const bounded: ResponseCache.Service = {
        // Bounded here too: the persistence layer has no timeout of its own.
        get: (key) =>
          inner.get(key).pipe(Effect.timeoutTo({
            duration: timeoutOf(connection),
            onTimeout: () => Option.none(),
            onSuccess: (_) => _
          })),
        set: (key, reply) => inner.set(key, reply).pipe(Effect.timeout(timeoutOf(connection)), Effect.ignore)
      }
      return withFlights(bounded, client, options, timeoutOf(connection))
    })
  )

// ---------------------------------------------------------------------------------------------
// Rate limiter
// ---------------------------------------------------------------------------------------------

/** The time per token in whole milliseconds (Redis refuses a fractional `PX`): rounded up, never faster than asked. */
const wholeMillis = (rate: Duration.Duration): number => Math.max(1, Math.ceil(Duration.toMillis(rate)))

/**
 * Fixed window (`RateLimiterStore.fixedWindow`): adds `ARGV[1]` tokens to the count, the window
 * growing by `ARGV[2]` ms per token; past the limit `ARGV[3]` (`""`: none) nothing is added.
 * Returns the count and the window's time to live.
 */
const fixedWindowScript = `local tokens = tonumber(ARGV[1])
local refill = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local current = tonumber(redis.call("GET", KEYS[1]))
if not current then
  redis.call("SET", KEYS[1], tokens, "PX", refill * tokens)
  return { tokens, refill * tokens }
end
local ttl = redis.call("PTTL", KEYS[1])
if ttl < 0 then ttl = 0 end
if limit and current + tokens > limit then return { current + tokens, ttl } end
redis.call("SET", KEYS[1], current + tokens, "PX", ttl + refill * tokens)
return { current + tokens, ttl + refill * tokens }`

/**
 * Token bucket (`RateLimiterStore.tokenBucket`): refills one token per `ARGV[2]` ms up to the
 * limit `ARGV[3]` at time `ARGV[4]`, then takes `ARGV[1]` tokens (below zero only when
 * `ARGV[5]` is `"1"`). Returns what remains. Both keys expire once the bucket would be full again.
 */
const tokenBucketScript = `local tokens = tonumber(ARGV[1])
local refill = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local refilledAt = KEYS[1] .. ":refill"
local current = tonumber(redis.call("GET", KEYS[1]))
local last = tonumber(redis.call("GET", refilledAt))
if not current or not last then
  current = limit
  last = now
end
local added = math.floor((now - last) / refill)
if added > 0 then
  current = math.min(current + added, limit)
  last = last + added * refill
end
local left = current - tokens
local kept = left
if left < 0 and ARGV[5] ~= "1" then kept = current end
local ttl = math.max(1, (limit - kept + 1) * refill)
redis.call("SET", KEYS[1], kept, "PX", ttl)
redis.call("SET", refilledAt, last, "PX", ttl)
return left`

/**
 * `@effect/experimental`'s `RateLimiterStore` over our own client (its `RateLimiter/Redis`
 * makes a client without an error listener, see `acquireClient`), each call bounded by the
 * timeout. Keys: `rate-limit:{key}`.
 */
const makeRateLimiterStore = (client: IORedis, timeout: Duration.Duration): RateLimiter.RateLimiterStore["Type"] => {
  const attempt = <A>(algorithm: string, run: () => Promise<A>) =>
    Effect.tryPromise({
      try: run,
      catch: (cause) => new RateLimiter.RateLimitStoreError({ message: `Redis failed the ${algorithm} command`, cause })
    }).pipe(
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () => new RateLimiter.RateLimitStoreError({ message: "Redis did not answer in time" })
      })
    )
  return {
    fixedWindow: (options) =>
      attempt("fixed window", () =>
        client.eval(
          fixedWindowScript,
          1,
          `rate-limit:${options.key}`,
          options.tokens,
          wholeMillis(options.refillRate),
          options.limit ?? ""
        ) as Promise<[number, number]>),
    tokenBucket: (options) =>
      Effect.clockWith((clock) =>
        attempt("token bucket", () =>
          client.eval(
            tokenBucketScript,
            1,
            `rate-limit:${options.key}`,
            options.tokens,
            wholeMillis(options.refillRate),
            options.limit,
            clock.unsafeCurrentTimeMillis(),
            options.allowOverflow ? "1" : "0"
          ) as Promise<number>)
      )
  }
}

/**
 * The `RateLimiter` that the gateway's rate limit (`Gateway.Options.rateLimit`,
 * `Stage.rateLimit`) reads from the context: `@effect/experimental`'s `RateLimiter` over a
 * store on Redis (fixed window and token bucket, each one script): the limit holds across all
 * processes sharing the key. A store that does not answer lets the request through (logged).
 * The time per request (`window / limit`) is rounded up to whole milliseconds, so a limit above
 * one request per millisecond counts as one per millisecond.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerRateLimiter = (connection: ConnectionOptions): Layer.Layer<RateLimiter.RateLimiter> =>
  RateLimiter.layer.pipe(
    Layer.provide(Layer.scoped(
      RateLimiter.RateLimiterStore,
      Effect.map(acquireClient(connection), (client) => makeRateLimiterStore(client, timeoutOf(connection)))
    ))
  )

/**
 * The platform's default client rate limit: 300 requests per minute per token. Give it a `key`
 * per OAuth client so processes sharing a client share the count.
 *
 * @since 0.1.0
 * @category Config
 */
export const platformRateLimit = { limit: 300, window: "1 minute" } as const

// ---------------------------------------------------------------------------------------------
// Cost meter
// ---------------------------------------------------------------------------------------------

/**
 * Options of the shared meter: those of `CostMeter.make` and `holdTimeout`, plus `name`, the
 * ledger's key (default `"default"`): meters with the same name share one budget; and
 * `periodGrace` (default 1 hour): how long a period's key outlives the period (what was spent
 * in it stays readable, and a process whose clock lags behind still finds it).
 *
 * @since 0.1.0
 * @category Config
 */
export interface MeterOptions extends CostMeter.StoreOptions {
  readonly name?: string | undefined
  readonly periodGrace?: Duration.DurationInput | undefined
}

/** Writes `ARGV[2]` when the key still holds `ARGV[1]` (`""` meaning absent). */
const compareAndSetScript = `local current = redis.call("GET", KEYS[1]) or ""
if current == ARGV[1] then redis.call("SET", KEYS[1], ARGV[2]) return 1 end
return 0`

/**
 * With a period budget: writes the ledger (`KEYS[1]`, `ARGV[3]`) and the spending of its period
 * (`KEYS[3]`, `ARGV[4]`, expiring at `ARGV[5]` epoch ms) when the ledger and the period key read
 * (`KEYS[2]`) still hold `ARGV[1]` and `ARGV[2]` (`""` meaning absent).
 */
const compareAndSetPeriodScript = `if (redis.call("GET", KEYS[1]) or "") ~= ARGV[1] or (redis.call("GET", KEYS[2]) or "") ~= ARGV[2] then return 0 end
redis.call("SET", KEYS[1], ARGV[3])
redis.call("SET", KEYS[3], ARGV[4])
redis.call("PEXPIREAT", KEYS[3], ARGV[5])
return 1`

/** The spending of a period as stored: a decimal count of 1e-18 USD units. */
const periodSpent = (text: string | null): Option.Option<bigint> =>
  text === null ? Option.some(0n) : /^\d{1,40}$/.test(text) ? Option.some(BigInt(text)) : Option.none()

/**
 * A `CostMeter` whose ledger lives in one Redis key: each reservation and settlement reads the
 * ledger, applies the same pure transition as the memory meter, and writes it back with a
 * compare-and-set script, retried when another process wrote in between (calls of one process
 * are serialized first). So reservations made by any number of processes never together exceed
 * a budget. With a `periodBudget`, what was spent in each period is kept in a key of its own,
 * written in the same script, which expires `periodGrace` after its period ends: Redis keeps
 * one ledger per meter and at most a few periods. Holds of a process that died are dropped
 * after `holdTimeout` (default 15 minutes).
 * A reservation fails closed with `StoreUnavailable` when Redis does not answer.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeCostMeter = (
  connection: ConnectionOptions,
  options: MeterOptions = {}
): Effect.Effect<CostMeter.Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const client = yield* acquireClient(connection)
    const timeout = timeoutOf(connection)
    const key = `meter:${options.name ?? "default"}`
    const periodMillis = options.periodBudget === undefined
      ? undefined
      : Duration.toMillis(Duration.decode(options.periodBudget.period))
    const graceMillis = Duration.toMillis(Duration.decode(options.periodGrace ?? Duration.hours(1)))
    const periodKey = (index: number) => `${key}:period:${index}`
    // The period last read: its key is read with the ledger in one round trip (a second one
    // only when the ledger has moved on to another period).
    let periodSeen: number | undefined
    const lock = yield* Effect.makeSemaphore(1)
    // Calls of this process wait for each other: once Redis failed to answer, the next second's
    // calls fail at once instead of each waiting out its own timeout in that queue.
    let downUntil = 0
    const unavailable = (operation: string) => new StoreUnavailable({ store: "budget", operation })
    const failFast = Effect.clockWith((clock) =>
      clock.unsafeCurrentTimeMillis() < downUntil ? Effect.fail(unavailable("read (Redis did not answer just now)")) : Effect.void
    )
    const markDown = Effect.clockWith((clock) =>
      Effect.sync(() => {
        downUntil = clock.unsafeCurrentTimeMillis() + 1_000
      })
    )
    const unreadable = Effect.zipRight(
      Effect.logError("CostMeter: the shared ledger in Redis is not readable; requests are refused"),
      Effect.fail(unavailable("read"))
    )
    /**
     * The ledger and, with a period budget, the spending of its period, which lives in a key of
     * its own (`meter:{name}:period:{index}`) that expires `periodGrace` after the period ends.
     */
    const readLedger = (initial: CostMeter.LedgerState) =>
      Effect.gen(function*() {
        if (periodMillis === undefined) {
          const text = yield* call("budget", "read", timeout, () => client.get(key))
          const state = text === null ? Option.some(initial) : CostMeter.decodeLedger(text)
          if (Option.isNone(state)) return yield* unreadable
          return { text, spentText: null, state: state.value }
        }
        const guess = periodSeen ?? CostMeter.ledgerPeriod(initial).index
        const [text, guessed] = yield* call("budget", "read", timeout, () => client.mget(key, periodKey(guess)))
        const ledger = text === null ? Option.some(initial) : CostMeter.decodeLedger(text)
        if (Option.isNone(ledger)) return yield* unreadable
        const index = CostMeter.ledgerPeriod(ledger.value).index
        periodSeen = index
        const spentText = index === guess
          ? guessed ?? null
          : yield* call("budget", "read", timeout, () => client.get(periodKey(index)))
        const spent = periodSpent(spentText)
        if (Option.isNone(spent)) return yield* unreadable
        return { text, spentText, state: CostMeter.withLedgerPeriod(ledger.value, { index, spent: spent.value }) }
      })
    type Read = Effect.Effect.Success<ReturnType<typeof readLedger>>
    /** Writes `next` if nobody wrote since `read`: `1` when written. */
    const writeLedger = (read: Read, next: CostMeter.LedgerState) =>
      Effect.gen(function*() {
        if (periodMillis === undefined) {
          return yield* call(
            "budget",
            "write",
            timeout,
            () => client.eval(compareAndSetScript, 1, key, read.text ?? "", CostMeter.encodeLedger(next))
          )
        }
        const period = CostMeter.ledgerPeriod(next)
        const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
        // Never in the past (a clock far behind would delete the period's spending at once).
        const expiresAt = Math.max((period.index + 1) * periodMillis, now) + graceMillis
        return yield* call("budget", "write", timeout, () =>
          client.eval(
            compareAndSetPeriodScript,
            3,
            key,
            periodKey(CostMeter.ledgerPeriod(read.state).index),
            periodKey(period.index),
            read.text ?? "",
            read.spentText ?? "",
            CostMeter.encodeLedger(CostMeter.withLedgerPeriod(next, { index: period.index, spent: 0n })),
            period.spent.toString(),
            Math.round(expiresAt)
          ))
      })
    return yield* CostMeter.makeWithStore(
      { ...options, holdTimeout: options.holdTimeout ?? Duration.minutes(15) },
      (initial) =>
        Effect.succeed<CostMeter.LedgerStore<StoreUnavailable>>({
          modify: <A>(f: (state: CostMeter.LedgerState) => [A, CostMeter.LedgerState]) =>
            Effect.zipRight(failFast, lock.withPermits(1)(Effect.gen(function*() {
              yield* failFast
              for (let attempt = 0; attempt < 100; attempt++) {
                const read = yield* readLedger(initial)
                const [result, next] = f(read.state)
                if (next === read.state) return result
                const written = yield* writeLedger(read, next)
                if (written === 1) return result
                // Another process wrote first: back off a little, read again.
                yield* Effect.sleep(Duration.millis(Math.random() * Math.min(2 + attempt, 20)))
              }
              return yield* Effect.fail(unavailable("write (contention)"))
            }).pipe(Effect.tapError((error) => error.operation.startsWith("read (") ? Effect.void : markDown))))
        })
    )
  })

/**
 * The shared meter as a Layer (see `makeCostMeter`).
 *
 * @example
 * import { layerCostMeter } from "@llm-gateway/core/Redis"
 * import * as Redacted from "effect/Redacted"
 *
 * const MeterLive = layerCostMeter(
 *   { url: Redacted.make("redis://127.0.0.1:6379") },
 *   { periodBudget: { limitUsd: 50, period: "1 day" } }
 * )
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerCostMeter = (
  connection: ConnectionOptions,
  options: MeterOptions = {}
): Layer.Layer<CostMeter.CostMeter> => Layer.scoped(CostMeter.CostMeter, makeCostMeter(connection, options))

// ---------------------------------------------------------------------------------------------
// Conversation store
// ---------------------------------------------------------------------------------------------

/**
 * Options of the shared conversation store: `timeToLive`, how long a conversation is kept after
 * its last save (default: for ever); `maxBytes`, the largest stored conversation read or written
 * (default `ConversationStore.defaultMaxBytes`).
 *
 * @since 0.1.0
 * @category Config
 */
export interface ConversationOptions {
  readonly timeToLive?: Duration.DurationInput | undefined
  readonly maxBytes?: number | undefined
}

/**
 * The version of the stored form of a conversation, `{ "v": 1, "revision": n, "conversation": … }`.
 *
 * @since 0.1.0
 * @category Config
 */
export const conversationVersion = 1

const StoredConversation = Schema.Struct({
  v: Schema.Literal(conversationVersion),
  revision: Schema.NonNegativeInt,
  conversation: Conversation.ConversationData
})
type StoredConversation = typeof StoredConversation.Type
const decodeStoredConversation = Schema.decodeUnknownEither(StoredConversation)

/** Writes `ARGV[2]` (expiring after `ARGV[3]` ms unless `"0"`) when the key still holds `ARGV[1]`. */
const compareAndSetExpiringScript = `if (redis.call("GET", KEYS[1]) or "") ~= ARGV[1] then return 0 end
if ARGV[3] == "0" then redis.call("SET", KEYS[1], ARGV[2]) else redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3]) end
return 1`

/** The messages of `longer` after `base` when `longer` starts with `base`, else `undefined`. */
const appendedTo = (
  base: ReadonlyArray<ChatMessage>,
  longer: ReadonlyArray<ChatMessage>
): ReadonlyArray<ChatMessage> | undefined => {
  if (longer.length < base.length) return undefined
  for (let i = 0; i < base.length; i++) {
    if (base[i] !== longer[i] && canonicalJson(base[i]) !== canonicalJson(longer[i])) return undefined
  }
  return longer.slice(base.length)
}

/**
 * The history to write for a save of `data` over `stored`, given what this store last saw
 * (`base`); `undefined` for a conflict. A history that continues what is stored, or replaces a
 * conversation this store never saw, is written as it is. Otherwise the turns the caller added
 * since `base` go after what is stored, provided the stored history continues `base` too.
 */
const merge = (
  data: Conversation.ConversationData,
  stored: Option.Option<StoredConversation>,
  base: { readonly stored: ReadonlyArray<ChatMessage>; readonly view: ReadonlyArray<ChatMessage> } | undefined
): ReadonlyArray<ChatMessage> | undefined => {
  if (Option.isNone(stored) || base === undefined) return data.messages
  const current = stored.value.conversation.messages
  if (appendedTo(current, data.messages) !== undefined) return data.messages
  const ours = appendedTo(base.view, data.messages) ?? appendedTo(base.stored, data.messages)
  return ours !== undefined && appendedTo(base.stored, current) !== undefined ? [...current, ...ours] : undefined
}

/**
 * A `ConversationStore` on Redis: one key per conversation (`conversation:{id}`), holding the
 * conversation with a format version and a revision, expiring `timeToLive` after its last save
 * when one is set. Saves are compare-and-set (a script): a save that continues the history this
 * store last loaded or saved goes in as is; when another process appended turns meanwhile, this
 * save's new turns are appended after theirs, so two processes appending to one conversation
 * never lose a turn. A history that continues neither what is stored nor what this store last
 * saw (rewritten here or elsewhere) is a `ConversationStoreError` (`conflict`), and nothing is
 * written. A conversation saved without being loaded by this store replaces what is stored. A stored value of another shape is `corrupt` (the fields named, never their
 * values), of another format version `version`; Redis not answering in time is `io`.
 *
 * @since 0.1.0
 * @category Constructors
 */
export const makeConversationStore = (
  connection: ConnectionOptions,
  options: ConversationOptions = {}
): Effect.Effect<ConversationStore.Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const client = yield* acquireClient(connection)
    const timeout = timeoutOf(connection)
    const prefix = connection.prefix ?? connectionDefaults.prefix
    const ttlMillis = options.timeToLive === undefined
      ? 0
      : Math.max(1, Math.round(Duration.toMillis(Duration.decode(options.timeToLive))))
    const maxBytes = options.maxBytes ?? ConversationStore.defaultMaxBytes
    const keyOf = (id: string) => `conversation:${id}`
    const fail = (id: string, reason: ConversationStore.StoreFailure, detail: string) =>
      new ConversationStore.ConversationStoreError({ store: `redis:${keyOf(id)}`, reason, detail })
    const io = (id: string, operation: string) =>
      Effect.mapError(() => fail(id, "io", `Redis did not answer the ${operation} in time`))
    /**
     * Per conversation, at this store's last load or save: the revision and history stored, and
     * the history the caller had (`view`), which its next save continues.
     */
    const known = new Map<string, {
      readonly revision: number
      readonly stored: ReadonlyArray<ChatMessage>
      readonly view: ReadonlyArray<ChatMessage>
    }>()

    const read = (id: string) =>
      Effect.gen(function*() {
        const text = yield* call("conversations", "read", timeout, () => client.get(keyOf(id))).pipe(io(id, "read"))
        if (text === null) return { text, stored: Option.none<StoredConversation>() }
        if (text.length > maxBytes) return yield* fail(id, "tooLarge", `it is larger than ${maxBytes} bytes (maxBytes)`)
        let json: unknown
        try {
          json = JSON.parse(text)
        } catch {
          return yield* fail(id, "corrupt", "it is not JSON")
        }
        const version = typeof json === "object" && json !== null ? (json as { readonly v?: unknown }).v : undefined
        if (version !== conversationVersion) {
          return yield* typeof version === "number"
            ? fail(id, "version", `its format version is ${version}; this library reads version ${conversationVersion}`)
            : fail(id, "corrupt", "it is not a stored conversation (no version field)")
        }
        const decoded = decodeStoredConversation(json)
        if (Either.isLeft(decoded)) {
          const shown = Issues.paths(decoded.left)
          return yield* fail(id, "corrupt", `invalid fields: ${shown.slice(0, 5).join(", ")}${shown.length > 5 ? ` and ${shown.length - 5} more` : ""}`)
        }
        if (decoded.right.conversation.id !== id) return yield* fail(id, "corrupt", "it holds another conversation's id")
        return { text, stored: Option.some(decoded.right) }
      })

    const save = (data: Conversation.ConversationData) =>
      Effect.gen(function*() {
        for (let attempt = 0; attempt < 50; attempt++) {
          const { stored, text } = yield* read(data.id)
          const messages = merge(data, stored, known.get(data.id))
          if (messages === undefined) {
            return yield* fail(data.id, "conflict", "its stored history is not the one this save continues")
          }
          const revision = Option.match(stored, { onNone: () => 0, onSome: (s) => s.revision + 1 })
          const next: StoredConversation = { v: conversationVersion, revision, conversation: { ...data, messages } }
          const body = JSON.stringify(next)
          if (body.length > maxBytes) {
            return yield* fail(data.id, "tooLarge", `the save would write ${body.length} characters, more than ${maxBytes} (maxBytes)`)
          }
          const written = yield* call("conversations", "write", timeout, () =>
            client.eval(compareAndSetExpiringScript, 1, keyOf(data.id), text ?? "", body, ttlMillis)).pipe(io(data.id, "write"))
          if (written === 1) {
            known.set(data.id, { revision, stored: messages, view: data.messages })
            return
          }
          yield* Effect.sleep(Duration.millis(Math.random() * Math.min(2 + attempt, 20)))
        }
        return yield* fail(data.id, "io", "other processes kept saving it; gave up after 50 attempts")
      })

    return ConversationStore.ConversationStore.of({
      load: (id) =>
        Effect.map(read(id), ({ stored }) =>
          Option.map(stored, (s) => {
            known.set(id, { revision: s.revision, stored: s.conversation.messages, view: s.conversation.messages })
            return s.conversation
          })),
      save,
      delete: (id) =>
        call("conversations", "delete", timeout, () => client.del(keyOf(id))).pipe(
          io(id, "delete"),
          Effect.tap(() => Effect.sync(() => known.delete(id))),
          Effect.asVoid
        ),
      list: Effect.gen(function*() {
        // SCAN patterns are not prefixed by the client: the prefix is written out and cut off.
        const ids: Array<string> = []
        let cursor = "0"
        do {
          const [next, keys] = yield* call("conversations", "list", timeout, () =>
            client.scan(cursor, "MATCH", `${escapeGlob(prefix)}conversation:*`, "COUNT", 1_000)).pipe(
              io("*", "list")
            )
          cursor = next
          for (const key of keys) ids.push(key.slice(prefix.length + "conversation:".length))
        } while (cursor !== "0")
        return [...new Set(ids)]
      })
    })
  })

/** A key prefix as a literal in a SCAN pattern. */
const escapeGlob = (text: string): string => text.replace(/[*?[\]\\]/g, (c) => `\\${c}`)

/**
 * The shared conversation store as a Layer (see `makeConversationStore`).
 *
 * @example
 * import { layerConversationStore } from "@llm-gateway/core/Redis"
 * import * as Redacted from "effect/Redacted"
 *
 * const ConversationsLive = layerConversationStore(
 *   { url: Redacted.make("redis://127.0.0.1:6379") },
 *   { timeToLive: "30 days" }
 * )
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerConversationStore = (
  connection: ConnectionOptions,
  options: ConversationOptions = {}
): Layer.Layer<ConversationStore.ConversationStore> =>
  Layer.scoped(ConversationStore.ConversationStore, makeConversationStore(connection, options))

/**
 * The conversation store from the environment (see `config`): on Redis when
 * `LLM_GATEWAY_REDIS_URL` is set, otherwise `ConversationStore.layerMemory`.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerConversationStoreConfig = (
  options: ConversationOptions = {}
): Layer.Layer<ConversationStore.ConversationStore, ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(config, Option.match({
    onNone: () => ConversationStore.layerMemory,
    onSome: (connection) => layerConversationStore(connection, options)
  })))

// ---------------------------------------------------------------------------------------------
// All stores
// ---------------------------------------------------------------------------------------------

/**
 * Options of `layerRedis` and `layerRedisConfig`: the cache's and the meter's. `capacity` is
 * the entry count of the in-memory cache used when no Redis URL is configured (default 1,000).
 *
 * @since 0.1.0
 * @category Config
 */
export interface StoresOptions {
  readonly cache: CacheOptions & { readonly capacity?: number | undefined }
  readonly meter?: MeterOptions | undefined
}

/**
 * The shared stores the gateway reads from the context: `ResponseCache`, `CostMeter` and the
 * `RateLimiter`, all on one Redis server.
 *
 * @example
 * import { Gateway } from "@llm-gateway/core"
 * import { layerRedis, platformRateLimit } from "@llm-gateway/core/Redis"
 * import * as Layer from "effect/Layer"
 * import * as Redacted from "effect/Redacted"
 *
 * const Stores = layerRedis(
 *   { url: Redacted.make("redis://127.0.0.1:6379"), prefix: "my-app:" },
 *   { cache: { timeToLive: "1 hour" }, meter: { budgetUsd: 100 } }
 * )
 * export const GatewayStores = Gateway.layer({ rateLimit: { ...platformRateLimit, key: "client-id" } }).pipe(
 *   Layer.provideMerge(Stores)
 * )
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerRedis = (
  connection: ConnectionOptions,
  options: StoresOptions
): Layer.Layer<ResponseCache.ResponseCache | CostMeter.CostMeter | RateLimiter.RateLimiter> =>
  Layer.mergeAll(
    layerResponseCache(connection, options.cache),
    layerCostMeter(connection, options.meter),
    layerRateLimiter(connection)
  )

/**
 * Where `layerRedisConfig` reads the connection: `LLM_GATEWAY_REDIS_URL` (optional, redacted),
 * `LLM_GATEWAY_REDIS_PREFIX` (default `llm-gateway:`) and `LLM_GATEWAY_REDIS_TIMEOUT` (default
 * `1 second`). `None` when no URL is set.
 *
 * @since 0.1.0
 * @category Config
 */
export const config: Config.Config<Option.Option<ConnectionOptions>> = Config.all({
  url: Config.option(
    Config.redacted("LLM_GATEWAY_REDIS_URL").pipe(
      Config.validate({
        message: "LLM_GATEWAY_REDIS_URL: expected a URL of the form redis://[user:password@]host:port[/db] or rediss://…",
        validation: (url) => {
          try {
            const parsed = new URL(Redacted.value(url))
            return parsed.protocol === "redis:" || parsed.protocol === "rediss:"
          } catch {
            return false
          }
        }
      })
    )
  ),
  prefix: Config.string("LLM_GATEWAY_REDIS_PREFIX").pipe(Config.withDefault(connectionDefaults.prefix)),
  timeout: Config.duration("LLM_GATEWAY_REDIS_TIMEOUT").pipe(
    Config.validate({
      message: "Expected a finite duration of 1 ms or more",
      validation: (d) => Duration.isFinite(d) && Duration.toMillis(d) >= 1
    }),
    Config.withDefault(connectionDefaults.timeout)
  )
}).pipe(
  Config.map(({ prefix, timeout, url }) => Option.map(url, (url): ConnectionOptions => ({ url, prefix, timeout })))
)

/**
 * The stores from the environment (see `config`): on Redis when `LLM_GATEWAY_REDIS_URL` is set,
 * otherwise in memory (`ResponseCache.layerMemory`, `CostMeter.layerMemory` and an in-memory
 * `RateLimiter`). The meter also reads the budget variables of `CostMeter.config`; `options`
 * win over them. A malformed setting fails with a `ConfigError` naming the variable.
 *
 * @example
 * import { layerRedisConfig } from "@llm-gateway/core/Redis"
 *
 * // LLM_GATEWAY_REDIS_URL=redis://127.0.0.1:6379 LLM_GATEWAY_BUDGET_USD=100
 * const Stores = layerRedisConfig({ cache: { timeToLive: "1 hour" } })
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerRedisConfig = (
  options: StoresOptions
): Layer.Layer<
  ResponseCache.ResponseCache | CostMeter.CostMeter | RateLimiter.RateLimiter,
  ConfigError.ConfigError
> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const connection = yield* config
    const fromEnv = yield* CostMeter.config
    const meter: MeterOptions = {
      ...options.meter,
      budgetUsd: options.meter?.budgetUsd ?? fromEnv.budgetUsd,
      periodBudget: options.meter?.periodBudget ?? fromEnv.periodBudget,
      pricing: { ...fromEnv.pricing, ...options.meter?.pricing }
    }
    return Option.match(connection, {
      onNone: () =>
        Layer.mergeAll(
          ResponseCache.layerMemory({ capacity: options.cache.capacity ?? 1_000, timeToLive: options.cache.timeToLive }),
          CostMeter.layerMemory(meter),
          RateLimiter.layer.pipe(Layer.provide(RateLimiter.layerStoreMemory))
        ),
      onSome: (connection) => layerRedis(connection, { cache: options.cache, meter })
    })
  }))

/**
 * A Redis `BackingPersistence` (`@effect/experimental`'s interface) with the same connection
 * settings (prefix, timeouts, quiet while Redis is down), for your own persisted caches next to
 * the gateway's.
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerBackingPersistence = (connection: ConnectionOptions): Layer.Layer<Persistence.BackingPersistence> =>
  Layer.scoped(Persistence.BackingPersistence, Effect.map(acquireClient(connection), makeBackingPersistence))
