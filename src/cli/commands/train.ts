/** `wotd train`: the whole pipeline on the embedded defaults, with a progress bar per stage. */
import type { Command } from 'commander'
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
}

function int(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined
  if (!/^\d+$/.test(v.trim())) throw new InvalidInputError(`--${name} must be a whole number, got "${v}"`)
  return Number(v)
}

function configFrom(o: TrainOptions): TrainingConfigInput {
  const corpus: Record<string, unknown> = {}
  if (o.provider) corpus.provider = o.provider
  if (o.cells) corpus.cells = o.cells
  if (o.wordsPerCorpus) corpus.wordsPerCorpus = int('words-per-corpus', o.wordsPerCorpus)
  const cfg: Record<string, unknown> = { profile: o.profile, corpus }
  if (o.seed) cfg.seed = int('seed', o.seed)
  if (o.steps) cfg.dsl = { steps: int('steps', o.steps) }
  if (o.mode) cfg.rvq = { mode: o.mode }
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
    .option('--profile <name>', 'compact | full', 'compact')
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
      const trainer = new WOTDTrainer(configFrom(opts), { store: opts.store })
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
        if (isProfileName(opts.profile)) {
          const pulling = progressPrinter(json)
          try {
            const skip = [...(opts.embedder ? ['embedder' as const] : []), ...(opts.decoder ? ['decoder' as const] : [])]
            const pulled = await pullMissing(opts.profile, { onProgress: pulling.onProgress, signal: ac.signal, skip })
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
