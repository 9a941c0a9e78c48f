/**
 * `SyntheticGenerator`: builds one corpus of N distinct words per (style, complexity, era)
 * cell from a provider, through a store, so that any run can be killed and re-run:
 *
 * - the store is read first; complete cells are not asked for again, partial cells keep
 *   their words and only the missing ones are requested;
 * - every accepted word is validated and normalised, unique in its cell and in the whole
 *   corpus set (a word belongs to the first cell that claimed it);
 * - a cell is saved after every answer that added words (status `partial`) and when complete,
 *   each save atomic, so a kill loses at most the answers in flight;
 * - missing words are topped up in rounds, at most `maxRounds`, then a `ProviderError` says
 *   how far the cell got and why words were rejected.
 */
import { CancelledError, ConfigError, InvalidInputError } from '../errors.js'
import { FileStore } from '../store/file.js'
import { MemoryStore } from '../store/memory.js'
import type { CorpusStore } from '../store/types.js'
import { cellIndex, resolveCells, type Cell, type CellSelection } from '../types.js'
import { LexiconProvider, type LexiconProviderOptions } from './lexicon.js'
import { OpenAIProvider, type OpenAIProviderOptions } from './openai.js'
import type { WordProvider } from './provider.js'
import type { CorpusEvent, CorpusResult } from './results.js'
import { corpusId, CorpusRun } from './run.js'

export type { CellSummary, CorpusEvent, CorpusResult, RejectCounts } from './results.js'
export { corpusId }

export const DEFAULT_WORDS_PER_CORPUS = 100
export const DEFAULT_SEED = 42
export const DEFAULT_MAX_ROUNDS = 8

export type ProviderName = 'auto' | 'lexicon' | 'openai'

export interface SyntheticGeneratorOptions {
  /**
   * `auto` (default): `openai` when `OPENAI_API_KEY` is set (or `openai.apiKey` / `openai.baseURL`
   * is given), else the bundled `lexicon`, with a `notice` event saying so.
   */
  provider?: ProviderName | WordProvider
  /** `default` (12 cells, the default), `all` (64) or a list of cells. */
  cells?: CellSelection
  /** Words per cell (default 100). */
  wordsPerCorpus?: number
  /** Seed of the lexicon's sampling and of the per-request seeds sent to models (default 42). */
  seed?: number
  /** Where cells are saved; default a `FileStore` (`$WOTD_HOME` or `./.wotd`); `null` keeps them in memory. */
  store?: CorpusStore | null
  /** Name of the corpus set in the store; default derived from provider, model and seed. */
  setId?: string
  /** Top-up rounds per cell before giving up (default 8). */
  maxRounds?: number
  /** Use the provider's batch API (openai only). */
  batch?: boolean
  openai?: OpenAIProviderOptions
  lexicon?: LexiconProviderOptions
  onEvent?: (event: CorpusEvent) => void
  /** Environment for provider selection and keys (default `process.env`). */
  env?: NodeJS.ProcessEnv
}

/** A file-name-safe slug of a model or provider name. */
function idPart(s: string): string {
  return (
    s
      .toLowerCase()
      .replace(/[^a-z0-9.-]+/g, '_')
      .replace(/^[._]+|_+$/g, '')
      .slice(0, 80) || 'x'
  )
}

/** The default corpus set id: `lexicon-seed42`, `openai-gpt-4o-mini-seed42`, ... */
export function defaultSetId(provider: { name: string; model?: string }, seed: number): string {
  return [idPart(provider.name), ...(provider.model ? [idPart(provider.model)] : []), `seed${seed}`].join('-')
}

function checkInt(name: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) throw new InvalidInputError(`${name} must be an integer in ${min}..${max}, got ${v}`)
  return v
}

export class SyntheticGenerator {
  readonly provider: WordProvider
  readonly cells: Cell[]
  readonly wordsPerCorpus: number
  readonly seed: number
  readonly setId: string
  readonly store: CorpusStore
  readonly maxRounds: number
  readonly batch: boolean
  private readonly onEvent?: (event: CorpusEvent) => void
  private pendingNotices: string[] = []

  constructor(options: SyntheticGeneratorOptions = {}) {
    const env = options.env ?? process.env
    this.cells = resolveCells(options.cells ?? 'default')
    this.wordsPerCorpus = checkInt('wordsPerCorpus', options.wordsPerCorpus ?? DEFAULT_WORDS_PER_CORPUS, 1, 100_000)
    this.seed = checkInt('seed', options.seed ?? DEFAULT_SEED, 0, 0xffffffff)
    this.maxRounds = checkInt('maxRounds', options.maxRounds ?? DEFAULT_MAX_ROUNDS, 1, 1000)
    this.onEvent = options.onEvent
    this.provider = this.resolveProvider(options, env)
    this.batch = options.batch ?? false
    if (this.batch && !this.provider.batch) throw new ConfigError(`batch mode needs a provider with a batch API (openai); ${this.provider.name} has none`)
    this.setId = options.setId ?? defaultSetId(this.provider, this.seed)
    this.store = options.store === null ? new MemoryStore() : (options.store ?? new FileStore())
  }

  private resolveProvider(options: SyntheticGeneratorOptions, env: NodeJS.ProcessEnv): WordProvider {
    const p = options.provider ?? 'auto'
    if (typeof p === 'object') return p
    if (p === 'lexicon') return new LexiconProvider(options.lexicon)
    if (p === 'openai') return new OpenAIProvider({ env, ...options.openai })
    if (p !== 'auto') throw new ConfigError(`provider must be lexicon, openai or auto, got ${JSON.stringify(p)}`)
    // An explicit key or server (option, --base-url) means openai; so does OPENAI_API_KEY.
    if (options.openai?.apiKey || options.openai?.baseURL || env.OPENAI_API_KEY?.trim()) return new OpenAIProvider({ env, ...options.openai })
    this.pendingNotices.push('OPENAI_API_KEY is not set: using the bundled offline lexicon (set it, or pass --provider openai, to generate with a model)')
    return new LexiconProvider(options.lexicon)
  }

  private emit(event: CorpusEvent, extra?: (event: CorpusEvent) => void): void {
    for (const fn of [this.onEvent, extra]) {
      if (!fn) continue
      try {
        fn(event)
      } catch {
        // a listener's failure must not break generation
      }
    }
  }

  /**
   * Builds (or completes) every requested cell and returns the corpora. Safe to call again
   * after a failure, a cancellation or a killed process: it continues from the store.
   */
  async generate(options: { signal?: AbortSignal; onEvent?: (event: CorpusEvent) => void } = {}): Promise<CorpusResult> {
    const started = Date.now()
    const emit = (e: CorpusEvent) => this.emit(e, options.onEvent)
    for (const message of this.pendingNotices.splice(0)) emit({ type: 'notice', message })
    if (options.signal?.aborted) throw new CancelledError()
    await this.provider.prepare?.(this.cells, this.wordsPerCorpus)
    return new CorpusRun(this, emit).run(this.cells, options.signal, started)
  }
}

/** One-shot helper: `new SyntheticGenerator(options).generate({ signal })`. */
export async function generateCorpus(options: SyntheticGeneratorOptions & { signal?: AbortSignal } = {}): Promise<CorpusResult> {
  const { signal, ...rest } = options
  return new SyntheticGenerator(rest).generate({ signal })
}

/** Sorts cells into index order (style, complexity, era). */
export function sortCells<T extends { cell: Cell }>(items: T[]): T[] {
  return items.slice().sort((a, b) => cellIndex(a.cell) - cellIndex(b.cell))
}
