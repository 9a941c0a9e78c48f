/**
 * Decoding side by side: single-stream generation of the same prompts by our generator and by
 * llama.cpp (`benchmark/reference/decode_reference.py`), on the merged adapter exported to GGUF
 * Q8_0 (the same weights) and on the base model's GGUF, round after round, alternating.
 */
import { join } from 'node:path'
import { runPythonJson } from './sys.ts'

type NativeGen = InstanceType<ReturnType<typeof import('../../src/native.ts').native>['NativeWordGenerator']>
export type Weights = 'f32' | 'q8_0'

/** One prompt decoded by one of our generators. */
export interface SingleStream {
  tokens: number
  elapsedMs: number
  prefillMs: number
  msPerToken: number
  cpuMsPerToken: number
}

/** One GGUF decoded by llama.cpp: its runs as `decode_reference.py` prints them. */
export interface ReferenceDecode {
  gguf: string
  label: string
  runs: { decode_ms_per_token: number | null; prefill_ms: number; cpu_ms: number; tokens: number; [k: string]: unknown }[]
  loadS: number[]
  peakRssMb: number
  versions?: unknown
}

export interface DecodeJob {
  generators: Partial<Record<Weights, NativeGen>>
  prompts: { fields: (number | null)[] }[]
  rounds: number
  /** The base model's GGUF, decoded by llama.cpp too. */
  baseGguf?: string
  /** Interpreter with llama_cpp; without one only ours runs. */
  python?: string
  threads: number
  env: Record<string, string>
  tmp: string
  log: (line: string) => void
  note: (line: string) => void
}

const why = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0].slice(0, 300)

/** Each prompt once, one row, at most 48 new tokens: ms per token after the prefill. */
async function singleStream(g: NativeGen, prompts: DecodeJob['prompts'], seed: number): Promise<SingleStream[]> {
  const out: SingleStream[] = []
  for (const [i, p] of prompts.entries()) {
    const c0 = process.cpuUsage()
    const r = await g.generate(p.fields, { count: 1000, batchSize: 1, maxRounds: 1, maxNewTokens: 48, temperature: 0.8, topP: 0.95, topK: 50, seed: seed + i })
    const c = process.cpuUsage(c0)
    const tokens = Math.max(1, r.tokens)
    out.push({ tokens: r.tokens, elapsedMs: r.elapsedMs, prefillMs: r.prefillMs, msPerToken: (r.elapsedMs - r.prefillMs) / tokens, cpuMsPerToken: (c.user + c.system) / 1000 / tokens })
  }
  return out
}

export async function decodeSideBySide(job: DecodeJob): Promise<{ ours: Partial<Record<Weights, SingleStream[]>>; theirs: ReferenceDecode[]; mergedGguf?: string }> {
  const q8 = job.generators.q8_0
  const ours: Partial<Record<Weights, SingleStream[]>> = {}
  const theirs: ReferenceDecode[] = []
  if (!q8) return { ours, theirs }
  let mergedGguf: string | undefined
  if (typeof q8.exportGguf === 'function') {
    try {
      mergedGguf = join(job.tmp, 'merged-q8_0.gguf')
      await q8.exportGguf(mergedGguf, 'q8_0')
    } catch (err) {
      mergedGguf = undefined
      job.note(`exporting the merged adapter to GGUF failed: ${why(err)}`)
    }
  }
  if (mergedGguf) theirs.push({ gguf: mergedGguf, label: 'merged adapter, Q8_0 (our export)', runs: [], loadS: [], peakRssMb: 0 })
  if (job.baseGguf) theirs.push({ gguf: job.baseGguf, label: 'base model, Q4_1 (the pulled GGUF)', runs: [], loadS: [], peakRssMb: 0 })
  job.log(`decoding side by side: ${job.prompts.length} prompts x ${job.rounds} rounds, single stream, alternating`)
  for (let round = 0; round < job.rounds; round++) {
    const seed = 1000 * (round + 1)
    for (const w of ['q8_0', 'f32'] as const) {
      const g = job.generators[w]
      if (g) (ours[w] ??= []).push(...(await singleStream(g, job.prompts, seed)))
    }
    if (!job.python) continue
    for (const d of theirs) {
      try {
        const r = runPythonJson<{ runs: ReferenceDecode['runs']; load_s: number; peak_rss_mb: number; versions: unknown }>(
          job.python,
          join(import.meta.dirname, '..', 'reference', 'decode_reference.py'),
          { gguf: d.gguf, prompts: job.prompts.map((p) => q8.prompt(p.fields)), max_tokens: 48, temperature: 0.8, top_p: 0.95, top_k: 50, seed, threads: job.threads, stop_token: '<|im_end|>' },
          join(job.tmp, 'decode-job.json'),
          job.env,
        )
        d.runs.push(...r.runs)
        d.loadS.push(r.load_s)
        d.peakRssMb = Math.max(d.peakRssMb, r.peak_rss_mb)
        d.versions = r.versions
      } catch (err) {
        job.note(`llama.cpp decode of ${d.label} failed: ${why(err)}`)
      }
    }
  }
  return { ours, theirs, mergedGguf }
}
