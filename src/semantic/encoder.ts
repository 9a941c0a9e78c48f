/**
 * `SemanticEncoder`: Stage 3. Turns L2-normalised embeddings into 4-level semantic IDs
 * `[style, complexity, era, variation]` by residual vector quantization (4 x 32 codes),
 * trained in Rust off the main thread. In `aligned` and `hybrid` modes codes `8k..8k+7` of
 * levels 0-2 belong to value k of style, complexity and era, so `code >> 3` names the value.
 *
 * Modes:
 * - `hybrid` (the pipeline's default): aligned codebooks, plus calibrated attribute predictors
 *   (`AttributePredictor`) that choose each word's values; the codebooks then choose the
 *   nuance codes within those values and the free variation level. The names hold on words
 *   the encoder never saw as well as the predictors do (measured in `npm run eval`).
 * - `aligned`: the nearest codeword picks the value (no predictor).
 * - `unsupervised`: plain residual k-means; codes name no attribute.
 */
import type { RvqCodebook as NativeCodebook, RvqMetrics, RvqInfo } from '../../index.js'
import { awaitNative, callNative, CancelledError, InvalidInputError } from '../errors.js'
import { native } from '../native.js'
import { attributeVocab, COMPLEXITIES, ERAS, STYLES, type Complexity, type Era, type Style } from '../types.js'
import { asEmbeddings, type Embeddings, type Vectors } from '../embed/matrix.js'
import { cancelTokenFor } from '../cancel.js'
import { toPattern, type PatternInput, type SemanticId } from './pattern.js'
import { SIDE_FEATURE_NAMES, SIDE_FEATURES, sideFeatureRows, type WordFacts } from './features.js'
import { AttributePredictor, argmaxLabels, featureRows, type AttributeProbabilities } from './predictor.js'

export type RvqMode = 'unsupervised' | 'aligned' | 'hybrid'
export type { RvqMetrics, RvqInfo }

/** Attribute labels of a word, as names or as indices 0-3. */
export interface AttributeLabels {
  style: Style | number
  complexity: Complexity | number
  era: Era | number
}

export interface SemanticTrainOptions {
  /** Per-vector attributes; required for `aligned` and `hybrid` modes (`aligned` is the default when given). */
  labels?: AttributeLabels[]
  mode?: RvqMode
  /** Hybrid mode: the word each vector is (frequency, senses, length feed the predictors). */
  facts?: readonly WordFacts[]
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

/** One matrix, checked non-empty: what every native call takes. */
function matrix(vectors: Vectors): Embeddings {
  const e = asEmbeddings(vectors)
  if (e.rows === 0) throw new InvalidInputError('no vectors given: pass at least one embedding')
  return e
}

function asId(codes: number[]): SemanticId {
  return [codes[0], codes[1], codes[2], codes[3]]
}

/** What encoding may know besides the vectors. */
export interface EncodeManyOptions {
  beam?: number
  /** Known attribute values: levels 0-2 stay within them (aligned and hybrid codebooks). */
  labels?: AttributeLabels[]
  /** Hybrid mode: the words the vectors are; without them the predictors see average words. */
  facts?: readonly WordFacts[]
}

export class SemanticEncoder {
  private constructor(
    private readonly codebook: NativeCodebook,
    /** Present in hybrid mode. */
    readonly predictor?: AttributePredictor,
  ) {}

  /** Trains codebooks on embeddings (one row, or one `Float32Array`, per word). */
  static async train(vectors: Vectors, opts: SemanticTrainOptions = {}): Promise<SemanticEncoder> {
    const e = matrix(vectors)
    const { data: flat, dim } = e
    if (opts.labels && opts.labels.length !== e.rows) {
      throw new InvalidInputError(`${opts.labels.length} labels for ${e.rows} vectors: give one label per vector`)
    }
    if ((opts.mode === 'aligned' || opts.mode === 'hybrid') && !opts.labels) {
      throw new InvalidInputError(`${opts.mode} mode needs labels (style, complexity, era) for every vector`)
    }
    if (opts.facts && opts.facts.length !== e.rows) {
      throw new InvalidInputError(`${opts.facts.length} word facts for ${e.rows} vectors: give one per vector`)
    }
    if (opts.signal?.aborted) throw new CancelledError('RVQ training cancelled')
    const { token, release } = cancelTokenFor(opts.signal)
    const cb = await awaitNative(
      native().RvqCodebook.train(
        flat,
        dim,
        {
          mode: opts.mode === 'hybrid' ? 'aligned' : (opts.mode ?? (opts.labels ? 'aligned' : 'unsupervised')),
          labels: opts.labels ? labelArrays(opts.labels) : undefined,
          seed: opts.seed,
          iterations: opts.iterations,
          embedderModelId: opts.embedderModelId,
        },
        opts.onProgress ?? null,
        token,
      ),
    ).finally(release)
    if (opts.signal?.aborted) throw new CancelledError('RVQ training cancelled')
    if (opts.mode !== 'hybrid') return new SemanticEncoder(cb)
    const side = sideFeatureRows(opts.facts ?? Array.from({ length: e.rows }, () => ({ word: '' })))
    const predictor = await AttributePredictor.train(featureRows(flat, dim, side, SIDE_FEATURES), featureNames(dim), labelArrays(opts.labels!), { seed: opts.seed })
    if (opts.signal?.aborted) throw new CancelledError('RVQ training cancelled')
    return new SemanticEncoder(cb, predictor)
  }

  /** Loads codebooks saved by `save`; refuses ones made for another dimension or embedder. */
  static load(dir: string, expect: { dimension?: number; embedderModelId?: string } = {}): SemanticEncoder {
    const codebook = callNative(() => native().RvqCodebook.load(dir, expect))
    const predictor = AttributePredictor.load(dir)
    if (predictor && predictor.info.featureNames.join('|') !== featureNames(codebook.dimension).join('|')) {
      throw new InvalidInputError(`the attribute predictor in ${dir} reads other features than this version builds; retrain the run (npx wotd train)`)
    }
    return new SemanticEncoder(codebook, predictor)
  }

  save(dir: string): void {
    callNative(() => this.codebook.save(dir))
    this.predictor?.save(dir)
  }

  get dimension(): number {
    return this.codebook.dimension
  }

  get info(): RvqInfo {
    return this.codebook.info
  }

  get mode(): RvqMode {
    return this.predictor ? 'hybrid' : this.codebook.info.mode
  }

  /** The same codebooks without the predictors: `aligned` encoding (nearest codeword picks the value). */
  withoutPredictor(): SemanticEncoder {
    return new SemanticEncoder(this.codebook)
  }

  /** Whether `code >> 3` of levels 0-2 names an attribute value. */
  get named(): boolean {
    return this.mode !== 'unsupervised'
  }

  /** The ID of one vector: greedy, or beam search with `beam` > 1. */
  encode(vector: Float32Array, opts: { beam?: number; facts?: WordFacts } = {}): SemanticId {
    if (!this.predictor) return asId(callNative(() => this.codebook.encode(vector, opts.beam)))
    return this.encodeMany([vector], { beam: opts.beam, facts: opts.facts ? [opts.facts] : undefined })[0]
  }

  /** IDs of many vectors at once (one native call). */
  encodeMany(vectors: Vectors, opts: EncodeManyOptions = {}): SemanticId[] {
    const e = asEmbeddings(vectors)
    const rows = e.rows
    if (rows === 0) return []
    const labels = opts.labels ? labelArrays(opts.labels) : this.predictor ? argmaxLabels(this.probabilities(e, opts.facts)) : undefined
    const codes = callNative(() => this.codebook.encodeMany(e.data, rows, { beam: opts.beam, labels }))
    const out: SemanticId[] = []
    for (let i = 0; i < rows; i++) out.push([codes[4 * i], codes[4 * i + 1], codes[4 * i + 2], codes[4 * i + 3]])
    return out
  }

  /**
   * Calibrated probabilities of each attribute value for each row (hybrid mode): row `i`,
   * attribute `a`, value `k` at `i * 12 + a * 4 + k`. Without `facts` the predictors see each
   * vector as an average word (the training rows' mean side features).
   */
  probabilities(vectors: Vectors, facts?: readonly WordFacts[]): AttributeProbabilities {
    if (!this.predictor) throw new InvalidInputError(`attribute probabilities need hybrid codebooks; these are ${this.mode}`)
    const dim = this.dimension
    const { data: flat, rows } = asEmbeddings(vectors)
    if (flat.length !== rows * dim) throw new InvalidInputError(`${rows} vectors of dimension ${dim} are ${rows * dim} numbers, got ${flat.length}`)
    if (facts && facts.length !== rows) throw new InvalidInputError(`${facts.length} word facts for ${rows} vectors`)
    let side: Float32Array
    if (facts) side = sideFeatureRows(facts)
    else {
      const means = this.predictor.info.featureMeans.slice(dim)
      side = new Float32Array(rows * SIDE_FEATURES)
      for (let i = 0; i < rows; i++) side.set(means, i * SIDE_FEATURES)
    }
    return this.predictor.predict(featureRows(flat, dim, side, SIDE_FEATURES))
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
  describe(pattern: PatternInput): string {
    return describePattern(pattern, this.named ? (this.codebook.info.vocab ?? attributeVocab()) : null)
  }

  /** The metrics of DESIGN.md on these vectors (with labels: accuracy of `code >> 3` and NMI). */
  async evaluate(vectors: Vectors, labels?: AttributeLabels[]): Promise<RvqMetrics> {
    return awaitNative(this.codebook.evaluate(matrix(vectors).data, labels ? labelArrays(labels) : undefined))
  }

  /** The ID of a preference vector (a renormalised mean of liked words' vectors). */
  preferenceId(preference: Float32Array, facts?: WordFacts): SemanticId {
    return this.encode(preference, { facts })
  }
}

/**
 * A pattern in words: with a vocabulary (by default the aligned one of DESIGN.md), levels 0-2
 * name their attribute values ("modern / beautiful / shakespearean / variation 5"); with
 * `null`, codes only. Needs no trained run.
 */
export function describePattern(pattern: PatternInput, vocab: { names: string[]; values: string[][] } | null = attributeVocab()): string {
  const { fields } = toPattern(pattern)
  return callNative(() => native().describePattern(fields, vocab ?? undefined))
}

/** Column names of the predictor's feature rows: the vector, then the side features. */
function featureNames(dim: number): string[] {
  return [...Array.from({ length: dim }, (_, i) => `v${i}`), ...SIDE_FEATURE_NAMES]
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
