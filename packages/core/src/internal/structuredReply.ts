/**
 * The structured-output step of the gateway: between the handler and the audit, it gathers the
 * reply's (redacted) text and, at `Finish`, decodes it with the request's `responseFormat`.
 * A match replaces `Finish` by one carrying `value`; a mismatch ends the stream with
 * `ReplySchemaMismatch` after the parts before `Finish`. It sits outside the cache, so a
 * replayed reply is decoded again (a decoded value is never stored).
 */
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Either from "effect/Either"
import * as Stream from "effect/Stream"
import type { ReplySchemaMismatch } from "../GatewayError.js"
import { Finish, type Part } from "../Part.js"
import * as StructuredOutput from "../StructuredOutput.js"
import * as ReplyAssembler from "./replyAssembler.js"

/** `finish` with `value`, keeping what the upstream stage noted beside it. */
const withValue = (finish: Finish, value: unknown): Finish => {
  const { _tag: _ignored, ...fields } = finish
  const next = new Finish({ ...fields, value })
  const facts = ReplyAssembler.finishFacts(finish)
  return facts === undefined ? next : ReplyAssembler.markFinish(next, facts)
}

/** The parts of `parts`, with `Finish` decoded against `format` (as they are without one). */
export const decode = <E>(
  format: StructuredOutput.AnyResponseFormat | undefined,
  parts: Stream.Stream<Part, E>
): Stream.Stream<Part, E | ReplySchemaMismatch> =>
  format === undefined ? parts : Stream.suspend(() => {
    // The reply so far, local to this request; bounded by the upstream's reply limit.
    let text = ""
    let redacted = false
    const step: Channel.Channel<Chunk.Chunk<Part>, Chunk.Chunk<Part>, E | ReplySchemaMismatch, E, unknown, unknown> =
      Channel.readWithCause({
        onInput: (chunk: Chunk.Chunk<Part>) => {
          const out: Array<Part> = []
          for (const part of chunk) {
            if (part._tag === "TextDelta") text += part.text
            else if (part._tag === "RedactionNotice" && part.direction === "output") redacted ||= part.redactions.length > 0
            else if (part._tag === "Finish") {
              const decoded = StructuredOutput.decodeReply(format, {
                text,
                finishReason: part.reason,
                refusal: part.refusal,
                redacted
              })
              if (Either.isLeft(decoded)) {
                return Channel.zipRight(Channel.write(Chunk.unsafeFromArray(out)), Channel.fail(decoded.left))
              }
              out.push(withValue(part, decoded.right))
              continue
            }
            out.push(part)
          }
          return Channel.zipRight(Channel.write(Chunk.unsafeFromArray(out)), step)
        },
        onFailure: Channel.failCause,
        onDone: () => Channel.void
      })
    return Stream.pipeThroughChannel(parts, step)
  })
