/**
 * Several processes, one truth: 4 worker processes (test/support/redisWorker.ts), each a
 * gateway whose cache, budget and rate limit live on one Redis server, against one simulator
 * server that counts the requests it receives.
 *
 * Needs a Redis server: `LLM_GATEWAY_TEST_REDIS_URL` (set by `.ci/run`, which starts one). The
 * outage test starts (and kills) a Redis of its own and needs `redis-server` on the PATH.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Redis from "@llm-gateway/core/Redis"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { spawn, spawnSync } from "node:child_process"
import { randomUUID } from "node:crypto"
import * as Net from "node:net"
import { fileURLToPath } from "node:url"
import * as SimulatorApp from "../src/SimulatorApp.js"
import * as SimulatorServer from "../src/SimulatorServer.js"
import type { Job, Outcome } from "./support/redisWorker.js"

const redisUrl = process.env.LLM_GATEWAY_TEST_REDIS_URL
const redisServer = spawnSync("redis-server", ["--version"]).status === 0
if (redisUrl === undefined || redisUrl === "") {
  // eslint-disable-next-line no-console
  console.warn(
    "RedisMultiProcess: skipped, LLM_GATEWAY_TEST_REDIS_URL is not set (.ci/run starts a Redis server and sets it)"
  )
} else if (!redisServer) {
  // eslint-disable-next-line no-console
  console.warn("RedisMultiProcess: the outage test is skipped, redis-server is not on the PATH")
}

const root = fileURLToPath(new URL("../../..", import.meta.url))
const worker = fileURLToPath(new URL("./support/redisWorker.ts", import.meta.url))
const reply = "One answer for every process."

interface WorkerResult {
  readonly outcomes: ReadonlyArray<Outcome>
  readonly audited: number
}

/** Starts one worker: `ready` once it is connected, `go()` lets it send, `done` its result. */
const startWorker = (job: Job) => {
  const child = spawn(process.execPath, ["--conditions=@llm-gateway/source", "--import", "tsx", worker, JSON.stringify(job)], {
    cwd: root,
    stdio: ["pipe", "pipe", "inherit"]
  })
  let out = ""
  let markReady: () => void = () => {}
  const ready = new Promise<void>((r) => (markReady = r))
  const done = new Promise<WorkerResult>((resolve, reject) => {
    child.stdout!.on("data", (data) => {
      out += data
      if (out.startsWith("ready\n")) markReady()
    })
    child.on("exit", (code, signal) => {
      if (code !== 0) return reject(new Error(`worker exited with ${code ?? signal}`))
      resolve(JSON.parse(out.slice("ready\n".length)))
    })
  })
  return { child, ready, done, go: () => child.stdin!.write("go\n") }
}

/** Starts the workers, waits until all are ready, lets them go together, collects their results. */
const runWorkers = async (jobs: ReadonlyArray<Job>, whileRunning?: (finished: () => boolean) => Promise<void>) => {
  const started = jobs.map(startWorker)
  await Promise.all(started.map((s) => s.ready))
  for (const s of started) s.go()
  let finished = false
  const running = whileRunning?.(() => finished)
  const done = await Promise.all(started.map((s) => s.done)).finally(() => (finished = true))
  await running
  return done
}

/** A simulator server for the length of `body`. */
const withSimulator = <A>(
  options: SimulatorServer.ServerOptions,
  body: (server: SimulatorServer.Service) => Effect.Effect<A, unknown>
) =>
  Effect.runPromise(
    Effect.scoped(Effect.flatMap(SimulatorServer.SimulatorServer, body).pipe(
      Effect.provide(SimulatorServer.layerServer(options))
    ))
  )

const jobOf = (server: SimulatorServer.Service, redis: string, prefix: string, extra: Partial<Job>): Job => ({
  redisUrl: redis,
  prefix,
  openAiBaseUrl: server.openAiBaseUrl,
  apiKey: Redacted.value(SimulatorApp.defaultApiKey),
  contents: [],
  ...extra
})

const chat = "/v1/chat/completions"

describe.skipIf(redisUrl === undefined || redisUrl === "")("4 processes against one Redis and one simulator", () => {
  const url = redisUrl ?? ""

  it("200 identical concurrent requests make 1 upstream call", async () => {
    const prefix = `llm-gateway-test:${randomUUID()}:`
    await withSimulator({ scenarios: [{ name: "shared", reply }] }, (server) =>
      Effect.promise(async () => {
        const jobs = Array.from({ length: 4 }, () =>
          jobOf(server, url, prefix, { contents: Array(50).fill("The same question from every process") }))
        const results = await runWorkers(jobs)
        const outcomes = results.flatMap((r) => r.outcomes)
        expect(outcomes).toHaveLength(200)
        expect(outcomes.every((o) => o.ok)).toBe(true)
        expect(outcomes.filter((o) => o.cached === false)).toHaveLength(1)
        expect(Effect.runSync(server.countRequests({ path: chat }))).toBe(1)
        expect(results.map((r) => r.audited)).toEqual([50, 50, 50, 50])
      }))
  }, 120_000)

  it("400 requests against a budget for 100 never spend or hold more than the budget", async () => {
    const prefix = `llm-gateway-test:${randomUUID()}:`
    const budgetUsd = 100
    const meter = Redis.makeCostMeter({ url: Redacted.make(url), prefix }, {
      pricing: { sim: { promptPerMillion: 0, completionPerMillion: 62_500 } }
    })
    await withSimulator({ scenarios: [{ name: "shared", reply }] }, (server) =>
      Effect.gen(function*() {
        const watch = yield* meter
        let most = 0
        const jobs = Array.from({ length: 4 }, (_, w) =>
          jobOf(server, url, prefix, {
            budgetUsd,
            maxTokens: 16,
            contents: Array.from({ length: 100 }, (_, i) => `Question ${w}-${i}`)
          }))
        const results = yield* Effect.promise(() =>
          runWorkers(jobs, async (finished) => {
            while (!finished()) {
              const s = await Effect.runPromise(watch.summary)
              most = Math.max(most, s.totalUsd + s.reservedUsd)
              await new Promise((r) => setTimeout(r, 2))
            }
          })
        )
        const outcomes = results.flatMap((r) => r.outcomes)
        const summary = yield* watch.summary
        const succeeded = outcomes.filter((o) => o.ok).length
        // Each hold is $1 and each reply costs less, so more than 100 fit, but not all 400.
        expect(succeeded).toBeGreaterThanOrEqual(100)
        expect(succeeded).toBeLessThan(400)
        expect(outcomes.filter((o) => !o.ok).every((o) => o.error === "BudgetExceeded")).toBe(true)
        expect(summary.totalUsd).toBeLessThanOrEqual(budgetUsd)
        expect(summary.reservedUsd).toBe(0)
        expect(summary.requests).toBe(succeeded)
        expect(most).toBeLessThanOrEqual(budgetUsd)
        expect(Effect.runSync(server.countRequests({ path: chat }))).toBe(succeeded)
        expect(results.map((r) => r.audited)).toEqual([100, 100, 100, 100])
        // eslint-disable-next-line no-console
        console.log(`budget: ${succeeded} of 400 answered, $${summary.totalUsd} spent, at most $${most} spent + held`)
      }).pipe(Effect.scoped))
  }, 120_000)

  it("the rate limit holds across processes", async () => {
    const prefix = `llm-gateway-test:${randomUUID()}:`
    const limit = 10
    await withSimulator({ scenarios: [{ name: "shared", reply }] }, (server) =>
      Effect.gen(function*() {
        const jobs = Array.from({ length: 4 }, (_, w) =>
          jobOf(server, url, prefix, {
            rateLimit: { limit, windowMillis: 1_000 },
            contents: Array.from({ length: 10 }, (_, i) => `Paced ${w}-${i}`)
          }))
        const results = yield* Effect.promise(() => runWorkers(jobs))
        expect(results.flatMap((r) => r.outcomes).every((o) => o.ok)).toBe(true)
        const times = (yield* server.requests).filter((r) => r.path === chat).map((r) => r.at).sort((a, b) => a - b)
        expect(times).toHaveLength(40)
        // After the first window's burst, the 4 processes together get `limit` per second: 30
        // more requests take about 3 seconds (4 unshared limiters would send all 40 at once).
        const span = times[39]! - times[0]!
        expect(span).toBeGreaterThanOrEqual(2_500)
        // eslint-disable-next-line no-console
        console.log(`rate limit: 40 requests from 4 processes over ${span} ms at ${limit}/s`)
      }))
  }, 120_000)

  it("a leader killed mid-request: the other process takes over when its lease expires, not before", async () => {
    const prefix = `llm-gateway-test:${randomUUID()}:`
    // The first request of this body hangs (headers after 20 s); the next one is answered.
    const scenario = { name: "shared", reply, attempts: [{ status: 503, delayMs: 20_000 }] }
    await withSimulator({ scenarios: [scenario] }, (server) =>
      Effect.promise(async () => {
        const job = jobOf(server, url, prefix, { contents: ["Asked by two processes"], flightLeaseMillis: 3_000 })
        const leader = startWorker(job)
        const leaderExit = leader.done.catch((error: Error) => error.message)
        await leader.ready
        leader.go()
        while (Effect.runSync(server.countRequests({ path: chat })) < 1) await new Promise((r) => setTimeout(r, 20))
        const follower = startWorker(job)
        await follower.ready
        follower.go()
        // The follower waits while the leader lives, longer than one lease (renewed meanwhile)...
        await new Promise((r) => setTimeout(r, 4_500))
        const killedAt = Date.now()
        leader.child.kill("SIGKILL")
        expect(await leaderExit).toContain("SIGKILL")
        // ...and goes upstream itself once the dead leader's lease lapsed.
        const result = await follower.done
        expect(result.outcomes).toMatchObject([{ ok: true, cached: false }])
        const times = Effect.runSync(server.requests).filter((r) => r.path === chat).map((r) => r.at)
        expect(times).toHaveLength(2)
        expect(times[1]!).toBeGreaterThanOrEqual(killedAt)
        // eslint-disable-next-line no-console
        console.log(`killed leader: the follower went upstream ${times[1]! - killedAt} ms after the kill (lease 3000 ms)`)
      }))
  }, 120_000)

  it.skipIf(!redisServer)("stopping Redis mid-run gives typed errors, no hang, and every request audited", async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = Net.createServer().listen(0, "127.0.0.1", () => {
        const address = probe.address() as Net.AddressInfo
        probe.close(() => resolve(address.port))
      })
    })
    const redis = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdio: "ignore"
    })
    try {
      await new Promise((r) => setTimeout(r, 300))
      const ownUrl = `redis://127.0.0.1:${port}`
      const prefix = `llm-gateway-test:${randomUUID()}:`
      await withSimulator({ scenarios: [{ name: "shared", reply }] }, (server) =>
        Effect.promise(async () => {
          const jobs = Array.from({ length: 4 }, (_, w) =>
            jobOf(server, ownUrl, prefix, {
              spacingMillis: 40,
              contents: Array.from({ length: 50 }, (_, i) => `Outage ${w}-${i}`)
            }))
          const started = Date.now()
          const results = await runWorkers(jobs, async () => {
            await new Promise((r) => setTimeout(r, 1_500))
            redis.kill("SIGKILL")
          })
          const outcomes = results.flatMap((r) => r.outcomes)
          expect(outcomes).toHaveLength(200)
          // Before the outage answered; after it, the budget fails closed with a typed error.
          expect(outcomes.filter((o) => o.ok).length).toBeGreaterThan(0)
          expect(outcomes.filter((o) => !o.ok).length).toBeGreaterThan(0)
          expect(outcomes.filter((o) => !o.ok).every((o) => o.error === "StoreUnavailable")).toBe(true)
          // No hang: every request ended within a few Redis timeouts.
          expect(Math.max(...outcomes.map((o) => o.millis))).toBeLessThan(5_000)
          expect(results.map((r) => r.audited)).toEqual([50, 50, 50, 50])
          // eslint-disable-next-line no-console
          console.log(
            `outage: ${outcomes.filter((o) => o.ok).length} answered, ${outcomes.filter((o) => !o.ok).length} StoreUnavailable, ` +
              `slowest ${Math.max(...outcomes.map((o) => o.millis))} ms, all in ${Date.now() - started} ms`
          )
        }))
    } finally {
      redis.kill("SIGKILL")
    }
  }, 120_000)
})
