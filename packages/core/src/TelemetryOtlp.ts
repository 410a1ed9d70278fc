/**
 * TelemetryOtlp: the gateway's traces and metrics (see `Telemetry`) exported over OTLP/HTTP
 * with JSON bodies to a collector, with `@effect/opentelemetry`'s own OTLP exporters (plain
 * Effect and `HttpClient`, no OpenTelemetry SDK).
 *
 * A separate entry point (`@llm-gateway/core/TelemetryOtlp`), not re-exported by the package's
 * index: importing `@llm-gateway/core` never loads `@effect/opentelemetry`, an optional peer
 * dependency that only users of this module install (`npm install @effect/opentelemetry`).
 *
 * Spans are sent in batches every 5 seconds and metrics every 10 seconds (both configurable);
 * whatever is pending is sent when the Layer's scope closes, so a program that ends (or is
 * interrupted) flushes before it exits, waiting at most `shutdownTimeout`.
 *
 * @since 0.1.0
 */
import * as OtlpMetrics from "@effect/opentelemetry/OtlpMetrics"
import * as OtlpSerialization from "@effect/opentelemetry/OtlpSerialization"
import * as OtlpTracer from "@effect/opentelemetry/OtlpTracer"
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Telemetry from "./Telemetry.js"

/**
 * Where and how to export, with what the instrumentation records (`Telemetry.Options`).
 *
 * - `endpoint`: the collector's OTLP/HTTP base URL (`http://localhost:4318`); `/v1/traces` and
 *   `/v1/metrics` are appended.
 * - `serviceName`, `serviceVersion`, `resourceAttributes`: the resource.
 * - `headers`: sent with every export.
 * - `tracesInterval` (default 5 seconds), `metricsInterval` (default 10 seconds),
 *   `shutdownTimeout` (default 3 seconds: the longest the final flush may take).
 *
 * @since 0.1.0
 * @category Config
 */
export interface Options extends Telemetry.Options {
  readonly endpoint: string
  readonly serviceName?: string | undefined
  readonly serviceVersion?: string | undefined
  readonly resourceAttributes?: Readonly<Record<string, string>> | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
  readonly tracesInterval?: Duration.DurationInput | undefined
  readonly metricsInterval?: Duration.DurationInput | undefined
  readonly shutdownTimeout?: Duration.DurationInput | undefined
}

/**
 * The instrumentation (`Telemetry.layer`) with the OTLP/HTTP JSON exporters of spans and
 * metrics, on the `HttpClient` in context. Provide it to `Gateway.layer`, and keep it alive as
 * long as the program: closing it flushes.
 *
 * @example
 * import { NodeHttpClient } from "@effect/platform-node"
 * import * as Layer from "effect/Layer"
 * import * as TelemetryOtlp from "@llm-gateway/core/TelemetryOtlp"
 *
 * export const TelemetryLive = TelemetryOtlp.layer({
 *   endpoint: "http://localhost:4318",
 *   serviceName: "support-bot"
 * }).pipe(Layer.provide(NodeHttpClient.layerUndici))
 *
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: Options): Layer.Layer<Telemetry.Telemetry, never, HttpClient.HttpClient> => {
  const endpoint = options.endpoint.replace(/\/+$/, "")
  const resource = {
    serviceName: options.serviceName ?? options.resourceAttributes?.["service.name"] ?? "llm-gateway",
    ...(options.serviceVersion === undefined ? {} : { serviceVersion: options.serviceVersion }),
    attributes: { ...options.resourceAttributes }
  }
  const shutdownTimeout = options.shutdownTimeout ?? Duration.seconds(3)
  const exporters = Layer.mergeAll(
    OtlpTracer.layer({
      url: `${endpoint}/v1/traces`,
      resource,
      headers: options.headers,
      exportInterval: options.tracesInterval ?? Duration.seconds(5),
      shutdownTimeout
    }),
    OtlpMetrics.layer({
      url: `${endpoint}/v1/metrics`,
      resource,
      headers: options.headers,
      exportInterval: options.metricsInterval ?? Duration.seconds(10),
      shutdownTimeout
    })
  ).pipe(Layer.provide(OtlpSerialization.layerJson))
  return Layer.merge(Telemetry.layer(options), exporters)
}

/**
 * Export configured by the standard OpenTelemetry variables (see `Telemetry.config`): with
 * `OTEL_EXPORTER_OTLP_ENDPOINT` set, `layer` to that endpoint; without it, nothing at all (no
 * instrumentation, no exporter, nothing slowed). An unsupported `OTEL_EXPORTER_OTLP_PROTOCOL`
 * or a malformed variable fails with a `ConfigError` naming it. `options` add what the
 * environment does not say (`captureContent`, `provider`, intervals).
 *
 * @since 0.1.0
 * @category Layers
 */
export const layerConfig = (
  options: Omit<Options, "endpoint"> = {}
): Layer.Layer<never, ConfigError.ConfigError, HttpClient.HttpClient> =>
  Layer.unwrapEffect(
    Effect.map(Telemetry.config, (found) =>
      Option.match(found, {
        onNone: () => Layer.empty,
        onSome: (env) =>
          layer({
            ...options,
            endpoint: env.endpoint,
            serviceName: env.serviceName,
            resourceAttributes: { ...env.resourceAttributes, ...options.resourceAttributes },
            headers: { ...env.headers, ...options.headers }
          })
      }))
  )
