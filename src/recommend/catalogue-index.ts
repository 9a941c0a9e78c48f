/**
 * `CatalogueIndex`: the word catalogue of one run, ready to rank: each word's vector, its
 * semantic ID under the run's codebooks, its attribute probabilities (hybrid runs), and which
 * words the run was trained on (never returned: results must be novel).
 */
import type { Catalogue } from '../catalogue/catalogue.js'
import type { CatalogueEntry } from '../catalogue/build.js'
import type { Embeddings } from '../embed/matrix.js'
import type { AttributeProbabilities, SemanticEncoder } from '../semantic/index.js'
import { quality } from './quality.js'

export class CatalogueIndex {
  /** Per row, how much of a word-of-the-day it is (definition, usage, frequency): -1..0. */
  readonly quality: Float32Array
  /** Rows of training words. */
  readonly training: Uint8Array

  constructor(
    readonly catalogue: Catalogue,
    readonly vectors: Embeddings,
    /** 4 codes per row. */
    readonly ids: Uint8Array,
    readonly encoder: SemanticEncoder,
    /** Per row, 12 probabilities (hybrid runs only). */
    readonly probabilities: AttributeProbabilities | undefined,
    trainingWords: Iterable<string>,
  ) {
    this.quality = Float32Array.from(catalogue.entries, quality)
    this.training = new Uint8Array(catalogue.size)
    for (const w of trainingWords) {
      const i = catalogue.indexOf(w)
      if (i !== undefined) this.training[i] = 1
    }
  }

  /** `probabilities`: the encoder's for these rows when already known (a cache); else computed. */
  static build(catalogue: Catalogue, vectors: Embeddings, ids: Uint8Array, encoder: SemanticEncoder, trainingWords: Iterable<string>, probabilities?: AttributeProbabilities): CatalogueIndex {
    const probs = encoder.predictor ? (probabilities ?? encoder.probabilities(vectors, catalogue.entries)) : undefined
    return new CatalogueIndex(catalogue, vectors, ids, encoder, probs, trainingWords)
  }

  get size(): number {
    return this.catalogue.size
  }

  /** Whether codes name attribute values (`code >> 3`): aligned and hybrid runs. */
  get named(): boolean {
    return this.encoder.named
  }

  entry(row: number): CatalogueEntry {
    return this.catalogue.entries[row]
  }

  id(row: number): [number, number, number, number] {
    return [this.ids[4 * row], this.ids[4 * row + 1], this.ids[4 * row + 2], this.ids[4 * row + 3]]
  }

  vector(row: number): Float32Array {
    return this.vectors.data.subarray(row * this.vectors.dim, (row + 1) * this.vectors.dim)
  }

  private centreCache?: Float32Array

  /** The mean of every word vector (what all words share; see the profile rule). */
  get centre(): Float32Array {
    if (!this.centreCache) {
      const { data, rows, dim } = this.vectors
      const acc = new Float64Array(dim)
      for (let r = 0; r < rows; r++) for (let k = 0; k < dim; k++) acc[k] += data[r * dim + k]
      this.centreCache = Float32Array.from(acc, (x) => x / Math.max(rows, 1))
    }
    return this.centreCache
  }

  /** log P(attribute `a` has value `k`) of a row; 0 when the run has no predictors. */
  logProbability(row: number, a: number, k: number): number {
    if (!this.probabilities) return 0
    return Math.log(Math.max(this.probabilities.data[row * 12 + a * 4 + k], 1e-6))
  }
}
