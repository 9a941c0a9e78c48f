/**
 * Stage 2 in TypeScript: `BGEEmbedder` wraps the native encoder (BERT / XLM-RoBERTa written in
 * Rust over candle) with the unified cache, progress and cancellation.
 */
import { EmbeddingCache, type CacheStats, type EmbeddingSpace } from '../cache/index.js'
import { awaitNative, callNative, CancelledError, InvalidInputError, ModelNotFoundError } from '../errors.js'
import { findModel } from '../models/locate.js'
import { verifyModel } from '../models/verify.js'
import { isProfileName, PROFILES } from '../models/profiles.js'
import { native } from '../native.js'
import { row, rows, type Embeddings } from './matrix.js'
import { cancelTokenFor } from '../cancel.js'

type NativeEmbedder = import('../../index.js').NativeEmbedder

export type PoolingMode = 'cls' | 'mean' | 'max' | 'lasttoken'

export interface EmbedderLoadOptions {
  /** Override the model's pooling (default: its `1_Pooling/config.json`, else mean). */
  pooling?: PoolingMode
  /** A lower token limit than the model's own (never higher). */
  maxLength?: number
  /** Never contact the Hugging Face Hub (also `WOTD_OFFLINE=1`). */
  offline?: boolean
  /** Hub revision to resolve (branch, tag or commit). */
  revision?: string
  /**
   * The unified cache: an instance, `{ dir }`, or `false` for none. Default: a cache in
   * `$WOTD_CACHE` or `~/.cache/wotd/cache`.
   */
  cache?: EmbeddingCache | { dir: string } | false
}

export interface EmbedProgress {
  /** Texts whose vectors are ready (cached ones included). */
  done: number
  total: number
  /** Of `done`, how many came from the cache. */
  cached: number
}

export interface EmbedOptions {
  /** Texts per forward pass (default 64); batches are grouped by token count. */
  batchSize?: number
  onProgress?: (p: EmbedProgress) => void
  /** Aborting stops the work between batches with a `CancelledError`. */
  signal?: AbortSignal
}

export interface EmbedResult {
  /** One L2-normalised vector per input text, row i for text i: the matrix itself. */
  embeddings: Embeddings
  /** Row i of `embeddings` as a view (no copy), for callers that want one array per text. */
  vectors: Float32Array[]
  /** Whether text i was cut at the model's max length (its tail did not count). */
  truncated: boolean[]
  /** Tokens text i became, special tokens included (after truncation). */
  tokenCounts: number[]
  /** Cache hits and misses of this call. */
  cache: { hits: number; misses: number }
}

/** The mean of unit vectors, renormalised: one vector for a set of words. */
export function meanVector(vectors: readonly Float32Array[]): Float32Array {
  if (vectors.length === 0) throw new InvalidInputError('cannot average an empty list of vectors')
  const dim = vectors[0].length
  const acc = new Float64Array(dim)
  for (const v of vectors) {
    if (v.length !== dim) throw new InvalidInputError(`vectors of different lengths (${dim} and ${v.length})`)
    for (let i = 0; i < dim; i++) acc[i] += v[i]
  }
  let norm = 0
  for (let i = 0; i < dim; i++) norm += acc[i] * acc[i]
  norm = Math.sqrt(norm)
  // Opposite vectors can cancel exactly; a zero mean has no direction to report.
  if (norm < 1e-12) throw new InvalidInputError('the vectors cancel out: their mean has no direction')
  const out = new Float32Array(dim)
  for (let i = 0; i < dim; i++) out[i] = acc[i] / norm
  return out
}

/** Cosine similarity (dot product for the unit vectors this module returns). */
export function cosine(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new InvalidInputError(`vectors of different lengths (${a.length} and ${b.length})`)
  let dot = 0
  let na = 0
  let nb = 0
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i]
    na += a[i] * a[i]
    nb += b[i] * b[i]
  }
  return dot / (Math.sqrt(na * nb) || 1)
}

/** Model ids a profile name or model id stands for, in order of preference. */
function candidates(profileOrModelId: string): string[] {
  return isProfileName(profileOrModelId) ? [...PROFILES[profileOrModelId].embedder] : [profileOrModelId]
}

export class BGEEmbedder {
  private constructor(
    private readonly inner: NativeEmbedder,
    readonly cache: EmbeddingCache | undefined,
  ) {}

  /**
   * Loads an embedder: a profile (`compact`: bge-small-en-v1.5, else all-MiniLM-L6-v2;
   * `full`: bge-m3), a Hugging Face model id, or a local model directory. For a profile, the
   * first candidate already on this machine wins; otherwise each is tried in order (which
   * may download from the Hub when it is reachable).
   */
  static async load(profileOrModelId = 'compact', opts: EmbedderLoadOptions = {}): Promise<BGEEmbedder> {
    const nativeOpts = { pooling: opts.pooling, maxLength: opts.maxLength, offline: opts.offline, revision: opts.revision }
    const cache = opts.cache === false ? undefined : opts.cache instanceof EmbeddingCache ? opts.cache : new EmbeddingCache(opts.cache ?? {})
    const ids = candidates(profileOrModelId)
    if (ids.length > 1) {
      for (const id of ids) {
        if (await findModel(id)) {
          await verifyModel(id)
          return new BGEEmbedder(await awaitNative(native().NativeEmbedder.load(id, nativeOpts)), cache)
        }
      }
    }
    const failures: unknown[] = []
    for (const id of ids) {
      try {
        await verifyModel(id)
        return new BGEEmbedder(await awaitNative(native().NativeEmbedder.load(id, nativeOpts)), cache)
      } catch (err) {
        if (!(err instanceof ModelNotFoundError) || ids.length === 1) throw err
        failures.push(err)
      }
    }
    throw new ModelNotFoundError(
      `no embedder of profile ${profileOrModelId} is available (tried ${ids.join(', ')}); fetch one with \`npx wotd models pull\``,
      { cause: failures[failures.length - 1] },
    )
  }

  /** The same loaded model with another cache (or none): no second copy of the weights. */
  withCache(cache: EmbeddingCache | undefined): BGEEmbedder {
    return new BGEEmbedder(this.inner, cache)
  }

  /** The model directory the weights were loaded from. */
  get dir(): string {
    return this.inner.dir
  }

  /** Width of the vectors (read from the model's config). */
  get dimension(): number {
    return this.inner.dimension
  }

  get modelId(): string {
    return this.inner.modelId
  }

  /** An HF commit, the sha256 of pulled weights, or a local file fingerprint. */
  get revision(): string {
    return this.inner.revision
  }

  get pooling(): PoolingMode {
    return this.inner.pooling as PoolingMode
  }

  /** Tokens per text, special tokens included; longer texts are truncated and reported. */
  get maxLength(): number {
    return this.inner.maxLength
  }

  /** What keys this embedder's vectors in the cache. */
  get space(): EmbeddingSpace {
    return { modelId: this.modelId, revision: this.revision, pooling: this.pooling, normalize: this.inner.normalize, dim: this.dimension }
  }

  /** Token ids exactly as the model sees a text (surrounding whitespace stripped). */
  tokenize(text: string): { ids: number[]; truncated: boolean } {
    return callNative(() => this.inner.tokenize(text))
  }

  /** Cache counters since the cache was created (undefined without a cache). */
  cacheStats(): CacheStats | undefined {
    return this.cache?.stats()
  }

  /** One L2-normalised vector per text, in order. An empty list gives `[]`. */
  async embed(texts: readonly string[], opts: EmbedOptions = {}): Promise<Float32Array[]> {
    return (await this.embedDetailed(texts, opts)).vectors
  }

  /** `embed` plus truncation, token counts and this call's cache hits. */
  async embedDetailed(texts: readonly string[], opts: EmbedOptions = {}): Promise<EmbedResult> {
    if (!Array.isArray(texts) || texts.some((t) => typeof t !== 'string')) {
      throw new InvalidInputError('texts must be an array of strings')
    }
    const batchSize = opts.batchSize ?? 64
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new InvalidInputError(`batchSize must be a positive integer, got ${batchSize}`)
    const { signal, onProgress } = opts
    if (signal?.aborted) throw new CancelledError('embedding cancelled before it started', { cause: signal.reason })
    const n = texts.length
    const dim = this.dimension
    const embeddings: Embeddings = { data: new Float32Array(n * dim), rows: n, dim }
    const truncated = new Array<boolean>(n).fill(false)
    const tokenCounts = new Array<number>(n).fill(0)
    if (n === 0) return { embeddings, vectors: [], truncated: [], tokenCounts: [], cache: { hits: 0, misses: 0 } }

    const space = this.space
    // Which texts need the model: cache misses, each distinct text once.
    let hits = 0
    const missing = new Map<string, number[]>()
    const cached = this.cache ? await this.cache.lookup(space, texts) : undefined
    for (let i = 0; i < n; i++) {
      const c = cached?.[i]
      if (c) {
        embeddings.data.set(c.vector, i * dim)
        truncated[i] = c.truncated
        tokenCounts[i] = c.tokenCount
        hits++
      } else {
        const at = missing.get(texts[i])
        if (at) at.push(i)
        else missing.set(texts[i], [i])
      }
    }
    let reported = -1
    const report = (done: number) => {
      if (!onProgress || done <= reported) return
      reported = done
      onProgress({ done, total: n, cached: hits })
    }
    if (hits > 0) report(hits)

    const todo = [...missing.keys()]
    if (todo.length > 0) {
      const { token, release } = cancelTokenFor(signal)
      let out: { vectors: Float32Array; dim: number; truncated: boolean[]; tokenCounts: number[] }
      try {
        // Progress counts texts, so a batch of distinct texts reports all their duplicates.
        const progress = (done: number) => {
          let covered = hits
          for (let k = 0; k < done && k < todo.length; k++) covered += missing.get(todo[k])!.length
          report(covered)
        }
        out = await awaitNative(
          this.inner.embed(todo, batchSize, onProgress ? (done: number) => progress(done) : undefined, token),
        )
      } catch (err) {
        if (err instanceof CancelledError && signal?.aborted) throw new CancelledError('embedding cancelled', { cause: signal.reason })
        throw err
      } finally {
        release()
      }
      // An abort that came after the last batch still wins: the caller asked not to go on.
      if (signal?.aborted) throw new CancelledError('embedding cancelled', { cause: signal.reason })
      if (out.dim !== dim) throw new InvalidInputError(`the model gave ${out.dim}-d vectors, its config says ${dim}`)
      // The native rows go straight into their places in the one matrix (a duplicate text fills
      // each of its rows); the cache is written from views of those rows.
      const fresh: Embeddings = { data: out.vectors, rows: todo.length, dim }
      todo.forEach((text, k) => {
        for (const i of missing.get(text)!) {
          embeddings.data.set(row(fresh, k), i * dim)
          truncated[i] = out.truncated[k]
          tokenCounts[i] = out.tokenCounts[k]
        }
      })
      if (this.cache) {
        await this.cache.save(
          space,
          todo.map((text, k) => ({ text, vector: row(fresh, k), truncated: out.truncated[k], tokenCount: out.tokenCounts[k] })),
        )
      }
    }
    report(n)
    return { embeddings, vectors: rows(embeddings), truncated, tokenCounts, cache: { hits, misses: n - hits } }
  }

  /** Per-word vectors: each distinct word once, keyed by the word as given. */
  async embedWords(words: readonly string[], opts: EmbedOptions = {}): Promise<Map<string, Float32Array>> {
    const distinct = [...new Set(words)]
    const vectors = await this.embed(distinct, opts)
    return new Map(distinct.map((w, i) => [w, vectors[i]]))
  }

  /**
   * One vector for a corpus or a person's liked words: the mean of the word vectors,
   * renormalised. An empty list is an `InvalidInputError`.
   */
  async preferenceVector(words: readonly string[], opts: EmbedOptions = {}): Promise<Float32Array> {
    if (words.length === 0) throw new InvalidInputError('preferenceVector needs at least one word')
    return meanVector(await this.embed(words, opts))
  }
}
