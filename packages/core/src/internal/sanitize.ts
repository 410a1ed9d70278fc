/**
 * The one sanitizer for text that came from the gateway or the token endpoint (error fields,
 * headers, in-stream errors, socket messages) before it enters an error, a log, a span or the
 * CLI's output (DESIGN.md invariant 10). In this order:
 *
 * 1. the caller's own secrets are removed wherever they appear: the exact value and its
 *    base64, base64url and percent-encoded forms, and any run of 17 or more characters echoed
 *    from a secret of 16 or more (a prefix, a suffix, a middle part);
 * 2. control, line-separator and invisible formatting characters are neutralised (they would
 *    forge log lines or split a match so the next step misses it);
 * 3. PII is redacted with the SafetyFilter's built-in recognizers, then with the caller's
 *    policy when one is in context (`PolicyRedaction`, provided by the Gateway per request);
 * 4. the text is cut to a bounded length, after redaction, so an address straddling the cut
 *    cannot survive half-shown.
 *
 * @internal
 */
import * as Headers from "@effect/platform/Headers"
import * as HttpClient from "@effect/platform/HttpClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Encoding from "effect/Encoding"
import * as Redacted from "effect/Redacted"
import * as Redaction from "./redaction.js"
import { defaultRecognizers } from "../SafetyFilter.js"

/** What a removed secret is replaced with. */
export const secretMarker = "<redacted>"

/**
 * Bounds of sanitized fields, in characters: free text (`detail`, a description, a reason),
 * identifiers (`code`, `contextId`, `correlationId`, an OAuth `error`) and header values.
 */
export const limits = {
  text: 500,
  identifier: 200,
  header: 100
} as const

/**
 * The most of a text that is looked at. Beyond it the text is dropped; PII straddling this
 * point is not shown either (see `redactPrefix`).
 */
export const maxInput = 64 * 1024

/** Fragments of at least this many characters of a long enough secret are removed too. */
const gram = 12
const stride = 6
const minFragmentSecret = 16

/** Removes the secrets from text, given as `string`s or `Redacted` values. */
export type Sanitize = (text: string, maxLength: number) => string

/** A secret may be given as a string or as the `Redacted` value it is kept in. */
export type Secret = string | Redacted.Redacted<string>

const secretValue = (secret: Secret): string => typeof secret === "string" ? secret : Redacted.value(secret)

/** The forms in which a secret may come back: as is, base64, base64url and percent-encoded. */
export const secretForms = (secret: string): ReadonlyArray<string> => {
  if (secret === "") return []
  const forms = new Set<string>([secret])
  forms.add(Encoding.encodeBase64(secret))
  forms.add(Encoding.encodeBase64Url(secret))
  forms.add(Encoding.encodeBase64(secret).replace(/=+$/, ""))
  try {
    forms.add(encodeURIComponent(secret))
  } catch {
    // a lone surrogate cannot be percent-encoded: nothing to add
  }
  return [...forms].filter((form) => form.length > 0)
}

// C0 and C1 controls, DEL, and the Unicode line and paragraph separators: they end log lines.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g
// Invisible formatting (zero-width, bidi overrides and isolates, soft hyphen, BOM): they reorder
// or hide text on a terminal and split a match (an address with a zero-width space in it).
// eslint-disable-next-line no-misleading-character-class
const INVISIBLE = /[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]/g

/** Step 2: controls become one space each run, invisible formatting goes. */
export const neutralize = (text: string): string => text.replace(INVISIBLE, "").replace(CONTROL, " ")

const removeExact = (text: string, forms: ReadonlyArray<string>): string => {
  let out = text
  for (const form of forms) {
    if (out.includes(form)) out = out.split(form).join(secretMarker)
  }
  return out
}

/**
 * Marks every run of text that repeats at least `gram + stride - 1` consecutive characters of
 * `form`: each sampled gram of the secret is searched, and a hit is extended both ways while
 * the text keeps following the secret.
 */
const markFragments = (text: string, form: string, marks: Array<readonly [number, number]>) => {
  for (let at = 0; at + gram <= form.length; at += stride) {
    const piece = form.slice(at, at + gram)
    let from = 0
    for (;;) {
      const hit = text.indexOf(piece, from)
      if (hit < 0) break
      let start = hit
      let s = at
      while (start > 0 && s > 0 && text[start - 1] === form[s - 1]) {
        start--
        s--
      }
      let end = hit + gram
      let e = at + gram
      while (end < text.length && e < form.length && text[end] === form[e]) {
        end++
        e++
      }
      marks.push([start, end])
      from = hit + 1
    }
  }
}

const removeFragments = (text: string, forms: ReadonlyArray<string>): string => {
  const marks: Array<readonly [number, number]> = []
  for (const form of forms) if (form.length >= minFragmentSecret) markFragments(text, form, marks)
  if (marks.length === 0) return text
  marks.sort((a, b) => a[0] - b[0])
  let out = ""
  let pos = 0
  for (const [start, end] of marks) {
    if (end <= pos) continue
    if (start > pos) out += text.slice(pos, start)
    if (start >= pos) out += secretMarker
    pos = end
  }
  return out + text.slice(pos)
}

let engine: Redaction.Engine | undefined
const defaultEngine = (): Redaction.Engine => (engine ??= Redaction.makeEngine(defaultRecognizers))

/**
 * Redacts `text`. When it was cut before (`truncated`), the streaming redactor decides what is
 * final: text that could still be the start of a match is held back and dropped, so half an
 * address at the end is not shown.
 */
const redactPII = (text: string, truncated: boolean): string => {
  const e = defaultEngine()
  if (!truncated) return e.redact(text).text
  return e.stream().push(text)
}

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff

/** Step 4: at most `max` characters (an ellipsis included), never half a surrogate pair. */
export const cut = (text: string, max: number): string => {
  if (text.length <= max) return text
  let end = Math.max(0, max - 1)
  if (end > 0 && isHighSurrogate(text.charCodeAt(end - 1))) end--
  return `${text.slice(0, end)}…`
}

/**
 * The caller's own redaction (its SafetyFilter policy: custom recognizers …), applied after the
 * built-in recognizers and before the cut. The Gateway provides it around each request's
 * transport stream; without it only the built-in recognizers run.
 */
export class PolicyRedaction extends Context.Reference<PolicyRedaction>()(
  "@llm-gateway/core/internal/PolicyRedaction",
  { defaultValue: (): ((text: string) => string) | undefined => undefined }
) {}

/**
 * The sanitizer that removes `secrets` (see the module comment for the steps), with `policy`
 * as an extra redaction step. Secrets shorter than 4 characters are ignored: removing them
 * would mangle ordinary words.
 */
export const make = (secrets: Iterable<Secret> = [], policy?: (text: string) => string): Sanitize => {
  const forms = new Set<string>()
  for (const secret of secrets) {
    const value = secretValue(secret)
    if (value.length < 4) continue
    for (const form of secretForms(value)) forms.add(form)
  }
  // Longest first, so a form that contains another is removed whole.
  const ordered = [...forms].sort((a, b) => b.length - a.length)
  return (text, maxLength) => {
    if (text === "") return text
    const truncated = text.length > maxInput
    let out = truncated ? text.slice(0, maxInput) : text
    out = removeExact(out, ordered)
    out = neutralize(out)
    out = removeExact(out, ordered)
    out = removeFragments(out, ordered)
    out = redactPII(out, truncated)
    if (policy !== undefined) out = policy(out)
    out = out.trim()
    return cut(truncated ? `${out}…` : out, maxLength)
  }
}

/** The sanitizer without secrets of its own (PII, controls and length only). */
export const basic: Sanitize = make()

/** Sanitizes an optional field. */
export const optional = (sanitize: Sanitize, text: string | undefined, maxLength: number): string | undefined =>
  text === undefined ? undefined : sanitize(text, maxLength)

const everyHeader: ReadonlyArray<RegExp> = [/[^]/]

/**
 * The client with every header value hidden in the platform's `http.client` span. That span
 * records each request and response header verbatim (only `authorization`, cookies and
 * `x-api-key` are redacted by default), and a gateway may echo our token or PII in any header
 * it likes; the names, the status and the URL stay. What an operator needs from the headers
 * (the correlation id) is on our typed errors, sanitized.
 */
export const hideHeaderValuesInSpans = (client: HttpClient.HttpClient): HttpClient.HttpClient =>
  HttpClient.transformResponse(client, Effect.locally(Headers.currentRedactedNames, everyHeader))
