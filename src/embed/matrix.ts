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

/** Vectors as API callers may give them: one matrix, or one array per row. */
export type Vectors = Embeddings | readonly Float32Array[]

/** The matrix itself, or per-row arrays packed into one (the only place rows are gathered). */
export function asEmbeddings(v: Vectors): Embeddings {
  return Array.isArray(v) ? toMatrix(v) : (v as Embeddings)
}

/** Every row as a view into the matrix (no copies), for APIs that hand out one array per word. */
export function rows(e: Embeddings): Float32Array[] {
  const out = new Array<Float32Array>(e.rows)
  for (let i = 0; i < e.rows; i++) out[i] = row(e, i)
  return out
}

/**
 * The artifact bytes of a matrix: its floats as they lie in memory (little-endian on every
 * target the addon is built for), row after row. No copy.
 */
export function embeddingsToBytes(e: Embeddings): Buffer {
  const data = e.data.subarray(0, e.rows * e.dim)
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength)
}

/**
 * A matrix from artifact bytes: one copy (a store's buffer need not be 4-byte aligned), checked
 * against the row count and width the caller knows.
 */
export function embeddingsFromBytes(buf: Uint8Array, dim: number, expectRows?: number): Embeddings {
  if (!Number.isInteger(dim) || dim <= 0) throw new InvalidInputError(`an embedding width must be a positive integer, got ${dim}`)
  if (buf.byteLength % (4 * dim) !== 0) throw new InvalidInputError(`${buf.byteLength} bytes are not whole rows of ${dim} float32`)
  const rowCount = buf.byteLength / (4 * dim)
  if (expectRows !== undefined && rowCount !== expectRows) throw new InvalidInputError(`the matrix holds ${rowCount} rows of ${dim} float32, expected ${expectRows}`)
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength))
  return { data, rows: rowCount, dim }
}

/** Some rows of a matrix, in the order given, as a new matrix. */
export function selectRows(e: Embeddings, which: readonly number[]): Embeddings {
  const data = new Float32Array(which.length * e.dim)
  which.forEach((r, i) => data.set(row(e, r), i * e.dim))
  return { data, rows: which.length, dim: e.dim }
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
