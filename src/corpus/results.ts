/** What a corpus generation reports: its events as it goes and its result at the end. */
import type { Cell, CellKey, WOTDCorpus } from '../types.js'
import type { CorpusUsage } from './provider.js'

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
