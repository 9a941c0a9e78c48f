/** `wotd corpus`: build (or finish) the word corpora of Stage 1. */
import { onInterrupt } from '../signals.js'
import { Command, Option } from 'commander'
import pc from 'picocolors'
import { SyntheticGenerator, type CorpusEvent, type CorpusResult } from '../../corpus/generator.js'
import { InvalidInputError } from '../../errors.js'
import { openStore } from '../../store/index.js'
import { printJson, progressBar, table } from '../output.js'

interface CorpusOptions {
  provider: 'auto' | 'lexicon' | 'openai'
  cells: 'default' | 'all'
  wordsPerCorpus: string
  seed: string
  store?: string
  model?: string
  baseUrl?: string
  concurrency?: string
  batch?: boolean
  json?: boolean
}

function intArg(name: string, v: string, min: number, max: number): number {
  if (!/^\d+$/.test(v.trim())) throw new InvalidInputError(`${name} must be a whole number, got "${v}"`)
  const n = Number(v)
  if (n < min || n > max) throw new InvalidInputError(`${name} must be in ${min}..${max}, got ${n}`)
  return n
}

function fmtUsd(x: number | null): string {
  return x === null ? 'unknown (no price for this model)' : `$${x.toFixed(4)}`
}

function printSummary(r: CorpusResult): void {
  const rows = r.cells.map((c, i) => [
    c.key,
    c.words,
    c.fromStore,
    c.generated,
    r.corpora[i].words
      .slice(0, 4)
      .map((w) => w.word)
      .join(', ') + (c.words > 4 ? ', ...' : ''),
  ])
  process.stdout.write(table(['cell', 'words', 'stored', 'new', 'sample'], rows) + '\n')
  const total = r.cells.length * r.wordsPerCorpus
  const lines = [
    `${pc.green('✓')} ${r.cells.length} cells x ${r.wordsPerCorpus} words = ${total} distinct words from ${r.provider}${r.model ? ` (${r.model})` : ''}, seed ${r.seed}`,
    pc.dim(`  corpus set ${r.setId} in ${r.store.location}`),
  ]
  if (r.usage.requests > 0) {
    lines.push(
      pc.dim(
        `  ${r.usage.requests} requests, ${r.usage.promptTokens} prompt + ${r.usage.completionTokens} completion tokens, cost ${fmtUsd(r.usage.costUSD)}${r.batch ? ' (batch)' : ''}`,
      ),
    )
  }
  process.stdout.write(lines.join('\n') + '\n')
}

export function registerCorpus(program: Command): void {
  program
    .command('corpus')
    .description('build the word corpora (one per style/complexity/era cell) from OpenAI or the bundled lexicon; reruns fill only what is missing')
    .addOption(
      new Option('--provider <name>', 'where words come from (auto: openai when OPENAI_API_KEY or --base-url is set, else lexicon)')
        .choices(['auto', 'lexicon', 'openai'])
        .default('auto'),
    )
    .addOption(new Option('--cells <set>', 'the 12 default cells or all 64').choices(['default', 'all']).default('default'))
    .option('--words-per-corpus <n>', 'distinct words per cell', '100')
    .option('--seed <n>', 'seed of the sampling (same seed, same lexicon words)', '42')
    .option('--store <dir>', 'store folder (default $WOTD_HOME or ./.wotd)')
    .option('--model <id>', 'openai: chat model (default gpt-4o-mini)')
    .option('--base-url <url>', 'openai: an OpenAI-compatible server (default $OPENAI_BASE_URL or the OpenAI API)')
    .option('--concurrency <n>', 'openai: requests in flight at most', '4')
    .option('--batch', 'openai: use the Batch API (cheaper, slower; a rerun resumes a pending batch)')
    .option('--json', 'print JSON: the cells with their words')
    .exitOverride() // usage errors reach main() as CommanderError (exit code 2), not process.exit(1)
    .action(async (opts: CorpusOptions) => {
      const json = !!opts.json
      const wordsPerCorpus = intArg('--words-per-corpus', opts.wordsPerCorpus, 1, 100_000)
      const seed = intArg('--seed', opts.seed, 0, 0xffffffff)
      const concurrency = intArg('--concurrency', opts.concurrency ?? '4', 1, 256)
      const store = await openStore(opts.store)
      const bar = progressBar('corpus', { quiet: json })
      const onEvent = (e: CorpusEvent) => {
        if (e.type === 'notice') process.stderr.write(`${pc.yellow('note')} ${e.message}\n`)
        else if (e.type === 'progress') bar.update(e.wordsDone, e.wordsTotal, `${e.cellsComplete}/${e.cellsTotal} cells`)
        else if (e.type === 'batch' && e.status === 'submitted') process.stderr.write(pc.dim(`batch ${e.batchId} submitted (${e.total} requests)\n`))
      }
      const ac = onInterrupt()
      try {
        const gen = new SyntheticGenerator({
          provider: opts.provider,
          cells: opts.cells,
          wordsPerCorpus,
          seed,
          store,
          batch: !!opts.batch,
          openai: {
            ...(opts.model ? { model: opts.model } : {}),
            ...(opts.baseUrl ? { baseURL: opts.baseUrl } : {}),
            concurrency,
          },
          onEvent,
        })
        const r = await gen.generate({ signal: ac.signal })
        bar.stop()
        if (json) {
          printJson({
            setId: r.setId,
            provider: r.provider,
            ...(r.model ? { model: r.model } : {}),
            seed: r.seed,
            wordsPerCorpus: r.wordsPerCorpus,
            store: r.store,
            usage: r.usage,
            cells: r.corpora.map((c, i) => ({ cell: r.cells[i].key, ...c.cell, id: c.id, words: c.words })),
          })
        } else {
          printSummary(r)
        }
      } finally {
        bar.stop()
        ac.dispose()
        await store.close()
      }
    })
}
