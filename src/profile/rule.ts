/**
 * The profile update rule: a person's liked and disliked words -> one preference vector.
 *
 *     w_i  = 0.5 ^ ((t_newest - t_i) / HALF_LIFE_DAYS)          each like, by its age
 *     L    = sum_i w_i l_i / sum_i w_i                          recency-weighted liked mean
 *     D    = mean_j d_j - c                                     disliked mean, centred
 *     pref = unit(L - DISLIKE_SHARE * D)
 *
 * Ages count back from the newest like, not from the clock, so a profile nobody touches keeps
 * its vector. `c` is the catalogue's mean vector: every word vector shares a large common part,
 * and subtracting it along with the dislikes would push the taste away from words in general
 * rather than from what the disliked words have in common. With no likes there is no taste
 * (the word of the day then picks from well-defined words, still avoiding the dislikes).
 */

/** Days after which a like weighs half as much as the newest one. */
export const HALF_LIFE_DAYS = 30
/** How far the disliked words push the taste away, against the liked mean's weight of 1. */
export const DISLIKE_SHARE = 0.5

const DAY_MS = 86_400_000

export interface Rated {
  vector: Float32Array
  /** ISO 8601 time of the like or dislike. */
  at: string
}

/** The weight of each like: 1 for the newest, halving every `HALF_LIFE_DAYS` before it. */
export function likeWeights(times: readonly string[]): number[] {
  const ms = times.map((t) => Date.parse(t))
  const newest = Math.max(...ms)
  return ms.map((t) => Math.pow(0.5, Math.max(0, newest - t) / DAY_MS / HALF_LIFE_DAYS))
}

/** The preference vector (unit length), or undefined with no likes or when it has no direction. */
export function preferenceVector(liked: readonly Rated[], disliked: readonly Rated[], centre?: Float32Array): Float32Array | undefined {
  if (liked.length === 0) return undefined
  const dim = liked[0].vector.length
  const acc = new Float64Array(dim)
  const weights = likeWeights(liked.map((l) => l.at))
  const total = weights.reduce((a, b) => a + b, 0)
  liked.forEach((l, i) => {
    for (let k = 0; k < dim; k++) acc[k] += (weights[i] / total) * l.vector[k]
  })
  if (disliked.length) {
    for (const d of disliked) for (let k = 0; k < dim; k++) acc[k] -= (DISLIKE_SHARE / disliked.length) * d.vector[k]
    if (centre) for (let k = 0; k < dim; k++) acc[k] += DISLIKE_SHARE * centre[k]
  }
  let norm = 0
  for (let k = 0; k < dim; k++) norm += acc[k] * acc[k]
  norm = Math.sqrt(norm)
  if (!(norm > 1e-9)) return undefined
  const out = new Float32Array(dim)
  for (let k = 0; k < dim; k++) out[k] = acc[k] / norm
  return out
}

/** Float32 vector <-> base64, as profiles store it. */
export function vectorToBase64(v: Float32Array): string {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')
}

export function vectorFromBase64(s: string): Float32Array {
  const b = Buffer.from(s, 'base64')
  const out = new Float32Array(b.length / 4)
  for (let i = 0; i < out.length; i++) out[i] = b.readFloatLE(i * 4)
  return out
}
