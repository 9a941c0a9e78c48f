/**
 * Stage 4 training in TypeScript: `DSLTrainer` tunes a LoRA adapter on a causal LM so that a
 * semantic-ID pattern prompts words carrying that ID. The loop runs in Rust (`NativeDslTrainer`);
 * this class adds the manifest that makes a run resumable and a trained model portable:
 *
 *     outDir/
 *       wotd_dsl.json        options, training data and words, result   (this module)
 *       dsl_prompt.json      how prompts were worded                     (the native trainer)
 *       adapter/             PEFT adapter (adapter_model.safetensors + adapter_config.json)
 *       best-adapter/        adapter at the best validation loss, when evaluated
 *       checkpoint-NNN/      resumable state
 */
import { cp, mkdir, readFile, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { writeFileAtomic } from '../files/atomic.js'
import { awaitNative, CancelledError, InvalidInputError } from '../errors.js'
import { native } from '../native.js'
import { toPatternText } from '../semantic/pattern.js'
import { cancelTokenFor } from '../cancel.js'
import { DEFAULT_DSL_BASE_MODEL, DSL_MANIFEST, PROMPT_NOTE, WordGenerator, type WordGeneratorLoadOptions } from './generator.js'

type NativeTrainOptions = import('../../index.js').DslTrainOptions
type NativeTrainResult = import('../../index.js').DslTrainResult
export type DSLTrainProgress = import('../../index.js').DslTrainProgress

/** A word and its semantic ID `[style, complexity, era, variation]` (codes 0-31). */
export interface DSLWord {
  word: string
  id: readonly number[]
}

/** A ready-made example: a pattern and the words that answer it. */
export interface DSLExample {
  pattern: string | readonly (number | null)[]
  words: readonly string[]
  /** Words of the region named in the request (set expansion); default none. */
  seeds?: readonly string[]
}

/** Labeled words (patterns of every kind are sampled from their IDs) or ready-made examples. */
export type DSLTrainData = readonly DSLWord[] | readonly DSLExample[]

export interface DSLLoraOptions {
  /** Default 8. */
  rank?: number
  /** Default 16. */
  alpha?: number
  /** Default 0.05. */
  dropout?: number
  /** PEFT module names or `['all-linear']`; default every attention and MLP projection. */
  targetModules?: string[]
}

/** What shapes a run (stored in the manifest so `resume` repeats it exactly). */
export interface DSLRunOptions {
  /** Base LM: Hugging Face id or local path. Default: the compact profile's decoder (SmolLM2-135M-Instruct). */
  baseModel?: string
  lora?: DSLLoraOptions
  /** Optimizer updates; with `epochs` too, whichever ends first. Default: 3 epochs. */
  steps?: number
  epochs?: number
  batchSize?: number
  gradAccum?: number
  /** Peak learning rate. Default 2e-4 (the native trainer's); the pipeline's `dsl.learningRate` is 1e-3. */
  lr?: number
  minLr?: number
  warmupSteps?: number
  weightDecay?: number
  maxGradNorm?: number
  evalEvery?: number
  patience?: number
  seed?: number
  /** Tokens per example at most (prompt + answer); default 256. */
  maxLength?: number
  /** Name attribute values in prompts (aligned codebooks). Default false. */
  aligned?: boolean
  attributeNames?: string[]
  attributeValues?: string[][]
  /** Pattern shapes sampled from labeled words: full, prefix3, prefix2, style, complexity, era. */
  kinds?: string[]
  maxPatternsPerKind?: number
  variantsPerPattern?: number
  /** Words per answer at most (default 12). */
  maxWords?: number
  /** Words of each region named in its request, the answer continuing them (default 0). */
  seedWords?: number
  /** A system message before every request (default: the chat template's own). */
  systemPrompt?: string
  /** Share of patterns held out for validation (default 0.1). */
  validationFraction?: number
}

/** Where and how a run reports; may change between a run and its resume. */
export interface DSLSessionOptions {
  checkpointEvery?: number
  keepCheckpoints?: number
  /**
   * Activation checkpointing: recompute every n-th layer's activations in the backward pass
   * instead of keeping them (the same gradients, less memory, one more forward pass of those
   * layers). `true` = every layer, `false` or 0 = off, a number n = every n-th layer.
   * Default 2 here (every second layer); the pipeline's `dsl.gradientCheckpointing` defaults to 1
   * (SmolLM2, batch 8: 1.92 GB at 167 tokens/s for 2, 1.40 GB at 153 for 1).
   */
  gradientCheckpointing?: boolean | number
  /**
   * Stop after this optimizer update with a checkpoint and the adapter written, resolving with
   * `stopped: 'paused'`; `resume(outDir)` goes on from there. For callers that judge the model
   * between segments (the pipeline scores held-out precision every `evalEvery` steps).
   */
  pauseAtStep?: number
  /** Never contact the Hugging Face Hub. */
  offline?: boolean
  revision?: string
  onProgress?: (p: DSLTrainProgress) => void
  /**
   * Aborting stops training after the current update and writes a checkpoint; the promise
   * then resolves with `stopped: 'cancelled'` (resume with `resume(outDir)`).
   */
  signal?: AbortSignal
}

export interface DSLTrainOptions extends DSLRunOptions, DSLSessionOptions {
  /** Checkpoints, adapters and the manifest go here. */
  outDir: string
}

export type DSLResumeOptions = DSLSessionOptions

export interface DSLTrainResult extends NativeTrainResult {
  outDir: string
  baseModel: string
}

interface Manifest {
  format: 1
  baseModel: string
  createdAt: string
  run: DSLRunOptions
  data: { words: DSLWord[] } | { examples: { pattern: string; words: string[]; seeds?: string[] }[] }
  trainingWords: string[]
  /** Relative to the manifest's directory. */
  adapterDir: string
  result: DSLTrainResult | null
}

function isWordList(data: DSLTrainData): data is readonly DSLWord[] {
  return data.length > 0 && 'id' in (data[0] as object)
}

function normaliseData(data: DSLTrainData): Manifest['data'] {
  if (!Array.isArray(data) || data.length === 0) throw new InvalidInputError('training data must be a non-empty array of words or examples')
  if (isWordList(data)) {
    return {
      words: data.map((w, i) => {
        if (typeof w.word !== 'string' || !Array.isArray(w.id) || w.id.length !== 4) {
          throw new InvalidInputError(`word ${i} needs { word: string, id: [4 codes] }`)
        }
        return { word: w.word, id: [...w.id] }
      }),
    }
  }
  return {
    examples: (data as readonly DSLExample[]).map((e, i) => {
      if (!Array.isArray(e.words)) throw new InvalidInputError(`example ${i} needs { pattern, words: string[] }`)
      if (e.seeds !== undefined && !Array.isArray(e.seeds)) throw new InvalidInputError(`example ${i}: seeds must be an array of words`)
      return { pattern: toPatternText(e.pattern), words: [...e.words], ...(e.seeds?.length ? { seeds: [...e.seeds] } : {}) }
    }),
  }
}

function trainingWordsOf(data: Manifest['data']): string[] {
  const all = 'words' in data ? data.words.map((w) => w.word) : data.examples.flatMap((e) => e.words)
  return [...new Set(all)]
}

function nativeOptions(m: Manifest, outDir: string, s: DSLSessionOptions, resume: boolean): NativeTrainOptions {
  const r = m.run
  return {
    baseModel: m.baseModel,
    revision: s.revision,
    offline: s.offline,
    ...('words' in m.data ? { words: m.data.words.map((w) => ({ word: w.word, id: [...w.id] })) } : { examples: m.data.examples }),
    aligned: r.aligned,
    attributeNames: r.attributeNames,
    attributeValues: r.attributeValues,
    kinds: r.kinds,
    maxPatternsPerKind: r.maxPatternsPerKind,
    variantsPerPattern: r.variantsPerPattern,
    maxWords: r.maxWords,
    seedWords: r.seedWords,
    systemPrompt: r.systemPrompt,
    validationFraction: r.validationFraction,
    maxLength: r.maxLength,
    lora: r.lora,
    steps: r.steps,
    epochs: r.epochs,
    batchSize: r.batchSize,
    gradAccum: r.gradAccum,
    lr: r.lr,
    minLr: r.minLr,
    warmupSteps: r.warmupSteps,
    weightDecay: r.weightDecay,
    maxGradNorm: r.maxGradNorm,
    evalEvery: r.evalEvery,
    patience: r.patience,
    checkpointEvery: s.checkpointEvery,
    keepCheckpoints: s.keepCheckpoints,
    gradientCheckpointing: recomputeEveryNthLayer(s.gradientCheckpointing),
    pauseAtStep: s.pauseAtStep,
    outDir,
    seed: r.seed,
    resume,
  }
}

/** `gradientCheckpointing` as the native option: every n-th layer, 0 for never. */
export function recomputeEveryNthLayer(v: boolean | number | undefined): number | undefined {
  if (v === undefined) return undefined
  if (typeof v === 'boolean') return v ? 1 : 0
  if (!Number.isInteger(v) || v < 0) throw new InvalidInputError(`gradientCheckpointing must be true, false or a whole number of layers >= 0, got ${v}`)
  return v
}

async function writeManifest(dir: string, m: Manifest): Promise<void> {
  await writeFileAtomic(join(dir, DSL_MANIFEST), JSON.stringify(m, null, 2) + '\n', { mode: 0o644 })
}

async function readManifest(dir: string): Promise<Manifest> {
  const path = join(dir, DSL_MANIFEST)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new InvalidInputError(`${dir} holds no ${DSL_MANIFEST}: not a DSLTrainer output or saved model`, { cause: err })
  }
  const m = JSON.parse(text) as Manifest
  if (m.format !== 1) throw new InvalidInputError(`${path}: unknown manifest format ${String(m.format)}`)
  return m
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p)
    return true
  } catch {
    return false
  }
}

const RUN_KEYS: readonly (keyof DSLRunOptions)[] = [
  'baseModel', 'lora', 'steps', 'epochs', 'batchSize', 'gradAccum', 'lr', 'minLr', 'warmupSteps', 'weightDecay',
  'maxGradNorm', 'evalEvery', 'patience', 'seed', 'maxLength', 'aligned', 'attributeNames', 'attributeValues',
  'kinds', 'maxPatternsPerKind', 'variantsPerPattern', 'maxWords', 'seedWords', 'systemPrompt', 'validationFraction',
]

/** Tunes, resumes, saves and loads DSL models (LoRA adapters over a causal LM). */
export class DSLTrainer {
  private manifest: Manifest | undefined
  private dir: string | undefined

  /**
   * Trains an adapter on labeled words (`{ word, id }`) or ready-made examples
   * (`{ pattern, words }`). Resolves when the run ends: done, stopped early, or cancelled
   * through `signal` (then with `stopped: 'cancelled'` and a checkpoint to resume from).
   */
  async train(data: DSLTrainData, opts: DSLTrainOptions): Promise<DSLTrainResult> {
    if (!opts || typeof opts.outDir !== 'string' || opts.outDir === '') throw new InvalidInputError('train needs opts.outDir')
    const outDir = resolve(opts.outDir)
    const run: DSLRunOptions = {}
    for (const k of RUN_KEYS) if (opts[k] !== undefined) (run as Record<string, unknown>)[k] = opts[k]
    const normalised = normaliseData(data)
    const m: Manifest = {
      format: 1,
      baseModel: opts.baseModel ?? DEFAULT_DSL_BASE_MODEL,
      createdAt: new Date().toISOString(),
      run,
      data: normalised,
      trainingWords: trainingWordsOf(normalised),
      adapterDir: 'adapter',
      result: null,
    }
    await mkdir(outDir, { recursive: true })
    // Written before training, so an interrupted run can be resumed from its directory alone.
    await writeManifest(outDir, m)
    return this.run(m, outDir, opts, false)
  }

  /**
   * Continues the run in `outDir` from its newest complete checkpoint (a fresh start when
   * there is none), with the options and data it was started with.
   */
  async resume(outDir: string, opts: DSLResumeOptions = {}): Promise<DSLTrainResult> {
    const dir = resolve(outDir)
    const m = await readManifest(dir)
    return this.run(m, dir, opts, true)
  }

  /**
   * `resume(outDir)` when `outDir` holds a run of these same data and options (a run killed
   * earlier, or paused with `pauseAtStep`), else `train(data, opts)`: what a caller that may be
   * restarted at any point wants. Session options (`pauseAtStep`, progress, signal) apply
   * either way.
   */
  async trainOrResume(data: DSLTrainData, opts: DSLTrainOptions): Promise<DSLTrainResult> {
    const outDir = resolve(opts.outDir)
    const prior = await readManifest(outDir).catch(() => undefined)
    const run: DSLRunOptions = {}
    for (const k of RUN_KEYS) if (opts[k] !== undefined) (run as Record<string, unknown>)[k] = opts[k]
    const same =
      prior !== undefined &&
      prior.baseModel === (opts.baseModel ?? DEFAULT_DSL_BASE_MODEL) &&
      JSON.stringify(prior.run) === JSON.stringify(run) &&
      JSON.stringify(prior.data) === JSON.stringify(normaliseData(data))
    return same ? this.resume(outDir, opts) : this.train(data, opts)
  }

  private async run(m: Manifest, outDir: string, s: DSLSessionOptions, resume: boolean): Promise<DSLTrainResult> {
    if (s.signal?.aborted) throw new CancelledError('training was cancelled before it started')
    const trainer = new (native().NativeDslTrainer)(nativeOptions(m, outDir, s, resume))
    const { token, release } = cancelTokenFor(s.signal)
    const onProgress = s.onProgress
    let r: NativeTrainResult
    try {
      r = await awaitNative(
        trainer.train(
          onProgress
            ? (p: DSLTrainProgress) => {
                // A throwing callback must not take the training thread's callback queue down.
                try {
                  onProgress(p)
                } catch (err) {
                  queueMicrotask(() => {
                    throw err
                  })
                }
              }
            : undefined,
          token,
        ),
      )
    } finally {
      release()
    }
    const result: DSLTrainResult = { ...r, outDir, baseModel: m.baseModel }
    const done: Manifest = { ...m, adapterDir: 'adapter', result }
    await writeManifest(outDir, done)
    this.manifest = done
    this.dir = outDir
    return result
  }

  /**
   * Copies the trained model (adapter, best adapter, prompt note, manifest with the training
   * words) to `dir`, which `DSLTrainer.load` and `WordGenerator.load({ adapterDir })` read.
   */
  async save(dir: string): Promise<void> {
    const { manifest, dir: from } = this.trained()
    const to = resolve(dir)
    await mkdir(to, { recursive: true })
    const adapter = manifest.result?.adapterDir ?? join(from, manifest.adapterDir)
    if (to !== from) {
      await cp(adapter, join(to, 'adapter'), { recursive: true })
      const best = manifest.result?.bestAdapterDir
      if (best && (await exists(best))) await cp(best, join(to, 'best-adapter'), { recursive: true })
      for (const f of [PROMPT_NOTE]) if (await exists(join(from, f))) await cp(join(from, f), join(to, f))
    }
    await writeManifest(to, { ...manifest, adapterDir: 'adapter' })
  }

  /** A trained model saved by `save` (or a training run's `outDir`). */
  static async load(dir: string): Promise<DSLTrainer> {
    const d = resolve(dir)
    const m = await readManifest(d)
    const t = new DSLTrainer()
    t.manifest = m
    t.dir = d
    return t
  }

  private trained(): { manifest: Manifest; dir: string } {
    if (!this.manifest || !this.dir) throw new InvalidInputError('this DSLTrainer has not trained or loaded a model yet')
    return { manifest: this.manifest, dir: this.dir }
  }

  /** The adapter to generate with (the final one of the run). */
  get adapterDir(): string {
    const { manifest, dir } = this.trained()
    const r = manifest.result
    // A saved copy keeps `adapter/` beside the manifest; a run's directory names it in the result.
    return r && resolve(r.outDir) === dir ? r.adapterDir : join(dir, manifest.adapterDir)
  }

  get baseModel(): string {
    return this.trained().manifest.baseModel
  }

  /** Distinct words the model was trained on (what `novelOnly` leaves out). */
  get trainingWords(): readonly string[] {
    return this.trained().manifest.trainingWords
  }

  get result(): DSLTrainResult | undefined {
    return this.manifest?.result ?? undefined
  }

  /** A generator over this model (training words known, so `novelOnly` works). */
  async generator(opts: Omit<WordGeneratorLoadOptions, 'adapterDir' | 'baseModel' | 'trainingWords'> = {}): Promise<WordGenerator> {
    return WordGenerator.load({ ...opts, adapterDir: this.adapterDir, baseModel: this.baseModel, trainingWords: this.trainingWords })
  }
}
