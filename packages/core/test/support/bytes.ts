/** Cuts `input` at the given offsets (out-of-range and repeated offsets ignored), in order. */
export const splitAt = (input: Uint8Array, offsets: ReadonlyArray<number>): Array<Uint8Array> => {
  const cuts = [...new Set(offsets.filter((o) => o > 0 && o < input.length))].sort((a, b) => a - b)
  const out: Array<Uint8Array> = []
  let from = 0
  for (const cut of cuts) {
    out.push(input.subarray(from, cut))
    from = cut
  }
  out.push(input.subarray(from))
  return out
}
