/**
 * `SemanticEncoder`: Stage 3. Turns L2-normalised embeddings into 4-level semantic IDs
 * `[style, complexity, era, variation]` by residual vector quantization (4 x 32 codes),
 * trained in Rust off the main thread. In `aligned` mode codes `8k..8k+7` of levels 0-2 belong
 * to value k of style, complexity and era, so `code >> 3` names the value.
 */
import type { RvqCodebook as NativeCodebook, RvqMetrics, RvqInfo } from '../../index.js'
import { awaitNative, callNative, CancelledError, InvalidInputError } from '../errors.js'
import { native } from '../native.js'
import { COMPLEXITIES, ERAS, STYLES, type Complexity, type Era, type Style } from '../types.js'
import { toPatternText, type SemanticId } from './pattern.js'

export type RvqMode = 'unsupervised' | 'aligned'
export type { RvqMetrics, RvqInfo }

/** Attribute labels of a word, as names or as indices 0-3. */
export interface AttributeLabels {
  style: Style | number
  complexity: Complexity | number
  era: Era | number
}

export interface SemanticTrainOptions {
  /** Per-vector attributes; required for `aligned` mode (the default when given). */
  labels?: AttributeLabels[]
  mode?: RvqMode
  seed?: number
  iterations?: number
  /** Recorded in the codebooks so that vectors of another embedder are refused on load. */
  embedderModelId?: string
  onProgress?: (p: { level: number; iteration: number; inertia: number }) => void
  signal?: AbortSignal
}

function index(value: string | number, names: readonly string[], what: string): number {
  const i = typeof value === 'number' ? value : names.indexOf(value)
  if (!Number.isInteger(i) || i < 0 || i >= names.length) {
    throw new InvalidInputError(`unknown ${what} ${JSON.stringify(value)}; expected one of ${names.join(', ')}`)
  }
  return i
}

/** Labels as three Uint8Arrays `[style, complexity, era]`, the native layout. */
export function labelArrays(labels: AttributeLabels[]): Uint8Array[] {
  const out = [new Uint8Array(labels.length), new Uint8Array(labels.length), new Uint8Array(labels.length)]
  labels.forEach((l, i) => {
    out[0][i] = index(l.style, STYLES, 'style')
    out[1][i] = index(l.complexity, COMPLEXITIES, 'complexity')
    out[2][i] = index(l.era, ERAS, 'era')
  })
  return out
}

function pack(vectors: readonly Float32Array[]): { flat: Float32Array; dim: number } {
  if (vectors.length === 0) throw new InvalidInputError('no vectors given: pass at least one embedding')
  const dim = vectors[0].length
  const flat = new Float32Array(vectors.length * dim)
  vectors.forEach((v, i) => {
    if (v.length !== dim) throw new InvalidInputError(`vector ${i} has ${v.length} dimensions, the first has ${dim}`)
    flat.set(v, i * dim)
  })
  return { flat, dim }
}

function asId(codes: number[]): SemanticId {
  return [codes[0], codes[1], codes[2], codes[3]]
}

export class SemanticEncoder {
  private constructor(private readonly codebook: NativeCodebook) {}

  /** Trains codebooks on embeddings (one `Float32Array` per word). */
  static async train(vectors: readonly Float32Array[], opts: SemanticTrainOptions = {}): Promise<SemanticEncoder> {
    const { flat, dim } = pack(vectors)
    if (opts.labels && opts.labels.length !== vectors.length) {
      throw new InvalidInputError(`${opts.labels.length} labels for ${vectors.length} vectors: give one label per vector`)
    }
    if (opts.mode === 'aligned' && !opts.labels) {
      throw new InvalidInputError('aligned mode needs labels (style, complexity, era) for every vector')
    }
    if (opts.signal?.aborted) throw new CancelledError('RVQ training cancelled')
    const cb = await awaitNative(
      native().RvqCodebook.train(
        flat,
        dim,
        {
          mode: opts.mode ?? (opts.labels ? 'aligned' : 'unsupervised'),
          labels: opts.labels ? labelArrays(opts.labels) : undefined,
          seed: opts.seed,
          iterations: opts.iterations,
          embedderModelId: opts.embedderModelId,
        },
        opts.onProgress ?? null,
      ),
    )
    if (opts.signal?.aborted) throw new CancelledError('RVQ training cancelled')
    return new SemanticEncoder(cb)
  }

  /** Loads codebooks saved by `save`; refuses ones made for another dimension or embedder. */
  static load(dir: string, expect: { dimension?: number; embedderModelId?: string } = {}): SemanticEncoder {
    return new SemanticEncoder(callNative(() => native().RvqCodebook.load(dir, expect)))
  }

  save(dir: string): void {
    callNative(() => this.codebook.save(dir))
  }

  get dimension(): number {
    return this.codebook.dimension
  }

  get info(): RvqInfo {
    return this.codebook.info
  }

  get mode(): RvqMode {
    return this.codebook.info.mode
  }

  /** The ID of one vector: greedy, or beam search with `beam` > 1. */
  encode(vector: Float32Array, opts: { beam?: number } = {}): SemanticId {
    return asId(callNative(() => this.codebook.encode(vector, opts.beam)))
  }

  /** IDs of many vectors at once (one native call). */
  encodeMany(vectors: readonly Float32Array[], opts: { beam?: number; labels?: AttributeLabels[] } = {}): SemanticId[] {
    if (vectors.length === 0) return []
    const { flat } = pack(vectors)
    const codes = callNative(() =>
      this.codebook.encodeMany(flat, vectors.length, { beam: opts.beam, labels: opts.labels ? labelArrays(opts.labels) : undefined }),
    )
    const out: SemanticId[] = []
    for (let i = 0; i < vectors.length; i++) out.push([codes[4 * i], codes[4 * i + 1], codes[4 * i + 2], codes[4 * i + 3]])
    return out
  }

  /** The vector an ID stands for: the sum of its codewords, renormalised. */
  decode(id: readonly number[]): Float32Array {
    return callNative(() => this.codebook.decode([...id]))
  }

  /** Prefix-weighted similarity in [0, 1]: agreement at level 0 counts most. */
  similarity(a: readonly number[], b: readonly number[]): number {
    return callNative(() => this.codebook.similarity([...a], [...b]))
  }

  /** The ID between two IDs: decode both, lerp by `t`, renormalise, encode. */
  interpolate(a: readonly number[], b: readonly number[], t: number): SemanticId {
    return asId(callNative(() => this.codebook.interpolate([...a], [...b], t)))
  }

  /** "modern / beautiful / shakespearean / variation 5" (aligned), codes only otherwise. */
  describe(pattern: string | readonly (number | null)[]): string {
    const text = toPatternText(pattern)
    const vocab = this.mode === 'aligned' ? (this.codebook.info.vocab ?? native().defaultAttributeVocab()) : undefined
    return callNative(() => native().describePattern(text, vocab))
  }

  /** The metrics of DESIGN.md on these vectors (with labels: accuracy of `code >> 3` and NMI). */
  async evaluate(vectors: readonly Float32Array[], labels?: AttributeLabels[]): Promise<RvqMetrics> {
    const { flat } = pack(vectors)
    return awaitNative(this.codebook.evaluate(flat, labels ? labelArrays(labels) : undefined))
  }

  /** The ID of a preference vector (a renormalised mean of liked words' vectors). */
  preferenceId(preference: Float32Array): SemanticId {
    return this.encode(preference)
  }
}

/** Anything that turns liked words into one preference vector (e.g. `BGEEmbedder`). */
export interface PreferenceEmbedder {
  preferenceVector(words: string[]): Promise<Float32Array>
}

/** Liked words -> one preference vector (renormalised mean of their embeddings) -> one ID. */
export async function preferenceToId(words: string[], embedder: PreferenceEmbedder, encoder: SemanticEncoder): Promise<SemanticId> {
  const cleaned = words.map((w) => w.trim()).filter((w) => w.length > 0)
  if (cleaned.length === 0) throw new InvalidInputError('no liked words given: pass at least one non-empty word')
  return encoder.encode(await embedder.preferenceVector(cleaned))
}
