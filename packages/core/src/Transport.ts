/**
 * The transport (the "Http" concern): sends an `OutboundRequest` and streams back decoded
 * `ChatChunk`s. Retries, timeouts and re-authentication live here.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Stream from "effect/Stream"
import type { OutboundRequest } from "./Chat.js"
import type { ChatChunk } from "./ChatChunk.js"
import type { TransportError } from "./GatewayError.js"

/**
 * @since 0.1.0
 */
export interface Service {
  /**
   * Streams the reply's chunks. The stream ends after the chunk that carried a finish reason
   * and the usage chunk, or fails with a typed error; it never ends silently short.
   */
  readonly stream: (request: OutboundRequest) => Stream.Stream<ChatChunk, TransportError>
}

/**
 * The transport service.
 *
 * @since 0.1.0
 */
export class GatewayTransport extends Context.Tag("@llm-gateway/core/GatewayTransport")<
  GatewayTransport,
  Service
>() {}
