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
import { setMaxListeners } from 'node:events'
import { CancelledError, ConfigError, InvalidInputError, ProviderError, WotdError } from '../errors.js'
import { FileStore } from '../store/file.js'
import { MemoryStore } from '../store/memory.js'
import { cellSlug, STORED_CORPUS_SCHEMA, type CorpusStore, type StoredCorpus } from '../store/types.js'
import {
  cellIndex,
  cellKey,
  isPartOfSpeech,
  resolveCells,
  type Cell,
  type CellKey,
  type CellSelection,
  type WOTDCorpus,
  type WOTDWord,
} from '../types.js'
import { LexiconProvider, type LexiconProviderOptions } from './lexicon.js'
import { createLimiter } from './limiter.js'
import { OpenAIProvider, type OpenAIProviderOptions } from './openai.js'
import { addUsage, emptyUsage, type CorpusUsage, type Proposal, type ProposeRequest, type WordProvider } from './provider.js'
import { normalizeDefinition, normalizeWord } from './validate.js'

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

export interface RejectCounts {
  /** Not a well-formed word, or a missing definition or part of speech. */
  invalid: number
  /** Already in this cell. */
  duplicate: number
  /** Already in another cell of the set. */
  otherCell: number
}

export type CorpusEvent =
  | { type: 'notice'; message: string }
  | { type: 'start'; setId: string; provider: string; model?: string; cells: number; wordsPerCorpus: number; complete: number; batch: boolean }
  | {
      type: 'progress'
      cell: CellKey
      words: number
      target: number
      cellsComplete: number
      cellsTotal: number
      wordsDone: number
      wordsTotal: number
    }
  | { type: 'cell-complete'; cell: CellKey; words: number; fromStore: boolean }
  | { type: 'reask'; cell: CellKey; reason: string }
  | ({ type: 'rejected'; cell: CellKey; examples: string[] } & RejectCounts)
  | { type: 'batch'; batchId: string; status: string; done: number; total: number }

export interface CellSummary {
  cell: Cell
  key: CellKey
  /** Words in the corpus (= wordsPerCorpus). */
  words: number
  /** Of those, how many were already in the store when the run began. */
  fromStore: number
  /** How many were added by this run. */
  generated: number
  /** Provider calls this run made for the cell (re-asks included). */
  requests: number
  rounds: number
  rejected: RejectCounts
  usage: CorpusUsage
}

export interface CorpusResult {
  setId: string
  provider: string
  model?: string
  baseURL?: string
  seed: number
  wordsPerCorpus: number
  batch: boolean
  store: { kind: string; location: string }
  /** One corpus per requested cell, in the requested order, each exactly `wordsPerCorpus` words. */
  corpora: WOTDCorpus[]
  cells: CellSummary[]
  /** Tokens and cost spent by this run. */
  usage: CorpusUsage
  durationMs: number
}

interface CellState {
  cell: Cell
  key: CellKey
  slug: string
  words: WOTDWord[]
  set: Set<string>
  fromStore: number
  createdAt: string
  priorUsage: CorpusUsage
  usage: CorpusUsage
  requests: number
  rounds: number
  rejected: RejectCounts
  saving: Promise<void>
  selected: boolean
  announced: boolean
}

interface PendingBatch {
  batchId: string
  submittedAt: string
  requests: { id: string; cell: CellKey }[]
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

/** The id of a cell's corpus: `<setId>/<style>-<complexity>-<era>`. */
export function corpusId(setId: string, cell: Cell): string {
  return `${setId}/${cellSlug(cell)}`
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
    const N = this.wordsPerCorpus
    const listener = options.onEvent
    const emit = (e: CorpusEvent) => this.emit(e, listener)
    for (const message of this.pendingNotices.splice(0)) emit({ type: 'notice', message })
    if (options.signal?.aborted) throw new CancelledError()

    await this.provider.prepare?.(this.cells, N)

    // Load what the store holds for this set; claim every stored word for its cell.
    const claims = new Map<string, CellKey>()
    const states = new Map<CellKey, CellState>()
    const stored = await this.store.listCorpora(this.setId)
    const selectedKeys = new Set(this.cells.map(cellKey))
    for (const doc of stored) states.set(cellKey(doc.cell), this.stateFrom(doc, claims, selectedKeys.has(cellKey(doc.cell))))
    for (const c of this.cells) {
      if (!states.has(cellKey(c))) states.set(cellKey(c), this.stateFrom(null, claims, true, c))
    }
    const selected = this.cells.map((c) => states.get(cellKey(c))!)
    const cellsTotal = selected.length
    const wordsTotal = cellsTotal * N
    const progress = (st: CellState) => {
      if (!st.selected) return
      const done = selected.filter((s) => s.words.length >= N).length
      const wordsDone = selected.reduce((a, s) => a + Math.min(N, s.words.length), 0)
      emit({ type: 'progress', cell: st.key, words: Math.min(N, st.words.length), target: N, cellsComplete: done, cellsTotal, wordsDone, wordsTotal })
      if (st.words.length >= N && !st.announced) {
        st.announced = true
        emit({ type: 'cell-complete', cell: st.key, words: N, fromStore: st.fromStore >= N })
      }
    }

    emit({
      type: 'start',
      setId: this.setId,
      provider: this.provider.name,
      model: this.provider.model,
      cells: cellsTotal,
      wordsPerCorpus: N,
      complete: selected.filter((s) => s.words.length >= N).length,
      batch: this.batch,
    })
    for (const st of selected) if (st.words.length >= N) progress(st)

    // Cancellation: the caller's signal, or the first failure (the other cells stop soon after).
    const ac = new AbortController()
    setMaxListeners(0, ac.signal) // one listener per waiting cell and per request in flight
    const onAbort = () => ac.abort()
    options.signal?.addEventListener('abort', onAbort, { once: true })
    let failure: unknown
    const fail = (err: unknown) => {
      if (failure === undefined && !(err instanceof CancelledError && ac.signal.aborted)) failure = err
      ac.abort()
    }

    const absorb = (st: CellState, p: Proposal) => {
      st.requests += p.attempts
      addUsage(st.usage, p.usage)
      for (const reason of p.problems) emit({ type: 'reask', cell: st.key, reason })
      const rej: RejectCounts = { invalid: 0, duplicate: 0, otherCell: 0 }
      const examples: string[] = []
      const before = st.words.length
      for (const c of p.candidates) {
        if (st.words.length >= N) break
        const word = normalizeWord(c.word)
        const definition = normalizeDefinition(c.definition)
        let why: keyof RejectCounts | undefined
        if (word === null || definition === null || !isPartOfSpeech(c.partOfSpeech)) why = 'invalid'
        else if (st.set.has(word)) why = 'duplicate'
        else if (claims.has(word)) why = 'otherCell'
        if (why) {
          rej[why]++
          st.rejected[why]++
          if (examples.length < 5) examples.push(String(c.word).slice(0, 40))
          continue
        }
        st.words.push({ word: word!, definition: definition!, partOfSpeech: c.partOfSpeech as WOTDWord['partOfSpeech'], ...st.cell, source: this.provider.name })
        st.set.add(word!)
        claims.set(word!, st.key)
      }
      if (rej.invalid + rej.duplicate + rej.otherCell > 0) emit({ type: 'rejected', cell: st.key, examples, ...rej })
      if (st.words.length > before || p.usage.requests > 0) this.save(st)
      if (st.words.length > before) progress(st)
    }

    const request = (st: CellState, round: number, chunk: number, chunks: number, count: number, have: string[]): ProposeRequest => ({
      id: `${st.slug}.r${round}.c${chunk}`,
      cell: st.cell,
      count,
      have,
      isTaken: (w) => claims.has(w),
      seed: this.seed,
      round,
      chunk,
      chunks,
      signal: ac.signal,
    })

    const plan = (st: CellState, round: number): ProposeRequest[] => {
      // Split what is missing into requests of at most wordsPerRequest, then ask each for a
      // little more (overAsk) to absorb rejects without another round.
      const need = N - st.words.length
      const chunks = Math.max(1, Math.ceil(need / this.provider.wordsPerRequest))
      const per = Math.ceil(need / chunks)
      const ask = per + Math.ceil(per * this.provider.overAsk)
      const have = st.words.map((w) => w.word)
      return Array.from({ length: chunks }, (_, i) => request(st, round, i, chunks, ask, have))
    }

    const tooFew = (open: CellState[]) => {
      const st = open[0]
      const r = st.rejected
      return new ProviderError(
        `${this.provider.name}${this.provider.model ? ` (${this.provider.model})` : ''}: cell ${st.key} has ${st.words.length} of ${N} ` +
          `distinct valid words after ${this.maxRounds} rounds (${st.requests} requests; rejected ${r.invalid} invalid, ${r.duplicate} duplicate, ` +
          `${r.otherCell} from other cells)${open.length > 1 ? `; ${open.length - 1} more cells are short too` : ''}. ` +
          'The words so far are saved; rerun to continue, or raise maxRounds',
      )
    }

    try {
      if (this.batch) {
        await this.runBatch(selected, states, claims, plan, absorb, ac.signal, emit, tooFew)
      } else {
        const cellLimiter = createLimiter(Math.max(1, this.provider.concurrency))
        await Promise.all(
          selected.map((st) =>
            cellLimiter
              .run(async () => {
                for (let round = 1; st.words.length < N; round++) {
                  if (ac.signal.aborted) throw new CancelledError()
                  if (round > this.maxRounds) throw tooFew([st])
                  st.rounds++
                  const results = await Promise.allSettled(
                    plan(st, round).map(async (req) => absorb(st, await this.provider.propose(req))),
                  )
                  const bad = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
                  if (bad) throw bad.reason
                }
              }, ac.signal)
              .catch(fail),
          ),
        )
      }
    } catch (err) {
      fail(err)
    } finally {
      options.signal?.removeEventListener('abort', onAbort)
      // Whatever happened, let the saves of what was accepted finish.
      const saves = await Promise.allSettled([...states.values()].map((s) => s.saving))
      const badSave = saves.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      if (badSave && failure === undefined) failure = badSave.reason
    }
    if (failure !== undefined) throw failure instanceof WotdError || !(failure instanceof Error) ? failure : new ProviderError(failure.message, { cause: failure })
    if (options.signal?.aborted) throw new CancelledError()

    const usage = emptyUsage()
    for (const st of selected) addUsage(usage, st.usage)
    return {
      setId: this.setId,
      provider: this.provider.name,
      model: this.provider.model,
      baseURL: this.provider.baseURL,
      seed: this.seed,
      wordsPerCorpus: N,
      batch: this.batch,
      store: { kind: this.store.kind, location: this.store.location },
      corpora: selected.map((st) => ({ id: corpusId(this.setId, st.cell), cell: { ...st.cell }, words: st.words.slice(0, N) })),
      cells: selected.map((st) => ({
        cell: { ...st.cell },
        key: st.key,
        words: N,
        fromStore: Math.min(N, st.fromStore),
        generated: Math.max(0, N - st.fromStore),
        requests: st.requests,
        rounds: st.rounds,
        rejected: { ...st.rejected },
        usage: { ...st.usage },
      })),
      usage,
      durationMs: Date.now() - started,
    }
  }

  private stateFrom(doc: StoredCorpus | null, claims: Map<string, CellKey>, selected: boolean, cell?: Cell): CellState {
    const c = doc ? { style: doc.cell.style, complexity: doc.cell.complexity, era: doc.cell.era } : cell!
    const key = cellKey(c)
    const st: CellState = {
      cell: c,
      key,
      slug: cellSlug(c),
      words: [],
      set: new Set(),
      fromStore: 0,
      createdAt: doc?.createdAt ?? new Date().toISOString(),
      priorUsage: doc?.usage ? { ...doc.usage } : emptyUsage(),
      usage: emptyUsage(),
      requests: 0,
      rounds: 0,
      rejected: { invalid: 0, duplicate: 0, otherCell: 0 },
      saving: Promise.resolve(),
      selected,
      announced: false,
    }
    let dropped = false
    for (const w of doc?.words ?? []) {
      // A stored word that is malformed or already claimed (by a damaged or hand-edited
      // store) is dropped; the cell is then topped up like any partial one.
      const word = normalizeWord(w.word)
      if (word === null || st.set.has(word) || claims.has(word)) {
        dropped = true
        continue
      }
      st.words.push({ ...w, word, ...c })
      st.set.add(word)
      claims.set(word, key)
    }
    st.fromStore = st.words.length
    if (dropped) this.save(st)
    return st
  }

  private save(st: CellState): void {
    const now = new Date().toISOString()
    const words = st.words.slice(0, Math.max(this.wordsPerCorpus, st.fromStore))
    const doc: StoredCorpus = {
      schema: STORED_CORPUS_SCHEMA,
      id: corpusId(this.setId, st.cell),
      setId: this.setId,
      cell: { ...st.cell },
      status: words.length >= this.wordsPerCorpus ? 'complete' : 'partial',
      target: Math.max(this.wordsPerCorpus, st.fromStore),
      provider: { name: this.provider.name, ...(this.provider.model ? { model: this.provider.model } : {}), ...(this.provider.baseURL ? { baseURL: this.provider.baseURL } : {}) },
      seed: this.seed,
      words: words.map((w) => ({ ...w })),
      usage: addUsage({ ...st.priorUsage }, st.usage),
      createdAt: st.createdAt,
      updatedAt: now,
    }
    st.saving = st.saving.then(() => this.store.putCorpus(doc))
    // Keep the chain alive after a failed save; the failure is reported at the end of the run.
    st.saving.catch(() => {})
  }

  private async runBatch(
    selected: CellState[],
    states: Map<CellKey, CellState>,
    claims: Map<string, CellKey>,
    plan: (st: CellState, round: number) => ProposeRequest[],
    absorb: (st: CellState, p: Proposal) => void,
    signal: AbortSignal,
    emit: (e: CorpusEvent) => void,
    tooFew: (open: CellState[]) => ProviderError,
  ): Promise<void> {
    const batch = this.provider.batch!
    const key = `batch-${this.setId}`
    const N = this.wordsPerCorpus

    const collect = async (pending: PendingBatch) => {
      const results = await batch.collect(pending.batchId, {
        signal,
        onStatus: (status, done, total) => emit({ type: 'batch', batchId: pending.batchId, status, done, total }),
      })
      for (const r of pending.requests) {
        let st = states.get(r.cell)
        if (!st) {
          // A batch submitted by an earlier run for a cell this run does not build: keep its words anyway.
          const c = { style: r.cell.split('/')[0], complexity: r.cell.split('/')[1], era: r.cell.split('/')[2] } as Cell
          st = this.stateFrom(await this.store.getCorpus(this.setId, c), claims, false, c)
          states.set(r.cell, st)
        }
        const p = results.get(r.id)
        if (p) absorb(st, p)
        else emit({ type: 'reask', cell: r.cell, reason: `the batch output has no answer for ${r.id}` })
      }
      await Promise.all([...states.values()].map((s) => s.saving))
      await this.store.putState(key, null)
    }

    const pending = await this.store.getState<PendingBatch>(key)
    if (pending) {
      emit({ type: 'notice', message: `resuming batch ${pending.batchId} submitted ${pending.submittedAt}` })
      await collect(pending)
    }
    for (let round = 1; ; round++) {
      const open = selected.filter((s) => s.words.length < N)
      if (open.length === 0) return
      if (round > this.maxRounds) throw tooFew(open)
      const requests = open.flatMap((st) => {
        st.rounds++
        return plan(st, round)
      })
      const batchId = await batch.submit(requests, signal)
      const doc: PendingBatch = { batchId, submittedAt: new Date().toISOString(), requests: requests.map((r) => ({ id: r.id, cell: cellKey(r.cell) })) }
      await this.store.putState(key, doc)
      emit({ type: 'batch', batchId, status: 'submitted', done: 0, total: requests.length })
      await collect(doc)
    }
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
