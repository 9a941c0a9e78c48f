/** `wotd train`: the whole pipeline on the embedded defaults, with a progress bar per stage. */
import type { Command } from 'commander'
import { readFileSync } from 'node:fs'
import pc from 'picocolors'
import { onInterrupt } from '../signals.js'
import { InvalidInputError } from '../../errors.js'
import { trainingConfig } from '../../pipeline/config.js'
import { WOTDTrainer, type PipelineProgress, type TrainingConfigInput, type TrainingResults } from '../../pipeline/index.js'
import { isProfileName, pullMissing } from '../../models/index.js'
import { formatBytes, printJson, progressBar, table, type Progress } from '../output.js'
import { progressPrinter } from './models.js'

interface TrainOptions {
  profile: string
  store?: string
  provider?: string
  wordsPerCorpus?: string
  cells?: string
  steps?: string
  seed?: string
  mode?: string
  embedder?: string
  decoder?: string
  wait?: boolean
  json?: boolean
  config?: string
}

function int(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined
  if (!/^\d+$/.test(v.trim())) throw new InvalidInputError(`--${name} must be a whole number, got "${v}"`)
  return Number(v)
}

/** A `--config` file: a JSON `TrainingConfig` (any subset; the flags given override it). */
function configFile(path: string | undefined): Record<string, unknown> {
  if (path === undefined) return {}
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new InvalidInputError(`--config ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err })
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new InvalidInputError(`--config ${path} is not valid JSON: ${(err as Error).message}`)
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new InvalidInputError(`--config ${path} must hold a JSON object (a training config)`)
  return value as Record<string, unknown>
}

function configFrom(o: TrainOptions): TrainingConfigInput {
  const base = configFile(o.config)
  const section = (name: string) => ({ ...((base[name] as Record<string, unknown> | undefined) ?? {}) })
  const corpus: Record<string, unknown> = section('corpus')
  if (o.provider) corpus.provider = o.provider
  if (o.cells) corpus.cells = o.cells
  if (o.wordsPerCorpus) corpus.wordsPerCorpus = int('words-per-corpus', o.wordsPerCorpus)
  const cfg: Record<string, unknown> = { ...base, profile: o.profile ?? base.profile ?? 'compact', corpus }
  if (o.seed) cfg.seed = int('seed', o.seed)
  if (o.steps) cfg.dsl = { ...section('dsl'), steps: int('steps', o.steps) }
  if (o.mode) cfg.rvq = { ...section('rvq'), mode: o.mode }
  if (o.embedder) cfg.embedderModel = o.embedder
  if (o.decoder) cfg.decoderModel = o.decoder
  return cfg as TrainingConfigInput
}

function summary(r: TrainingResults): string {
  const rows = Object.entries(r.stages).map(([name, s]) => {
    const m = s.metrics as Record<string, unknown>
    let note = ''
    if (name === 'corpus') note = `${m.words} words, ${m.cells} cells (${m.provider})`
    if (name === 'embed') note = `${m.model}, ${m.dimension}-d, cache ${m.cacheHits ?? 0} hits / ${m.cacheMisses ?? 0} misses`
    if (name === 'rvq') {
      const util = (m.utilisation as number[] | undefined)?.map((u) => `${Math.round(u * 100)}%`).join('/')
      const acc = (m.labelAccuracy as number[] | null | undefined)?.map((a) => `${Math.round(a * 100)}%`).join('/')
      note = `utilisation ${util}, collisions@4 ${(((m.collisionRate4 as number) ?? 0) * 100).toFixed(1)}%${acc ? `, label acc ${acc}` : ''}`
    }
    if (name === 'rvq' && m.predictor) {
      const cv = (m.predictor as { cvAccuracy: (number | null)[] }).cvAccuracy.map((a) => (a === null ? '-' : `${Math.round(a * 100)}%`)).join('/')
      note += `, predictor cv acc ${cv}`
    }
    if (name === 'catalogue') note = `${m.words} words (${m.withDefinition} defined), vectors ${Number(m.cachedRows) === Number(m.words) ? 'cached' : 'embedded'}, ${m.regions3} regions`
    if (name === 'dsl') note = `${m.steps} steps, loss ${Number(m.finalLoss ?? NaN).toFixed(3)}, val ${Number(m.bestValLoss ?? NaN).toFixed(3)}, ${Math.round(Number(m.tokensPerSecond ?? 0))} tok/s`
    const secs = s.timings.total !== undefined ? `${(s.timings.total / 1000).toFixed(1)}s` : '-'
    return [name, s.status, secs, note]
  })
  const art = Object.values(r.stages).flatMap((s) => Object.values(s.artifacts))
  const bytes = art.reduce((a, x) => a + x.size, 0)
  return [
    table(['stage', 'status', 'time', 'result'], rows),
    `${pc.green('✓')} run ${pc.bold(r.runId)} in ${(r.durationMs / 1000).toFixed(1)}s; ${art.length} artifacts (${formatBytes(bytes)}) in ${r.store.location}`,
    pc.dim(`  try: npx wotd generate "[*,9,*,*]" -n 10`),
  ].join('\n')
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('run the whole pipeline: corpus -> embeddings -> semantic IDs -> LoRA DSL model (re-runs skip finished stages, resume killed ones)')
    .option('--config <file.json>', 'a JSON training config (any subset of TrainingConfig); flags override it')
    .option('--profile <name>', 'compact | full (default compact)')
    .option('--store <spec>', 'a folder or mongodb:// URI (default $MONGODB_URI, else $WOTD_HOME or ./.wotd)')
    .option('--provider <name>', 'corpus provider: auto | lexicon | openai')
    .option('--cells <set>', 'default | all')
    .option('--words-per-corpus <n>', 'words per cell (default 100)')
    .option('--steps <n>', `LoRA optimizer steps (default ${trainingConfig().dsl.steps})`)
    .option('--mode <mode>', 'RVQ mode: aligned | unsupervised')
    .option('--seed <n>', 'seed of every stage (default 42)')
    .option('--embedder <id>', 'embedder model id or folder (overrides the profile)')
    .option('--decoder <id>', 'decoder model id or folder (overrides the profile)')
    .option('--wait', 'wait for another trainer using the same store instead of failing')
    .option('--json', 'print the results as JSON')
    .action(async (opts: TrainOptions) => {
      const config = configFrom(opts) as Record<string, unknown>
      const trainer = new WOTDTrainer(config as TrainingConfigInput, { store: opts.store })
      const profile = String(config.profile)
      const json = !!opts.json
      const bars = new Map<string, Progress>()
      const bar = (stage: string) => {
        if (!bars.has(stage)) bars.set(stage, progressBar(stage.padEnd(9), { quiet: json }))
        return bars.get(stage)!
      }
      const ac = onInterrupt()
      const onProgress = (p: PipelineProgress) => {
        if (p.phase === 'skip' && !json) process.stderr.write(pc.dim(`${p.stage}: finished earlier with the same inputs, skipped\n`))
        if (p.phase === 'redo' && !json) process.stderr.write(pc.yellow(`${p.message}\n`))
        if (p.message && !json && p.stage === 'corpus') process.stderr.write(pc.dim(`${p.message}\n`))
        if (p.phase === 'progress' && p.done !== undefined && p.total !== undefined) {
          const label = p.loss !== undefined ? `loss ${p.loss.toFixed(3)}${p.valLoss !== undefined ? ` val ${p.valLoss.toFixed(3)}` : ''}` : ''
          bar(p.stage).update(p.done, p.total, label)
        }
        if (p.phase === 'done') bars.get(p.stage)?.stop()
      }
      try {
        // A first run pulls the profile's models itself (with a bar per file), so a newcomer
        // needs no separate `wotd models pull`.
        if (isProfileName(profile)) {
          const pulling = progressPrinter(json)
          try {
            const skip = [...(config.embedderModel ? ['embedder' as const] : []), ...(config.decoderModel ? ['decoder' as const] : [])]
            const pulled = await pullMissing(profile, { onProgress: pulling.onProgress, signal: ac.signal, skip })
            pulling.stop()
            for (const m of pulled) if (!json) process.stderr.write(pc.dim(`pulled the ${m.role} ${m.id} (${m.location.source}, ${formatBytes(m.location.sizeBytes)})\n`))
          } finally {
            pulling.stop()
          }
        }
        const r = await trainer.trainCompletePipeline({ onProgress, signal: ac.signal, waitForLock: opts.wait })
        for (const b of bars.values()) b.stop()
        if (json) printJson(r)
        else process.stdout.write(summary(r) + '\n')
      } finally {
        for (const b of bars.values()) b.stop()
        ac.dispose()
      }
    })
}
