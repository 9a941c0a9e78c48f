/**
 * `AttributePredictor`: calibrated probabilities of a word's style, complexity and era, from
 * its embedding and a few side features (frequency, senses, length). Fitted in Rust (L2
 * logistic regression per attribute, temperatures from cross-validation); hybrid semantic IDs
 * take their attribute fields from it, so `code >> 3` keeps naming the value on words the
 * encoder never saw.
 */
import type { NativeAttributePredictor, PredictorInfo } from '../../index.js'
import { awaitNative, callNative, InvalidInputError } from '../errors.js'
import { native } from '../native.js'
import { ATTRIBUTE_COUNT, VALUE_COUNT } from './features.js'

export type { PredictorInfo }

/** Probabilities, flat: row `i`, attribute `a` (style, complexity, era), value `k` at `i * 12 + a * 4 + k`. */
export interface AttributeProbabilities {
  data: Float32Array
  rows: number
}

/** Rows of `[vector..., side features...]`, flat. */
export function featureRows(vectors: Float32Array, dim: number, side: Float32Array, sideWidth: number): Float32Array {
  const rows = vectors.length / dim
  if (side.length !== rows * sideWidth) throw new InvalidInputError(`${side.length / sideWidth} side-feature rows for ${rows} vectors`)
  const out = new Float32Array(rows * (dim + sideWidth))
  for (let i = 0; i < rows; i++) {
    out.set(vectors.subarray(i * dim, (i + 1) * dim), i * (dim + sideWidth))
    out.set(side.subarray(i * sideWidth, (i + 1) * sideWidth), i * (dim + sideWidth) + dim)
  }
  return out
}

export class AttributePredictor {
  private constructor(private readonly inner: NativeAttributePredictor) {}

  static async train(rows: Float32Array, featureNames: string[], labels: Uint8Array[], opts: { seed?: number; l2?: number; folds?: number } = {}): Promise<AttributePredictor> {
    return new AttributePredictor(await awaitNative(native().NativeAttributePredictor.train(rows, featureNames, labels, opts)))
  }

  /** The predictor saved in `dir`, or undefined when its codebooks have none. */
  static load(dir: string): AttributePredictor | undefined {
    const p = callNative(() => native().NativeAttributePredictor.load(dir))
    return p ? new AttributePredictor(p) : undefined
  }

  save(dir: string): void {
    callNative(() => this.inner.save(dir))
  }

  get info(): PredictorInfo {
    return this.inner.info
  }

  predict(rows: Float32Array): AttributeProbabilities {
    const width = this.info.featureNames.length
    if (rows.length % width !== 0) throw new InvalidInputError(`${rows.length} numbers do not make rows of ${width} features`)
    return { data: callNative(() => this.inner.predict(rows)), rows: rows.length / width }
  }
}

/** The most probable value of each attribute, as the three label columns the codebooks take. */
export function argmaxLabels(p: AttributeProbabilities): Uint8Array[] {
  const cols = [new Uint8Array(p.rows), new Uint8Array(p.rows), new Uint8Array(p.rows)]
  for (let i = 0; i < p.rows; i++) {
    for (let a = 0; a < ATTRIBUTE_COUNT; a++) {
      const at = i * ATTRIBUTE_COUNT * VALUE_COUNT + a * VALUE_COUNT
      let best = 0
      for (let k = 1; k < VALUE_COUNT; k++) if (p.data[at + k] > p.data[at + best]) best = k
      cols[a][i] = best
    }
  }
  return cols
}
