/**
 * A small PCA for the report's 2-D projection of word embeddings: the DxD covariance (D = 384
 * for the compact profile) is built once, then its top eigenvectors are found by subspace
 * iteration (a block of a few vectors, re-orthonormalised each step) with a Rayleigh-Ritz step
 * solved by Jacobi rotations. Deterministic: the same rows always give the same projection
 * (component signs are fixed so that the largest-magnitude loading is positive).
 */

export interface PcaResult {
  /** One `[pc1, pc2, ...]` per input row. */
  points: number[][]
  /** Eigenvalues of the covariance, largest first (one per component). */
  eigenvalues: number[]
  /** Share of the total variance each component explains. */
  explained: number[]
  /** The principal axes (unit vectors of length D). */
  components: Float64Array[]
  mean: Float64Array
}

/** Eigen-decomposition of a small symmetric matrix (row-major, n x n) by cyclic Jacobi rotations. */
export function jacobiEigen(matrix: ArrayLike<number>, n: number): { values: number[]; vectors: number[][] } {
  const a = Float64Array.from(matrix)
  const v = new Float64Array(n * n)
  for (let i = 0; i < n; i++) v[i * n + i] = 1
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q] ** 2
    if (off < 1e-22) break
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]
        if (Math.abs(apq) < 1e-300) continue
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq)
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1))
        const c = 1 / Math.sqrt(t * t + 1)
        const s = t * c
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p]
          const akq = a[k * n + q]
          a[k * n + p] = c * akp - s * akq
          a[k * n + q] = s * akp + c * akq
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k]
          const aqk = a[q * n + k]
          a[p * n + k] = c * apk - s * aqk
          a[q * n + k] = s * apk + c * aqk
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p]
          const vkq = v[k * n + q]
          v[k * n + p] = c * vkp - s * vkq
          v[k * n + q] = s * vkp + c * vkq
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => a[j * n + j] - a[i * n + i])
  return {
    values: order.map((i) => a[i * n + i]),
    vectors: order.map((i) => Array.from({ length: n }, (_, k) => v[k * n + i])),
  }
}

/**
 * Orthonormalises a block (k vectors of length d) in place: Gram-Schmidt done twice ("twice is
 * enough" for orthogonality in floating point). A vector that is (numerically) in the span of
 * the ones before it, as happens for rank-deficient data, is replaced by a fresh basis vector.
 */
function orthonormalise(block: Float64Array[]): void {
  const d = block[0]?.length ?? 0
  let fresh = 0
  for (let i = 0; i < block.length; i++) {
    const bi = block[i]
    for (let attempt = 0; ; attempt++) {
      let before = 0
      for (let k = 0; k < d; k++) before += bi[k] * bi[k]
      for (let pass = 0; pass < 2; pass++) {
        for (let j = 0; j < i; j++) {
          const bj = block[j]
          let dot = 0
          for (let k = 0; k < d; k++) dot += bi[k] * bj[k]
          for (let k = 0; k < d; k++) bi[k] -= dot * bj[k]
        }
      }
      let norm = 0
      for (let k = 0; k < d; k++) norm += bi[k] * bi[k]
      if (norm > 1e-20 * before && norm > 1e-300) {
        norm = Math.sqrt(norm)
        for (let k = 0; k < d; k++) bi[k] /= norm
        break
      }
      if (attempt > d) throw new RangeError('PCA: cannot complete an orthonormal block')
      bi.fill(0)
      bi[fresh++ % d] = 1
    }
  }
}

function symMatVec(c: Float64Array, d: number, x: Float64Array, out: Float64Array): void {
  for (let i = 0; i < d; i++) {
    let s = 0
    const row = i * d
    for (let j = 0; j < d; j++) s += c[row + j] * x[j]
    out[i] = s
  }
}

/**
 * Projects rows (all of one length D) onto their top `k` principal components (default 2).
 * Cost: O(n D^2) for the covariance plus O(iterations D^2 (k + 2)) for the eigenvectors.
 */
export function pca(rows: readonly ArrayLike<number>[], k = 2, opts: { maxIterations?: number; tolerance?: number } = {}): PcaResult {
  const n = rows.length
  if (n === 0) throw new RangeError('PCA of no rows')
  const d = rows[0].length
  if (d === 0) throw new RangeError('PCA of zero-length rows')
  if (k < 1 || k > d) throw new RangeError(`PCA: k must be 1..${d}, got ${k}`)
  const mean = new Float64Array(d)
  for (const r of rows) {
    if (r.length !== d) throw new RangeError(`PCA: a row has ${r.length} values, the first has ${d}`)
    for (let j = 0; j < d; j++) mean[j] += r[j]
  }
  for (let j = 0; j < d; j++) mean[j] /= n

  // Upper triangle of X^T X of the centred rows, then mirrored.
  const cov = new Float64Array(d * d)
  const x = new Float64Array(d)
  for (const r of rows) {
    for (let j = 0; j < d; j++) x[j] = r[j] - mean[j]
    for (let i = 0; i < d; i++) {
      const xi = x[i]
      if (xi === 0) continue
      const row = i * d
      for (let j = i; j < d; j++) cov[row + j] += xi * x[j]
    }
  }
  const denom = Math.max(1, n - 1)
  let trace = 0
  for (let i = 0; i < d; i++) {
    for (let j = i; j < d; j++) {
      const v = cov[i * d + j] / denom
      cov[i * d + j] = v
      cov[j * d + i] = v
    }
    trace += cov[i * d + i]
  }

  // Subspace iteration on a block of k + 2 vectors (the extra ones speed up convergence).
  const b = Math.min(d, k + 2)
  let block = Array.from({ length: b }, (_, i) => {
    const v = new Float64Array(d)
    for (let j = 0; j < d; j++) v[j] = Math.sin(1 + 7.3 * (i + 1) + 0.91 * j * (i + 2)) + (j % (i + 2) === 0 ? 0.5 : 0)
    return v
  })
  orthonormalise(block)
  const maxIt = opts.maxIterations ?? 500
  const tol = opts.tolerance ?? 1e-10
  let prev = new Array<number>(b).fill(0)
  let ritz: { values: number[]; vectors: number[][] } = { values: prev, vectors: [] }
  for (let it = 0; it < maxIt; it++) {
    const next = block.map(() => new Float64Array(d))
    for (let i = 0; i < b; i++) symMatVec(cov, d, block[i], next[i])
    // Rayleigh quotients of the block, to test convergence.
    const small = new Float64Array(b * b)
    for (let i = 0; i < b; i++) for (let j = 0; j < b; j++) {
      let s = 0
      for (let t = 0; t < d; t++) s += block[i][t] * next[j][t]
      small[i * b + j] = s
    }
    ritz = jacobiEigen(small, b)
    orthonormalise(next)
    block = next
    const done = ritz.values.slice(0, k).every((v, i) => Math.abs(v - prev[i]) <= tol * Math.max(1e-30, Math.abs(trace)))
    prev = ritz.values
    if (done && it > 3) break
  }
  // Rayleigh-Ritz on the final block: rotate it onto the eigenvectors of the projected matrix.
  const cb = block.map(() => new Float64Array(d))
  for (let i = 0; i < b; i++) symMatVec(cov, d, block[i], cb[i])
  const small = new Float64Array(b * b)
  for (let i = 0; i < b; i++) for (let j = 0; j < b; j++) {
    let s = 0
    for (let t = 0; t < d; t++) s += block[i][t] * cb[j][t]
    small[i * b + j] = s
  }
  for (let i = 0; i < b; i++) for (let j = i + 1; j < b; j++) {
    const s = (small[i * b + j] + small[j * b + i]) / 2
    small[i * b + j] = s
    small[j * b + i] = s
  }
  ritz = jacobiEigen(small, b)
  const components: Float64Array[] = []
  for (let c = 0; c < k; c++) {
    const v = new Float64Array(d)
    ritz.vectors[c].forEach((w, i) => {
      for (let t = 0; t < d; t++) v[t] += w * block[i][t]
    })
    let norm = 0
    let big = 0
    for (let t = 0; t < d; t++) {
      norm += v[t] * v[t]
      if (Math.abs(v[t]) > Math.abs(big)) big = v[t]
    }
    norm = Math.sqrt(norm) * (big < 0 ? -1 : 1)
    for (let t = 0; t < d; t++) v[t] /= norm
    components.push(v)
  }
  const eigenvalues = ritz.values.slice(0, k).map((v) => Math.max(0, v))
  const points = rows.map((r) =>
    components.map((v) => {
      let s = 0
      for (let j = 0; j < d; j++) s += (r[j] - mean[j]) * v[j]
      return s
    }),
  )
  return { points, eigenvalues, explained: eigenvalues.map((v) => (trace > 0 ? v / trace : 0)), components, mean }
}
