/**
 * SHA-256 helpers. `node:crypto` hashes synchronously in about 2 µs for 2 KB, which keeps
 * hashing off the asynchronous path of every request.
 *
 * @internal
 */
import * as Crypto from "node:crypto"
import { createHash, createHmac } from "node:crypto"

/** One-shot hashing (Node ≥ 20.12) skips the `Hash` object: a fixed cost that matters for short inputs. */
const oneShot = (Crypto as {
  readonly hash?: (algorithm: string, data: string | Uint8Array, encoding: "hex") => string
}).hash

/**
 * The SHA-256 digest of `input` (strings are hashed as UTF-8), as 64 lowercase hex digits.
 *
 * @internal
 */
export const sha256Hex = (input: string | Uint8Array): string =>
  oneShot === undefined ? createHash("sha256").update(input).digest("hex") : oneShot("sha256", input, "hex")

/**
 * The HMAC-SHA-256 of `input` under `key` (both UTF-8), as 64 lowercase hex digits.
 *
 * @internal
 */
export const hmacSha256Hex = (key: string, input: string): string =>
  createHmac("sha256", key).update(input).digest("hex")

/**
 * Whether `value` looks like a SHA-256 hex digest (64 lowercase hex digits).
 *
 * @internal
 */
export const isSha256Hex = (value: unknown): value is string =>
  typeof value === "string" && /^[0-9a-f]{64}$/.test(value)
