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
 * `sha256Hex(prefix + text)`. A long text is fed after the prefix instead of joined to it:
 * joining makes a rope that hashing must first copy flat (about 3 µs for 50 KB); a short one
 * is joined, as a second `update` costs more than the copy.
 *
 * @internal
 */
export const sha256HexJoined = (prefix: string, text: string): string =>
  text.length < 8_192 ? sha256Hex(prefix + text) : createHash("sha256").update(prefix).update(text).digest("hex")

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
