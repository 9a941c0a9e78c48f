/**
 * `TrainingConfig`: everything a pipeline run depends on, validated with zod. The defaults
 * reproduce the seed: 12 corpora x 100 words, 4 x 32 RVQ, LoRA rank 16 / alpha 32, the
 * compact profile, and the lexicon provider when no OpenAI key is set.
 */
import { createHash } from 'node:crypto'
import { z } from 'zod'
import { ConfigError } from '../errors.js'

const cellSelection = z.union([z.literal('default'), z.literal('all'), z.array(z.string()).min(1)])

/** The DSL model's system message: the base model's default says nothing about the task. */
export const DSL_SYSTEM_PROMPT =
  'You list real English words that fit a semantic ID: its style, complexity and era are named. Answer with new words only, separated by commas.'

// Each section's defaults are written once, on its fields: `.prefault({})` runs an absent
// section through its own schema (zod 4's `.default()` would return a literal as is).
export const TrainingConfigSchema = z
  .object({
    profile: z.enum(['compact', 'full']).default('compact'),
    /** Override the profile's models with explicit ids or local directories. */
    embedderModel: z.string().min(1).optional(),
    decoderModel: z.string().min(1).optional(),
    seed: z.number().int().min(0).max(2 ** 31 - 1).default(42),
    corpus: z
      .object({
        provider: z.enum(['auto', 'lexicon', 'openai']).default('auto'),
        cells: cellSelection.default('default'),
        wordsPerCorpus: z.number().int().min(1).max(1000).default(100),
        model: z.string().min(1).optional(),
        baseURL: z.string().url().optional(),
        batch: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
    embed: z
      .object({
        batchSize: z.number().int().min(1).max(1024).default(64),
      })
      .strict()
      .prefault({}),
    rvq: z
      .object({
        levels: z.literal(4).default(4),
        codes: z.literal(32).default(32),
        /**
         * `hybrid` (default): aligned codebooks whose attribute fields come from calibrated
         * attribute predictors, so the names hold on unseen words; `aligned`: the nearest
         * codeword picks the value; `unsupervised`: codes name nothing.
         */
        mode: z.enum(['hybrid', 'aligned', 'unsupervised']).default('hybrid'),
        iterations: z.number().int().min(1).max(1000).default(100),
      })
      .strict()
      .prefault({}),
    lora: z
      .object({
        rank: z.number().int().min(1).max(256).default(16),
        alpha: z.number().positive().default(32),
        dropout: z.number().min(0).max(0.9).default(0.05),
        targetModules: z.array(z.string().min(1)).min(1).optional(),
      })
      .strict()
      .prefault({}),
    dsl: z
      .object({
        /** Optimizer steps (the loop may stop earlier on the validation loss). */
        steps: z.number().int().min(1).max(100_000).default(60),
        batchSize: z.number().int().min(1).max(256).default(8),
        gradAccum: z.number().int().min(1).max(64).default(1),
        /**
         * Activation checkpointing: recompute every n-th layer in the backward pass instead of
         * keeping its activations (`true` every layer, `false`/0 off). The same gradients;
         * not part of the stage's input hash. Default 1 (every layer): on SmolLM2 with the
         * vectorised kernels, 16 steps of batch 8 peaked at 1.40 GB for 152.5 tokens/s, against
         * 1.92 GB / 167.1 for every second layer (`cargo run --example train_profile`).
         */
        gradientCheckpointing: z.union([z.boolean(), z.number().int().min(0).max(1024)]).default(1),
        learningRate: z.number().positive().max(1).default(1e-3),
        warmupSteps: z.number().int().min(0).default(6),
        weightDecay: z.number().min(0).max(1).default(0.0),
        maxGradNorm: z.number().positive().default(1.0),
        evalEvery: z.number().int().min(1).default(20),
        patience: z.number().int().min(1).default(3),
        checkpointEvery: z.number().int().min(1).default(20),
        /**
         * Patterns sampled per kind (full IDs, 3- and 2-level prefixes, single attributes):
         * bounds the example set, and so the validation pass, on a 2-core CPU.
         */
        maxPatternsPerKind: z.number().int().min(1).max(100_000).default(64),
        /** Words per completion. */
        wordsPerExample: z.number().int().min(1).max(64).default(8),
        /** Words of the region named in each request, which the answer continues (set expansion). */
        seedWords: z.number().int().min(0).max(16).default(3),
        /** A short system message before every request (`''`: the chat template's own). */
        systemPrompt: z.string().max(2000).default(DSL_SYSTEM_PROMPT),
        /**
         * What early stopping and the kept adapter follow: `precision`, the share of requested
         * words the LM gives as real catalogue words with the requested values, on validation
         * patterns (every `evalEvery` steps); or `loss`, the validation loss.
         */
        stopOn: z.enum(['precision', 'loss']).default('precision'),
        validationFraction: z.number().min(0).max(0.5).default(0.1),
      })
      .strict()
      .prefault({}),
  })
  .strict()

export type TrainingConfig = z.infer<typeof TrainingConfigSchema>
export type TrainingConfigInput = z.input<typeof TrainingConfigSchema>

/** Validates a config (defaults filled in); `ConfigError` names the first bad field. */
export function trainingConfig(input: TrainingConfigInput = {}): TrainingConfig {
  const r = TrainingConfigSchema.safeParse(input)
  if (!r.success) {
    const issue = r.error.issues[0]
    const field = issue.path.length ? issue.path.join('.') : '(root)'
    throw new ConfigError(`invalid training config: ${field}: ${issue.message}`, { cause: r.error })
  }
  return r.data
}

/** Stable JSON (sorted keys), so equal configs hash equally whatever their key order. */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`
  }
  return JSON.stringify(value)
}

export function hashOf(...parts: unknown[]): string {
  const h = createHash('sha256')
  for (const p of parts) h.update(stableJson(p)).update('\u0000')
  return h.digest('hex').slice(0, 16)
}
