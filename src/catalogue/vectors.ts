/**
 * The catalogue's embedding matrix, made once per embedder and kept in the unified cache.
 * Each word is embedded with its definition where it has one (`embeddingText`).
 *
 * Rows are stored as int8 with one f32 scale per row (about a quarter of f32's bytes: 68k
 * words x 384 dims is about 26 MB), in parts of `PART_ROWS` words, so an embedding run that
 * is killed keeps its finished parts and the next run embeds only the rest. Fresh vectors go
 * through the same quantization as cached ones, so a result never depends on whether the
 * cache was warm.
 */
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { cacheDir } from '../cache/embeddings.js'
import { readBlob, writeBlob } from '../cache/blob.js'
import type { BGEEmbedder } from '../embed/embedder.js'
import type { Embeddings } from '../embed/matrix.js'
import { embeddingText } from '../embed/text.js'
import { CancelledError } from '../errors.js'
import type { Catalogue } from './catalogue.js'


export const PART_ROWS = 4096

export interface CatalogueVectorOptions {
  /** Cache folder (default: the unified cache); `false` embeds without keeping anything. */
  cacheDir?: string | false
  batchSize?: number
  onProgress?: (p: { done: number; total: number; cached: number }) => void
  signal?: AbortSignal
}

export interface CatalogueVectors extends Embeddings {
  /** Rows that came from the cache. */
  cachedRows: number
  /** Bytes of the cached parts on disk. */
  diskBytes: number
}

/** int8 codes with a per-row scale: `value = code * scale`. */
export function quantizeRows(data: Float32Array, dim: number): Buffer {
  const rows = data.length / dim
  const out = Buffer.alloc(rows * (dim + 4))
  for (let r = 0; r < rows; r++) {
    let max = 0
    for (let i = 0; i < dim; i++) max = Math.max(max, Math.abs(data[r * dim + i]))
    const scale = max > 0 ? max / 127 : 1
    const at = r * (dim + 4)
    out.writeFloatLE(scale, at)
    for (let i = 0; i < dim; i++) out.writeInt8(Math.round(data[r * dim + i] / scale), at + 4 + i)
  }
  return out
}

/** Back to f32, each row renormalised to unit length (rounding shortens it slightly). */
export function dequantizeRows(buf: Buffer, dim: number, into: Float32Array, rowOffset: number): void {
  const stride = dim + 4
  const rows = buf.length / stride
  // Typed views instead of Buffer.readInt8 per byte: this runs over 27M codes at every start.
  const codes = new Int8Array(buf.buffer, buf.byteOffset, buf.length)
  for (let r = 0; r < rows; r++) {
    const at = r * stride + 4
    // The per-row scale cancels in the renormalisation: v_i = c_i / sqrt(sum c^2).
    let sumsq = 0
    for (let i = 0; i < dim; i++) sumsq += codes[at + i] * codes[at + i]
    const k = sumsq > 0 ? 1 / Math.sqrt(sumsq) : 0
    const base = (rowOffset + r) * dim
    for (let i = 0; i < dim; i++) into[base + i] = codes[at + i] * k
  }
}

function spaceKey(catalogue: Catalogue, embedder: BGEEmbedder): string {
  const s = embedder.space
  return createHash('sha256')
    .update(JSON.stringify(['wotd-catalogue-vectors/2', catalogue.hash, s.modelId, s.revision, s.pooling, s.normalize, s.dim, embedder.maxLength]))
    .digest('hex')
    .slice(0, 24)
}

/** One vector per catalogue word (row `i` is `catalogue.entries[i]`). */
export async function catalogueVectors(catalogue: Catalogue, embedder: BGEEmbedder, opts: CatalogueVectorOptions = {}): Promise<CatalogueVectors> {
  const dim = embedder.dimension
  const rows = catalogue.size
  const data = new Float32Array(rows * dim)
  const dir = opts.cacheDir === false ? undefined : join(opts.cacheDir ?? cacheDir(), 'catalogue', `vectors-${spaceKey(catalogue, embedder)}`)
  const texts = catalogue.entries.map((e) => embeddingText(e.word, e.definition))
  const parts = Math.ceil(rows / PART_ROWS)
  // The per-text cache would hold f32 copies of every row; this matrix is its own cache.
  const plain = embedder.withCache(undefined)
  let done = 0
  let cachedRows = 0
  let diskBytes = 0
  for (let p = 0; p < parts; p++) {
    if (opts.signal?.aborted) throw new CancelledError('embedding the word catalogue cancelled; run again to continue', { cause: opts.signal.reason })
    const from = p * PART_ROWS
    const to = Math.min(rows, from + PART_ROWS)
    const file = dir ? join(dir, `part-${String(p).padStart(4, '0')}.bin`) : undefined
    let buf = file ? (await readBlob(file)).payload : undefined
    if (buf && buf.length !== (to - from) * (dim + 4)) buf = undefined
    if (buf) cachedRows += to - from
    else {
      const vecs = await plain.embed(texts.slice(from, to), {
        batchSize: opts.batchSize ?? 128,
        signal: opts.signal,
        onProgress: (q) => opts.onProgress?.({ done: from + q.done, total: rows, cached: cachedRows }),
      })
      const flat = new Float32Array((to - from) * dim)
      vecs.forEach((v, i) => flat.set(v, i * dim))
      buf = quantizeRows(flat, dim)
      if (file) await writeBlob(file, buf)
    }
    diskBytes += buf.length + 40
    dequantizeRows(buf, dim, data, from)
    done = to
    opts.onProgress?.({ done, total: rows, cached: cachedRows })
  }
  return { data, rows, dim, cachedRows, diskBytes: dir ? diskBytes : 0 }
}
