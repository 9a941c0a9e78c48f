/**
 * The metrics of the evaluation (DESIGN.md "Metrics"), as plain functions over plain data so
 * that each can be checked on a hand-made case. Every share comes with a Wilson 95% interval.
 */

/** A share with its Wilson score 95% interval. */
export interface Share {
  k: number
  n: number
  value: number
  low: number
  high: number
}

const Z95 = 1.959963984540054

/** `k` successes of `n` as a share with its Wilson 95% interval (all zero when `n` is 0). */
export function wilson(k: number, n: number, z = Z95): Share {
  if (n === 0) return { k, n, value: 0, low: 0, high: 0 }
  const p = k / n
  const z2 = z * z
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n)
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / (1 + z2 / n)
  return { k, n, value: p, low: Math.max(0, centre - half), high: Math.min(1, centre + half) }
}

/** Counts of booleans as a share. */
export function shareOf(flags: readonly boolean[]): Share {
  return wilson(flags.filter(Boolean).length, flags.length)
}

/** Attribute values of a word: style, complexity, era (0-3 each). */
export type Values = readonly [number, number, number]

/**
 * Attribute precision of answers to requests: per attribute, the share of returned words
 * whose gold value is the requested one (requests that leave an attribute free do not count
 * for it), and the share matching all requested attributes at once.
 */
export function attributePrecision(
  answers: readonly { requested: readonly (number | null)[]; words: readonly string[] }[],
  gold: ReadonlyMap<string, Values>,
): { perAttribute: Share[]; joint: Share; unlabeled: number } {
  const hits = [0, 0, 0]
  const totals = [0, 0, 0]
  let joint = 0
  let jointN = 0
  let unlabeled = 0
  for (const a of answers) {
    for (const w of a.words) {
      const g = gold.get(w)
      if (!g) {
        unlabeled++
        continue
      }
      let all = true
      a.requested.forEach((want, i) => {
        if (want === null || i > 2) return
        totals[i]++
        if (g[i] === want) hits[i]++
        else all = false
      })
      jointN++
      if (all) joint++
    }
  }
  return { perAttribute: hits.map((h, i) => wilson(h, totals[i])), joint: wilson(joint, jointN), unlabeled }
}

/** Share of `words` that are in `pool`. */
export function membership(words: readonly string[], pool: ReadonlySet<string> | { has(w: string): boolean }): Share {
  return shareOf(words.map((w) => pool.has(w)))
}

/** Distinct words over all words given (1 = never a repeat). */
export function distinct1(words: readonly string[]): number {
  return words.length === 0 ? 0 : new Set(words).size / words.length
}

/** Of the `relevant` words, the share found in `found` (capped at `k` relevant words). */
export function hitAtK(found: readonly string[], relevant: readonly string[], k = 10): { hits: number; possible: number } {
  const f = new Set(found.slice(0, k))
  return { hits: relevant.filter((w) => f.has(w)).length, possible: Math.min(k, relevant.length) }
}

/** Nearest of several unit-vector centroids by cosine; -1 when none is given. */
export function nearestCentroid(v: Float32Array, centroids: readonly Float32Array[]): number {
  let best = -1
  let bestScore = -Infinity
  centroids.forEach((c, i) => {
    let s = 0
    for (let j = 0; j < v.length; j++) s += v[j] * c[j]
    if (s > bestScore) {
      bestScore = s
      best = i
    }
  })
  return best
}

/** 50th / 95th percentile of timings. */
export function percentiles(xs: readonly number[]): { p50: number; p95: number } {
  if (xs.length === 0) return { p50: 0, p95: 0 }
  const s = [...xs].sort((a, b) => a - b)
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]
  return { p50: at(0.5), p95: at(0.95) }
}
