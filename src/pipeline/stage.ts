/**
 * A stage of a run as data: the hash of what decides its output, how to make the output, and
 * how to read it back when the stage finished earlier with the same inputs. `runStage` is the
 * one place that decides between the two and keeps the run document's stage record.
 */
import { CancelledError } from '../errors.js'
import type { ArtifactRef } from '../store/index.js'
import type { StageName } from './progress.js'
import { checkCancelled, stageRecord, type RunContext } from './run-context.js'

export interface Stage<T> {
  readonly name: StageName
  /** Everything the output depends on, hashed: a finished stage with this hash is restored. */
  readonly inputHash: string
  /** Makes the output (writing its artifacts through `ctx.artifacts`) and its metrics. */
  run(): Promise<{ value: T; metrics: Record<string, unknown> }>
  /** The output of an earlier run of the stage, from its artifacts. */
  restore(): Promise<T>
}

export interface StageResult {
  status: 'completed' | 'skipped'
  inputHash: string
  metrics: Record<string, unknown>
  timings: Record<string, number>
  artifacts: Record<string, ArtifactRef>
}

/**
 * Runs a stage unless it finished earlier with the same inputs and every artifact it wrote is
 * still whole; records what happened in `results`. A failure marks the stage (and the run)
 * failed, or pending when it was a cancellation, so the next run resumes there.
 */
export async function runStage<T>(ctx: RunContext, stage: Stage<T>, results: Partial<Record<StageName, StageResult>>): Promise<T> {
  const { name, inputHash } = stage
  const now = () => new Date().toISOString()
  checkCancelled(ctx, name)
  const rec = stageRecord(ctx, name)
  const finished = rec.status === 'completed' && rec.inputHash === inputHash
  const damaged = finished ? await ctx.artifacts.damaged(name) : []
  if (damaged.length > 0) ctx.emit({ stage: name, phase: 'redo', message: `${name}: ${damaged.join('; ')}; doing the stage again` })
  else if (finished) {
    ctx.emit({ stage: name, phase: 'skip' })
    const value = await stage.restore()
    results[name] = { status: 'skipped', inputHash, metrics: rec.metrics ?? {}, timings: rec.timings ?? {}, artifacts: rec.artifacts ?? {} }
    return value
  }
  const t0 = Date.now()
  Object.assign(rec, { status: 'running', inputHash, startedAt: now() })
  delete rec.error
  await ctx.save()
  ctx.emit({ stage: name, phase: 'start' })
  try {
    const { value, metrics } = await stage.run()
    Object.assign(rec, { status: 'completed', metrics, timings: { total: Date.now() - t0 }, finishedAt: now() })
    await ctx.save()
    results[name] = { status: 'completed', inputHash, metrics, timings: rec.timings!, artifacts: rec.artifacts ?? {} }
    ctx.emit({ stage: name, phase: 'done' })
    return value
  } catch (err) {
    const cancelled = err instanceof CancelledError || ctx.signal?.aborted
    Object.assign(rec, { status: cancelled ? 'pending' : 'failed', error: err instanceof Error ? err.message : String(err) })
    ctx.run.status = cancelled ? 'cancelled' : 'failed'
    ctx.run.error = rec.error
    await ctx.save().catch(() => {})
    throw err
  }
}
