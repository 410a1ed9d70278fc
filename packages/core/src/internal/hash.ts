/**
 * SHA-256 helpers. `node:crypto` hashes synchronously in about 2 µs for 2 KB, which keeps
 * hashing off the asynchronous path of every request.
 *
 * @internal
 */
import { createHash, createHmac } from "node:crypto"

/**
 * The SHA-256 digest of `input` (strings are hashed as UTF-8), as 64 lowercase hex digits.
 *
 * @internal
 */
export const sha256Hex = (input: string | Uint8Array): string => createHash("sha256").update(input).digest("hex")

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
