/**
 * The response body, bytes in and chat chunks out, in one Channel: UTF-8 decoding of whole
 * reads, SSE parsing, chunk decoding and the transport's bookkeeping. The same work as
 * `Sse.decode` followed by `decodeChunks`, but one stage per network read instead of several
 * (each Stream stage costs about 0.3 µs per read, and a live stream brings one event per read).
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import type { ChatChunk } from "../ChatChunk.js"
import type * as Sanitize from "./sanitize.js"
import { ChunkDecoder, type ChunkStreamOptions, type Failure } from "./chunkStream.js"
import { overflowError, type ParsedEvent, SseParser } from "./sseParser.js"

export type { Failure } from "./chunkStream.js"

/**
 * What the transport observes of a body and how it names failures; every hook is optional.
 *
 * @internal
 */
export interface BodyHooks<EIn, EOut> {
  /** A failure of the body itself (the network read). */
  readonly upstreamError: (error: EIn) => EOut
  /** A failure found in the body's content. */
  readonly decodeError: (error: Failure) => EOut
  /** Reads arrived, before they are decoded. */
  readonly onRead?: (reads: Chunk.Chunk<Uint8Array>) => void
  /** The reads just decoded held at least one event. */
  readonly onEvents?: () => void
  /** The decoder is about to wait for the next read after the last one held events (and at the start). */
  readonly onWait?: () => void
  /** Chunks decoded from one batch of reads, before they are written. */
  readonly onChunks?: (chunks: ReadonlyArray<ChatChunk>) => void
  /** The body ended or failed. */
  readonly onEnd?: () => void
}

/**
 * The options of the body decoder: the SSE size limit (already resolved to a positive
 * number) and the chunk decoding options.
 *
 * @internal
 */
export interface BodyOptions extends ChunkStreamOptions {
  readonly maxEventSize: number
  readonly sanitize: Sanitize.Sanitize
}

/** The SSE parser handing each event straight to the chunk decoder (no event objects). */
class DecodingParser extends SseParser {
  /** Events dispatched since the last {@link take}. */
  events = 0
  /** What ended the stream; events after it are ignored. */
  end: "done" | Failure | undefined = undefined
  out: Array<ChatChunk> = []

  constructor(maxSize: number, readonly decoder: ChunkDecoder) {
    super(maxSize)
  }

  protected override emit(_out: Array<ParsedEvent>, event: string, data: string): void {
    this.events++
    if (this.end === undefined) this.end = this.decoder.event(event, data, this.out)
  }

  /** The chunks decoded since the last call. */
  take(): Array<ChatChunk> {
    const out = this.out
    if (out.length > 0) this.out = []
    this.events = 0
    return out
  }
}

const unused: Array<ParsedEvent> = []

/**
 * The fused decoder as a Channel over chunks of reads.
 *
 * @internal
 */
export const channel = <EIn, EOut>(
  options: BodyOptions,
  hooks: BodyHooks<EIn, EOut>
): Channel.Channel<Chunk.Chunk<ChatChunk>, Chunk.Chunk<Uint8Array>, EOut, EIn, unknown, unknown> =>
  Channel.suspend(() => {
    type Out = Channel.Channel<Chunk.Chunk<ChatChunk>, Chunk.Chunk<Uint8Array>, EOut, EIn, unknown, unknown>
    const maxSize = options.maxEventSize
    const decoder = new ChunkDecoder(options, options.sanitize)
    const parser = new DecodingParser(maxSize, decoder)
    // The BOM is left in the text (ignoreBOM) so the parser strips it, once.
    const utf8 = new TextDecoder("utf-8", { ignoreBOM: true })
    const stream = { stream: true }
    // A read that ends with an ASCII byte cannot end inside a character: it is decoded without
    // `stream`, which takes the decoder's fast path (about a third of the cost) and also
    // completes, or replaces with U+FFFD, a sequence left open by the read before, exactly as
    // streaming decoding would.
    const decode = (bytes: Uint8Array): string =>
      bytes.length > 0 && bytes[bytes.length - 1]! < 0x80 ? utf8.decode(bytes) : utf8.decode(bytes, stream)
    const { onChunks, onEnd, onEvents, onRead, onWait } = hooks

    const onInput = (input: Chunk.Chunk<Uint8Array>): Out => {
      onRead?.(input)
      let fits = true
      if (input.length === 1) {
        fits = parser.feed(decode(Chunk.unsafeHead(input)), unused)
      } else {
        const reads = Chunk.toReadonlyArray(input)
        for (let i = 0; i < reads.length && fits && parser.end === undefined; i++) {
          fits = parser.feed(decode(reads[i]!), unused)
        }
      }
      const count = parser.events
      if (count === 0 && fits) return loop
      const out = parser.take()
      // Events before an oversized line still count; the overflow ends the stream after them.
      const end = parser.end ?? (fits ? undefined : overflowError(maxSize))
      if (count > 0) onEvents?.()
      if (out.length > 0) onChunks?.(out)
      return decoder.continueWith(out, end, count > 0 ? waitThenLoop : loop, hooks.decodeError)
    }

    const loop: Out = Channel.readWithCause({
      onInput,
      onFailure: (cause) => {
        onEnd?.()
        return Channel.failCause(Cause.map(cause, hooks.upstreamError))
      },
      onDone: (): Out => {
        onEnd?.()
        // An unterminated last block is discarded, as the standard says; so are bytes of an
        // unfinished UTF-8 sequence, which could only have belonged to it.
        const end = decoder.finish()
        return end === undefined ? Channel.void : Channel.fail(hooks.decodeError(end))
      }
    })
    const waitThenLoop: Out = onWait === undefined ? loop : Channel.suspend(() => {
      onWait()
      return loop
    })
    return waitThenLoop
  })
