/**
 * `Embeddings`: a row-major matrix of L2-normalised vectors, the one shape vectors travel in
 * between the native embedder, caches, artifacts, the encoder and retrieval.
 */
import { callNative, InvalidInputError } from '../errors.js'
import { native } from '../native.js'

export interface Embeddings {
  data: Float32Array
  rows: number
  dim: number
}

/** Row `i` as a view (no copy). */
export function row(e: Embeddings, i: number): Float32Array {
  return e.data.subarray(i * e.dim, (i + 1) * e.dim)
}

/** Packs vectors of equal length into one matrix. */
export function toMatrix(vectors: readonly Float32Array[], dim = vectors[0]?.length ?? 0): Embeddings {
  const data = new Float32Array(vectors.length * dim)
  vectors.forEach((v, i) => {
    if (v.length !== dim) throw new InvalidInputError(`vector ${i} has ${v.length} dimensions, the first has ${dim}`)
    data.set(v, i * dim)
  })
  return { data, rows: vectors.length, dim }
}

/** Dot products of every row with `q` (cosines, for unit vectors). */
export function dotAll(e: Embeddings, q: Float32Array): Float32Array {
  if (q.length !== e.dim) throw new InvalidInputError(`query has ${q.length} dimensions, the matrix ${e.dim}`)
  // The word catalogue (70k rows): one native pass, several times faster than this loop.
  if (e.rows * e.dim >= NATIVE_MIN_VALUES) return dotMany(e, [q])[0]
  const out = new Float32Array(e.rows)
  const { data, dim } = e
  for (let r = 0, at = 0; r < e.rows; r++, at += dim) {
    let s = 0
    for (let i = 0; i < dim; i++) s += data[at + i] * q[i]
    out[r] = s
  }
  return out
}

/** The renormalised mean of some rows (a taste, a region's centre). */
export function meanOfRows(e: Embeddings, rows: Iterable<number>): Float32Array | undefined {
  const acc = new Float64Array(e.dim)
  let n = 0
  for (const r of rows) {
    for (let i = 0; i < e.dim; i++) acc[i] += e.data[r * e.dim + i]
    n++
  }
  if (n === 0) return undefined
  let norm = 0
  for (const v of acc) norm += v * v
  norm = Math.sqrt(norm)
  if (norm < 1e-12) return undefined
  return Float32Array.from(acc, (v) => v / norm)
}

/** Below this many matrix values the JS loop beats the call into the addon. */
const NATIVE_MIN_VALUES = 1 << 16

/**
 * Dot products of every row with each query, in one native f32 matrix product (the matrix is
 * read once for all queries): one `Float32Array` of `e.rows` values per query.
 */
export function dotMany(e: Embeddings, queries: readonly Float32Array[]): Float32Array[] {
  if (queries.length === 0) return []
  const packed = new Float32Array(queries.length * e.dim)
  queries.forEach((q, i) => {
    if (q.length !== e.dim) throw new InvalidInputError(`query ${i} has ${q.length} dimensions, the matrix ${e.dim}`)
    packed.set(q, i * e.dim)
  })
  const data = e.data.length === e.rows * e.dim ? e.data : e.data.subarray(0, e.rows * e.dim)
  const out = callNative(() => native().dotProducts(data, packed, e.dim))
  return queries.map((_, i) => out.subarray(i * e.rows, (i + 1) * e.rows))
}
