/**
 * The incremental, allocation-light core of the event-stream parser (WHATWG HTML, "Parsing an
 * event stream"). It works on already-decoded text, any number of characters at a time, and
 * knows nothing of Effect: `Sse.ts` wraps it in one Stream stage.
 *
 * @internal
 */

/**
 * One dispatched event, as `Sse.Event` describes it.
 *
 * @internal
 */
export interface ParsedEvent {
  readonly event: string
  readonly data: string
  readonly id: string | undefined
}

import { StreamProtocolError } from "../GatewayError.js"

/**
 * The default `maxEventSize`: 1 MiB of characters.
 *
 * @internal
 */
export const defaultMaxEventSize = 1024 * 1024

/**
 * The limit in force: a value that is not a positive number (NaN, 0, negative) would disable
 * or break the bound, so it falls back to the default.
 *
 * @internal
 */
export const limitOf = (max: number | undefined): number =>
  max !== undefined && max > 0 ? Math.floor(max) : defaultMaxEventSize

/**
 * The failure of a stream whose event or line is over the limit.
 *
 * @internal
 */
export const overflowError = (maxSize: number) =>
  new StreamProtocolError({
    reason: `a server-sent event or line exceeded the limit of ${maxSize} characters`,
    partial: true
  })

const LF = 10
const COLON = 58
const SPACE = 32
const BOM = 0xfeff

const isDigits = /^[0-9]+$/

/**
 * A parser for one stream. `feed` appends dispatched events to `out` and returns `false` once a
 * line or the pending event grows past `maxSize` characters; the parser must then be dropped.
 *
 * @internal
 */
export class SseParser {
  /** Pieces of a line whose terminator has not arrived yet; kept as pieces so that a line
   * dripping in many small reads is joined once, not re-copied on every read. */
  private pendingParts: Array<string> = []
  private pendingLength = 0
  /** The previous text ended with CR: an LF at the start of the next text belongs to it. */
  private skipLf = false
  /** A leading BOM is stripped once, from the first non-empty text only. */
  private started = false
  /** The spec's data buffer without its trailing LF; `undefined` stands for the empty buffer. */
  private data: string | undefined = undefined
  private eventType = ""
  /** The spec's last event ID buffer; it survives dispatch. */
  private lastEventId = ""
  /** The reconnection time a `retry:` field asked for, in milliseconds. Kept for inspection
   * only: a body that has started is never reconnected, so it never delays anything. */
  reconnectionTime: number | undefined = undefined

  constructor(readonly maxSize: number) {}

  feed(text: string, out: Array<ParsedEvent>): boolean {
    const length = text.length
    if (length === 0) return true
    let position = 0
    if (!this.started) {
      this.started = true
      if (text.charCodeAt(0) === BOM) position = 1
    }
    if (this.skipLf) {
      this.skipLf = false
      if (text.charCodeAt(position) === LF) position++
    }
    let lineStart = position
    // Line ends are found with indexOf (native, much faster than a loop over characters); a
    // text without CR, the usual case, is searched for CR once.
    let lf = text.indexOf("\n", position)
    let cr = text.indexOf("\r", position)
    while (lf !== -1 || cr !== -1) {
      const i = cr === -1 || (lf !== -1 && lf < cr) ? lf : cr
      if (this.pendingLength > 0) {
        this.pendingParts.push(text.slice(lineStart, i))
        const line = this.pendingParts.join("")
        this.pendingParts = []
        this.pendingLength = 0
        if (line.length > this.maxSize || !this.line(line, 0, line.length, out)) return false
      } else if (i - lineStart > this.maxSize || !this.line(text, lineStart, i, out)) {
        return false
      }
      let next = i + 1
      if (i === cr) {
        if (next < length) {
          if (text.charCodeAt(next) === LF) next++
        } else {
          this.skipLf = true
        }
      }
      lineStart = next
      if (lf !== -1 && lf < next) lf = text.indexOf("\n", next)
      if (cr !== -1 && cr < next) cr = text.indexOf("\r", next)
    }
    if (lineStart < length) {
      this.pendingParts.push(lineStart === 0 ? text : text.slice(lineStart))
      this.pendingLength += length - lineStart
      if (this.pendingLength > this.maxSize) return false
    }
    return true
  }

  /** Processes the line `text[start, end)`; `false` when the pending event is over the limit. */
  private line(text: string, start: number, end: number, out: Array<ParsedEvent>): boolean {
    if (start === end) {
      this.dispatch(out)
      return true
    }
    if (text.charCodeAt(start) === COLON) return true // a comment: a keep-alive, nothing to do
    let colon = start
    while (colon < end && text.charCodeAt(colon) !== COLON) colon++
    let value: string
    if (colon === end) {
      value = ""
    } else {
      let valueStart = colon + 1
      if (valueStart < end && text.charCodeAt(valueStart) === SPACE) valueStart++
      value = text.slice(valueStart, end)
    }
    const nameLength = colon - start
    if (nameLength === 4 && text.startsWith("data", start)) {
      this.data = this.data === undefined ? value : this.data + "\n" + value
      return this.data.length + this.eventType.length <= this.maxSize
    }
    if (nameLength === 5 && text.startsWith("event", start)) {
      this.eventType = value
      return true
    }
    if (nameLength === 2 && text.startsWith("id", start)) {
      if (value.indexOf("\u0000") === -1) this.lastEventId = value
      return true
    }
    if (nameLength === 5 && text.startsWith("retry", start)) {
      if (isDigits.test(value)) this.reconnectionTime = Number.parseInt(value, 10)
      return true
    }
    return true // unknown fields are ignored
  }

  private dispatch(out: Array<ParsedEvent>): void {
    const data = this.data
    const eventType = this.eventType
    this.data = undefined
    this.eventType = ""
    if (data === undefined) return
    this.emit(out, eventType === "" ? "message" : eventType, data, this.lastEventId === "" ? undefined : this.lastEventId)
  }

  /** Hands one dispatched event on; a subclass may consume it at once instead of collecting it. */
  protected emit(out: Array<ParsedEvent>, event: string, data: string, id: string | undefined): void {
    out.push({ event, data, id })
  }
}
