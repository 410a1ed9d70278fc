/**
 * The Redis stores one by one. Configuration and the ledger's text form need no server; the
 * rest needs `LLM_GATEWAY_TEST_REDIS_URL` (set by `.ci/run`) and is skipped without it. Two
 * Layers built side by side stand for two processes (each has its own connection and owner id).
 */
import { describe, expect, it } from "@effect/vitest"
import * as RateLimiter from "@effect/experimental/RateLimiter"
import * as ConfigProvider from "effect/ConfigProvider"
import type * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { Redis as IORedis } from "ioredis"
import { spawnSync } from "node:child_process"
import { randomUUID } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import * as AuditLog from "../src/AuditLog.js"
import type { OutboundRequest } from "../src/Chat.js"
import type { ChatChunk } from "../src/ChatChunk.js"
import * as ContextWindow from "../src/ContextWindow.js"
import * as ConversationStore from "../src/ConversationStore.js"
import * as CostMeter from "../src/CostMeter.js"
import * as Gateway from "../src/Gateway.js"
import { ConnectionError, type TransportError } from "../src/GatewayError.js"
import * as Redis from "../src/Redis.js"
import * as ResponseCache from "../src/ResponseCache.js"
import * as SafetyFilter from "../src/SafetyFilter.js"
import { GatewayTransport } from "../src/Transport.js"

const url = process.env.LLM_GATEWAY_TEST_REDIS_URL ?? ""
if (url === "") {
  // eslint-disable-next-line no-console
  console.warn("Redis.test: the tests against a server are skipped, LLM_GATEWAY_TEST_REDIS_URL is not set (.ci/run sets it)")
}

const reply = (text: string): ResponseCache.CachedReply => ({
  text,
  finishReason: "stop",
  usage: { promptTokens: 3, completionTokens: 2, totalTokens: 5 },
  usageSource: "gateway",
  alternatives: [],
  storedAt: 0
})

const withEnv = (env: Record<string, string>) => Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

describe("Redis without a server", () => {
  it("importing @llm-gateway/core never loads ioredis (only @llm-gateway/core/Redis does)", () => {
    const dir = mkdtempSync(join(tmpdir(), "llm-gateway-ioredis-"))
    try {
      // A resolve hook that refuses ioredis: the import fails if anything asks for it.
      const hook = join(dir, "hook.mjs")
      writeFileSync(
        hook,
        `export async function resolve(s, c, next) { if (s === "ioredis") throw new Error("ioredis was loaded"); return next(s, c) }`
      )
      const register = join(dir, "register.mjs")
      writeFileSync(register, `import { register } from "node:module"\nregister(${JSON.stringify(pathToFileURL(hook).href)})`)
      const run = (module: string) =>
        spawnSync(process.execPath, [
          "--conditions=@llm-gateway/source",
          "--import",
          "tsx",
          "--import",
          pathToFileURL(register).href,
          "--input-type=module",
          "-e",
          `await import(${JSON.stringify(module)})`
        ], { cwd: fileURLToPath(new URL("..", import.meta.url)), encoding: "utf8" })
      expect(run("@llm-gateway/core").status).toBe(0)
      const redis = run("@llm-gateway/core/Redis")
      expect(redis.status).not.toBe(0)
      expect(redis.stderr).toContain("ioredis was loaded")
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)

  it.effect("without LLM_GATEWAY_REDIS_URL the stores stay in memory", () =>
    Effect.gen(function*() {
      const cache = yield* ResponseCache.ResponseCache
      yield* cache.set("k", reply("kept in memory"))
      expect(Option.map(yield* cache.get("k"), (r) => r.text)).toEqual(Option.some("kept in memory"))
      const meter = yield* CostMeter.CostMeter
      expect((yield* meter.summary).budgetUsd).toBe(2)
    }).pipe(
      Effect.provide(Redis.layerRedisConfig({ cache: { timeToLive: "1 hour" } })),
      withEnv({ LLM_GATEWAY_BUDGET_USD: "2" })
    ))

  it.effect("without LLM_GATEWAY_REDIS_URL conversations stay in memory", () =>
    Effect.gen(function*() {
      const store = yield* ConversationStore.ConversationStore
      yield* store.save({ id: "c", model: "gpt-4o-mini", messages: [] })
      expect(yield* store.list).toEqual(["c"])
    }).pipe(Effect.provide(Redis.layerConversationStoreConfig()), withEnv({})))

  it.effect("a malformed LLM_GATEWAY_REDIS_URL fails with a ConfigError naming it", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(Redis.layerRedisConfig({ cache: { timeToLive: "1 hour" } })))
      expect(String(error)).toContain("LLM_GATEWAY_REDIS_URL")
    }).pipe(Effect.scoped, withEnv({ LLM_GATEWAY_REDIS_URL: "http://not-redis:80" })))

  it.effect("the ledger's text form reads back as the same ledger", () =>
    Effect.gen(function*() {
      let text: string | undefined
      // A meter whose store keeps nothing but the text: every transition goes through the codec.
      const meter = yield* CostMeter.makeWithStore({ budgetUsd: 1 }, (initial) =>
        Effect.succeed<CostMeter.LedgerStore<never>>({
          modify: (f) =>
            Effect.sync(() => {
              const current = text === undefined ? initial : Option.getOrThrow(CostMeter.decodeLedger(text))
              const [result, next] = f(current)
              text = CostMeter.encodeLedger(next)
              return result
            })
        }))
      const hold = yield* meter.reserve("gpt-4o-mini", 1_000, 1_000)
      const cost = yield* meter.settle(hold, { promptTokens: 1_000, completionTokens: 10, totalTokens: 1_010 })
      expect(cost.totalUsd).toBe(0.000156)
      expect(yield* meter.summary).toMatchObject({ requests: 1, totalUsd: 0.000156, reservedUsd: 0, remainingUsd: 0.999844 })
      expect(CostMeter.decodeLedger("{\"v\":2}")).toEqual(Option.none())
      expect(CostMeter.decodeLedger("not json")).toEqual(Option.none())
    }))

  it("while Redis is down, every store fails in its own typed way and ioredis prints nothing", () => {
    // A process of its own, so that anything ioredis prints on stderr or stdout is seen.
    const script = `
      import * as Redis from "@llm-gateway/core/Redis"
      import { CostMeter, ResponseCache } from "@llm-gateway/core"
      import * as RateLimiter from "@effect/experimental/RateLimiter"
      import * as ConversationStore from "@llm-gateway/core/ConversationStore"
      import * as Effect from "effect/Effect"
      import * as Layer from "effect/Layer"
      import * as Redacted from "effect/Redacted"
      const connection = { url: Redacted.make("redis://127.0.0.1:1"), timeout: "200 millis" }
      const stores = Layer.mergeAll(
        Redis.layerRedis(connection, { cache: { timeToLive: "1 minute" }, meter: { budgetUsd: 1 } }),
        Redis.layerConversationStore(connection)
      )
      const program = Effect.gen(function*() {
        const outcomes = []
        for (let round = 0; round < 3; round++) {
          const cache = yield* ResponseCache.ResponseCache
          outcomes.push((yield* cache.get("k"))._tag)
          const meter = yield* CostMeter.CostMeter
          outcomes.push((yield* Effect.flip(meter.reserve("gpt-4o-mini", 10, 10)))._tag)
          const limiter = yield* RateLimiter.RateLimiter
          outcomes.push((yield* Effect.flip(limiter.consume({ key: "k", limit: 10, window: "1 second" })))._tag)
          const conversations = yield* ConversationStore.ConversationStore
          outcomes.push((yield* Effect.flip(conversations.load("c"))).reason)
          yield* Effect.sleep("400 millis")
        }
        process.stdout.write("outcomes: " + JSON.stringify(outcomes) + "\\n")
      })
      await Effect.runPromise(Effect.provide(program, stores))
    `
    const run = spawnSync(process.execPath, [
      "--conditions=@llm-gateway/source",
      "--import",
      "tsx",
      "--input-type=module",
      "-e",
      script
    ], { cwd: fileURLToPath(new URL("..", import.meta.url)), encoding: "utf8" })
    expect(run.stderr).not.toContain("ioredis")
    expect(run.status).toBe(0)
    const line = run.stdout.split("\n").find((l) => l.startsWith("outcomes: ")) ?? "outcomes: null"
    expect(JSON.parse(line.slice("outcomes: ".length))).toEqual(
      Array(3).fill(["None", "StoreUnavailable", "RateLimiterError", "io"]).flat()
    )
  }, 60_000)

  it.live("an unreachable Redis fails a reservation closed, in time, with StoreUnavailable", () =>
    Effect.gen(function*() {
      // Nothing listens on port 1.
      const meter = yield* Redis.makeCostMeter({ url: Redacted.make("redis://127.0.0.1:1"), timeout: "200 millis" }, {
        budgetUsd: 10
      })
      const started = Date.now()
      const error = yield* Effect.flip(meter.reserve("gpt-4o-mini", 10, 10))
      expect(error._tag).toBe("StoreUnavailable")
      expect(error.message).toContain("LLM_GATEWAY_REDIS_URL")
      expect(Date.now() - started).toBeLessThan(2_000)
    }).pipe(Effect.scoped))
})

describe.skipIf(url === "")("Redis stores against a server", () => {
  const connection = (prefix: string): Redis.ConnectionOptions => ({ url: Redacted.make(url), prefix, timeout: "1 second" })

  it.live("the cache keeps entries under the prefix with a TTL, the redacted reply only", () => {
    const prefix = `llm-gateway-test:${randomUUID()}:`
    return Effect.gen(function*() {
      const cache = yield* ResponseCache.ResponseCache
      expect(yield* cache.get("key-1")).toEqual(Option.none())
      yield* cache.set("key-1", reply("Call [PHONE] back."))
      expect(Option.map(yield* cache.get("key-1"), (r) => r.text)).toEqual(Option.some("Call [PHONE] back."))
      const raw = new IORedis(url)
      try {
        const keys = yield* Effect.promise(() => raw.keys(`${prefix}*`))
        expect(keys.sort()).toEqual([`${prefix}response-cache:key-1`])
        const ttl = yield* Effect.promise(() => raw.pttl(keys[0]!))
        expect(ttl).toBeGreaterThan(0)
        expect(ttl).toBeLessThanOrEqual(60_000)
      } finally {
        raw.disconnect()
      }
    }).pipe(Effect.provide(Redis.layerResponseCache(connection(prefix), { timeToLive: "1 minute" })))
  })

  /** `lead(key)` of the cache in `context`, in the current scope. */
  const leadIn = (context: Context.Context<ResponseCache.ResponseCache>, key: string) =>
    Effect.flatMap(ResponseCache.ResponseCache, (c) => c.lead!(key)).pipe(Effect.provide(context))

  it.live("a second process waits for the leader's reply instead of going upstream", () => {
    const prefix = `llm-gateway-test:${randomUUID()}:`
    const options = { timeToLive: "1 minute" } as const
    return Effect.gen(function*() {
      const leader = yield* Layer.build(Redis.layerResponseCache(connection(prefix), options))
      const follower = yield* Layer.build(Redis.layerResponseCache(connection(prefix), options))
      const leading = yield* Scope.make()
      expect(yield* leadIn(leader, "k").pipe(Scope.extend(leading))).toEqual(Option.none())
      const waiting = yield* Effect.fork(Effect.scoped(leadIn(follower, "k")))
      yield* Effect.sleep("100 millis")
      yield* Effect.flatMap(ResponseCache.ResponseCache, (c) => c.set("k", reply("from the leader"))).pipe(
        Effect.provide(leader)
      )
      const got = yield* Fiber.join(waiting)
      expect(Option.map(got, (r) => r.text)).toEqual(Option.some("from the leader"))
      yield* Scope.close(leading, Exit.void)
    }).pipe(Effect.scoped)
  })

  it.live("a request waiting for another process's reply can be interrupted at once", () => {
    const prefix = `llm-gateway-test:${randomUUID()}:`
    const options = { timeToLive: "1 minute", flightLease: "30 seconds" } as const
    return Effect.gen(function*() {
      const leader = yield* Layer.build(Redis.layerResponseCache(connection(prefix), options))
      const follower = yield* Layer.build(Redis.layerResponseCache(connection(prefix), options))
      yield* leadIn(leader, "k")
      const waiting = yield* Effect.fork(Effect.scoped(leadIn(follower, "k")))
      yield* Effect.sleep("50 millis")
      const started = Date.now()
      yield* Fiber.interrupt(waiting)
      expect(Date.now() - started).toBeLessThan(500)
    }).pipe(Effect.scoped)
  })

  it.live("a leader's lease is renewed while it leads and deleted when it stops: the others wait, then lead", () => {
    const prefix = `llm-gateway-test:${randomUUID()}:`
    const options = { timeToLive: "1 minute", flightLease: "1 second" } as const
    return Effect.gen(function*() {
      const leader = yield* Layer.build(Redis.layerResponseCache(connection(prefix), options))
      const follower = yield* Layer.build(Redis.layerResponseCache(connection(prefix), options))
      const leading = yield* Scope.make()
      yield* leadIn(leader, "k").pipe(Scope.extend(leading))
      const waiting = yield* Effect.fork(Effect.scoped(leadIn(follower, "k")))
      // Three and a half times the lease: without renewal it would have lapsed long ago.
      yield* Effect.sleep("3500 millis")
      expect(yield* Fiber.poll(waiting)).toEqual(Option.none())
      const raw = new IORedis(url)
      try {
        const ttl = yield* Effect.promise(() => raw.pttl(`${prefix}flight:k`))
        expect(ttl).toBeGreaterThan(0)
        expect(ttl).toBeLessThanOrEqual(1_000)
        // The leader stops without a reply: its lease is gone at once, the follower leads.
        yield* Scope.close(leading, Exit.void)
        expect(yield* Fiber.join(waiting)).toEqual(Option.none())
      } finally {
        raw.disconnect()
      }
    }).pipe(Effect.scoped)
  }, 20_000)

  it.live("a leader whose process died (no renewal, no release) blocks the others only until its lease expires", () => {
    const prefix = `llm-gateway-test:${randomUUID()}:`
    return Effect.gen(function*() {
      const raw = new IORedis(url)
      try {
        // What a process killed while leading leaves behind: its lease, nobody to renew or delete it.
        yield* Effect.promise(() => raw.set(`${prefix}flight:k`, "dead-process", "PX", 300))
      } finally {
        raw.disconnect()
      }
      const follower = yield* Layer.build(Redis.layerResponseCache(connection(prefix), { timeToLive: "1 minute" }))
      expect(yield* leadIn(follower, "k")).toEqual(Option.none())
    }).pipe(Effect.scoped)
  })

  for (const ending of ["fails", "is interrupted"] as const) {
    it.live(`two gateways: when the leading one ${ending}, the other goes upstream at once, not after the lease`, () => {
      const prefix = `llm-gateway-test:${randomUUID()}:`
      // A lease of a minute: a follower that waited it out would fail the test by its timeout.
      const cacheOptions = { timeToLive: "1 minute", flightLease: "1 minute" } as const
      const events: Array<string> = []
      const chunks = (text: string): Array<ChatChunk> => [
        { choices: [{ index: 0, delta: { content: text } }] },
        { choices: [{ index: 0, delta: {}, finish_reason: "stop" }] },
        { choices: [], usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 } }
      ]
      const instance = (transport: (request: OutboundRequest) => Stream.Stream<ChatChunk, TransportError>) =>
        Gateway.layer().pipe(
          Layer.provideMerge(Layer.mergeAll(
            SafetyFilter.layerDefault,
            ContextWindow.layer(),
            AuditLog.layerMemory,
            CostMeter.layerMemory(),
            Redis.layerResponseCache(connection(prefix), cacheOptions)
          )),
          Layer.provide(Layer.succeed(GatewayTransport, { stream: (request) => Stream.suspend(() => transport(request)) }))
        )
      return Effect.gen(function*() {
        const failNow = yield* Deferred.make<void>()
        const started = yield* Deferred.make<void>()
        const leader = yield* Layer.build(instance(() =>
          Stream.concat(
            Stream.fromIterable(chunks("Half").slice(0, 1)),
            Stream.fromEffect(Effect.andThen(Deferred.succeed(started, undefined), Deferred.await(failNow))).pipe(
              Stream.drain,
              Stream.concat(Stream.fail(new ConnectionError({ reason: "reset", partial: true })))
            )
          ).pipe(Stream.onStart(Effect.sync(() => events.push("leader upstream"))))
        ))
        const follower = yield* Layer.build(instance(() =>
          Stream.suspend(() => {
            events.push("follower upstream")
            return Stream.fromIterable(chunks("Whole"))
          })
        ))
        const question = { model: "gpt-4o-mini", messages: [{ role: "user" as const, content: "The same question" }] }
        const leading = yield* Effect.fork(Effect.either(Gateway.complete(question).pipe(Effect.provide(leader))))
        yield* Deferred.await(started)
        const following = yield* Effect.fork(Gateway.complete(question).pipe(Effect.provide(follower)))
        yield* Effect.sleep("300 millis")
        events.push(`leader ${ending}`)
        if (ending === "fails") {
          yield* Deferred.succeed(failNow, undefined)
          expect((yield* Fiber.join(leading))._tag).toBe("Left")
        } else {
          yield* Fiber.interrupt(leading)
        }
        const answer = yield* Fiber.join(following)
        expect(answer).toMatchObject({ text: "Whole", cached: false })
        expect(events).toEqual(["leader upstream", `leader ${ending}`, "follower upstream"])
      }).pipe(Effect.scoped)
    }, 20_000)
  }

  it.live("the rate limit counts across instances (fixed window and token bucket, fractional rates), keys expire", () => {
    const prefix = `llm-gateway-test:${randomUUID()}:`
    return Effect.gen(function*() {
      const one = yield* Layer.build(Redis.layerRateLimiter(connection(prefix)))
      const two = yield* Layer.build(Redis.layerRateLimiter(connection(prefix)))
      const consume = (context: Context.Context<RateLimiter.RateLimiter>, options: Parameters<RateLimiter.RateLimiter["consume"]>[0]) =>
        Effect.either(Effect.flatMap(RateLimiter.RateLimiter, (l) => l.consume(options)).pipe(Effect.provide(context)))
      // 7 per minute: 8571.43 ms per request, a fractional PX were it not rounded up.
      const fixed = { key: "fixed", limit: 7, window: "1 minute", onExceeded: "fail" } as const
      const bucket = { ...fixed, key: "bucket", limit: 3, algorithm: "token-bucket" } as const
      const fixedOutcomes = yield* Effect.forEach(Array.from({ length: 8 }, (_, i) => i), (i) => consume(i % 2 === 0 ? one : two, fixed))
      expect(fixedOutcomes.map(Either.isRight)).toEqual([true, true, true, true, true, true, true, false])
      const bucketOutcomes = yield* Effect.forEach([one, two, one, two], (c) => consume(c, bucket))
      expect(bucketOutcomes.map(Either.isRight)).toEqual([true, true, true, false])
      expect(Either.getLeft(bucketOutcomes[3]!)).toEqual(Option.some(expect.objectContaining({ reason: "Exceeded" })))
      const raw = new IORedis(url)
      try {
        const ttl = (key: string) => Effect.promise(() => raw.pttl(`${prefix}rate-limit:${key}`))
        expect(yield* ttl("fixed")).toBeGreaterThan(0)
        expect(yield* ttl("fixed")).toBeLessThanOrEqual(7 * 8_572)
        expect(yield* ttl("bucket")).toBeGreaterThan(0)
        expect(yield* ttl("bucket:refill")).toBeGreaterThan(0)
      } finally {
        raw.disconnect()
      }
    }).pipe(Effect.scoped)
  })

  describe("conversation store", () => {
    const user = (content: string) => ({ role: "user" as const, content })
    const assistant = (content: string) => ({ role: "assistant" as const, content })
    const conversation = (messages: ReadonlyArray<ReturnType<typeof user | typeof assistant>>) => ({
      id: "support-42",
      model: "gpt-4o-mini",
      system: "Be brief.",
      messages
    })
    const store = (prefix: string, options: Redis.ConversationOptions = {}) =>
      Redis.makeConversationStore(connection(prefix), options)

    it.live("saves, loads, lists and deletes; versioned values, with a TTL only when asked", () => {
      const prefix = `llm-gateway-test:${randomUUID()}:`
      return Effect.gen(function*() {
        const kept = yield* store(prefix)
        const expiring = yield* store(prefix, { timeToLive: "1 hour" })
        expect(yield* kept.load("support-42")).toEqual(Option.none())
        const data = conversation([user("Hi"), assistant("Hello")])
        yield* kept.save(data)
        yield* expiring.save({ ...data, id: "short-lived" })
        expect(yield* kept.load("support-42")).toEqual(Option.some(data))
        expect([...(yield* expiring.list)].sort()).toEqual(["short-lived", "support-42"])
        const raw = new IORedis(url)
        try {
          expect(yield* Effect.promise(() => raw.pttl(`${prefix}conversation:support-42`))).toBe(-1)
          const ttl = yield* Effect.promise(() => raw.pttl(`${prefix}conversation:short-lived`))
          expect(ttl).toBeGreaterThan(0)
          expect(ttl).toBeLessThanOrEqual(3_600_000)
          const stored = JSON.parse((yield* Effect.promise(() => raw.get(`${prefix}conversation:support-42`)))!)
          expect(stored).toMatchObject({ v: 1, revision: 0, conversation: data })
        } finally {
          raw.disconnect()
        }
        yield* kept.delete("short-lived")
        yield* kept.delete("never-saved")
        expect(yield* expiring.list).toEqual(["support-42"])
      }).pipe(Effect.scoped)
    })

    it.live("two processes appending to one conversation at once both keep their turn", () => {
      const prefix = `llm-gateway-test:${randomUUID()}:`
      return Effect.gen(function*() {
        const one = yield* store(prefix)
        const two = yield* store(prefix)
        const three = yield* store(prefix)
        yield* one.save(conversation([user("Hi"), assistant("Hello")]))
        const a = Option.getOrThrow(yield* one.load("support-42"))
        const b = Option.getOrThrow(yield* two.load("support-42"))
        // Each appends a turn to the history it loaded and saves, at the same time.
        const aNext = [...a.messages, user("From one"), assistant("One's answer")]
        const bNext = [...b.messages, user("From two"), assistant("Two's answer")]
        yield* Effect.all([one.save({ ...a, messages: aNext }), two.save({ ...b, messages: bNext })], {
          concurrency: "unbounded"
        })
        const merged = Option.getOrThrow(yield* three.load("support-42")).messages.map((m) => m.content)
        expect(merged).toHaveLength(6)
        expect(merged.slice(0, 2)).toEqual(["Hi", "Hello"])
        // Whichever saved first, each turn stays whole and nothing is lost.
        expect([merged.slice(2, 4), merged.slice(4, 6)].sort()).toEqual([
          ["From one", "One's answer"],
          ["From two", "Two's answer"]
        ])
        // Each goes on from its own history: the next turns land after everything stored.
        yield* two.save({ ...b, messages: [...bNext, user("Again")] })
        yield* one.save({ ...a, messages: [...aNext, user("Last")] })
        const final = Option.getOrThrow(yield* three.load("support-42")).messages.map((m) => m.content)
        expect(final.slice(0, 6)).toEqual(merged)
        expect(final.slice(6)).toEqual(["Again", "Last"])
      }).pipe(Effect.scoped)
    })

    it.live("a history rewritten by another process is a conflict, and nothing is written", () => {
      const prefix = `llm-gateway-test:${randomUUID()}:`
      return Effect.gen(function*() {
        const one = yield* store(prefix)
        const two = yield* store(prefix)
        yield* one.save(conversation([user("Hi"), assistant("Hello")]))
        // Two never loaded it: its save replaces the history.
        yield* two.save(conversation([user("Something else entirely")]))
        const error = yield* Effect.flip(one.save(conversation([user("Hi"), assistant("Hello"), user("More")])))
        expect(error).toMatchObject({ _tag: "ConversationStoreError", reason: "conflict" })
        expect(error.message).toContain("Load the conversation again")
        expect(Option.getOrThrow(yield* two.load("support-42")).messages.map((m) => m.content)).toEqual([
          "Something else entirely"
        ])
      }).pipe(Effect.scoped)
    })

    it.live("a stored value that is not a conversation, or of another version, is a typed error naming no value", () => {
      const prefix = `llm-gateway-test:${randomUUID()}:`
      return Effect.gen(function*() {
        const s = yield* store(prefix)
        const raw = new IORedis(url)
        const put = (id: string, value: string) => Effect.promise(() => raw.set(`${prefix}conversation:${id}`, value))
        try {
          yield* put("a", "not json")
          yield* put("b", JSON.stringify({ v: 2, revision: 0, conversation: {} }))
          yield* put("c", JSON.stringify({ v: 1, revision: 0, conversation: { id: "c", model: "gpt-4o-mini", messages: [{ role: "user", content: 42 }] } }))
          yield* put("d", JSON.stringify({ v: 1, revision: 0, conversation: { id: "secret-other-id", model: "gpt-4o-mini", messages: [] } }))
        } finally {
          raw.disconnect()
        }
        const errors = yield* Effect.all(["a", "b", "c", "d"].map((id) => Effect.flip(s.load(id))))
        expect(errors.map((e) => e.reason)).toEqual(["corrupt", "version", "corrupt", "corrupt"])
        expect(errors[2]!.detail).toContain("conversation.messages.0.content")
        expect(errors.map((e) => e.message).join(" ")).not.toContain("secret-other-id")
        // A save over an unreadable value fails the same way and leaves it alone.
        expect(yield* Effect.flip(s.save({ id: "a", model: "gpt-4o-mini", messages: [] }))).toMatchObject({ reason: "corrupt" })
      }).pipe(Effect.scoped)
    })

    it.live("Redis not answering is an io error, in time", () =>
      Effect.gen(function*() {
        const s = yield* Redis.makeConversationStore({ url: Redacted.make("redis://127.0.0.1:1"), timeout: "200 millis" })
        const error = yield* Effect.flip(s.load("support-42"))
        expect(error).toMatchObject({ _tag: "ConversationStoreError", reason: "io" })
        expect(error.message).toContain("LLM_GATEWAY_REDIS_URL")
      }).pipe(Effect.scoped))
  })

  it.live("two meters on one ledger never hold more than the budget together", () => {
    const prefix = `llm-gateway-test:${randomUUID()}:`
    // Each hold: 1,000,000 prompt tokens at $1 per million = $1; the budget covers 10.
    const options = { budgetUsd: 10, pricing: { m: { promptPerMillion: 1, completionPerMillion: 0 } } }
    return Effect.gen(function*() {
      const one = yield* Redis.makeCostMeter(connection(prefix), options)
      const two = yield* Redis.makeCostMeter(connection(prefix), options)
      const attempts = yield* Effect.all(
        Array.from({ length: 40 }, (_, i) => Effect.either((i % 2 === 0 ? one : two).reserve("m", 1_000_000, 0))),
        { concurrency: "unbounded" }
      )
      expect(attempts.filter(Either.isRight)).toHaveLength(10)
      expect(attempts.filter(Either.isLeft).every((e) => e.left._tag === "BudgetExceeded")).toBe(true)
      expect(yield* two.summary).toMatchObject({ reservedUsd: 10, remainingUsd: 0 })
      for (const hold of attempts.filter(Either.isRight)) yield* one.settle(hold.right, undefined)
      expect(yield* one.summary).toMatchObject({ reservedUsd: 0, remainingUsd: 10, totalUsd: 0 })
    }).pipe(Effect.scoped)
  })

  it.effect("a period budget: each period's spending in a key that expires after the period and the grace, rolled over by every process", () => {
    const prefix = `llm-gateway-test:${randomUUID()}:`
    const hour = 3_600_000
    // $1 per hold; $2 per hour, nothing for the meter's lifetime. The ledger keeps the holds.
    const options = {
      periodBudget: { limitUsd: 2, period: "1 hour" },
      periodGrace: "30 minutes",
      pricing: { m: { promptPerMillion: 1, completionPerMillion: 0 } }
    } as const
    const usage = { promptTokens: 1_000_000, completionTokens: 0, totalTokens: 1_000_000 }
    return Effect.gen(function*() {
      // The test clock at the real time, so the expiry times written mean something to Redis.
      yield* TestClock.setTime(Date.now())
      const start = Date.now()
      const index = Math.floor(start / hour)
      const one = yield* Redis.makeCostMeter(connection(prefix), options)
      const two = yield* Redis.makeCostMeter(connection(prefix), options)
      yield* one.settle(yield* one.reserve("m", 1_000_000, 0), usage)
      yield* two.settle(yield* two.reserve("m", 1_000_000, 0), usage)
      const refused = yield* Effect.flip(one.reserve("m", 1_000_000, 0))
      expect(refused).toMatchObject({ _tag: "BudgetExceeded", budget: "hourly" })
      expect((yield* two.summary).period).toMatchObject({ spentUsd: 2, remainingUsd: 0, resetsAt: (index + 1) * hour })

      const raw = new IORedis(url)
      try {
        const ttl = (key: string) => Effect.promise(() => raw.pttl(`${prefix}${key}`))
        // The ledger (holds, lifetime totals) never expires; the period's key does.
        expect(yield* ttl("meter:default")).toBe(-1)
        const first = yield* ttl(`meter:default:period:${index}`)
        expect(first).toBeGreaterThan(30 * 60_000)
        expect(first).toBeLessThanOrEqual((index + 1) * hour - start + 30 * 60_000)
        expect(yield* Effect.promise(() => raw.get(`${prefix}meter:default:period:${index}`))).toBe(String(2n * 10n ** 18n))

        // The next hour: the second process rolls over and spends; the first sees it.
        yield* TestClock.adjust("1 hour")
        yield* two.settle(yield* two.reserve("m", 1_000_000, 0), usage)
        expect((yield* one.summary).period).toMatchObject({ spentUsd: 1, remainingUsd: 1, resetsAt: (index + 2) * hour })
        expect(yield* one.summary).toMatchObject({ totalUsd: 3, requests: 3 })
        yield* one.settle(yield* one.reserve("m", 1_000_000, 0), usage)
        expect(yield* Effect.flip(two.reserve("m", 1_000_000, 0))).toMatchObject({ _tag: "BudgetExceeded" })
        const second = yield* ttl(`meter:default:period:${index + 1}`)
        expect(second).toBeGreaterThan(hour)
        expect(second).toBeLessThanOrEqual((index + 2) * hour - start + 30 * 60_000)
        // The past hour's key is still there until its own expiry; nothing else was written.
        expect(yield* ttl(`meter:default:period:${index}`)).toBeGreaterThan(0)
        expect((yield* Effect.promise(() => raw.keys(`${prefix}*`))).sort()).toEqual([
          `${prefix}meter:default`,
          `${prefix}meter:default:period:${index}`,
          `${prefix}meter:default:period:${index + 1}`
        ])
      } finally {
        raw.disconnect()
      }
    }).pipe(Effect.scoped)
  })

  it.live("a period's key that is not a number refuses requests with StoreUnavailable", () => {
    const prefix = `llm-gateway-test:${randomUUID()}:`
    const options = { periodBudget: { limitUsd: 2, period: "1 hour" } } as const
    return Effect.gen(function*() {
      const raw = new IORedis(url)
      try {
        yield* Effect.promise(() => raw.set(`${prefix}meter:default:period:${Math.floor(Date.now() / 3_600_000)}`, "lots"))
      } finally {
        raw.disconnect()
      }
      const meter = yield* Redis.makeCostMeter(connection(prefix), options)
      expect(yield* Effect.flip(meter.reserve("gpt-4o-mini", 10, 10))).toMatchObject({ _tag: "StoreUnavailable" })
    }).pipe(Effect.scoped)
  })

})
