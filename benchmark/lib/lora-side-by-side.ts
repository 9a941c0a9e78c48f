/**
 * LoRA training side by side: the same DSL examples, LoRA settings, batch, learning rate and
 * steps through the Rust trainer and through transformers + PEFT
 * (`benchmark/reference/lora_reference.py`), alternating ours, theirs, ours.
 */
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { runPythonJson } from './sys.ts'

export interface LoraExample {
  pattern: string
  words: string[]
}

export interface LoraSideBySideJob {
  baseModel: string
  /** The base model's GGUF: the reference loads the same weights from it. */
  ggufPath?: string
  examples: LoraExample[]
  lora: { rank: number; alpha: number; dropout: number; targetModules?: string[] }
  batchSize: number
  lr: number
  steps: number
  /** 2: ours, theirs, ours; 1: ours, theirs. */
  rounds: number
  seed: number
  threads: number
  /** Scratch folder for adapters and job files. */
  tmp: string
  /** Interpreter with transformers and peft; without one only ours runs. */
  python?: string
  env: Record<string, string>
  /** The aligned description of a pattern, as the trainer writes it into prompts. */
  describe: (pattern: string) => string
  log: (line: string) => void
}

export interface OursRun {
  tokensPerSecond: number
  wallS: number
  cpuS: number
  /** CPU seconds from the end of the first update (warm-up and loading left out). */
  cpuAfterFirstS?: number
  steps: number
  trainTokens: number
  trainExamples: number
  losses: number[]
}

/** What `lora_reference.py` prints (snake case, as Python writes it). */
export interface TheirsRun {
  tokens_per_second: number
  torch_matmul_gflops: number
  peak_rss_mb: number
  step_tokens: number[]
  step_cpu_seconds: number[]
  versions: { transformers: string; peft: string }
  [k: string]: unknown
}

const PEFT_DEFAULT_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']
const why = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0].slice(0, 300)
const gc = () => (globalThis as { gc?: () => void }).gc?.()

export async function loraSideBySide(job: LoraSideBySideJob): Promise<{ ours: OursRun[]; theirs: TheirsRun[]; errors: string[] }> {
  const { native } = await import('../../src/native.ts')
  const vocab = native().defaultAttributeVocab()
  const ours: OursRun[] = []
  const theirs: TheirsRun[] = []
  const errors: string[] = []
  const now = () => performance.now() / 1000

  const oursRun = async (round: number): Promise<void> => {
    try {
      const t = now()
      const c0 = process.cpuUsage()
      const tr = new (native().NativeDslTrainer)({
        baseModel: job.baseModel,
        offline: true,
        examples: job.examples,
        aligned: true,
        attributeNames: vocab.names,
        attributeValues: vocab.values,
        validationFraction: 0,
        lora: job.lora,
        steps: job.steps,
        batchSize: job.batchSize,
        lr: job.lr,
        warmupSteps: 0,
        evalEvery: 0,
        checkpointEvery: 0,
        // Like for like: the reference keeps every activation too (the pipeline's default
        // recomputes activations to save memory; its figures are in the pipeline rows).
        gradientCheckpointing: 0,
        outDir: join(job.tmp, `sbs-lora-${round}`),
        seed: job.seed,
        resume: false,
      })
      let cStep1: NodeJS.CpuUsage | undefined
      const r = await tr.train((p) => {
        if (p.step === 1) cStep1 = process.cpuUsage(c0)
      })
      const c = process.cpuUsage(c0)
      const cpuAfterFirstS = cStep1 ? (c.user + c.system - cStep1.user - cStep1.system) / 1e6 : undefined
      ours.push({ tokensPerSecond: r.tokensPerSecond, wallS: now() - t, cpuS: (c.user + c.system) / 1e6, cpuAfterFirstS, steps: r.steps, trainTokens: r.trainTokens, trainExamples: r.trainExamples, losses: r.losses })
      job.log(`  ours   (${ours.length}): ${r.tokensPerSecond.toFixed(1)} tok/s`)
    } catch (err) {
      errors.push(`ours: ${why(err)}`)
    }
    gc()
  }

  const theirsRun = (): void => {
    if (!job.python || !job.ggufPath) return
    try {
      const spec = {
        model_dir: dirname(job.ggufPath),
        gguf_file: job.ggufPath.split('/').pop(),
        examples: job.examples.map((e) => ({ user: `Words for semantic ID ${e.pattern} (${job.describe(e.pattern)}):`, completion: e.words.join(', ') })),
        steps: job.steps,
        batch_size: job.batchSize,
        lr: job.lr,
        rank: job.lora.rank,
        alpha: job.lora.alpha,
        dropout: job.lora.dropout,
        target_modules: job.lora.targetModules ?? PEFT_DEFAULT_MODULES,
        threads: job.threads,
        seed: job.seed,
        max_length: 256,
      }
      const r = runPythonJson<TheirsRun>(job.python, join(import.meta.dirname, '..', 'reference', 'lora_reference.py'), spec, join(job.tmp, 'lora-job.json'), job.env)
      theirs.push(r)
      job.log(`  theirs (${theirs.length}): ${r.tokens_per_second.toFixed(1)} tok/s (transformers ${r.versions.transformers}, peft ${r.versions.peft}, OMP_WAIT_POLICY ${job.env.OMP_WAIT_POLICY ?? process.env.OMP_WAIT_POLICY ?? 'default'})`)
    } catch (err) {
      errors.push(`transformers+peft: ${why(err)}`)
    }
  }

  await oursRun(0)
  theirsRun()
  if (job.rounds > 1 && job.python) await oursRun(1)
  return { ours, theirs, errors }
}
