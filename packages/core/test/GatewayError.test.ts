import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Schema from "effect/Schema"
import { GatewayError, RateLimited, UpstreamError } from "../src/GatewayError.js"

describe("GatewayError", () => {
  it("says whether a failure may be retried, and never retries a started body", () => {
    expect(new UpstreamError({ status: 503, partial: false }).isRetryable).toBe(true)
    expect(new UpstreamError({ status: 503, partial: true }).isRetryable).toBe(false)
    expect(new UpstreamError({ status: 501, partial: false }).isRetryable).toBe(false)
  })

  it("round-trips through the GatewayError schema", () => {
    const error = new RateLimited({ status: 429, retryAfter: Duration.seconds(2), correlationId: "abc" })
    const encoded = Schema.encodeSync(GatewayError)(error)
    const decoded = Schema.decodeSync(GatewayError)(encoded)
    expect(decoded).toBeInstanceOf(RateLimited)
    expect(decoded.message).toContain("2s")
    expect(decoded.message).toContain("correlationId abc")
  })
})
