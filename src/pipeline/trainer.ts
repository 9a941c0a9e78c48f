/**
 * `WOTDTrainer`: runs the four stages (corpus -> embed -> rvq -> dsl) as one resumable run.
 *
 * Each stage's output is keyed by a hash of its inputs. A run with the same config continues
 * the newest unfinished run of that config (or returns the finished one), skipping every
 * stage whose recorded input hash still matches; a run killed in any stage resumes there.
 * Artifacts are written before the run document that points at them (no transactions).
 */
import { randomBytes } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { CancelledError, StoreError } from '../errors.js'
import { guardWrites, openStore, type ArtifactRef, type RunDoc, type Store } from '../store/index.js'
import type { WOTDWord } from '../types.js'
import { hashOf, trainingConfig, type TrainingConfig, type TrainingConfigInput } from './config.js'
import { STAGES, type PipelineProgress, type StageName } from './progress.js'
import { checkCancelled, stageRecord, type RunContext } from './run-context.js'
import { runCorpusStage } from './stages/corpus.js'
import { EMBED_TEXT_SCHEMA, loadEmbedder, runEmbedStage } from './stages/embed.js'
import { RunArtifacts } from './artifacts.js'
import { runDslStage } from './stages/dsl.js'
import { loadRunEncoder, runRvqStage } from './stages/rvq.js'
import { CATALOGUE_STAGE_SCHEMA, openCatalogueIndex, runCatalogueStage } from './stages/catalogue.js'
import { runWorkDir } from './workdir.js'
import type { SemanticEncoder, SemanticId } from '../semantic/index.js'

export interface TrainOptions {
  onProgress?: (p: PipelineProgress) => void
  signal?: AbortSignal
  /** Wait for another trainer holding the store's lock instead of failing at once. */
  waitForLock?: boolean
}

export interface StageResult {
  status: 'completed' | 'skipped'
  inputHash: string
  metrics: Record<string, unknown>
  timings: Record<string, number>
  artifacts: Record<string, ArtifactRef>
}

export interface TrainingResults {
  runId: string
  configHash: string
  config: TrainingConfig
  stages: Record<StageName, StageResult>
  /** Wall time of this invocation, in milliseconds. */
  durationMs: number
  store: { kind: string; location: string }
}

function newRunId(configHash: string): string {
  const t = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-')
  return `run-${t}-${configHash.slice(0, 8)}-${randomBytes(2).toString('hex')}`
}

export class WOTDTrainer {
  readonly config: TrainingConfig
  private readonly storeSpec?: string | Store

  /** Validates the config now (a `ConfigError` names the bad field). */
  constructor(config: TrainingConfigInput = {}, opts: { store?: string | Store } = {}) {
    this.config = trainingConfig(config)
    this.storeSpec = opts.store
  }

  get configHash(): string {
    return hashOf('config', this.config)
  }

  async trainCompletePipeline(opts: TrainOptions = {}): Promise<TrainingResults> {
    const started = Date.now()
    const store = typeof this.storeSpec === 'object' ? this.storeSpec : await openStore(this.storeSpec)
    const ownsStore = typeof this.storeSpec !== 'object'
    try {
      const lock = await store.acquireLock('train', { wait: opts.waitForLock, purpose: 'wotd train' })
      let result: TrainingResults | undefined
      let failure: { err: unknown } | undefined
      try {
        // Every write first confirms the lock is still ours (a paused trainer may have lost it).
        result = await this.runLocked(guardWrites(store, lock), opts, started)
      } catch (err) {
        failure = { err }
      }
      try {
        await lock.release()
      } catch (err) {
        // The training's own failure is the one to report; a release failure alone says why.
        if (!failure) throw new StoreError(`training finished, but releasing the lock "train" of ${store.location} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
      }
      if (failure) throw failure.err
      return result!
    } finally {
      if (ownsStore) await store.close()
    }
  }

  private async runLocked(store: Store, opts: TrainOptions, started: number): Promise<TrainingResults> {
    const configHash = this.configHash
    const now = () => new Date().toISOString()
    const existing = await store.latestRun({ configHash })
    const run: RunDoc =
      existing ?? {
        schema: 1,
        id: newRunId(configHash),
        config: this.config,
        configHash,
        status: 'running',
        stages: {},
        createdAt: now(),
        updatedAt: now(),
      }
    run.status = 'running'
    delete run.error
    const ctx: RunContext = {
      store,
      run,
      artifacts: new RunArtifacts(store, run),
      config: this.config,
      workDir: runWorkDir(run.id),
      signal: opts.signal,
      emit: (p) => opts.onProgress?.(p),
      save: async () => {
        run.updatedAt = now()
        await store.putRun(run)
      },
    }
    await mkdir(ctx.workDir, { recursive: true })
    await ctx.save()
    const results = {} as Record<StageName, StageResult>

    /** Runs a stage unless it finished earlier with the same inputs. */
    const stage = async <T>(
      name: StageName,
      inputHash: string,
      work: () => Promise<{ value: T; metrics: Record<string, unknown> }>,
      restore: () => Promise<T>,
    ): Promise<T> => {
      checkCancelled(ctx, name)
      const rec = stageRecord(ctx, name)
      // A finished stage is skipped only when every artifact it wrote is still whole.
      const damaged = rec.status === 'completed' && rec.inputHash === inputHash ? await ctx.artifacts.damaged(name) : []
      if (damaged.length > 0) opts.onProgress?.({ stage: name, phase: 'redo', message: `${name}: ${damaged.join('; ')}; doing the stage again` })
      else if (rec.status === 'completed' && rec.inputHash === inputHash) {
        opts.onProgress?.({ stage: name, phase: 'skip' })
        const value = await restore()
        results[name] = { status: 'skipped', inputHash, metrics: rec.metrics ?? {}, timings: rec.timings ?? {}, artifacts: rec.artifacts ?? {} }
        return value
      }
      const t0 = Date.now()
      Object.assign(rec, { status: 'running', inputHash, startedAt: now() })
      delete rec.error
      await ctx.save()
      opts.onProgress?.({ stage: name, phase: 'start' })
      try {
        const { value, metrics } = await work()
        Object.assign(rec, { status: 'completed', metrics, timings: { total: Date.now() - t0 }, finishedAt: now() })
        await ctx.save()
        results[name] = { status: 'completed', inputHash, metrics, timings: rec.timings!, artifacts: rec.artifacts ?? {} }
        opts.onProgress?.({ stage: name, phase: 'done' })
        return value
      } catch (err) {
        const cancelled = err instanceof CancelledError || opts.signal?.aborted
        Object.assign(rec, { status: cancelled ? 'pending' : 'failed', error: err instanceof Error ? err.message : String(err) })
        run.status = cancelled ? 'cancelled' : 'failed'
        run.error = rec.error
        await ctx.save().catch(() => {})
        throw err
      }
    }

    try {
      // Stage 1. The corpus is saved per cell by the generator itself, so re-running it is
      // cheap and idempotent; its hash (of the words) keys the later stages.
      const corpusInput = hashOf('corpus-config', this.config.corpus, this.config.seed)
      let words: WOTDWord[] = []
      let corpusHash = ''
      const loadCorpus = async () => {
        const out = await runCorpusStage(ctx)
        words = out.words
        corpusHash = out.hash
        return out
      }
      await stage(
        'corpus',
        corpusInput,
        async () => {
          const out = await loadCorpus()
          return { value: undefined, metrics: { words: out.words.length, cells: out.result.corpora.length, setId: out.setId, provider: out.provider, wordsHash: out.hash, usage: out.result.usage } }
        },
        async () => void (await loadCorpus()),
      )

      // Stage 2.
      const embedder = await loadEmbedder(ctx)
      const embedInput = hashOf('embed', corpusHash, embedder.modelId, embedder.revision, embedder.pooling, embedder.dimension, EMBED_TEXT_SCHEMA)
      const vectors = await stage(
        'embed',
        embedInput,
        async () => {
          const out = await runEmbedStage(ctx, words, corpusHash, embedder)
          return { value: out.vectors, metrics: { words: words.length, model: embedder.modelId, dimension: embedder.dimension, pooling: embedder.pooling, cacheHits: out.cache.hits, cacheMisses: out.cache.misses } }
        },
        async () => (await ctx.artifacts.embeddings()).embeddings,
      )

      // Stage 3.
      const rvqInput = hashOf('rvq', embedInput, this.config.rvq, this.config.seed)
      let encoder: SemanticEncoder | undefined
      const ids = await stage(
        'rvq',
        rvqInput,
        async () => {
          const out = await runRvqStage(ctx, words, vectors, embedInput, embedder.modelId)
          encoder = out.encoder
          return { value: out.ids, metrics: out.metrics }
        },
        async () => {
          const m = await store.getSemanticIds(run.id, words.map((w) => w.word))
          return words.map((w) => m.get(w.word) as SemanticId)
        },
      )

      // The word catalogue, encoded with this run's codebooks.
      const catalogueInput = hashOf('catalogue', rvqInput, CATALOGUE_STAGE_SCHEMA)
      const openIndex = async () => {
        encoder ??= await loadRunEncoder(ctx.artifacts, ctx.workDir)
        return openCatalogueIndex({ artifacts: ctx.artifacts, encoder, embedder, trainingWords: words.map((w) => w.word), signal: opts.signal })
      }
      await stage(
        'catalogue',
        catalogueInput,
        async () => {
          encoder ??= await loadRunEncoder(ctx.artifacts, ctx.workDir)
          const out = await runCatalogueStage(ctx, encoder, embedder)
          return { value: undefined, metrics: out.metrics }
        },
        async () => undefined,
      )

      // Stage 4.
      const dslInput = hashOf('dsl-input', rvqInput, this.config.lora, this.config.dsl, this.config.decoderModel ?? this.config.profile, this.config.seed)
      await stage(
        'dsl',
        dslInput,
        async () => {
          // The LM's held-out precision is judged on catalogue words.
          const index = this.config.dsl.stopOn === 'precision' ? await openIndex() : undefined
          const out = await runDslStage(ctx, words, ids, rvqInput, index)
          return { value: undefined, metrics: out.metrics }
        },
        async () => undefined,
      )

      run.status = 'completed'
      await ctx.save()
    } catch (err) {
      if (opts.signal?.aborted && !(err instanceof CancelledError)) throw new CancelledError('training cancelled; run it again to resume', { cause: err })
      throw err
    }
    for (const s of STAGES) results[s] ??= { status: 'skipped', inputHash: '', metrics: {}, timings: {}, artifacts: {} }
    return {
      runId: run.id,
      configHash,
      config: this.config,
      stages: results,
      durationMs: Date.now() - started,
      store: { kind: store.kind, location: store.location },
    }
  }
}
