/**
 * A small seeded PRNG (sfc32, seeded through a 32-bit string hash), so that sampling is the
 * same on every machine and Node version for the same seed.
 */

/** FNV-1a over the UTF-16 code units of `text`, then an avalanche (murmur3 finaliser). */
export function hash32(text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** A deterministic random source: `next()` in [0, 1), `int(n)` in 0..n-1. */
export interface Rng {
  next(): number
  int(n: number): number
}

/** sfc32 (Chris Doty-Humphrey's small fast counting generator), seeded from `seed` and `stream`. */
export function createRng(seed: number | string, stream = ''): Rng {
  const base = `${seed}\u0000${stream}`
  let a = hash32(base + '\u0001')
  let b = hash32(base + '\u0002')
  let c = hash32(base + '\u0003')
  let d = 1
  const step = (): number => {
    const t = (((a + b) | 0) + d) | 0
    d = (d + 1) | 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) | 0
    c = (c << 21) | (c >>> 11)
    c = (c + t) | 0
    return t >>> 0
  }
  for (let i = 0; i < 15; i++) step()
  return {
    next: () => step() / 4294967296,
    int(n: number) {
      if (!Number.isInteger(n) || n <= 0) throw new RangeError(`int(n) needs a positive integer, got ${n}`)
      // Rejection sampling keeps the result unbiased.
      const limit = 4294967296 - (4294967296 % n)
      let x = step()
      while (x >= limit) x = step()
      return x % n
    },
  }
}

/** A seeded Fisher-Yates shuffle; returns a new array. */
export function shuffled<T>(items: readonly T[], rng: Rng): T[] {
  const out = items.slice()
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(i + 1)
    const tmp = out[i]
    out[i] = out[j]
    out[j] = tmp
  }
  return out
}
