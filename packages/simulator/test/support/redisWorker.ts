/**
 * One worker process of the Redis test: a gateway whose cache, budget and rate limit live on
 * Redis, against the simulator server. It prints `ready`, waits for a line on stdin (so all
 * workers start together), sends its requests at once, and prints one JSON line: how each
 * request ended and how many audit entries were written.
 *
 * Run: node --conditions=@llm-gateway/source --import tsx redisWorker.ts '<json Job>'
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { AuditLog, Auth, ContextWindow, Gateway, SafetyFilter, Transport } from "@llm-gateway/core"
import * as Redis from "@llm-gateway/core/Redis"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import { createInterface } from "node:readline"

export interface Job {
  readonly redisUrl: string
  readonly prefix: string
  readonly openAiBaseUrl: string
  readonly apiKey: string
  /** The user messages to send, all at once. */
  readonly contents: ReadonlyArray<string>
  readonly maxTokens?: number | undefined
  readonly budgetUsd?: number | undefined
  readonly rateLimit?: { readonly limit: number; readonly windowMillis: number } | undefined
  /** Sends the requests one after another, this many milliseconds apart, instead of at once. */
  readonly spacingMillis?: number | undefined
  /** The cache's flight lease (default 5 seconds). */
  readonly flightLeaseMillis?: number | undefined
}

export interface Outcome {
  readonly ok: boolean
  readonly cached?: boolean | undefined
  readonly error?: string | undefined
  readonly millis: number
}

const job: Job = JSON.parse(process.argv[2]!)
const model = "sim:shared"
// A price that makes each hold exactly $1: 16 completion tokens at $1/16 each, prompts free.
const pricing = { sim: { promptPerMillion: 0, completionPerMillion: 62_500 } }

const stores = Redis.layerRedis(
  { url: Redacted.make(job.redisUrl), prefix: job.prefix, timeout: "500 millis" },
  {
    cache: { timeToLive: "1 hour", flightLease: Duration.millis(job.flightLeaseMillis ?? 5_000) },
    meter: { budgetUsd: job.budgetUsd, pricing }
  }
)

const gateway = Gateway.layer({
  profile: "openai",
  ...(job.rateLimit === undefined ? {} : { rateLimit: { limit: job.rateLimit.limit, window: Duration.millis(job.rateLimit.windowMillis), key: "sim-client" } })
}).pipe(
  Layer.provideMerge(Layer.mergeAll(
    SafetyFilter.layerDefault,
    ContextWindow.layer({ models: { [model]: { contextWindow: 128_000, maxOutputTokens: 4_096, encoding: "o200k_base" } } }),
    AuditLog.layerMemory,
    stores
  )),
  Layer.provide(
    Transport.layer({
      profile: "openai",
      baseUrl: job.openAiBaseUrl,
      retry: { initialDelay: "5 millis", maxDelay: "10 millis", maxAttempts: 1, deadline: "5 seconds" }
    }).pipe(Layer.provide(Auth.layerStatic(Redacted.make(job.apiKey))), Layer.provide(NodeHttpClient.layerUndici))
  )
)

const one = (content: string, index: number): Effect.Effect<Outcome, never, Gateway.Gateway> =>
  Effect.gen(function*() {
    if (job.spacingMillis !== undefined) yield* Effect.sleep(job.spacingMillis * index)
    const started = Date.now()
    return yield* Gateway.complete({
      model,
      messages: [{ role: "user", content }],
      ...(job.maxTokens === undefined ? {} : { maxTokens: job.maxTokens })
    }).pipe(
      Effect.map((done): Outcome => ({ ok: true, cached: done.cached, millis: Date.now() - started })),
      Effect.catchAll((error) => Effect.succeed<Outcome>({ ok: false, error: error._tag, millis: Date.now() - started }))
    )
  })

const program = Effect.gen(function*() {
  // Connect and warm up before the signal, so the workers' requests really overlap.
  process.stdout.write("ready\n")
  yield* Effect.async<void>((resume) => {
    const lines = createInterface({ input: process.stdin })
    lines.once("line", () => {
      lines.close()
      resume(Effect.void)
    })
  })
  const outcomes = yield* Effect.forEach(job.contents, one, { concurrency: "unbounded" })
  const audited = (yield* Effect.flatMap(AuditLog.MemoryAuditLog, (log) => log.entries)).length
  process.stdout.write(JSON.stringify({ outcomes, audited }) + "\n")
}).pipe(Effect.provide(gateway), Logger.withMinimumLogLevel(LogLevel.Error))

Effect.runPromise(program).then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(String(error) + "\n")
    process.exit(1)
  }
)
