/**
 * The offline provider: the curated lexicon bundled under `data/lexicon/*.jsonl`, sampled
 * deterministically with a seed. Each cell's entries are put in a seeded order (a shuffle of
 * the alphabetically sorted words), and a corpus of N words is the first N of that order,
 * so a larger N extends a smaller one and a resumed run ends where an uninterrupted one does.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ConfigError, ProviderError } from '../errors.js'
import {
  cellKey,
  isComplexity,
  isEra,
  isPartOfSpeech,
  isStyle,
  type Cell,
  type CellKey,
  type Complexity,
  type Era,
  type PartOfSpeech,
  type Style,
} from '../types.js'
import { emptyUsage, type Proposal, type ProposeRequest, type WordProvider } from './provider.js'
import { createRng, shuffled } from './random.js'
import { normalizeDefinition, normalizeWord } from './validate.js'

export interface LexiconEntry {
  word: string
  partOfSpeech: PartOfSpeech
  definition: string
  style: Style
  complexity: Complexity
  era: Era
}

/** The package root (the folder with wotd-ml's package.json), found from this module's path. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const pkg = join(dir, 'package.json')
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'wotd-ml') return dir
      } catch {
        // not ours; keep walking up
      }
    }
    const up = dirname(dir)
    if (up === dir) throw new ConfigError('cannot find the wotd-ml package root (its package.json) above ' + fileURLToPath(import.meta.url))
    dir = up
  }
}

/** `data/lexicon` inside the package (works from `src/` and from `dist/`). */
export function defaultLexiconDir(): string {
  return join(packageRoot(), 'data', 'lexicon')
}

const cache = new Map<string, LexiconEntry[]>()

/**
 * Reads every `*.jsonl` file of the lexicon folder. Malformed lines and words that appear
 * twice are errors (the message names the file and line).
 */
export function loadLexicon(dir: string = defaultLexiconDir()): LexiconEntry[] {
  const abs = resolve(dir)
  const hit = cache.get(abs)
  if (hit) return hit
  let files: string[]
  try {
    files = readdirSync(abs)
      .filter((f) => f.endsWith('.jsonl'))
      .sort()
  } catch (err) {
    throw new ProviderError(`the lexicon folder ${abs} cannot be read`, { cause: err })
  }
  if (files.length === 0) throw new ProviderError(`the lexicon folder ${abs} holds no .jsonl files`)
  const out: LexiconEntry[] = []
  const seen = new Map<string, string>()
  for (const f of files) {
    const lines = readFileSync(join(abs, f), 'utf8').split('\n')
    lines.forEach((line, i) => {
      if (line.trim() === '') return
      const where = `${f}:${i + 1}`
      const e = parseEntry(line, where)
      const prev = seen.get(e.word)
      if (prev) throw new ProviderError(`lexicon ${where}: "${e.word}" already appears at ${prev}`)
      seen.set(e.word, where)
      out.push(e)
    })
  }
  cache.set(abs, out)
  return out
}

function parseEntry(line: string, where: string): LexiconEntry {
  let o: Record<string, unknown>
  try {
    o = JSON.parse(line) as Record<string, unknown>
  } catch (err) {
    throw new ProviderError(`lexicon ${where}: not valid JSON`, { cause: err })
  }
  if (!o || typeof o !== 'object' || Array.isArray(o)) throw new ProviderError(`lexicon ${where}: not a JSON object`)
  const word = normalizeWord(o.word)
  if (word === null || word !== o.word) throw new ProviderError(`lexicon ${where}: "${String(o.word)}" is not a normalised word`)
  const definition = normalizeDefinition(o.definition)
  if (definition === null) throw new ProviderError(`lexicon ${where}: "${word}" has no usable definition`)
  if (!isPartOfSpeech(o.partOfSpeech)) throw new ProviderError(`lexicon ${where}: "${word}" has part of speech ${JSON.stringify(o.partOfSpeech)}`)
  if (!isStyle(o.style)) throw new ProviderError(`lexicon ${where}: "${word}" has style ${JSON.stringify(o.style)}`)
  if (!isComplexity(o.complexity)) throw new ProviderError(`lexicon ${where}: "${word}" has complexity ${JSON.stringify(o.complexity)}`)
  if (!isEra(o.era)) throw new ProviderError(`lexicon ${where}: "${word}" has era ${JSON.stringify(o.era)}`)
  return { word, partOfSpeech: o.partOfSpeech, definition, style: o.style, complexity: o.complexity, era: o.era }
}

/** Entries grouped by cell. */
export function lexiconByCell(entries: readonly LexiconEntry[] = loadLexicon()): Map<CellKey, LexiconEntry[]> {
  const m = new Map<CellKey, LexiconEntry[]>()
  for (const e of entries) {
    const k = cellKey(e)
    let list = m.get(k)
    if (!list) m.set(k, (list = []))
    list.push(e)
  }
  return m
}

/** Counts per cell and per part of speech (for reports). */
export function lexiconStats(entries: readonly LexiconEntry[] = loadLexicon()): {
  total: number
  perCell: Record<string, number>
  perPartOfSpeech: Record<string, number>
} {
  const perCell: Record<string, number> = {}
  const perPartOfSpeech: Record<string, number> = {}
  for (const e of entries) {
    const k = cellKey(e)
    perCell[k] = (perCell[k] ?? 0) + 1
    perPartOfSpeech[e.partOfSpeech] = (perPartOfSpeech[e.partOfSpeech] ?? 0) + 1
  }
  return { total: entries.length, perCell, perPartOfSpeech }
}

/** The seeded order of one cell's entries (the first N are the corpus of N words). */
export function lexiconOrder(entries: readonly LexiconEntry[], cell: Cell, seed: number): LexiconEntry[] {
  const k = cellKey(cell)
  const inCell = entries.filter((e) => cellKey(e) === k).sort((a, b) => (a.word < b.word ? -1 : a.word > b.word ? 1 : 0))
  return shuffled(inCell, createRng(seed, `lexicon:${k}`))
}

/** The first `n` words of a cell for a seed (no store, no generator). */
export function sampleLexicon(cell: Cell, n: number, seed: number, dir?: string): LexiconEntry[] {
  return lexiconOrder(loadLexicon(dir), cell, seed).slice(0, n)
}

export interface LexiconProviderOptions {
  /** A folder of `*.jsonl` files in the bundled format; defaults to the package's `data/lexicon`. */
  dir?: string
}

export class LexiconProvider implements WordProvider {
  readonly name = 'lexicon'
  readonly concurrency = 1
  readonly wordsPerRequest = 100_000
  readonly overAsk = 0
  readonly dir: string
  private orders = new Map<string, LexiconEntry[]>()

  constructor(options: LexiconProviderOptions = {}) {
    this.dir = options.dir ?? defaultLexiconDir()
  }

  private order(cell: Cell, seed: number): LexiconEntry[] {
    const key = `${seed}:${cellKey(cell)}`
    let o = this.orders.get(key)
    if (!o) this.orders.set(key, (o = lexiconOrder(loadLexicon(this.dir), cell, seed)))
    return o
  }

  async prepare(cells: readonly Cell[], wordsPerCorpus: number): Promise<void> {
    const byCell = lexiconByCell(loadLexicon(this.dir))
    const short = cells
      .map((c) => ({ key: cellKey(c), n: byCell.get(cellKey(c))?.length ?? 0 }))
      .filter((c) => c.n < wordsPerCorpus)
    if (short.length > 0) {
      const smallest = Math.min(...short.map((c) => c.n))
      const list = short
        .slice(0, 4)
        .map((c) => `${c.key} (${c.n})`)
        .join(', ')
      throw new ProviderError(
        `the bundled lexicon holds fewer than ${wordsPerCorpus} words for ${short.length} of the requested cells: ` +
          `${list}${short.length > 4 ? ', ...' : ''}. Ask for at most ${smallest} words per corpus, or use --provider openai`,
      )
    }
  }

  async propose(req: ProposeRequest): Promise<Proposal> {
    const candidates = []
    for (const e of this.order(req.cell, req.seed)) {
      if (candidates.length >= req.count) break
      if (req.isTaken(e.word)) continue
      candidates.push({ word: e.word, definition: e.definition, partOfSpeech: e.partOfSpeech })
    }
    const usage = emptyUsage()
    return { candidates, usage, attempts: 1, problems: candidates.length < req.count ? ['the lexicon has no more words for this cell'] : [] }
  }
}
