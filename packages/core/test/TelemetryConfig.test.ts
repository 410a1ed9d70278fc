import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Telemetry from "../src/Telemetry.js"

const read = (env: Record<string, string>) =>
  Effect.either(Effect.withConfigProvider(Telemetry.config, ConfigProvider.fromMap(new Map(Object.entries(env)))))

describe("Telemetry.config (the standard OTEL_* variables)", () => {
  it.effect("without OTEL_EXPORTER_OTLP_ENDPOINT nothing is exported", () =>
    Effect.gen(function*() {
      expect(yield* read({})).toEqual(Either.right(Option.none()))
      expect(yield* read({ OTEL_SERVICE_NAME: "x", OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" })).toEqual(
        Either.right(Option.none())
      )
    }))

  it.effect("an endpoint with the defaults: http/json, service llm-gateway, no attributes", () =>
    Effect.gen(function*() {
      expect(yield* read({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://localhost:4318/" })).toEqual(Either.right(Option.some({
        endpoint: "http://localhost:4318",
        serviceName: "llm-gateway",
        resourceAttributes: {},
        headers: {}
      })))
    }))

  it.effect("resource attributes and headers are parsed and percent-decoded; OTEL_SERVICE_NAME wins over service.name", () =>
    Effect.gen(function*() {
      const found = yield* read({
        OTEL_EXPORTER_OTLP_ENDPOINT: "https://collector.example:4318",
        OTEL_RESOURCE_ATTRIBUTES: "service.name=from-attrs, deployment.environment=prod,team=ai%20platform,",
        OTEL_EXPORTER_OTLP_HEADERS: "x-api-key=abc%3D%3D"
      })
      expect(found).toEqual(Either.right(Option.some({
        endpoint: "https://collector.example:4318",
        serviceName: "from-attrs",
        resourceAttributes: { "service.name": "from-attrs", "deployment.environment": "prod", team: "ai platform" },
        headers: { "x-api-key": "abc==" }
      })))
      const named = yield* read({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318",
        OTEL_SERVICE_NAME: "support-bot",
        OTEL_RESOURCE_ATTRIBUTES: "service.name=from-attrs"
      })
      expect(Either.getOrThrow(named).pipe(Option.map((e) => e.serviceName))).toEqual(Option.some("support-bot"))
    }))

  it.effect("OTEL_SDK_DISABLED=true turns export off", () =>
    Effect.gen(function*() {
      expect(yield* read({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://localhost:4318", OTEL_SDK_DISABLED: "true" })).toEqual(
        Either.right(Option.none())
      )
    }))

  it.effect("bad values fail with a ConfigError naming the variable", () =>
    Effect.gen(function*() {
      for (
        const [env, variable, says] of [
          [{ OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }, "OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"],
          [{ OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf" }, "OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"],
          [{ OTEL_EXPORTER_OTLP_ENDPOINT: "localhost:4318" }, "OTEL_EXPORTER_OTLP_ENDPOINT", "http"],
          [{ OTEL_EXPORTER_OTLP_ENDPOINT: "not a url" }, "OTEL_EXPORTER_OTLP_ENDPOINT", "absolute URL"],
          [{ OTEL_RESOURCE_ATTRIBUTES: "novalue" }, "OTEL_RESOURCE_ATTRIBUTES", "key=value"],
          [{ OTEL_EXPORTER_OTLP_HEADERS: "a=%E0%A4%A" }, "OTEL_EXPORTER_OTLP_HEADERS", "percent"]
        ] as const
      ) {
        const result = yield* read({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://localhost:4318", ...env })
        expect(Either.isLeft(result), variable).toBe(true)
        const message = String(Either.isLeft(result) ? result.left : "")
        expect(message).toContain(variable)
        expect(message).toContain(says)
      }
    }))

  it("parseKeyValues skips empty members and rejects a member without a key", () => {
    expect(Telemetry.parseKeyValues(" a = 1 ,, b=x=y ")).toEqual(Either.right({ a: "1", b: "x=y" }))
    expect(Either.isLeft(Telemetry.parseKeyValues("=1"))).toBe(true)
  })
})
