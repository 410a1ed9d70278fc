/**
 * Restore on the way out: the caller's values put back in place of the placeholders issued for
 * its prompt, in the reply text (streaming, split-invariant), the alternatives and the refusal.
 * The gateway applies it last, after the cache and the audit have seen the parts, so neither
 * they nor any stage ever hold a restored value; a cached reply keeps its placeholders and each
 * caller restores it with its own values.
 *
 * @internal
 */
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Stream from "effect/Stream"
import { Finish, type Part, TextDelta } from "../Part.js"
import type { Restoration } from "../SafetyFilter.js"

/** `finish` with its alternatives and refusal restored (the same value when nothing changes). */
const restoredFinish = (finish: Finish, restoration: Restoration): Finish => {
  let changed = false
  const alternatives = finish.alternatives.map((alternative) => {
    const text = restoration.restore(alternative.text)
    if (text === alternative.text) return alternative
    changed = true
    return { ...alternative, text }
  })
  const refusal = finish.refusal === undefined ? undefined : restoration.restore(finish.refusal)
  if (refusal !== finish.refusal) changed = true
  if (!changed) return finish
  const { _tag: _, ...fields } = finish
  return new Finish({ ...fields, alternatives, ...(refusal === undefined ? {} : { refusal }) })
}

/**
 * `self` with the placeholders of its request's restoration restored; text parts keep their
 * order. `restorationOf` is asked at the first part (the request is prepared by then); without
 * one, parts pass as they are.
 */
export const restore = <E, R>(
  self: Stream.Stream<Part, E, R>,
  restorationOf: () => Restoration | undefined
): Stream.Stream<Part, E, R> =>
  Stream.suspend(() => {
    // Scratch state of this reply only.
    let restoration: Restoration | undefined
    let restorer: ReturnType<Restoration["stream"]> | undefined
    let asked = false
    const flush = (out: Array<Part>): void => {
      const held = restorer?.end() ?? ""
      if (held.length > 0) out.push(new TextDelta({ text: held }))
    }
    const map = (parts: Chunk.Chunk<Part>): Chunk.Chunk<Part> => {
      if (!asked) {
        asked = true
        restoration = restorationOf()
        restorer = restoration?.stream()
      }
      if (restoration === undefined || restorer === undefined) return parts
      const out: Array<Part> = []
      for (const part of parts) {
        if (part._tag === "TextDelta") {
          const text = restorer.push(part.text)
          if (text.length > 0) out.push(new TextDelta({ text }))
          continue
        }
        // Held text goes out before any other part, as it came.
        flush(out)
        out.push(part._tag === "Finish" ? restoredFinish(part, restoration) : part)
      }
      return Chunk.unsafeFromArray(out)
    }
    /** What is still held, written before the stream ends (on a failure too: it is safe text). */
    const rest = (): Channel.Channel<Chunk.Chunk<Part>> => {
      const out: Array<Part> = []
      flush(out)
      return out.length === 0 ? Channel.void : Channel.write(Chunk.unsafeFromArray(out))
    }
    const channel: Channel.Channel<Chunk.Chunk<Part>, Chunk.Chunk<Part>, E, E, unknown, unknown> = Channel.readWithCause({
      onInput: (parts: Chunk.Chunk<Part>) => Channel.zipRight(Channel.write(map(parts)), channel),
      onFailure: (cause) => Channel.zipRight(Channel.suspend(rest), Channel.failCause(cause)),
      onDone: () => Channel.suspend(rest)
    })
    return Stream.pipeThroughChannel(self, channel)
  })
