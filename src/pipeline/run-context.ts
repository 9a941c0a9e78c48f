/** What every stage of a run gets: the store, the run document, progress and cancellation. */
import type { RunDoc, StageRecord, Store } from '../store/index.js'
import { CancelledError } from '../errors.js'
import type { TrainingConfig } from './config.js'
import type { PipelineProgress, StageName } from './progress.js'

export interface RunContext {
  store: Store
  run: RunDoc
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

/** Artifact names of a run: `runs/<id>/<name>`. */
export function artifactName(runId: string, name: string): string {
  return `runs/${runId}/${name}`
}

/**
 * The key of an artifact in a stage's `artifacts` map: stores refuse `.` in document keys
 * (FerretDB does), so `adapter_model.safetensors` of group `adapter` becomes
 * `adapter_adapter_model_safetensors`; the file name itself stays in the artifact's name.
 */
export function artifactRole(group: string, file: string): string {
  return `${group}_${file.replace(/[^A-Za-z0-9_-]/g, '_')}`
}
