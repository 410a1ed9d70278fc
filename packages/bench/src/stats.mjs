// Paired ratios: each round measures every case once, in an order that rotates, and the ratio of
// two cases is taken within the round, so that load on the machine moves both alike.

/** The median of numbers. */
export const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/**
 * Runs `rounds` rounds (after `warmup` unrecorded ones) of every case; `cases` maps a name to an
 * async function returning a duration in milliseconds. Returns the durations per case.
 */
export const interleave = async (cases, { rounds, warmup }) => {
  const names = Object.keys(cases)
  const samples = Object.fromEntries(names.map((name) => [name, []]))
  for (let round = 0; round < warmup + rounds; round++) {
    for (let i = 0; i < names.length; i++) {
      const name = names[(round + i) % names.length]
      const ms = await cases[name]()
      if (round >= warmup) samples[name].push(ms)
    }
  }
  return samples
}

/**
 * Like `interleave` for synchronous cases of one call each (`cases` maps a name to a function):
 * within a round the cases take turns in blocks of `block` calls until each made `calls`, so that
 * a burst of load from other processes falls on all of them alike. Returns the mean µs per call
 * of each case in each round.
 */
export const interleaveCalls = (cases, { rounds, warmup, calls, block }) => {
  const names = Object.keys(cases)
  const samples = Object.fromEntries(names.map((name) => [name, []]))
  for (let round = 0; round < warmup + rounds; round++) {
    const spent = Object.fromEntries(names.map((name) => [name, 0]))
    for (let done = 0; done < calls; done += block) {
      const n = Math.min(block, calls - done)
      for (let i = 0; i < names.length; i++) {
        const name = names[(round + done / block + i) % names.length]
        const f = cases[name]
        const start = performance.now()
        for (let j = 0; j < n; j++) f()
        spent[name] += performance.now() - start
      }
    }
    if (round >= warmup) for (const name of names) samples[name].push((spent[name] * 1000) / calls)
  }
  return samples
}

/** Median, min and max of the per-round ratios a/b. */
export const pairedRatio = (a, b) => {
  const ratios = a.map((value, i) => value / b[i])
  return { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios) }
}

/** `1.23× (1.10–1.40)` */
export const formatRatio = ({ median, min, max }) => `${median.toFixed(2)}× (${min.toFixed(2)}–${max.toFixed(2)})`
