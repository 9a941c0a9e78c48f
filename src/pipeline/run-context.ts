/** What every stage of a run gets: the store, the run document, progress and cancellation. */
import type { RunDoc, StageRecord, Store } from '../store/index.js'
import type { RunArtifacts } from './artifacts.js'
import { CancelledError } from '../errors.js'
import type { TrainingConfig } from './config.js'
import type { PipelineProgress, StageName } from './progress.js'

export interface RunContext {
  store: Store
  run: RunDoc
  /** What the run keeps in the store, by name and role. */
  artifacts: RunArtifacts
  config: TrainingConfig
  /** Local folder for this run's checkpoints and unpacked artifacts. */
  workDir: string
  signal?: AbortSignal
  emit(p: PipelineProgress): void
  /** Saves the run document (after the artifacts it points at). */
  save(): Promise<void>
}

export function checkCancelled(ctx: RunContext, stage: StageName): void {
  if (ctx.signal?.aborted) throw new CancelledError(`training cancelled during the ${stage} stage; run it again to resume`)
}

export function stageRecord(ctx: RunContext, stage: StageName): StageRecord {
  ctx.run.stages[stage] ??= { status: 'pending' }
  return ctx.run.stages[stage]
}
