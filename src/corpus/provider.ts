/** The interface every corpus provider implements, and token/cost accounting. */
import type { Cell, CorpusUsage } from '../types.js'

/** A word as a provider proposes it: not yet validated, normalised or deduplicated. */
export interface RawCandidate {
  word: unknown
  definition: unknown
  partOfSpeech: unknown
}

export type { CorpusUsage }

export function emptyUsage(): CorpusUsage {
  return { requests: 0, promptTokens: 0, completionTokens: 0, totalTokens: 0, costUSD: 0 }
}

/** Adds `b` into `a` (in place) and returns `a`. */
export function addUsage(a: CorpusUsage, b: CorpusUsage): CorpusUsage {
  a.requests += b.requests
  a.promptTokens += b.promptTokens
  a.completionTokens += b.completionTokens
  a.totalTokens += b.totalTokens
  a.costUSD = a.costUSD === null || b.costUSD === null ? null : roundUsd(a.costUSD + b.costUSD)
  return a
}

export function roundUsd(x: number): number {
  return Math.round(x * 1e9) / 1e9
}

/** One request for words of one cell. */
export interface ProposeRequest {
  /** Unique within a run (the Batch API's `custom_id`). */
  id: string
  cell: Cell
  /** How many new words to ask for. */
  count: number
  /** Words this cell already holds (a provider may tell the model to avoid them). */
  have: readonly string[]
  /** Whether a word is taken already, by this cell or another; a provider that can skips these. */
  isTaken(word: string): boolean
  seed: number
  /** 1-based round of top-up requests for this cell, and this request's place in the round. */
  round: number
  chunk: number
  chunks: number
  signal?: AbortSignal
}

/** What one request produced. */
export interface Proposal {
  candidates: RawCandidate[]
  usage: CorpusUsage
  /** Calls made for this request, re-asks included. */
  attempts: number
  /** Why attempts were re-asked or produced nothing (already redacted). */
  problems: string[]
}

/** A provider that can also run requests through an asynchronous batch API. */
export interface BatchCapability {
  /** Submits the requests as one batch and returns its id. */
  submit(requests: readonly ProposeRequest[], signal?: AbortSignal): Promise<string>
  /** Waits for a batch and returns one proposal per request id found in its output. */
  collect(
    batchId: string,
    opts?: { signal?: AbortSignal; onStatus?: (status: string, done: number, total: number) => void },
  ): Promise<Map<string, Proposal>>
}

export interface WordProvider {
  /** `lexicon`, `openai`, ...: also each word's `source`. */
  readonly name: string
  readonly model?: string
  /** The server, without credentials (for display and stored documents). */
  readonly baseURL?: string
  /** Requests in flight at most (the provider enforces it). */
  readonly concurrency: number
  /** How many words one request should ask for. */
  readonly wordsPerRequest: number
  /** Extra share of words to ask for beyond what is missing (0 for exact providers). */
  readonly overAsk: number
  /** Checks, before any request, that the provider can serve these cells at this size. */
  prepare?(cells: readonly Cell[], wordsPerCorpus: number): Promise<void>
  propose(request: ProposeRequest): Promise<Proposal>
  readonly batch?: BatchCapability
}
