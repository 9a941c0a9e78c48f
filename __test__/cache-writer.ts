/**
 * Child process of cache.test.ts: writes deterministic vectors into a shared cache directory
 * while other copies of itself do the same, to prove concurrent writers cannot corrupt it.
 * argv: <cacheDir> <writerIndex> <batches> <perBatch>
 */
import { EmbeddingCache, type EmbeddingSpace } from '../src/cache/index.js'

export const SPACE: EmbeddingSpace = { modelId: 'test/concurrent', revision: 'r1', pooling: 'mean', normalize: true, dim: 16 }

/** The vector every writer agrees on for a text. */
export function vectorFor(text: string): Float32Array {
  const v = new Float32Array(SPACE.dim)
  let h = 2166136261
  for (const ch of text) h = Math.imul(h ^ ch.codePointAt(0)!, 16777619) >>> 0
  for (let i = 0; i < v.length; i++) {
    h = Math.imul(h ^ (h >>> 15), 2246822507) >>> 0
    v[i] = (h / 2 ** 32) * 2 - 1
  }
  return v
}

/** Writers overlap: writer w covers texts [w*step, w*step + batches*perBatch). */
export function textsOf(writer: number, batches: number, perBatch: number): string[] {
  const step = Math.floor((batches * perBatch) / 2)
  return Array.from({ length: batches * perBatch }, (_, i) => `text-${writer * step + i}`)
}

if (process.argv[1]?.endsWith('cache-writer.ts')) {
  const [dir, w, b, p] = process.argv.slice(2)
  const writer = Number(w)
  const batches = Number(b)
  const perBatch = Number(p)
  const cache = new EmbeddingCache({ dir })
  const texts = textsOf(writer, batches, perBatch)
  for (let k = 0; k < batches; k++) {
    const chunk = texts.slice(k * perBatch, (k + 1) * perBatch)
    // Read first, as an embedder does, so refreshes and compactions interleave with writes.
    const found = await cache.lookup(SPACE, chunk)
    const missing = chunk.filter((_, i) => !found[i])
    await cache.save(SPACE, missing.map((text) => ({ text, vector: vectorFor(text), tokenCount: text.length, truncated: false })))
  }
  process.stdout.write(JSON.stringify(cache.stats()) + '\n')
}
