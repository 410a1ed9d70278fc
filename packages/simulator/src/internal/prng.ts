/**
 * A small seeded pseudo-random generator (mulberry32) and string hashing. The simulator must
 * produce the same bytes for the same seed on every run and every platform, so it cannot use
 * `Math.random` or a generator whose algorithm may change between Effect versions.
 *
 * @internal
 */

/** A deterministic source of numbers in [0, 1). */
export interface Prng {
  /** The next number in [0, 1). */
  readonly next: () => number
  /** The next integer in [min, max] (both inclusive). */
  readonly int: (min: number, max: number) => number
  /** Eight lowercase hex digits. */
  readonly hex8: () => string
}

/** Builds a mulberry32 generator from a 32-bit seed. */
export const make = (seed: number): Prng => {
  let state = seed >>> 0
  const nextUint32 = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }
  const next = () => nextUint32() / 4294967296
  return {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    hex8: () => nextUint32().toString(16).padStart(8, "0")
  }
}

/** FNV-1a over the UTF-16 code units of a string: a cheap, stable 32-bit hash. */
export const hashString = (text: string, seed = 0x811c9dc5): number => {
  let h = seed >>> 0
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h >>> 0
}

/** Mixes two 32-bit numbers into one seed. */
export const mix = (a: number, b: number): number => {
  let h = (a ^ Math.imul(b + 0x9e3779b9, 0x85ebca6b)) >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0
  return (h ^ (h >>> 16)) >>> 0
}

/** A UUID-shaped identifier (version 4 layout) drawn from `prng`. */
export const uuid = (prng: Prng): string => {
  const a = prng.hex8()
  const b = prng.hex8()
  const c = prng.hex8()
  const d = prng.hex8()
  return `${a}-${b.slice(0, 4)}-4${b.slice(5, 8)}-${((parseInt(c[0]!, 16) & 0x3) | 0x8).toString(16)}${c.slice(1, 4)}-${
    c.slice(4, 8)
  }${d}`
}
