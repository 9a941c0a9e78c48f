/**
 * `CorpusRun`: one call of `SyntheticGenerator.generate`. It holds what the call shares across
 * cells (which cell claimed which word, each cell's words so far, the first failure, the abort
 * signal) and does the work in methods: load the store, plan requests, absorb answers, save
 * cells, run the rounds (one request per chunk, or the provider's batch API).
 */
import { setMaxListeners } from 'node:events'
import { CancelledError, ProviderError, WotdError } from '../errors.js'
import { cellSlug, STORED_CORPUS_SCHEMA, type CorpusStore, type StoredCorpus } from '../store/types.js'
import { cellKey, isPartOfSpeech, type Cell, type CellKey, type WOTDWord } from '../types.js'
import { createLimiter } from './limiter.js'
import { addUsage, emptyUsage, type CorpusUsage, type Proposal, type ProposeRequest, type WordProvider } from './provider.js'
import type { CorpusEvent, CorpusResult, RejectCounts } from './results.js'
import { normalizeDefinition, normalizeWord } from './validate.js'

/** The generator's settings a run reads. */
export interface CorpusPlan {
  readonly provider: WordProvider
  readonly wordsPerCorpus: number
  readonly seed: number
  readonly setId: string
  readonly store: CorpusStore
  readonly maxRounds: number
  readonly batch: boolean
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

/** The id of a cell's corpus: `<setId>/<style>-<complexity>-<era>`. */
export function corpusId(setId: string, cell: Cell): string {
  return `${setId}/${cellSlug(cell)}`
}

export class CorpusRun {
  /** Which cell claimed each word: a word belongs to the first cell that took it. */
  private readonly claims = new Map<string, CellKey>()
  private readonly states = new Map<CellKey, CellState>()
  /** The requested cells, in the requested order. */
  private selected: CellState[] = []
  /** Aborted by the caller's signal or by the first failure (the other cells stop soon after). */
  private readonly ac = new AbortController()
  private failure: unknown
  private readonly N: number

  constructor(
    private readonly plan: CorpusPlan,
    private readonly emit: (e: CorpusEvent) => void,
  ) {
    this.N = plan.wordsPerCorpus
    setMaxListeners(0, this.ac.signal) // one listener per waiting cell and per request in flight
  }

  /** Builds (or completes) `cells` and returns their corpora. */
  async run(cells: readonly Cell[], signal: AbortSignal | undefined, started: number): Promise<CorpusResult> {
    await this.load(cells)
    const onAbort = () => this.ac.abort()
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      if (this.plan.batch) await this.roundsInBatches()
      else await this.roundsPerCell()
    } catch (err) {
      this.fail(err)
    } finally {
      signal?.removeEventListener('abort', onAbort)
      // Whatever happened, let the saves of what was accepted finish.
      const saves = await Promise.allSettled([...this.states.values()].map((s) => s.saving))
      const badSave = saves.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      if (badSave && this.failure === undefined) this.failure = badSave.reason
    }
    const failure = this.failure
    if (failure !== undefined) throw failure instanceof WotdError || !(failure instanceof Error) ? failure : new ProviderError(failure.message, { cause: failure })
    if (signal?.aborted) throw new CancelledError()
    return this.result(started)
  }

  /** Loads what the store holds for this set; every stored word is claimed for its cell. */
  private async load(cells: readonly Cell[]): Promise<void> {
    const stored = await this.plan.store.listCorpora(this.plan.setId)
    const selectedKeys = new Set(cells.map(cellKey))
    for (const doc of stored) this.states.set(cellKey(doc.cell), this.stateFrom(doc, selectedKeys.has(cellKey(doc.cell))))
    for (const c of cells) {
      if (!this.states.has(cellKey(c))) this.states.set(cellKey(c), this.stateFrom(null, true, c))
    }
    this.selected = cells.map((c) => this.states.get(cellKey(c))!)
    const { provider, setId } = this.plan
    this.emit({
      type: 'start',
      setId,
      provider: provider.name,
      model: provider.model,
      cells: this.selected.length,
      wordsPerCorpus: this.N,
      complete: this.selected.filter((s) => s.words.length >= this.N).length,
      batch: this.plan.batch,
    })
    for (const st of this.selected) if (st.words.length >= this.N) this.progress(st)
  }

  private fail(err: unknown): void {
    if (this.failure === undefined && !(err instanceof CancelledError && this.ac.signal.aborted)) this.failure = err
    this.ac.abort()
  }

  private progress(st: CellState): void {
    if (!st.selected) return
    const N = this.N
    const cellsTotal = this.selected.length
    const done = this.selected.filter((s) => s.words.length >= N).length
    const wordsDone = this.selected.reduce((a, s) => a + Math.min(N, s.words.length), 0)
    this.emit({ type: 'progress', cell: st.key, words: Math.min(N, st.words.length), target: N, cellsComplete: done, cellsTotal, wordsDone, wordsTotal: cellsTotal * N })
    if (st.words.length >= N && !st.announced) {
      st.announced = true
      this.emit({ type: 'cell-complete', cell: st.key, words: N, fromStore: st.fromStore >= N })
    }
  }

  /** Takes the valid, new words of an answer into its cell; saves the cell when it grew. */
  private absorb(st: CellState, p: Proposal): void {
    st.requests += p.attempts
    addUsage(st.usage, p.usage)
    for (const reason of p.problems) this.emit({ type: 'reask', cell: st.key, reason })
    const rej: RejectCounts = { invalid: 0, duplicate: 0, otherCell: 0 }
    const examples: string[] = []
    const before = st.words.length
    for (const c of p.candidates) {
      if (st.words.length >= this.N) break
      const word = normalizeWord(c.word)
      const definition = normalizeDefinition(c.definition)
      let why: keyof RejectCounts | undefined
      if (word === null || definition === null || !isPartOfSpeech(c.partOfSpeech)) why = 'invalid'
      else if (st.set.has(word)) why = 'duplicate'
      else if (this.claims.has(word)) why = 'otherCell'
      if (why) {
        rej[why]++
        st.rejected[why]++
        if (examples.length < 5) examples.push(String(c.word).slice(0, 40))
        continue
      }
      st.words.push({ word: word!, definition: definition!, partOfSpeech: c.partOfSpeech as WOTDWord['partOfSpeech'], ...st.cell, source: this.plan.provider.name })
      st.set.add(word!)
      this.claims.set(word!, st.key)
    }
    if (rej.invalid + rej.duplicate + rej.otherCell > 0) this.emit({ type: 'rejected', cell: st.key, examples, ...rej })
    if (st.words.length > before || p.usage.requests > 0) this.save(st)
    if (st.words.length > before) this.progress(st)
  }

  /**
   * The requests of one round of a cell: what is missing split into requests of at most the
   * provider's `wordsPerRequest`, each asking a little more (`overAsk`) to absorb rejects
   * without another round.
   */
  private requests(st: CellState, round: number): ProposeRequest[] {
    const { provider, seed } = this.plan
    const need = this.N - st.words.length
    const chunks = Math.max(1, Math.ceil(need / provider.wordsPerRequest))
    const per = Math.ceil(need / chunks)
    const count = per + Math.ceil(per * provider.overAsk)
    const have = st.words.map((w) => w.word)
    return Array.from({ length: chunks }, (_, chunk) => ({
      id: `${st.slug}.r${round}.c${chunk}`,
      cell: st.cell,
      count,
      have,
      isTaken: (w: string) => this.claims.has(w),
      seed,
      round,
      chunk,
      chunks,
      signal: this.ac.signal,
    }))
  }

  private tooFew(open: CellState[]): ProviderError {
    const { provider, maxRounds } = this.plan
    const st = open[0]
    const r = st.rejected
    return new ProviderError(
      `${provider.name}${provider.model ? ` (${provider.model})` : ''}: cell ${st.key} has ${st.words.length} of ${this.N} ` +
        `distinct valid words after ${maxRounds} rounds (${st.requests} requests; rejected ${r.invalid} invalid, ${r.duplicate} duplicate, ` +
        `${r.otherCell} from other cells)${open.length > 1 ? `; ${open.length - 1} more cells are short too` : ''}. ` +
        'The words so far are saved; rerun to continue, or raise maxRounds',
    )
  }

  /** Cells in parallel (up to the provider's concurrency), each round after round until full. */
  private async roundsPerCell(): Promise<void> {
    const cellLimiter = createLimiter(Math.max(1, this.plan.provider.concurrency))
    await Promise.all(
      this.selected.map((st) =>
        cellLimiter
          .run(async () => {
            for (let round = 1; st.words.length < this.N; round++) {
              if (this.ac.signal.aborted) throw new CancelledError()
              if (round > this.plan.maxRounds) throw this.tooFew([st])
              st.rounds++
              const results = await Promise.allSettled(this.requests(st, round).map(async (req) => this.absorb(st, await this.plan.provider.propose(req))))
              const bad = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
              if (bad) throw bad.reason
            }
          }, this.ac.signal)
          .catch((err) => this.fail(err)),
      ),
    )
  }

  /**
   * Every open cell's requests of a round in one batch. The pending batch is kept in the store,
   * so a killed run collects it on the next start instead of paying for it twice.
   */
  private async roundsInBatches(): Promise<void> {
    const { store, setId, maxRounds } = this.plan
    const key = `batch-${setId}`
    const pending = await store.getState<PendingBatch>(key)
    if (pending) {
      this.emit({ type: 'notice', message: `resuming batch ${pending.batchId} submitted ${pending.submittedAt}` })
      await this.collect(pending, key)
    }
    for (let round = 1; ; round++) {
      const open = this.selected.filter((s) => s.words.length < this.N)
      if (open.length === 0) return
      if (round > maxRounds) throw this.tooFew(open)
      const requests = open.flatMap((st) => {
        st.rounds++
        return this.requests(st, round)
      })
      const batchId = await this.plan.provider.batch!.submit(requests, this.ac.signal)
      const doc: PendingBatch = { batchId, submittedAt: new Date().toISOString(), requests: requests.map((r) => ({ id: r.id, cell: cellKey(r.cell) })) }
      await store.putState(key, doc)
      this.emit({ type: 'batch', batchId, status: 'submitted', done: 0, total: requests.length })
      await this.collect(doc, key)
    }
  }

  private async collect(pending: PendingBatch, key: string): Promise<void> {
    const { store, setId } = this.plan
    const results = await this.plan.provider.batch!.collect(pending.batchId, {
      signal: this.ac.signal,
      onStatus: (status, done, total) => this.emit({ type: 'batch', batchId: pending.batchId, status, done, total }),
    })
    for (const r of pending.requests) {
      let st = this.states.get(r.cell)
      if (!st) {
        // A batch submitted by an earlier run for a cell this run does not build: keep its words anyway.
        const c = { style: r.cell.split('/')[0], complexity: r.cell.split('/')[1], era: r.cell.split('/')[2] } as Cell
        st = this.stateFrom(await store.getCorpus(setId, c), false, c)
        this.states.set(r.cell, st)
      }
      const p = results.get(r.id)
      if (p) this.absorb(st, p)
      else this.emit({ type: 'reask', cell: r.cell, reason: `the batch output has no answer for ${r.id}` })
    }
    await Promise.all([...this.states.values()].map((s) => s.saving))
    await store.putState(key, null)
  }

  private stateFrom(doc: StoredCorpus | null, selected: boolean, cell?: Cell): CellState {
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
      if (word === null || st.set.has(word) || this.claims.has(word)) {
        dropped = true
        continue
      }
      st.words.push({ ...w, word, ...c })
      st.set.add(word)
      this.claims.set(word, key)
    }
    st.fromStore = st.words.length
    if (dropped) this.save(st)
    return st
  }

  /** Queues an atomic save of a cell after the ones already queued (saves of a cell never race). */
  private save(st: CellState): void {
    const { provider, setId, seed, store, wordsPerCorpus } = this.plan
    const now = new Date().toISOString()
    const words = st.words.slice(0, Math.max(wordsPerCorpus, st.fromStore))
    const doc: StoredCorpus = {
      schema: STORED_CORPUS_SCHEMA,
      id: corpusId(setId, st.cell),
      setId,
      cell: { ...st.cell },
      status: words.length >= wordsPerCorpus ? 'complete' : 'partial',
      target: Math.max(wordsPerCorpus, st.fromStore),
      provider: { name: provider.name, ...(provider.model ? { model: provider.model } : {}), ...(provider.baseURL ? { baseURL: provider.baseURL } : {}) },
      seed,
      words: words.map((w) => ({ ...w })),
      usage: addUsage({ ...st.priorUsage }, st.usage),
      createdAt: st.createdAt,
      updatedAt: now,
    }
    st.saving = st.saving.then(() => store.putCorpus(doc))
    // Keep the chain alive after a failed save; the failure is reported at the end of the run.
    st.saving.catch(() => {})
  }

  private result(started: number): CorpusResult {
    const { provider, setId, seed, store } = this.plan
    const N = this.N
    const usage = emptyUsage()
    for (const st of this.selected) addUsage(usage, st.usage)
    return {
      setId,
      provider: provider.name,
      model: provider.model,
      baseURL: provider.baseURL,
      seed,
      wordsPerCorpus: N,
      batch: this.plan.batch,
      store: { kind: store.kind, location: store.location },
      corpora: this.selected.map((st) => ({ id: corpusId(setId, st.cell), cell: { ...st.cell }, words: st.words.slice(0, N) })),
      cells: this.selected.map((st) => ({
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
}
