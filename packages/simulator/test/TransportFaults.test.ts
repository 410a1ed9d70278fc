/**
 * Core's real Auth and Transport over real sockets against the simulator's HTTP server on
 * 127.0.0.1: the fault matrix of the transport, end to end.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import { Auth, type Chat, type ChatChunk, Transport } from "@llm-gateway/core"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import type * as Scenario from "../src/Scenario.js"
import * as SimulatorServer from "../src/SimulatorServer.js"

const clients = [{ clientId: "fault-client", clientSecret: Redacted.make("fault-secret-value") }]

const scenarios: ReadonlyArray<Scenario.Scenario> = [
  {
    name: "429-twice",
    reply: "after two 429s",
    attempts: [{ status: 429, retryAfterMs: 30 }, { status: 429 }]
  },
  { name: "503-once", reply: "after a 503", attempts: [{ status: 503 }] },
  { name: "401-once", reply: "after a new token", attempts: [{ status: 401, revokeToken: true }] },
  { name: "403", attempts: [{ status: 403, times: 1_000 }] },
  { name: "drop-3", reply: "one two three four five six", faults: { dropAfter: 3 } },
  { name: "stall-3", reply: "one two three four five six", faults: { stallAfter: 3 }, keepAliveMs: 20 }
]

const request = (model: string): Chat.OutboundRequest => ({
  model,
  system: "Be brief.",
  messages: [{ role: "user", content: "Hello" }],
  temperature: undefined,
  maxTokens: undefined
})

/** The deadlines of the fault tests: short, so stalls are caught quickly. */
const faultTimeouts: Transport.Timeouts = {
  handshake: "2 seconds",
  firstToken: "2 seconds",
  idle: "150 millis",
  total: "10 seconds"
}

/** Runs `use` with the transport wired to a fresh simulator server over real sockets. */
const withTransport = <A, E>(
  use: (
    transport: Transport.Service,
    server: SimulatorServer.Service
  ) => Effect.Effect<A, E>,
  timeouts: Transport.Timeouts = faultTimeouts
) =>
  Effect.gen(function*() {
    const server = yield* SimulatorServer.SimulatorServer
    const transportLayer = Transport.layer({
      profile: "gateway",
      baseUrl: server.baseUrl,
      retry: { initialDelay: "5 millis", maxDelay: "20 millis", maxAttempts: 4, deadline: "5 seconds" },
      timeouts
    }).pipe(
      Layer.provideMerge(Auth.layerGenesys({
        clientId: clients[0].clientId,
        clientSecret: clients[0].clientSecret,
        environment: "localhost",
        loginUrl: server.baseUrl
      })),
      Layer.provide(NodeHttpClient.layerUndici)
    )
    return yield* Effect.flatMap(Transport.GatewayTransport, (transport) => use(transport, server)).pipe(
      Effect.provide(transportLayer)
    )
  }).pipe(Effect.provide(SimulatorServer.layerServer({ clients, scenarios })))

const textOf = (chunks: Chunk.Chunk<ChatChunk.ChatChunk>) =>
  Chunk.toArray(chunks)
    .flatMap((c) => c.choices.filter((choice) => choice.index === 0).map((choice) => choice.delta.content ?? ""))
    .join("")

const invokeCount = (server: SimulatorServer.Service) =>
  server.countRequests({ path: "/api/v2/ai/llm/gateway/invoke" })

describe("Transport against the simulator server (real sockets)", () => {
  it.live("429 twice (with and without Retry-After), then success", () =>
    withTransport((transport, server) =>
      Effect.gen(function*() {
        const chunks = yield* Stream.runCollect(transport.stream(request("sim:429-twice")))
        expect(textOf(chunks)).toBe("after two 429s")
        expect(yield* invokeCount(server)).toBe(3)
      })
    ))

  it.live("503 then success", () =>
    withTransport((transport, server) =>
      Effect.gen(function*() {
        const chunks = yield* Stream.runCollect(transport.stream(request("sim:503-once")))
        expect(textOf(chunks)).toBe("after a 503")
        expect(yield* invokeCount(server)).toBe(2)
      })
    ))

  it.live("401 then re-authentication then success", () =>
    withTransport((transport, server) =>
      Effect.gen(function*() {
        const chunks = yield* Stream.runCollect(transport.stream(request("sim:401-once")))
        expect(textOf(chunks)).toBe("after a new token")
        expect(yield* server.countRequests({ path: "/oauth/token" })).toBe(2)
        expect(yield* invokeCount(server)).toBe(2)
      })
    ))

  it.live("403 is fatal: one attempt, PermissionDenied", () =>
    withTransport((transport, server) =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(Stream.runCollect(transport.stream(request("sim:403"))))
        expect(Exit.isFailure(exit)).toBe(true)
        const error = yield* Effect.flip(Stream.runCollect(transport.stream(request("sim:403"))))
        expect(error._tag).toBe("PermissionDenied")
        expect(yield* invokeCount(server)).toBe(2)
      })
    ))

  it.live("a connection dropped mid-stream is final and partial; nothing is repeated", () =>
    withTransport((transport, server) =>
      Effect.gen(function*() {
        const seen: Array<string> = []
        const error = yield* Effect.flip(
          transport.stream(request("sim:drop-3")).pipe(
            Stream.runForEach((chunk) =>
              Effect.sync(() => {
                for (const choice of chunk.choices) if (choice.delta.content) seen.push(choice.delta.content)
              })
            )
          )
        )
        expect(error._tag).toBe("ConnectionError")
        expect("partial" in error && error.partial).toBe(true)
        expect(seen.length).toBe(3)
        expect(yield* invokeCount(server)).toBe(1)
      })
    ))

  it.live("a stall after the first tokens ends in the idle timeout, keep-alives notwithstanding", () =>
    withTransport((transport) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Stream.runCollect(transport.stream(request("sim:stall-3"))))
        expect(error._tag).toBe("RequestTimeout")
        expect(error._tag === "RequestTimeout" && error.phase).toBe("idle")
      })
    ))

  // The handshake deadline stays short (under CPU load it must not re-send accepted requests:
  // exactly 100 upstream calls); the body deadlines are not under test here, so a machine
  // under load cannot turn a slow but healthy reply into an idle timeout.
  it.live("100 concurrent requests cause exactly one token request", () =>
    withTransport((transport, server) =>
      Effect.gen(function*() {
        const replies = yield* Effect.forEach(
          Array.from({ length: 100 }, (_, i) => i),
          (i) => Stream.runCollect(transport.stream(request(i % 2 === 0 ? "sim:hello" : "sim:echo"))),
          { concurrency: "unbounded" }
        )
        expect(replies).toHaveLength(100)
        expect(textOf(replies[0])).toBe("Hello! How can I help you today?")
        expect(yield* server.countRequests({ path: "/oauth/token" })).toBe(1)
        expect(yield* invokeCount(server)).toBe(100)
      }), { ...faultTimeouts, firstToken: "30 seconds", idle: "30 seconds", total: "60 seconds" }))
})
