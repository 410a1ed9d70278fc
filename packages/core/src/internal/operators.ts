/**
 * Redaction operators besides the marker: a mask that keeps the last characters, and a keyed
 * HMAC pseudonym. Both are pure functions of the matched value (the pseudonym of the key too),
 * so streaming and whole-text redaction agree and the same value gets the same replacement in
 * every request.
 *
 * @internal
 */
import { createHmac } from "node:crypto"

/** Letters and digits are masked; separators (spaces, dashes, `@`, dots) stay where they are. */
const maskable = /[\p{L}\p{N}]/u

/**
 * `value` with every letter and digit replaced by `char`, except the last `keepLast` of them:
 * `4111 1111 1111 1234` → `**** **** **** 1234`.
 */
export const mask = (value: string, keepLast: number, char: string): string => {
  const chars = Array.from(value)
  let kept = 0
  for (let i = chars.length - 1; i >= 0; i--) {
    if (!maskable.test(chars[i]!)) continue
    if (kept < keepLast) kept++
    else chars[i] = char
  }
  return chars.join("")
}

/**
 * The form of a value its pseudonym is computed from, so that writings of one value share a
 * pseudonym: digits only for numbers (`(212) 555-0123` and `212.555.0123`), lower case for
 * emails and addresses, upper case without spaces for IBANs.
 */
export const canonicalValue = (kind: string, value: string): string => {
  switch (kind) {
    case "card":
    case "ssn":
    case "itin":
      return value.replace(/\D/g, "")
    case "phone":
      return value.replace(/[^\d+]/g, "")
    case "iban":
      return value.replace(/\s/g, "").toUpperCase()
    case "email":
    case "ip":
      return value.toLowerCase()
    default:
      return value
  }
}

/** The part of a pseudonym's label taken from the kind: `EMAIL`, `CUSTOMER_ID`. */
export const label = (kind: string): string => kind.toUpperCase().replace(/[^A-Z0-9]/g, "_")

/**
 * The pseudonym of `value`: `[EMAIL:` + the first `hexLength` hex digits of
 * HMAC-SHA-256(key, kind NUL canonical value) + `]`. The colon keeps it apart from numbered
 * placeholders (`[EMAIL_1]`), which a restore would otherwise consider.
 */
export const pseudonym = (key: string, kind: string, value: string, hexLength: number): string =>
  `[${label(kind)}:${
    createHmac("sha256", key).update(`${kind}\u0000${canonicalValue(kind, value)}`).digest("hex").slice(0, hexLength)
  }]`

/**
 * A stable, non-secret name of a pseudonym key for the policy fingerprint: its HMAC of a fixed
 * text. Keys differ, fingerprints differ, and nothing about the key can be learned from it.
 */
export const keyId = (key: string): string =>
  createHmac("sha256", key).update("llm-gateway pseudonym key id").digest("hex").slice(0, 16)
