/**
 * Stage 4: the DSL model. A LoRA adapter on the profile's decoder learns to answer ID
 * patterns with matching words. Checkpoints live in the run's local work folder, so a run
 * killed here resumes from its last complete checkpoint; the finished adapter (PEFT files)
 * goes to the store as artifacts.
 */
import { verifyModel } from '../../models/verify.js'
import { existsSync } from 'node:fs'
import { cp, mkdir, readFile, rm } from 'node:fs/promises'
import { writeFileAtomic } from '../../files/atomic.js'
import { join } from 'node:path'
import { CancelledError, InvalidInputError, ModelNotFoundError } from '../../errors.js'
import { DSLTrainer, type DSLTrainOptions, type DSLTrainResult } from '../../dsl/trainer.js'
import { attributeOptions, PROMPT_NOTE, WordGenerator } from '../../dsl/generator.js'
import { createRng, shuffled } from '../../corpus/random.js'
import { wordsForPattern, type CatalogueIndex } from '../../recommend/index.js'
import { findModel } from '../../models/locate.js'
import { isProfileName, PROFILES } from '../../models/profiles.js'
import type { SemanticId } from '../../semantic/index.js'
import type { WOTDWord } from '../../types.js'
import { hashOf, type TrainingConfig } from '../config.js'
import type { RunContext } from '../run-context.js'
import type { Stage } from '../stage.js'

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

/** Words the LM is asked for per validation pattern when measuring its precision. */
const PRECISION_WORDS = 8
/** Validation patterns the precision is measured on. */
const PRECISION_PATTERNS = 12

/**
 * Held-out attribute precision of an adapter: for validation regions (3-level prefixes of
 * training IDs), the share of requested words the LM gives as real, novel catalogue words
 * whose values (by the run's calibrated predictors) are the requested ones. Seeded, so equal
 * adapters score equally.
 */
export async function lmPrecision(index: CatalogueIndex, patterns: readonly (number | null)[][], gen: WordGenerator, seed: number): Promise<number> {
  let good = 0
  for (const fields of patterns) {
    const seeds = wordsForPattern(index, fields, { count: 3 }).map((e) => e.word)
    let words: string[]
    try {
      words = (await gen.generate(fields, { count: PRECISION_WORDS, seed, seeds, maxRounds: 2 })).words
    } catch (err) {
      // A model whose context cannot hold the request answers nothing right.
      if (err instanceof InvalidInputError) continue
      throw err
    }
    for (const w of words) {
      const row = index.catalogue.indexOf(w)
      if (row === undefined || index.training[row]) continue
      const id = index.id(row)
      if (fields.every((f, l) => f === null || (index.encoder.named && l < 3 ? id[l] >> 3 === f >> 3 : id[l] === f))) good++
    }
  }
  return good / (patterns.length * PRECISION_WORDS)
}

/** Seeded validation regions: distinct 3-level prefixes of the training words' IDs. */
function validationPatterns(ids: readonly SemanticId[], seed: number): (number | null)[][] {
  const keys = [...new Set(ids.map((id) => `${id[0]},${id[1]},${id[2]}`))].sort()
  return shuffled(keys, createRng(seed, 'dsl-precision'))
    .slice(0, PRECISION_PATTERNS)
    .map((k) => [...k.split(',').map(Number), null])
}

export async function runDslStage(ctx: RunContext, words: WOTDWord[], ids: SemanticId[], rvqHash: string, index?: CatalogueIndex): Promise<DslOutput> {
  const cfg = ctx.config
  const baseModel = await resolveDecoder(cfg)
  await verifyModel(baseModel)
  // How the work is done (activation checkpointing) does not change what is learned.
  const { gradientCheckpointing, ...dslShape } = cfg.dsl
  const hash = hashOf('dsl', rvqHash, baseModel, cfg.lora, dslShape, cfg.seed)
  const outDir = join(ctx.workDir, 'dsl')
  // Checkpoints made for other inputs must not be resumed.
  const stamp = join(outDir, 'inputs.hash')
  if (existsSync(stamp) && (await readFile(stamp, 'utf8')).trim() !== hash) await rm(outDir, { recursive: true, force: true })
  await mkdir(outDir, { recursive: true })
  await writeFileAtomic(stamp, hash, { mode: 0o644 })

  const byPrecision = cfg.dsl.stopOn === 'precision' && index !== undefined
  const data = words.map((w, i) => ({ word: w.word, id: [...ids[i]] }))
  const options: DSLTrainOptions = {
    baseModel,
    offline: true,
    aligned: cfg.rvq.mode !== 'unsupervised',
    ...attributeOptions(),
    maxWords: cfg.dsl.wordsPerExample,
    seedWords: cfg.dsl.seedWords,
    systemPrompt: cfg.dsl.systemPrompt || undefined,
    maxPatternsPerKind: cfg.dsl.maxPatternsPerKind,
    validationFraction: cfg.dsl.validationFraction,
    lora: { rank: cfg.lora.rank, alpha: cfg.lora.alpha, dropout: cfg.lora.dropout, targetModules: cfg.lora.targetModules },
    steps: cfg.dsl.steps,
    batchSize: cfg.dsl.batchSize,
    gradAccum: cfg.dsl.gradAccum,
    gradientCheckpointing,
    lr: cfg.dsl.learningRate,
    warmupSteps: cfg.dsl.warmupSteps,
    weightDecay: cfg.dsl.weightDecay,
    maxGradNorm: cfg.dsl.maxGradNorm,
    evalEvery: cfg.dsl.evalEvery,
    // Stopping on precision is decided here, between segments; the loss alone decides otherwise.
    patience: byPrecision ? 0 : cfg.dsl.patience,
    checkpointEvery: cfg.dsl.checkpointEvery,
    outDir,
    seed: cfg.seed,
    signal: ctx.signal,
    onProgress: (p) =>
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
  }
  const patterns = byPrecision ? validationPatterns(ids, cfg.seed) : []
  const scoresFile = join(outDir, 'precision.json')
  // Scores of earlier segments survive a kill, so a resumed run keeps its best adapter.
  let precision: { step: number; precision: number }[] = existsSync(scoresFile) ? JSON.parse(await readFile(scoresFile, 'utf8')) : []
  const bestDir = join(outDir, 'best-precision-adapter')
  let result: DSLTrainResult
  for (;;) {
    const done = precision.at(-1)?.step ?? 0
    const pauseAtStep = byPrecision ? Math.min(done + cfg.dsl.evalEvery, cfg.dsl.steps) : undefined
    result = await new DSLTrainer().trainOrResume(data, { ...options, pauseAtStep })
    if (result.stopped === 'cancelled') throw new CancelledError('training cancelled during the dsl stage; run it again to resume from the last checkpoint')
    if (!byPrecision) break
    if (result.steps > done) {
      const gen = await WordGenerator.load({ baseModel, adapterDir: result.adapterDir, offline: true, quantize: 'f32' })
      let score: number
      try {
        score = await lmPrecision(index!, patterns, gen, cfg.seed)
      } finally {
        // Half a gigabyte of weights: not left for the garbage collector while training goes on.
        gen.close()
      }
      const best = Math.max(-1, ...precision.map((p) => p.precision))
      if (score > best) {
        await rm(bestDir, { recursive: true, force: true })
        await cp(result.adapterDir, bestDir, { recursive: true })
      }
      precision = [...precision, { step: result.steps, precision: score }]
      await writeFileAtomic(scoresFile, JSON.stringify(precision), { mode: 0o644 })
      ctx.emit({ stage: 'dsl', phase: 'progress', done: result.steps, total: result.totalSteps, message: `held-out precision ${(score * 100).toFixed(1)}% at step ${result.steps}` })
    }
    const bestAt = precision.reduce((b, p) => (p.precision > b.precision ? p : b), precision[0])
    const stale = precision.filter((p) => p.step > bestAt.step).length
    if (result.stopped !== 'paused' || stale >= cfg.dsl.patience) break
  }

  const adapterDir = byPrecision && existsSync(bestDir) ? bestDir : (result.bestAdapterDir ?? result.adapterDir)
  ctx.run.stages.dsl.artifacts = {
    ...(await ctx.artifacts.putFolder('adapter', adapterDir)),
    // The prompt settings the adapter was trained with: generation must word prompts the same.
    ...(existsSync(join(outDir, PROMPT_NOTE)) ? await ctx.artifacts.putFolder('dsl', outDir, [PROMPT_NOTE]) : {}),
  }
  const best = precision.length ? precision.reduce((b, p) => (p.precision > b.precision ? p : b)) : undefined
  return {
    hash,
    baseModel,
    metrics: {
      baseModel,
      steps: result.steps,
      totalSteps: result.totalSteps,
      finalLoss: result.finalLoss ?? null,
      bestValLoss: result.bestValLoss ?? null,
      bestStep: best?.step ?? result.bestStep ?? null,
      stopOn: byPrecision ? 'precision' : 'loss',
      precision: precision.map((p) => ({ step: p.step, precision: p.precision })),
      bestPrecision: best?.precision ?? null,
      stopped: result.stopped === 'paused' ? 'early-stop' : result.stopped,
      tokensPerSecond: result.tokensPerSecond,
      trainExamples: result.trainExamples,
      validationExamples: result.validationExamples,
      trainTokens: result.trainTokens,
      losses: result.losses,
      valLosses: result.valLosses.map((v) => ({ step: v.step, loss: v.loss })),
    },
  }
}

/**
 * Keyed by the codebooks' input, the LoRA and DSL settings, the decoder and the seed. With
 * `stopOn: 'precision'` the held-out precision is judged on catalogue words, so the catalogue
 * index is opened (lazily: only when the stage runs).
 */
export function dslStage(ctx: RunContext, words: WOTDWord[], ids: SemanticId[], rvqInputHash: string, openIndex: () => Promise<CatalogueIndex>): Stage<void> {
  const cfg = ctx.config
  return {
    name: 'dsl',
    inputHash: hashOf('dsl-input', rvqInputHash, cfg.lora, cfg.dsl, cfg.decoderModel ?? cfg.profile, cfg.seed),
    async run() {
      const index = cfg.dsl.stopOn === 'precision' ? await openIndex() : undefined
      const out = await runDslStage(ctx, words, ids, rvqInputHash, index)
      return { value: undefined, metrics: out.metrics }
    },
    restore: async () => undefined,
  }
}
