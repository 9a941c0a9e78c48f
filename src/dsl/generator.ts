/**
 * Stage 4 inference in TypeScript: `WordGenerator` (load a tuned DSL model once, ask for words
 * many times), `generateWordsFromId` (one-shot) and `mergeAdapter` (adapter folded into its
 * base, saved as safetensors or GGUF). Decoding, constraints and parsing run in Rust.
 */
import { readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { awaitNative, callNative, InvalidInputError } from '../errors.js'
import { PROFILES } from '../models/profiles.js'
import { verifyModel } from '../models/verify.js'
import { native } from '../native.js'
import { toPattern, type PatternInput } from '../semantic/pattern.js'
import { attributeVocab } from '../types.js'
import { checkSampling, type SamplingOptions } from './sampling.js'
import { cancelTokenFor } from '../cancel.js'

type NativeWordGenerator = import('../../index.js').NativeWordGenerator

/** The manifest a `DSLTrainer` writes beside its adapter (training words for `novelOnly`). */
export const DSL_MANIFEST = 'wotd_dsl.json'
/** How prompts were worded in training (the native trainer writes it beside the adapter). */
export const PROMPT_NOTE = 'dsl_prompt.json'

/** The DSL options that name attribute values in prompts (aligned runs): the vocabulary of `types.ts` by default. */
export function attributeOptions(vocab = attributeVocab()): { attributeNames: string[]; attributeValues: string[][] } {
  return { attributeNames: vocab.names, attributeValues: vocab.values }
}

/** The default DSL base model: the compact profile's decoder. */
export const DEFAULT_DSL_BASE_MODEL = PROFILES.compact.decoder[0]

export type Quantize = 'f32' | 'q8_0'

export interface WordGeneratorLoadOptions {
  /**
   * Base model: a Hugging Face id or a local model directory / weight file. Default: the
   * adapter's own base (`adapter_config.json`), else the compact profile's decoder.
   */
  baseModel?: string
  /** The tuned adapter (PEFT files), e.g. a `DSLTrainer` result's `adapterDir`. */
  adapterDir?: string
  /** Fold the adapter into the base weights (default true; `q8_0` needs it). */
  merge?: boolean
  /** Decoding weights: `f32` (default) or `q8_0` (about 4x less weight memory traffic). */
  quantize?: Quantize
  /** Never contact the Hugging Face Hub. */
  offline?: boolean
  revision?: string
  /**
   * Name attribute values in prompts. Default: as the adapter was trained (read from the
   * `dsl_prompt.json` the trainer writes beside it).
   */
  aligned?: boolean
  attributeNames?: string[]
  attributeValues?: string[][]
  /**
   * Words `novelOnly` excludes. Default: the training words in the `wotd_dsl.json` a
   * `DSLTrainer` left beside the adapter.
   */
  trainingWords?: readonly string[]
}

export interface GenerateWordsOptions extends SamplingOptions {
  /** Tokens per sample at most (default 64). */
  maxNewTokens?: number
  /** Leave out the training words (`trainingWords`, or the trainer's manifest). */
  novelOnly?: boolean
  /** Overrides the generator's training words for this call. */
  trainingWords?: readonly string[]
  /** Only these words may come out: decoding is constrained to them by a token trie. */
  vocabulary?: readonly string[]
  /** Sampling rounds at most (default 4). */
  maxRounds?: number
  /** Samples decoded together at most (default 16). */
  batchSize?: number
  /**
   * Words of the region to name in the request, for adapters trained with seed words (set
   * expansion): the model continues them. Never returned.
   */
  seeds?: readonly string[]
  /**
   * Aborting stops decoding at its next step and the promise rejects with `CancelledError`;
   * an already-aborted signal rejects before any token is decoded.
   */
  signal?: AbortSignal
}

export interface GenerateWordsResult {
  /** Distinct, lowercased (NFC), well-formed words, at most `count`, in order of generation. */
  words: string[]
  /** Every sampled completion as the model wrote it. */
  raw: string[]
  /** Wall time of the call divided by the words returned. */
  msPerWord: number
  /** Tokens generated over all samples. */
  tokens: number
  elapsedMs: number
  prefillMs: number
  rounds: number
  samples: number
  /** Items that were not words (phrases, numbers, fragments), as written. */
  malformed: string[]
  duplicates: number
  /** Items dropped because they were training words (`novelOnly`). */
  excluded: number
  notInVocabulary: number
  /** The prompt the model saw. */
  prompt: string
}

export type { PatternInput }

function integer(name: string, v: number | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined
  if (!Number.isInteger(v) || v < min || v > max) throw new InvalidInputError(`${name} must be an integer from ${min} to ${max}, got ${v}`)
  return v
}

async function readManifestWords(adapterDir: string | undefined): Promise<string[] | undefined> {
  if (!adapterDir) return undefined
  for (const dir of [adapterDir, dirname(adapterDir)]) {
    let text: string
    try {
      text = await readFile(join(dir, DSL_MANIFEST), 'utf8')
    } catch {
      continue
    }
    const m = JSON.parse(text) as { trainingWords?: unknown }
    if (Array.isArray(m.trainingWords)) return m.trainingWords.map(String)
  }
  return undefined
}

/** A tuned DSL model loaded for generation: load once, generate many. */
export class WordGenerator {
  private constructor(
    private readonly inner: NativeWordGenerator,
    private readonly trainingWords: readonly string[] | undefined,
  ) {}

  static async load(opts: WordGeneratorLoadOptions = {}): Promise<WordGenerator> {
    const base = opts.baseModel ?? (opts.adapterDir ? undefined : DEFAULT_DSL_BASE_MODEL)
    if (opts.quantize !== undefined && opts.quantize !== 'f32' && opts.quantize !== 'q8_0') {
      throw new InvalidInputError(`quantize must be 'f32' or 'q8_0', got ${String(opts.quantize)}`)
    }
    const nativeOpts = {
      merge: opts.merge,
      quantize: opts.quantize,
      offline: opts.offline,
      revision: opts.revision,
      aligned: opts.aligned,
      attributeNames: opts.attributeNames,
      attributeValues: opts.attributeValues,
    }
    // A damaged download must fail here, not give other words.
    if (base) await verifyModel(base)
    const inner = await awaitNative(native().NativeWordGenerator.load(base, opts.adapterDir, nativeOpts))
    const words = opts.trainingWords ? [...opts.trainingWords] : await readManifestWords(opts.adapterDir)
    return new WordGenerator(inner, words)
  }

  /**
   * Words for a semantic-ID pattern (`[2,*,17,*]`, `(2, 9, 17, 5)` or `[2, null, 17, null]`).
   * An invalid pattern throws `InvalidPatternError` before the model is touched.
   */
  async generate(pattern: PatternInput, opts: GenerateWordsOptions = {}): Promise<GenerateWordsResult> {
    const { fields } = toPattern(pattern)
    let exclude: string[] | undefined
    if (opts.novelOnly) {
      const words = opts.trainingWords ?? this.trainingWords
      if (!words) {
        throw new InvalidInputError(
          'novelOnly needs the training words: pass trainingWords, or load an adapter trained by DSLTrainer (its wotd_dsl.json lists them)',
        )
      }
      exclude = [...words]
    }
    checkSampling(opts)
    const { token, release } = cancelTokenFor(opts.signal)
    const r = await awaitNative(
      this.inner.generate(fields, {
        count: opts.count,
        temperature: opts.temperature,
        topP: opts.topP,
        topK: opts.topK,
        seed: opts.seed,
        maxNewTokens: integer('maxNewTokens', opts.maxNewTokens, 1, 1_000_000),
        exclude,
        vocabulary: opts.vocabulary ? [...opts.vocabulary] : undefined,
        maxRounds: integer('maxRounds', opts.maxRounds, 1, 1000),
        batchSize: integer('batchSize', opts.batchSize, 1, 256),
        seeds: opts.seeds ? [...opts.seeds] : undefined,
      }, token),
    ).finally(release)
    return r
  }

  /** The prompt text the model sees for a pattern (exactly what training taught it). */
  prompt(pattern: PatternInput, seeds?: readonly string[]): string {
    const { fields } = toPattern(pattern)
    return callNative(() => this.inner.prompt(fields, seeds ? [...seeds] : undefined))
  }

  /**
   * Frees the model's weights now instead of at garbage collection (a call still running
   * keeps them until it ends). The generator cannot be used afterwards.
   */
  close(): void {
    this.inner.close()
  }

  /** Writes the merged model as a llama.cpp / Ollama GGUF (`q8_0` by default). */
  async exportGguf(path: string, dtype: 'q8_0' | 'f16' | 'f32' = 'q8_0'): Promise<{ path: string; bytes: number; tensors: number; dtypes: Record<string, number> }> {
    return awaitNative(this.inner.exportGguf(path, dtype))
  }

  get baseModel(): string {
    return this.inner.baseModel
  }
  get adapterDir(): string | undefined {
    return this.inner.adapterDir ?? undefined
  }
  get merged(): boolean {
    return this.inner.merged
  }
  get quantize(): Quantize {
    return this.inner.quantize
  }
  /** Whether prompts name attribute values (the adapter was trained on aligned IDs). */
  get aligned(): boolean {
    return this.inner.aligned
  }
  get architecture(): string {
    return this.inner.architecture
  }
  /** Training words `novelOnly` excludes by default, when known. */
  get knownTrainingWords(): readonly string[] | undefined {
    return this.trainingWords
  }
}

/**
 * One-shot generation: loads the base model with the adapter, generates, and lets the model
 * go. For many calls, load a `WordGenerator` once instead.
 */
export async function generateWordsFromId(
  pattern: PatternInput,
  opts: GenerateWordsOptions & WordGeneratorLoadOptions = {},
): Promise<GenerateWordsResult> {
  // Validated first, so a typo costs no model load.
  const parsed = toPattern(pattern)
  const g = await WordGenerator.load(opts)
  return g.generate(parsed, opts)
}

export interface MergeAdapterOptions {
  /** Default: the adapter's own base model. */
  baseModel?: string
  adapterDir: string
  /** A directory (safetensors) or a `.gguf` file path. */
  out: string
  /** Default `safetensors`, or `gguf` when `out` ends in `.gguf`. */
  format?: 'safetensors' | 'gguf'
  /** GGUF matrix type (default `q8_0`). */
  ggufType?: 'q8_0' | 'f16' | 'f32'
  offline?: boolean
  revision?: string
}

/** Folds a LoRA adapter into its base model and writes a standalone model. */
export async function mergeAdapter(opts: MergeAdapterOptions): Promise<{ path: string; format: string; mergedModules: number; bytes: number }> {
  const format = opts.format ?? (opts.out.toLowerCase().endsWith('.gguf') ? 'gguf' : 'safetensors')
  return awaitNative(
    native().mergeAdapter(opts.baseModel ?? '', opts.adapterDir, opts.out, {
      format,
      ggufType: opts.ggufType,
      offline: opts.offline,
      revision: opts.revision,
    }),
  )
}
