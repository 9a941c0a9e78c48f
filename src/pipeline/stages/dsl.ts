/**
 * Stage 4: the DSL model. A LoRA adapter on the profile's decoder learns to answer ID
 * patterns with matching words. Checkpoints live in the run's local work folder, so a run
 * killed here resumes from its last complete checkpoint; the finished adapter (PEFT files)
 * goes to the store as artifacts.
 */
import { existsSync } from 'node:fs'
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { awaitNative, CancelledError, ModelNotFoundError } from '../../errors.js'
import { recomputeEveryNthLayer } from '../../dsl/trainer.js'
import { findModel } from '../../models/locate.js'
import { isProfileName, PROFILES } from '../../models/profiles.js'
import { native } from '../../native.js'
import type { SemanticId } from '../../semantic/index.js'
import type { ArtifactRef } from '../../store/index.js'
import type { WOTDWord } from '../../types.js'
import { COMPLEXITIES, ERAS, STYLES } from '../../types.js'
import { hashOf, type TrainingConfig } from '../config.js'
import { artifactName, artifactRole, type RunContext } from '../run-context.js'

export interface DslOutput {
  hash: string
  metrics: Record<string, unknown>
  baseModel: string
}

/** The decoder a config names: an explicit model, else the profile's first one on this machine. */
export async function resolveDecoder(config: Pick<TrainingConfig, 'decoderModel' | 'profile'>): Promise<string> {
  if (config.decoderModel) return config.decoderModel
  const ids = isProfileName(config.profile) ? PROFILES[config.profile].decoder : [config.profile]
  for (const id of ids) if (await findModel(id)) return id
  throw new ModelNotFoundError(`no decoder of the ${config.profile} profile is on this machine (${ids.join(', ')}); fetch it with \`npx wotd models pull --profile ${config.profile}\``)
}

export async function runDslStage(ctx: RunContext, words: WOTDWord[], ids: SemanticId[], rvqHash: string): Promise<DslOutput> {
  const cfg = ctx.config
  const baseModel = await resolveDecoder(cfg)
  // How the work is done (activation checkpointing) does not change what is learned.
  const { gradientCheckpointing, ...dslShape } = cfg.dsl
  const hash = hashOf('dsl', rvqHash, baseModel, cfg.lora, dslShape, cfg.seed)
  const outDir = join(ctx.workDir, 'dsl')
  // Checkpoints made for other inputs must not be resumed.
  const stamp = join(outDir, 'inputs.hash')
  if (existsSync(stamp) && (await readFile(stamp, 'utf8')).trim() !== hash) await rm(outDir, { recursive: true, force: true })
  await mkdir(outDir, { recursive: true })
  await writeFile(stamp, hash)

  const trainer = new (native().NativeDslTrainer)({
    baseModel,
    offline: true,
    words: words.map((w, i) => ({ word: w.word, id: [...ids[i]] })),
    aligned: cfg.rvq.mode === 'aligned',
    attributeNames: ['style', 'complexity', 'era'],
    attributeValues: [[...STYLES], [...COMPLEXITIES], [...ERAS]],
    maxWords: cfg.dsl.wordsPerExample,
    maxPatternsPerKind: cfg.dsl.maxPatternsPerKind,
    validationFraction: cfg.dsl.validationFraction,
    lora: { rank: cfg.lora.rank, alpha: cfg.lora.alpha, dropout: cfg.lora.dropout, targetModules: cfg.lora.targetModules },
    steps: cfg.dsl.steps,
    batchSize: cfg.dsl.batchSize,
    gradAccum: cfg.dsl.gradAccum,
    gradientCheckpointing: recomputeEveryNthLayer(gradientCheckpointing),
    lr: cfg.dsl.learningRate,
    warmupSteps: cfg.dsl.warmupSteps,
    weightDecay: cfg.dsl.weightDecay,
    maxGradNorm: cfg.dsl.maxGradNorm,
    evalEvery: cfg.dsl.evalEvery,
    patience: cfg.dsl.patience,
    checkpointEvery: cfg.dsl.checkpointEvery,
    outDir,
    seed: cfg.seed,
    resume: true,
  })
  const onAbort = () => trainer.cancel()
  ctx.signal?.addEventListener('abort', onAbort, { once: true })
  let result
  try {
    result = await awaitNative(
      trainer.train((p) =>
        ctx.emit({
          stage: 'dsl',
          phase: 'progress',
          done: p.step,
          total: p.totalSteps,
          loss: p.loss,
          valLoss: p.valLoss ?? undefined,
          tokensPerSecond: p.tokensPerSecond,
          etaSeconds: p.etaSeconds,
        }),
      ),
    )
  } finally {
    ctx.signal?.removeEventListener('abort', onAbort)
  }
  if (result.stopped === 'cancelled') throw new CancelledError('training cancelled during the dsl stage; run it again to resume from the last checkpoint')

  const adapterDir = result.bestAdapterDir ?? result.adapterDir
  const artifacts: Record<string, ArtifactRef> = {}
  for (const f of await readdir(adapterDir)) {
    const info = await ctx.store.putArtifact(artifactName(ctx.run.id, `adapter/${f}`), await readFile(join(adapterDir, f)))
    artifacts[artifactRole('adapter', f)] = { name: info.name, sha256: info.sha256, size: info.size }
  }
  for (const f of ['dsl_prompt.json']) {
    const p = join(outDir, f)
    if (existsSync(p)) {
      const info = await ctx.store.putArtifact(artifactName(ctx.run.id, `dsl/${f}`), await readFile(p))
      artifacts[artifactRole('dsl', f)] = { name: info.name, sha256: info.sha256, size: info.size }
    }
  }
  ctx.run.stages.dsl.artifacts = artifacts
  return {
    hash,
    baseModel,
    metrics: {
      baseModel,
      steps: result.steps,
      totalSteps: result.totalSteps,
      finalLoss: result.finalLoss ?? null,
      bestValLoss: result.bestValLoss ?? null,
      bestStep: result.bestStep ?? null,
      stopped: result.stopped,
      tokensPerSecond: result.tokensPerSecond,
      trainExamples: result.trainExamples,
      validationExamples: result.validationExamples,
      trainTokens: result.trainTokens,
      losses: result.losses,
      valLosses: result.valLosses.map((v) => ({ step: v.step, loss: v.loss })),
    },
  }
}
