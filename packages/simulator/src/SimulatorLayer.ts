/**
 * The simulator in process: an `HttpClient` that hands each request to the simulator's
 * `HttpApp` in memory instead of a socket. Core's real `Transport` and `Auth` Layers run on top
 * of it, so retries, status mapping, SSE decoding and timeouts are exactly those of production,
 * the bytes are exactly those the HTTP server sends, and every latency is an `Effect.sleep` on
 * the caller's `Clock` (a `TestClock` in tests).
 *
 * @since 0.1.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as SimulatorApp from "./SimulatorApp.js"

const requestBody = (
  request: HttpClientRequest.HttpClientRequest
): Effect.Effect<BodyInit | undefined> => {
  const body = request.body
  switch (body._tag) {
    case "Empty":
      return Effect.succeed(undefined)
    case "Uint8Array":
      return Effect.succeed(body.body as BodyInit)
    case "Raw":
      return Effect.succeed(body.body as BodyInit)
    case "FormData":
      return Effect.succeed(body.formData)
    case "Stream":
      return Stream.toReadableStreamEffect(body.stream)
  }
}

/**
 * An `HttpClient` served by `app` in memory. The request becomes a web `Request`, the app's
 * response a web `Response` whose body stream runs on the caller's runtime (so its sleeps use
 * the caller's `Clock`), exactly as a fetch-based client would see it. Interrupting the caller
 * cancels the body, like closing a socket.
 *
 * @since 0.1.0
 */
export const makeHttpClient = (app: SimulatorApp.Service["app"]): HttpClient.HttpClient =>
  HttpClient.make((request, url, signal) =>
    Effect.gen(function*() {
      const body = yield* requestBody(request)
      const webRequest = new Request(url, {
        method: request.method,
        headers: request.headers,
        signal,
        ...(body === undefined ? {} : { body, duplex: "half" } as RequestInit)
      })
      const response = yield* Effect.provideService(
        app,
        HttpServerRequest.HttpServerRequest,
        HttpServerRequest.fromWeb(webRequest)
      )
      const runtime = yield* Effect.runtime<never>()
      return HttpClientResponse.fromWeb(request, HttpServerResponse.toWeb(response, { runtime }))
    }).pipe(
      Effect.catchAllDefect((cause) =>
        Effect.fail(
          new HttpClientError.RequestError({
            request,
            reason: "Transport",
            cause,
            description: "the in-process simulator failed"
          })
        )
      )
    )
  )

/**
 * The in-process `HttpClient` of the `Simulator` in context.
 *
 * @since 0.1.0
 */
export const layerHttpClient: Layer.Layer<HttpClient.HttpClient, never, SimulatorApp.Simulator> = Layer.effect(
  HttpClient.HttpClient,
  Effect.map(SimulatorApp.Simulator, (simulator) => makeHttpClient(simulator.app))
)
