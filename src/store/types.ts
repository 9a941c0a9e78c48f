/**
 * The persistent store behind the pipeline. Small on purpose: corpora saved per cell (a
 * partial cell is kept until it is complete) and small named state documents (such as a
 * pending batch). `FileStore` implements it here; a MongoDB store implements the same
 * interface.
 */
import type { CorpusUsage } from '../corpus/provider.js'
import type { Cell, WOTDCorpus, WOTDWord } from '../types.js'

export const STORED_CORPUS_SCHEMA = 1

/** One cell of a corpus set, as saved. */
export interface StoredCorpus extends WOTDCorpus {
  schema: typeof STORED_CORPUS_SCHEMA
  /** The corpus set this cell belongs to (e.g. `lexicon-seed42`); a word is in one cell of a set. */
  setId: string
  cell: Cell
  /** `complete` once `words.length >= target`. */
  status: 'partial' | 'complete'
  target: number
  /** Who made the words; never credentials. */
  provider: { name: string; model?: string; baseURL?: string }
  seed: number
  words: WOTDWord[]
  /** Tokens and cost spent on this cell, over every run. */
  usage: CorpusUsage
  createdAt: string
  updatedAt: string
}

export interface CorpusStore {
  /** `file`, `memory`, `mongodb`, ... */
  readonly kind: string
  /** Where the data lives, for display (no credentials). */
  readonly location: string
  /** The saved cell of a set, or null when there is none. */
  getCorpus(setId: string, cell: Cell): Promise<StoredCorpus | null>
  /** Saves (replaces) one cell atomically: a reader sees the old or the new document, never a mix. */
  putCorpus(doc: StoredCorpus): Promise<void>
  /** Every saved cell of a set (or of every set), in cell index order. */
  listCorpora(setId?: string): Promise<StoredCorpus[]>
  deleteCorpus(setId: string, cell: Cell): Promise<boolean>
  /** A small JSON state document by key, or null. */
  getState<T = unknown>(key: string): Promise<T | null>
  /** Saves a state document; `null` deletes it. */
  putState(key: string, value: unknown): Promise<void>
  close(): Promise<void>
}

/** `style-complexity-era`: a cell's name in file names and ids. */
export function cellSlug(cell: Cell): string {
  return `${cell.style}-${cell.complexity}-${cell.era}`
}

/** Set ids and state keys are used as file names: letters, digits, `.`, `_`, `-` only. */
export const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/
