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
import { guardWrites, openStore, type RunDoc, type Store } from '../store/index.js'
import { RunArtifacts } from './artifacts.js'
import { hashOf, trainingConfig, type TrainingConfig, type TrainingConfigInput } from './config.js'
import { STAGES, type PipelineProgress, type StageName } from './progress.js'
import type { RunContext } from './run-context.js'
import { runStage, type StageResult } from './stage.js'
import { openCatalogueIndex, catalogueStage } from './stages/catalogue.js'
import { corpusStage } from './stages/corpus.js'
import { dslStage } from './stages/dsl.js'
import { embedStage, loadEmbedder } from './stages/embed.js'
import { rvqStage } from './stages/rvq.js'
import { runWorkDir } from './workdir.js'

export type { StageResult } from './stage.js'

export interface TrainOptions {
  onProgress?: (p: PipelineProgress) => void
  signal?: AbortSignal
  /** Wait for another trainer holding the store's lock instead of failing at once. */
  waitForLock?: boolean
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

    try {
      const corpus = await runStage(ctx, corpusStage(ctx), results)
      const embedder = await loadEmbedder(ctx)
      const embed = embedStage(ctx, corpus, embedder)
      const vectors = await runStage(ctx, embed, results)
      const rvq = rvqStage(ctx, corpus.words, vectors, embed.inputHash, embedder.modelId)
      const { ids, encoder } = await runStage(ctx, rvq, results)
      await runStage(ctx, catalogueStage(ctx, rvq.inputHash, encoder, embedder), results)
      const openIndex = async () =>
        openCatalogueIndex({ artifacts: ctx.artifacts, encoder: await encoder(), embedder, trainingWords: corpus.words.map((w) => w.word), signal: opts.signal })
      await runStage(ctx, dslStage(ctx, corpus.words, ids, rvq.inputHash, openIndex), results)

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
