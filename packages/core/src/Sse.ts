/**
 * Server-Sent Events, exactly as the WHATWG HTML standard parses them ("Parsing an event
 * stream"): a decoder from response-body bytes to events in one Stream stage, and an encoder
 * for servers (the simulator) that writes spec-valid wire text.
 *
 * @since 0.1.0
 */
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Stream from "effect/Stream"
import type { StreamProtocolError } from "./GatewayError.js"
import * as SseParsing from "./internal/sseParser.js"

/**
 * One dispatched event. `event` is the event type (`"message"` when the stream named none);
 * `data` is the event's data lines joined with `"\n"`; `id` is the stream's last event ID at
 * the time of dispatch (it carries over to later events until an `id:` field changes it), or
 * `undefined` while it is empty.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Event {
  readonly event: string
  readonly data: string
  readonly id: string | undefined
}

/**
 * Limits for the decoder. `maxEventSize` bounds, in UTF-16 code units, both any single line
 * (field name included, and also a line whose terminator has not arrived yet) and the data of
 * the event being assembled (its data lines joined); past it the stream fails with
 * `StreamProtocolError` rather than buffering without end. Defaults to
 * {@link defaultMaxEventSize}, which also replaces a value that is not a positive number.
 *
 * @since 0.1.0
 * @category Config
 */
export interface DecodeOptions {
  readonly maxEventSize?: number
}

/**
 * The default `maxEventSize`: 1 MiB of characters, far above any chat chunk, small enough that
 * a broken or hostile upstream cannot exhaust memory.
 *
 * @since 0.1.0
 * @category Config
 */
export const defaultMaxEventSize: number = SseParsing.defaultMaxEventSize

/**
 * One Channel that turns whole chunks of input into whole chunks of events, so a chunk read
 * from the network costs one pass through the stage whatever it holds.
 */
const makeChannel = <In, E>(
  options: DecodeOptions | undefined,
  makeToText: () => (input: In) => string
): Channel.Channel<Chunk.Chunk<Event>, Chunk.Chunk<In>, E | StreamProtocolError, E, unknown, unknown> =>
  Channel.suspend(() => {
    const maxSize = SseParsing.limitOf(options?.maxEventSize)
    const parser = new SseParsing.SseParser(maxSize)
    const toText = makeToText()
    const loop: Channel.Channel<Chunk.Chunk<Event>, Chunk.Chunk<In>, E | StreamProtocolError, E, unknown, unknown> =
      Channel.readWithCause({
        onInput: (input: Chunk.Chunk<In>) => {
          const out: Array<SseParsing.ParsedEvent> = []
          const pieces = Chunk.toReadonlyArray(input)
          for (let i = 0; i < pieces.length; i++) {
            if (!parser.feed(toText(pieces[i]!), out)) {
              const fail = Channel.fail(SseParsing.overflowError(maxSize))
              return out.length === 0 ? fail : Channel.zipRight(Channel.write(Chunk.unsafeFromArray(out)), fail)
            }
          }
          return out.length === 0 ? loop : Channel.zipRight(Channel.write(Chunk.unsafeFromArray(out)), loop)
        },
        onFailure: (cause) => Channel.failCause(cause),
        // An unterminated last block is discarded, as the standard says; so are bytes of an
        // unfinished UTF-8 sequence, which could only have belonged to it.
        onDone: () => Channel.void
      })
    return loop
  })

const utf8Decoder = () => {
  // The BOM is left in the text (ignoreBOM) so the parser strips it, once, for both entry points.
  const decoder = new TextDecoder("utf-8", { ignoreBOM: true })
  return (bytes: Uint8Array) => decoder.decode(bytes, { stream: true })
}

const identity = () => (text: string) => text

/**
 * Decodes a response body into events. Bytes are decoded as UTF-8 across chunk boundaries
 * (invalid sequences become U+FFFD) and a leading BOM is dropped; CR, LF and CRLF end lines,
 * also when a CR ends one chunk and its LF starts the next; comments and unknown fields are
 * skipped; a `retry:` field is parsed but never delays the stream (a started body is never
 * reconnected); a block not closed by a blank line before the end is discarded. An event or a
 * line over `maxEventSize` fails the stream with `StreamProtocolError` (`partial: true`).
 *
 * @example
 * ```ts
 * import * as Stream from "effect/Stream"
 * import * as Sse from "@llm-gateway/core/Sse"
 *
 * const body = Stream.make(new TextEncoder().encode("data: hello\n\n"))
 * const events = body.pipe(Sse.decode())
 * ```
 *
 * @since 0.1.0
 * @category Decoding
 */
export const decode = (options?: DecodeOptions) =>
<E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Event, E | StreamProtocolError, R> =>
  Stream.pipeThroughChannel(self, makeChannel<Uint8Array, E>(options, utf8Decoder))

/**
 * {@link decode} for a body that is already text (each element any slice of it).
 *
 * @since 0.1.0
 * @category Decoding
 */
export const decodeText = (options?: DecodeOptions) =>
<E, R>(self: Stream.Stream<string, E, R>): Stream.Stream<Event, E | StreamProtocolError, R> =>
  Stream.pipeThroughChannel(self, makeChannel<string, E>(options, identity))

const lineBreak = /\r\n|\r|\n/

/** CR and LF end a field on the wire and cannot be part of `event` or `id`. */
const singleLine = (value: string) => value.replace(/\r\n|\r|\n/g, " ")

/**
 * Writes one event as wire text ending with the blank line that dispatches it. Multi-line
 * `data` becomes one `data:` line per line (CR, LF and CRLF all count, so the receiver sees
 * them as `"\n"`); an empty `data` still dispatches an event with empty data. A line break in
 * `event` or `id` cannot be sent and becomes a space; a NUL in `id`, which receivers would
 * reject, is removed; `event: "message"` and an absent `event` are omitted (the default);
 * `retry` is written in whole milliseconds when it is a finite number not below zero.
 *
 * @since 0.1.0
 * @category Encoding
 */
export const encode = (event: {
  readonly event?: string
  readonly data: string
  readonly id?: string
  readonly retry?: number
}): string => {
  let out = ""
  if (event.event !== undefined && event.event !== "" && event.event !== "message") {
    out += `event: ${singleLine(event.event)}\n`
  }
  if (event.id !== undefined) {
    const id = singleLine(event.id).replace(/\u0000/g, "")
    out += id === "" ? "id:\n" : `id: ${id}\n`
  }
  if (event.retry !== undefined && Number.isFinite(event.retry) && event.retry >= 0) {
    out += `retry: ${Math.floor(event.retry)}\n`
  }
  const lines = event.data.split(lineBreak)
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    out += line === "" ? "data:\n" : `data: ${line}\n`
  }
  return out + "\n"
}

/**
 * Writes a comment: a keep-alive that receivers skip and that does not end or dispatch an
 * event. Each line of `text` becomes its own comment line; a blank line follows so the
 * comment also flushes any proxy that buffers by event.
 *
 * @since 0.1.0
 * @category Encoding
 */
export const encodeComment = (text: string = ""): string => {
  const lines = text.split(lineBreak)
  let out = ""
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    out += line === "" ? ":\n" : `: ${line}\n`
  }
  return out + "\n"
}
